"""Arrays that start on a cache line.

The SIMD kernels load and store whole 64-byte vectors (:mod:`spikeforge.core.backends.simd`); one that starts
off a cache line touches two lines (a split access).  A large NumPy array usually starts 16 bytes past a page
boundary (the header glibc puts before a memory-mapped block; after large frees, arrays come from the heap at
other offsets), so every vector of an interleaved P (one 64-byte line per element of 16 neurons) would be split.
On an AMD EPYC (Zen 4) the interleaved RLS update of a P in the L2 cache took 0.118-0.121 ms against 0.101 ms
aligned (256 neurons, 58 inputs, one thread; BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np

CACHE_LINE = 64  # bytes


def is_aligned(array: np.ndarray) -> bool:
    """Whether ``array``'s first element starts on a cache line."""
    return array.ctypes.data % CACHE_LINE == 0


def aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` starting on a cache line (a view into a
    buffer at most CACHE_LINE bytes larger)."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(extent) for extent in shape)
    if any(extent < 0 for extent in shape):
        raise ValueError(f"an array's shape cannot have negative extents; got {shape}")
    if dtype.hasobject or dtype.itemsize == 0:
        raise TypeError(f"aligned arrays hold plain numbers, not {dtype}")
    size = int(np.prod(shape, dtype=np.int64))
    buffer = np.empty(size * dtype.itemsize + CACHE_LINE, dtype=np.uint8)
    start = -buffer.ctypes.data % CACHE_LINE
    return buffer[start:start + size * dtype.itemsize].view(dtype).reshape(shape)


def aligned_copy(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``array`` that starts on a cache line."""
    copy = aligned_empty(array.shape, array.dtype)
    copy[...] = array
    return copy


def cache_aligned(array: np.ndarray) -> np.ndarray:
    """``array`` itself if it is C-contiguous and starts on a cache line, else :func:`aligned_copy`."""
    return array if array.flags.c_contiguous and is_aligned(array) else aligned_copy(array)
