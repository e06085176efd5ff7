"""SIGINT (Ctrl-C), SIGTERM (batch schedulers, ``kill``) and SIGHUP (a closed terminal) as orderly stops.

:class:`StopSignals` installs handlers for both signals while a command runs and restores
the previous ones afterwards (it nests: a command's own handlers replace the command line's
for as long as the command runs).  Two modes:

* **immediate** (the default): the signal raises :class:`Interrupted` where the program is,
  which is right wherever stopping loses nothing (start-up, reading, a computation whose
  result is not saved yet).  Files are written atomically (:mod:`spikeforge.core.store`), so
  an exception in the middle of a write leaves the previous file.
* **deferred** (inside :meth:`StopSignals.deferred`): the first signal only records itself
  (:attr:`StopSignals.requested`) and prints a notice; the work checks it at its next safe
  point (the end of a training loop, of a test trial), saves what it completed and raises
  :class:`Interrupted` itself.  A second signal raises at once.

An exception raised in library code can be swallowed or rewrapped there (Python 3.11 turns
one raised while a class is created into a RuntimeError), so every instance also remembers the
signal (:attr:`StopSignals.requested`), shares it with the instances it is nested in (and learns
it from them when it starts), and the work calls :meth:`StopSignals.raise_if_requested` at the
end of its start-up; the command line treats any failure after a signal as that signal.  Where
Python can only report the exception as "ignored" (in a callback from C, such as llvmlite's
object cache), or where C code prints it and raises an error of its own (numpy's
``import_array()``, in every extension module that uses numpy's C API, calls ``PyErr_Print``
when numpy's import fails, and a signal during that import makes it fail), the report is
suppressed while the handlers are installed: both go through hooks of :mod:`sys`
(``unraisablehook``, ``excepthook``) that drop an :class:`Interrupted` and pass on the rest.

The command line turns :class:`Interrupted` into exit status 128 + the signal number: 130
for SIGINT, 143 for SIGTERM, 129 for SIGHUP.  Handlers can only be installed in the main thread; elsewhere
:class:`StopSignals` does nothing (the default handlers stay).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

# SIGHUP: the terminal (or the ssh connection) of a foreground run was closed
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def signal_name(signum: int) -> str:
    """"SIGINT (Ctrl-C)" or "SIGTERM"."""
    name = signal.Signals(signum).name
    return f"{name} (Ctrl-C)" if signum == signal.SIGINT else name


class Interrupted(KeyboardInterrupt):
    """Work stopped on a signal; ``exit_status`` is 128 + the signal number.

    A :class:`KeyboardInterrupt`, so that ``except Exception`` blocks do not swallow it."""

    def __init__(self, signum: int, message: str | None = None):
        self.signum = signum
        self.exit_status = 128 + signum
        super().__init__(message or f"interrupted by {signal_name(signum)}")


class StopSignals:
    """Handle SIGINT and SIGTERM for the duration of a ``with`` block (see the module docstring).

    Args:
        stream: where deferred-mode notices go (default stderr).
        notify: print those notices (False: one of several processes that another one speaks for).
    """

    def __init__(self, stream=None, notify: bool = True):
        self.stream, self.notify = stream, notify
        self.requested: int | None = None  # the first signal received, if any
        self._deferring = 0
        self._notice = ""
        self._previous: dict[int, object] = {}
        self._outer: StopSignals | None = None  # the instance whose handlers these replace
        self._previous_unraisable = None
        self._previous_excepthook = None

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
            self._previous_unraisable, sys.unraisablehook = sys.unraisablehook, self._unraisable
            self._previous_excepthook, sys.excepthook = sys.excepthook, self._excepthook
            outer = getattr(self._previous[signal.SIGINT], "__self__", None)
            if isinstance(outer, StopSignals):
                self._outer = outer
                self.requested = outer.requested
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self._previous_unraisable is not None:
            sys.unraisablehook, self._previous_unraisable = self._previous_unraisable, None
        if self._previous_excepthook is not None:
            sys.excepthook, self._previous_excepthook = self._previous_excepthook, None

    def _unraisable(self, unraisable) -> None:
        """Drop the report of an Interrupted that Python could not raise (it is recorded anyway)."""
        if not (isinstance(unraisable.exc_type, type) and issubclass(unraisable.exc_type, Interrupted)):
            self._previous_unraisable(unraisable)

    def _excepthook(self, exc_type, value, traceback) -> None:
        """Drop the traceback that C code prints (``PyErr_Print``) of an Interrupted it then replaces."""
        if not (isinstance(exc_type, type) and issubclass(exc_type, Interrupted)):
            self._previous_excepthook(exc_type, value, traceback)

    def _record(self, signum: int) -> None:
        """Remember the first signal here and in every enclosing instance."""
        instance = self
        while instance is not None:
            instance.requested = instance.requested or signum
            instance = instance._outer

    def _handle(self, signum: int, frame) -> None:
        if self._deferring and self.requested is None:
            self._record(signum)
            if self.notify:
                print(f"\n{signal_name(signum)}: {self._notice} (a second signal stops at once)",
                      file=self.stream or sys.stderr, flush=True)
            return
        again = self.requested is not None
        self._record(signum)
        raise Interrupted(signum, f"interrupted by {signal_name(signum)}" + ("; stopped at once" if again else ""))

    @contextlib.contextmanager
    def deferred(self, notice: str) -> Iterator["StopSignals"]:
        """Within the block, record the first signal instead of raising; ``notice`` says what
        will happen (e.g. "finishing this loop, then saving a checkpoint")."""
        self._deferring += 1
        previous_notice, self._notice = self._notice, notice
        try:
            yield self
        finally:
            self._deferring -= 1
            self._notice = previous_notice

    def raise_if_requested(self, message: str | None = None) -> None:
        """Raise :class:`Interrupted` if a signal has been received."""
        if self.requested is not None:
            raise Interrupted(self.requested, message)
