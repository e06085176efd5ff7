"""Storage of the per-neuron RLS matrices P: layouts, element types, sizes.

Layouts (``p_storage``):

* ``full`` and ``symmetric``: an (Lmax, Lmax) block per neuron; in memory each row is padded
  with zeros to a whole number of SIMD vectors (files hold the unpadded blocks).
  ``symmetric`` keeps P exactly symmetric; ``full`` applies the general rank-1 update.
* ``packed``: the upper triangle per neuron, row by row, Lmax (Lmax + 1) / 2 numbers.

Element types (``p_precision``): float64, float32, float16, and int16, which stores
``round(P * p_scale)`` clipped to [-32768, 32767] (``p_scale`` then defaults to the largest
power of 2 that keeps the initial P in range).  Every type stores P multiplied by ``p_scale``.
"""

from __future__ import annotations

import numpy as np

from spikeforge.core.aligned import aligned_empty, cache_aligned
from spikeforge.core.backends.numba_rls import INT16_RANGE, padded_width

ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "int16": 2}


def entries_per_neuron(n_inputs: int, storage: str) -> int:
    """Numbers stored per neuron for ``n_inputs`` plastic inputs (files; no padding)."""
    return n_inputs * (n_inputs + 1) // 2 if storage == "packed" else n_inputs * n_inputs


def nbytes(n_cells: int, n_inputs: int, storage: str, precision: str) -> int:
    """Bytes of all P matrices in a file."""
    return n_cells * entries_per_neuron(n_inputs, storage) * ITEMSIZE[precision]


def _cast(dense_scaled: np.ndarray, precision: str) -> np.ndarray:
    if precision == "int16":
        return np.clip(np.rint(dense_scaled), *INT16_RANGE).astype(np.int16)
    return dense_scaled.astype(precision)


def pack(dense: np.ndarray) -> np.ndarray:
    """(N, L, L) -> (N, L (L + 1) / 2): the upper triangles, row by row."""
    rows, cols = np.triu_indices(dense.shape[1])
    return dense[:, rows, cols]


def unpack(packed: np.ndarray, n_inputs: int) -> np.ndarray:
    """(N, L (L + 1) / 2) -> symmetric (N, L, L) in float64."""
    rows, cols = np.triu_indices(n_inputs)
    dense = np.zeros((packed.shape[0], n_inputs, n_inputs))
    dense[:, rows, cols] = packed
    dense[:, cols, rows] = packed
    return dense


def to_file_layout(dense_scaled: np.ndarray, storage: str, precision: str) -> np.ndarray:
    """P (N, L, L) already multiplied by p_scale, in the layout and type of the files."""
    return _cast(pack(dense_scaled) if storage == "packed" else dense_scaled, precision)


def to_memory_layout(stored: np.ndarray, storage: str) -> np.ndarray:
    """A file's P in the kernels' layout, starting on a cache line (:mod:`spikeforge.core.aligned`; ``stored`` itself
    where it already is so, as :func:`spikeforge.core.store.read_h5` reads it): dense blocks get zero columns up to
    the SIMD width."""
    if storage == "packed":
        return cache_aligned(stored)
    width = padded_width(stored.shape[2], stored.itemsize)
    if width == stored.shape[2]:
        return cache_aligned(stored)
    padded = aligned_empty((*stored.shape[:2], width), stored.dtype)
    padded[:, :, stored.shape[2]:] = 0
    padded[:, :, : stored.shape[2]] = stored
    return padded


def to_file_from_memory(P: np.ndarray, storage: str) -> np.ndarray:
    """The kernels' P without column padding (the layout of the files)."""
    return P if storage == "packed" else P[:, :, : P.shape[1]]


def dense(P: np.ndarray, storage: str, n_inputs: int, p_scale: float) -> np.ndarray:
    """P as (N, L, L) float64 in natural units (divided by p_scale), from either layout."""
    values = unpack(P, n_inputs) if storage == "packed" else to_file_from_memory(P, storage).astype(np.float64)
    return values / p_scale


LARGEST = {"float64": float(np.finfo(np.float64).max), "float32": float(np.finfo(np.float32).max),
           "float16": float(np.finfo(np.float16).max), "int16": float(INT16_RANGE[1])}


def largest_initial_entry(penlambda: float, penlam_ff: float, n_ff: int) -> float:
    """The largest entry of any initial P: a diagonal entry, 1/penlambda, or 1/penlam_ff when
    there are feed-forward inputs (P stays positive semi-definite and only shrinks under RLS, so
    no entry ever exceeds it)."""
    return max(1.0 / penlambda, 1.0 / penlam_ff if n_ff > 0 else 0.0)


def default_scale(precision: str, largest_entry: float) -> float:
    """p_scale: for int16 the largest power of 2 with ``largest_entry * p_scale`` inside the int16
    range; for float16 1, or the largest power of 2 that keeps it below float16's maximum when 1
    does not; 1 for float32 and float64."""
    if precision == "int16" or (precision == "float16" and largest_entry > LARGEST["float16"]):
        return float(2.0 ** np.floor(np.log2(LARGEST[precision] / largest_entry)))
    return 1.0
