"""User code named in parameter files: ``"module:function"`` or ``"path/file.py:function"``.

A relative file path is taken relative to the data directory, so a directory can carry
its own plugins.  Errors name the plugin and what is wrong with it; :func:`check_array`
lets a caller name the plugin, the array and the shape it expected when the plugin
returns something else.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.errors import SpikeforgeError


class PluginError(SpikeforgeError):
    """A plugin cannot be loaded, fails, or returns the wrong thing."""


def resolve(spec: str, base: str | Path = ".") -> Callable:
    """The function named by ``spec``; file paths are relative to ``base``."""
    if ":" not in spec:
        raise PluginError(f"plugin {spec!r} is not of the form 'module:function' or 'path/file.py:function'")
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py"):
        path = Path(where) if Path(where).is_absolute() else Path(base) / where
        if not path.is_file():
            raise PluginError(f"plugin {spec!r}: file {str(path)!r} does not exist")
        module_name = f"spikeforge_plugin_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        try:
            loader_spec.loader.exec_module(module)
        except Exception as error:  # the user's code: report it, with its type
            raise PluginError(f"plugin {spec!r}: loading {str(path)!r} failed: {type(error).__name__}: {error}") from None
        sys.modules[module_name] = module
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as error:
            raise PluginError(f"plugin {spec!r}: cannot import module {where!r} ({error})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise PluginError(f"plugin {spec!r}: {where!r} has no function {name!r}")
    return function


def call(spec: str, base: str | Path, args: dict[str, Any], *positional: Any) -> Any:
    """Call plugin ``spec`` with ``positional`` arguments and keyword ``args``; its errors become PluginError."""
    function = resolve(spec, base)
    try:
        return function(*positional, **args)
    except SpikeforgeError:
        raise
    except Exception as error:
        raise PluginError(f"plugin {spec!r} failed: {type(error).__name__}: {error}") from error


def check_array(value: Any, spec: str, what: str, shape: tuple, dtype_kind: str = "fiu") -> np.ndarray:
    """``value`` as an array of ``shape`` (None = any length) and a numeric kind, or PluginError."""
    expected = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        array = None
    if array is None or array.dtype.kind not in dtype_kind:
        kind = type(value).__name__ if array is None else f"{array.dtype} array"
        raise PluginError(f"plugin {spec!r} returned {what} as {kind}; expected a numeric array of shape {expected}")
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        raise PluginError(f"plugin {spec!r} returned {what} of shape {array.shape}; expected {expected}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise PluginError(f"plugin {spec!r} returned {what} with NaN or infinite values")
    return array
