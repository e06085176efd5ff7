"""Selections of neurons: what a user writes (``"0:16"``, ``"0,4,8"``, ``7``, ``range(16)``, a list)
as a checked array of distinct 0-based indices."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

from spikeforge.errors import ParameterError


def parse_neurons(text: str) -> list[int]:
    """'0:16' -> 0..15, '0:16:5' -> 0, 5, 10, 15, '0,4,8' -> [0, 4, 8], '7' -> [7] (0-based)."""
    try:
        if ":" in text:
            parts = [int(part) if part.strip() else None for part in text.split(":")]
            if len(parts) > 3 or parts[0] is None or parts[1] is None:
                raise ValueError
            return list(range(*[p for p in parts if p is not None]))
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ParameterError(f"neurons {text!r} is not a range like 0:16 or a list like 0,4,8") from None


def neuron_indices(neurons: str | int | Iterable[int], n_cells: int | None = None) -> np.ndarray:
    """``neurons`` as an int64 array of distinct indices, or ParameterError naming the offending
    entry (not an integer, negative, repeated, or beyond ``n_cells - 1``)."""
    if isinstance(neurons, str):
        neurons = parse_neurons(neurons)
    elif isinstance(neurons, numbers.Integral) and not isinstance(neurons, bool):
        neurons = [neurons]
    try:
        entries = list(neurons)
    except TypeError:
        raise ParameterError(f"neurons = {neurons!r} is not a selection; expected indices like [0, 4, 8], "
                             "range(16) or '0:16'") from None
    for entry in entries:
        if isinstance(entry, bool) or not isinstance(entry, numbers.Integral):
            raise ParameterError(f"neuron {entry!r} is not an integer index")
    indices = np.asarray(entries, dtype=np.int64)
    if indices.size == 0:
        raise ParameterError("no neurons selected; expected at least one 0-based index")
    low = int(indices.min())
    if low < 0:
        raise ParameterError(f"neuron index {low} is negative; indices are 0-based")
    if n_cells is not None and int(indices.max()) >= n_cells:
        raise ParameterError(f"neuron index {int(indices.max())} is out of range; expected 0 .. {n_cells - 1}")
    values, counts = np.unique(indices, return_counts=True)
    if counts.max() > 1:
        raise ParameterError(f"neuron {int(values[counts > 1][0])} is selected more than once")
    return indices


def describe(indices: np.ndarray, shown: int = 8) -> str:
    """A short text for a list of indices: all of them, or the first few and the count."""
    values = [int(i) for i in indices]
    if len(values) <= shown:
        return str(values)
    return f"[{', '.join(map(str, values[:shown]))}, ...] ({len(values)} neurons)"
