"""HDF5 and text files that are never half-written.

Every writer here writes to a temporary file next to the target, flushes it to the disk
(``fsync``) and only then renames it over the target, and finally flushes the folder, so an
error, a signal, a crash or a power cut leaves either the old file or the new one, never a
truncated mix.  Files get the permissions the user's umask gives (as ``open`` would), not
the private 0600 of :func:`tempfile.mkstemp`.

A process killed during a write leaves its temporary file behind (hidden, named
``.<target>.<random>.tmp-spikeforge``); :func:`remove_stale_temporaries` deletes them, and
every command does so once it holds its directory's lock
(:class:`spikeforge.core.lock.DirectoryLock`).

A write that fails (disk full, quota, permissions, a read-only file system) raises
:class:`~spikeforge.errors.DataFileError` naming the file and the reason, with the previous
file untouched.  Readers turn the errors of a missing, truncated or foreign file into
:class:`~spikeforge.errors.DataFileError` with the path and the missing item in the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from spikeforge.core.aligned import aligned_empty
from spikeforge.errors import DataFileError

TEMPORARY_SUFFIX = ".tmp-spikeforge"
_TEMPORARY = re.compile(r"^\.(.+)\.[0-9a-f]{12}" + re.escape(TEMPORARY_SUFFIX) + "$")


def temporary_name(path: Path) -> Path:
    """A new hidden temporary name next to ``path``."""
    return path.parent / f".{path.name}.{secrets.token_hex(6)}{TEMPORARY_SUFFIX}"


def _fsync_path(path: Path, directory: bool = False) -> None:
    """Flush ``path`` (a file, or a folder's entries) to the disk."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        handle = os.open(path, flags)
    except OSError:
        if directory:  # some file systems do not open folders; the rename is still atomic
            return
        raise
    try:
        os.fsync(handle)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(handle)


def _commit(temporary: Path, path: Path) -> None:
    """Make the fully written ``temporary`` the file ``path``: flush, rename, flush the folder."""
    _fsync_path(temporary)
    os.replace(temporary, path)
    _fsync_path(path.parent, directory=True)


def write_failure(path: Path, error: OSError) -> DataFileError:
    """The user-facing error for a write of ``path`` that failed with ``error`` (HDF5's errors
    carry the system's error number only in their text)."""
    number = error.errno or next((int(n) for n in re.findall(r"errno = (\d+)", str(error))), None)
    reason = os.strerror(number) if number else " ".join((error.strerror or str(error)).split())[:300]
    previous = "the previous file is unchanged" if path.exists() else "nothing was written"
    return DataFileError(f"cannot write {str(path)!r}: {reason}; {previous}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, before_commit: Callable[[], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, it becomes ``path``.

    Use it for files written by other libraries (figures, HDF5): write to the yielded path.
    The temporary file exists (empty, with the umask's permissions) when the block starts.
    ``before_commit`` runs once the content is complete, just before the rename (to remove files
    the new one makes obsolete, so that a crash leaves either the old set or the new one).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise DataFileError(f"folder {str(path.parent)!r} does not exist")
    temporary = temporary_name(path)
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
    except OSError as error:
        raise write_failure(path, error) from None
    try:
        yield temporary
        if before_commit is not None:
            before_commit()
        _commit(temporary, path)
    except OSError as error:
        raise write_failure(path, error) from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure to ``path`` atomically, in the format its suffix names (png, pdf, svg)."""
    path = Path(path)
    with atomic_output(path) as temporary:
        fig.savefig(temporary, dpi=dpi, format=path.suffix[1:])
    return path


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left in ``directory``; return them.

    Call it only while holding the directory's lock, when no other writer can be at work there.
    """
    removed = []
    for entry in Path(directory).iterdir():
        if _TEMPORARY.match(entry.name) and entry.is_file():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_output(path) as temporary:
        temporary.write_text(text)


def _to_attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)) or value is None:
        return json.dumps(value)
    return value


class Pieces(NamedTuple):
    """A dataset written piece by piece, never whole in memory: ``fill(dataset)`` writes every part of the
    created ``shape`` x ``dtype`` dataset (e.g. row blocks received one at a time)."""

    shape: tuple
    dtype: Any
    fill: Callable[[h5py.Dataset], None]


def write_h5(path: str | os.PathLike, arrays: Mapping[str, Any], attrs: Mapping[str, Any] | None = None,
             before_commit: Callable[[], None] | None = None) -> None:
    """Write ``arrays`` (name -> array or :class:`Pieces`; '/' in a name makes groups) and root ``attrs`` to
    ``path`` atomically (``before_commit``: see :func:`atomic_output`).

    Dicts, lists and None in ``attrs`` are stored as JSON strings and decoded by :func:`read_h5`.
    """
    with atomic_output(path, before_commit) as temporary:
        with h5py.File(temporary, "w") as handle:
            for name, array in arrays.items():
                if isinstance(array, Pieces):
                    array.fill(handle.create_dataset(name, shape=array.shape, dtype=array.dtype))
                    continue
                handle.create_dataset(name, data=np.asarray(array))
            for name, value in (attrs or {}).items():
                handle.attrs[name] = _to_attr(value)


def _from_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def require_file(path: Path, what: str) -> None:
    """DataFileError unless ``path`` is a regular file (saying whether it is missing or something else)."""
    if not path.exists():
        raise DataFileError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise DataFileError(f"{what} {str(path)!r} is {kind}; expected a file")


def read_attrs(path: str | os.PathLike, what: str = "data file") -> dict[str, Any]:
    """The root attributes of HDF5 file ``path``, JSON-decoded (no dataset is read)."""
    return read_h5(path, [], what)[1]


def dataset_names(path: str | os.PathLike, what: str = "data file") -> list[str]:
    """The names of every dataset in HDF5 file ``path`` (nothing is read)."""
    return _open(Path(path), what, lambda handle: _all_datasets(handle))


def read_rows(path: str | os.PathLike, name: str, lo: int, hi: int, what: str = "data file") -> np.ndarray:
    """Rows ``lo:hi`` of dataset ``name`` of HDF5 file ``path`` (only those are read)."""
    def rows(handle):
        if name not in handle or not isinstance(handle[name], h5py.Dataset):
            raise DataFileError(f"{what} {str(path)!r} has no dataset {name!r}")
        dataset = handle[name]
        if dataset.ndim == 0 or not 0 <= lo <= hi <= dataset.shape[0]:
            raise DataFileError(f"{what} {str(path)!r}: {name} has shape {dataset.shape}, without rows {lo}:{hi}")
        return _read(dataset, lo, hi)

    return _open(Path(path), what, rows)


def _read(dataset: h5py.Dataset, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """Rows ``lo:hi`` of ``dataset`` (None: all of it).  Numeric arrays are read in place into an array that starts
    on a cache line (:mod:`spikeforge.core.aligned`), so that the SIMD kernels' vectors do not straddle two."""
    if dataset.ndim == 0 or dataset.dtype.kind not in "biuf":
        return dataset[()] if lo is None else dataset[lo:hi]
    lo, hi = (0, dataset.shape[0]) if lo is None else (lo, hi)
    values = aligned_empty((hi - lo, *dataset.shape[1:]), dataset.dtype)
    if values.size:
        dataset.read_direct(values, source_sel=np.s_[lo:hi])
    return values


def dataset_shapes(path: str | os.PathLike, what: str = "data file") -> dict[str, tuple]:
    """The shape of every dataset in HDF5 file ``path`` (nothing is read)."""
    return _open(Path(path), what, lambda handle: {name: handle[name].shape for name in _all_datasets(handle)})


def _all_datasets(handle: h5py.File) -> list[str]:
    names: list[str] = []
    handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _open(path: Path, what: str, work):
    """``work(handle)`` on HDF5 file ``path`` opened for reading; errors of a missing, truncated or
    foreign file become DataFileError."""
    require_file(path, what)
    try:
        with h5py.File(path, "r") as handle:
            return work(handle)
    except DataFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        reason = " ".join(str(error).split())[:300]
        raise DataFileError(f"{what} {str(path)!r} is not a readable HDF5 file ({reason})") from None


def read_h5(
    path: str | os.PathLike, names: list[str] | None = None, what: str = "data file"
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read datasets ``names`` (all datasets when None) and the root attributes of ``path``.

    Args:
        path: HDF5 file.
        names: datasets required; a missing one is an error naming it.
        what: words for the file in error messages (e.g. "checkpoint").

    Returns:
        (arrays, attrs): arrays as numpy arrays, attributes JSON-decoded.
    """
    def work(handle: h5py.File):
        arrays = {}
        for name in _all_datasets(handle) if names is None else names:
            if name not in handle or not isinstance(handle[name], h5py.Dataset):
                raise DataFileError(f"{what} {str(path)!r} has no dataset {name!r}; it was not written by this "
                                    "version or is incomplete")
            arrays[name] = _read(handle[name])
        return arrays, {name: _from_attr(value) for name, value in handle.attrs.items()}

    return _open(Path(path), what, work)
