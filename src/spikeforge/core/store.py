"""HDF5 and text files that are never half-written.

Every writer here creates a temporary file next to the target and renames it over
the target only when everything was written, so an error or Ctrl-C leaves either the
old file or the new one, never a truncated mix.  Readers turn the errors of a missing,
truncated or foreign file into :class:`~spikeforge.errors.DataFileError` with the path
and the missing item in the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from spikeforge.errors import DataFileError


@contextlib.contextmanager
def atomic_output(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it to ``path`` if the block succeeds.

    Use it for files written by other libraries (figures): write to the yielded path.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise DataFileError(f"folder {str(path.parent)!r} does not exist")
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_output(path, ".tmp") as temporary:
        temporary.write_text(text)


def _to_attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)) or value is None:
        return json.dumps(value)
    return value


def write_h5(path: str | os.PathLike, arrays: Mapping[str, Any], attrs: Mapping[str, Any] | None = None) -> None:
    """Write ``arrays`` (name -> array; '/' in a name makes groups) and root ``attrs`` to ``path`` atomically.

    Dicts, lists and None in ``attrs`` are stored as JSON strings and decoded by :func:`read_h5`.
    """
    with atomic_output(Path(path), ".h5tmp") as temporary:
        with h5py.File(temporary, "w") as handle:
            for name, array in arrays.items():
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
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{what} {str(path)!r} does not exist")
    try:
        with h5py.File(path, "r") as handle:
            if names is None:
                names = []
                handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            arrays = {}
            for name in names:
                if name not in handle:
                    raise DataFileError(f"{what} {str(path)!r} has no dataset {name!r}; it was not written by this version or is incomplete")
                arrays[name] = handle[name][()]
            attrs = {name: _from_attr(value) for name, value in handle.attrs.items()}
    except DataFileError:
        raise
    except (OSError, KeyError, ValueError) as error:
        raise DataFileError(f"{what} {str(path)!r} is not a readable HDF5 file ({error})") from None
    return arrays, attrs
