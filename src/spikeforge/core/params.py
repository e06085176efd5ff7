"""Typed parameter sets with derived defaults, stored as TOML.

A capability declares its parameters once, as an ordered list of :class:`Param`.
Each has either a fixed default or a ``derive`` function of the parameters declared
before it (``k = round(ne * pree)``).  :meth:`Schema.resolve` takes the values the
user set, checks their names and types, and computes every derived value that the
user did not set, so changing ``n_cells`` also changes ``k``, ``l`` and the weights
unless those were set explicitly too.

The TOML file written by :meth:`Schema.write_toml` lists every free parameter with its
value and every derived one as a comment (uncomment a line to override it).  Reading
it back keeps the distinction between "set by the user" and "derived".
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from spikeforge.errors import DataFileError, ParameterError

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list of numbers",
               dict: "a table of named values"}


@dataclasses.dataclass(frozen=True)
class Param:
    """Declaration of one parameter.

    Attributes:
        name: snake_case name used in Python, TOML and on the command line.
        type: one of ``bool``, ``int``, ``float``, ``str``, ``list`` (of floats), ``dict``
            (a TOML table, e.g. the arguments of a plugin).
        doc: one-line meaning, with the unit in brackets, e.g. ``"Euler step [ms]"``.
        default: value used when neither set nor derived.
        derive: function of the already-resolved values returning the default;
            ``derive_doc`` says how, for the TOML comment.
        choices: allowed values for strings.
        optional: ``None`` is an allowed value.
        unit: the unit the value is stored in (pint syntax, e.g. ``"ms"``, ``"Hz"``, ``"1/ms"``).
            A value written as a string with units (``"100 us"``) is converted to it when
            parameters are read; a parameter without a unit accepts no units.
        low, high: inclusive bounds of a number, checked as soon as the value is read (before
            anything is derived from it); ``low_open`` makes the lower bound exclusive.
    """

    name: str
    type: type
    doc: str
    default: Any = None
    derive: Callable[[Mapping[str, Any]], Any] | None = None
    derive_doc: str = ""
    choices: tuple[str, ...] = ()
    optional: bool = False
    unit: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type and checked against its bounds,
        or raise ParameterError."""
        value = self._converted(value)
        if value is not None and self.type in (int, float):
            self._check_bounds(value)
        return value

    def _check_bounds(self, value: float) -> None:
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and value > self.high
        if below or above:
            if self.high is None:
                expected = f"{'>' if self.low_open else '>='} {self.low}"
            else:
                expected = f"in {'(' if self.low_open else '['}{self.low}, {self.high}]"
            raise ParameterError(f"{self.name} = {value} must be {expected}")

    def _converted(self, value: Any) -> Any:
        if value is None:
            if self.optional:
                return None
            raise ParameterError(f"parameter {self.name!r} must not be empty; expected {_TYPE_NAMES[self.type]}")
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
        elif self.type is int:
            if isinstance(value, (bool, np.bool_)):
                pass
            elif isinstance(value, numbers.Integral):
                return int(value)
            elif isinstance(value, numbers.Real) and float(value).is_integer():
                return int(value)
            elif isinstance(value, str):
                try:
                    return self._converted(float(value) if "." in value or "e" in value.lower() else int(value))
                except ValueError:
                    pass
        elif self.type is float:
            if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
                value = float(value)
                if not math.isfinite(value):
                    raise ParameterError(f"parameter {self.name!r} = {value} is not finite; expected a finite number")
                return value
            if isinstance(value, str):
                try:
                    return self._converted(float(value))
                except ValueError:
                    return self._converted(self.in_unit(value))
        elif self.type is list:
            if isinstance(value, str):
                value = [part for part in value.replace("[", "").replace("]", "").split(",") if part.strip()]
            if isinstance(value, (list, tuple)):
                try:
                    return [Param(self.name, float, self.doc, unit=self.unit).coerce(item) for item in value]
                except ParameterError:
                    pass
        elif self.type is dict:
            if isinstance(value, Mapping):
                return dict(value)
        elif self.type is str:
            if isinstance(value, str):
                if self.choices and value not in self.choices:
                    raise ParameterError(
                        f"parameter {self.name!r} = {value!r} is not one of {', '.join(map(repr, self.choices))}"
                    )
                return value
        raise ParameterError(f"parameter {self.name!r} = {value!r} is not {_TYPE_NAMES[self.type]}")


    def in_unit(self, text: str) -> float:
        """Magnitude of a quantity such as ``"100 us"`` in this parameter's unit.

        The result is rounded to 15 significant digits, so that "100 us" gives exactly the
        number 0.1 that a plain ``dt = 0.1`` gives (binary conversion factors otherwise leave
        differences in the last bit).
        """
        try:
            import pint
        except ImportError:
            raise ParameterError(f"parameter {self.name!r} = {text!r} has units; install pint "
                                 "(pip install 'spikeforge[units]') to use units") from None
        registry = _unit_registry(pint)
        try:
            quantity = registry.Quantity(text)
            magnitude = float(quantity.to(self.unit or "dimensionless").magnitude)
        except (pint.errors.PintError, ValueError, TypeError, AttributeError) as error:
            expected = f"a quantity in {self.unit}" if self.unit else "a plain number (this parameter has no unit)"
            raise ParameterError(f"parameter {self.name!r} = {text!r} is not {expected} ({error})") from None
        return float(f"{magnitude:.15g}")


_REGISTRY = None


def _unit_registry(pint):
    global _REGISTRY  # one registry per process: building it takes a while
    if _REGISTRY is None:
        _REGISTRY = pint.UnitRegistry()
    return _REGISTRY


class Schema:
    """An ordered set of :class:`Param` plus a cross-parameter validation function.

    Args:
        params: declarations, in an order where every ``derive`` only reads earlier names.
        validate: called with the resolved values; raises ParameterError for impossible
            combinations (it should name the values involved).
        title: first line of the TOML file.
    """

    def __init__(self, params: Iterable[Param], validate: Callable[[Mapping[str, Any]], None], title: str):
        self.params = {p.name: p for p in params}
        self.validate = validate
        self.title = title

    def check_names(self, names: Iterable[str]) -> None:
        """Raise ParameterError for the first name that is not a parameter, with suggestions."""
        for name in names:
            if name not in self.params:
                close = difflib.get_close_matches(name, self.params, n=3)
                hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
                raise ParameterError(f"unknown parameter {name!r}{hint}")

    def resolve(self, user: Mapping[str, Any]) -> dict[str, Any]:
        """Return every parameter's value: the user's where set, else default or derived."""
        self.check_names(user)
        values: dict[str, Any] = {}
        for name, param in self.params.items():
            if name in user:
                values[name] = param.coerce(user[name])
            elif param.derive is not None:
                try:
                    derived = param.derive(values)
                except (ArithmeticError, ValueError) as error:
                    raise ParameterError(f"{name} cannot be derived ({param.derive_doc}) from the values given "
                                         f"({error}); check the parameters it depends on, or set {name}") from None
                values[name] = param.coerce(derived)
            else:
                values[name] = param.default
        self.validate(values)
        return values

    def write_toml(self, path: str | os.PathLike, user: Mapping[str, Any], origins: Mapping[str, str] | None = None,
                   header: str | None = None) -> None:
        """Write all parameters to ``path`` atomically; derived ones not set by the user as comments.

        ``origins``: words appended to the comment of a value (e.g. "from preset recordings");
        ``header``: a line added to the file's header comment."""
        values = self.resolve(user)
        origins = origins or {}
        lines = [f"# {self.title}", "# Derived values are commented out; uncomment one to override it."]
        lines += [f"# {header}", ""] if header else [""]
        for name, param in self.params.items():
            value = values[name]
            derived = param.derive is not None and name not in user
            if value is None:
                lines.append(f"# {name} =   # {param.doc} (not set)")
                continue
            entry = f"{name} = {_inline(value)}"
            comment = param.doc + (f"; derived: {param.derive_doc}" if param.derive is not None else "")
            comment += f" [{origins[name]}]" if name in origins else ""
            lines.append(f"{'# ' if derived else ''}{entry}   # {comment}")
        from spikeforge.core.store import atomic_write_text

        atomic_write_text(Path(path), "\n".join(lines) + "\n")

    def read_toml(self, path: str | os.PathLike) -> dict[str, Any]:
        """Read the values set in a TOML file (derived ones that are commented out stay unset)."""
        path = Path(path)
        if not path.is_file():
            raise DataFileError(f"parameter file {str(path)!r} does not exist; run `spikeforge new` first")
        try:
            with path.open("rb") as handle:
                user = tomllib.load(handle)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise DataFileError(f"parameter file {str(path)!r} is not valid TOML: {error}") from None
        self.check_names(user)
        return user


def _inline(value: Any) -> str:
    """A value as inline TOML (tables inline, so that the file stays one flat list of keys)."""
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{key} = {_inline(item)}" for key, item in value.items()) + " }" if value else "{}"
    return tomli_w.dumps({"v": value}).strip()[len("v = "):]


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse ``NAME=VALUE`` from the command line; VALUE is read as a TOML value if it can be."""
    if "=" not in text:
        raise ParameterError(f"--set {text!r} is not of the form NAME=VALUE")
    name, raw = (part.strip() for part in text.split("=", 1))
    if not name:
        raise ParameterError(f"--set {text!r} has no parameter name before '='")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return name, value
