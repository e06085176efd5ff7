"""One writer per data directory.

Every command that writes into a data directory (``new``, ``init``, ``train``, ``test``,
``plot``) holds :class:`DirectoryLock` while it works: an exclusive lock on
``<dir>/.spikeforge.lock`` taken with :mod:`filelock` (an ``flock`` that the operating system
releases when the process ends, however it ends), plus ``<dir>/.spikeforge.owner``, which says
who holds it.  A second writer is refused at once with the holder's command, PID, host and
start time, instead of both writing into the same run.

Taking the lock is also the first write into the directory, so a read-only or missing
directory is reported before any work starts; and once the lock is held, the temporary files
that a killed writer left behind are removed (:func:`spikeforge.core.store.remove_stale_temporaries`).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path

import filelock

from spikeforge.core.store import atomic_write_text, remove_stale_temporaries
from spikeforge.errors import DataFileError

LOCK_NAME = ".spikeforge.lock"
OWNER_NAME = ".spikeforge.owner"


class DirectoryBusy(DataFileError):
    """Another process holds the directory's lock."""


class DirectoryLock:
    """Exclusive right to write into ``directory`` for one command (a context manager).

    Args:
        directory: an existing data directory.
        command: what holds the lock, for the message a second writer gets (e.g. "spikeforge train").
    """

    def __init__(self, directory: str | os.PathLike, command: str):
        self.directory = Path(directory)
        self.command = command
        self._lock: filelock.BaseFileLock | None = None

    @property
    def owner_file(self) -> Path:
        """``<directory>/.spikeforge.owner``: JSON with the holder's command, PID, host and start time."""
        return self.directory / OWNER_NAME

    def holder(self) -> str:
        """Words for whoever holds the lock now, from the owner file (best effort)."""
        try:
            owner = json.loads(self.owner_file.read_text())
            return (f"{owner['command']} (PID {owner['pid']} on host {owner['host']}, "
                    f"since {owner['since']})")
        except (OSError, ValueError, KeyError, TypeError):
            return "another spikeforge process"

    def __enter__(self) -> "DirectoryLock":
        if not self.directory.is_dir():
            raise DataFileError(f"data directory {str(self.directory)!r} does not exist")
        lock = filelock.FileLock(str(self.directory / LOCK_NAME), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise DirectoryBusy(f"data directory {str(self.directory)!r} is in use by {self.holder()}; "
                                "wait for it to finish or stop it, then try again") from None
        except OSError as error:
            raise DataFileError(f"cannot write into data directory {str(self.directory)!r}: "
                                f"{error.strerror or error}") from None
        self._lock = lock
        try:
            owner = {"command": self.command, "pid": os.getpid(), "host": socket.gethostname(),
                     "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
            atomic_write_text(self.owner_file, json.dumps(owner) + "\n")
            remove_stale_temporaries(self.directory)
        except BaseException:
            self._release()
            raise
        return self

    def _release(self) -> None:
        if self._lock is None:
            return
        try:
            self.owner_file.unlink(missing_ok=True)
        except OSError:
            pass
        self._lock.release()
        self._lock = None

    def __exit__(self, *exc_info) -> None:
        self._release()
