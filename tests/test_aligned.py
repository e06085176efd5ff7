"""Arrays that start on a cache line: the helpers, and the arrays read from files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from spikeforge.core.aligned import CACHE_LINE, aligned_copy, aligned_empty, cache_aligned, is_aligned
from spikeforge.core.store import read_h5, read_rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8, np.bool_])
@pytest.mark.parametrize("shape", [(0,), 7, (3, 5), (2, 3, 17), (1000, 1711)])
def test_aligned_empty_starts_on_a_cache_line(shape, dtype):
    for _ in range(5):  # (the offset of NumPy's own buffers varies)
        array = aligned_empty(shape, dtype)
        assert array.shape == ((shape,) if isinstance(shape, int) else shape)
        assert array.dtype == dtype and array.flags.c_contiguous and array.flags.writeable
        assert array.size == 0 or array.ctypes.data % CACHE_LINE == 0


def test_shapes_and_types_that_cannot_be_aligned_are_refused():
    with pytest.raises(ValueError, match=r"negative extents; got \(-1, 5\)"):
        aligned_empty((-1, 5), np.float64)
    for dtype in (object, "V0"):
        with pytest.raises(TypeError, match="aligned arrays hold plain numbers"):
            aligned_empty(3, dtype)
    assert aligned_empty((), np.float32).shape == ()


def test_cache_aligned_keeps_an_aligned_array_and_copies_any_other():
    values = np.arange(64 * 40, dtype=np.float32)
    base = aligned_copy(values)
    assert is_aligned(base) and not np.shares_memory(base, values)
    np.testing.assert_array_equal(base, values)
    assert cache_aligned(base) is base
    off = base[4:]  # 16 bytes past a cache line, as NumPy puts its large arrays
    assert off.ctypes.data % CACHE_LINE == 16
    moved = cache_aligned(off)
    assert is_aligned(moved) and not np.shares_memory(moved, base)
    np.testing.assert_array_equal(moved, off)
    strided = cache_aligned(base.reshape(40, 64)[:, ::2])  # aligned, but not contiguous
    assert strided.flags.c_contiguous and is_aligned(strided)
    np.testing.assert_array_equal(strided, base.reshape(40, 64)[:, ::2])


def test_numeric_datasets_are_read_onto_a_cache_line_and_others_as_before(tmp_path):
    path = tmp_path / "data.h5"
    stored = {"P": np.random.default_rng(0).random((37, 1711)).astype(np.float32),
              "count": np.arange(9, dtype=np.int16), "flags": np.array([True, False, True]), "empty": np.zeros((0, 5)),
              "names": np.array([b"ab", b"cd"])}
    with h5py.File(path, "w") as handle:
        for name, values in stored.items():
            handle[name] = values
        handle["scale"] = 2.5
    arrays, _ = read_h5(path)
    for name, values in stored.items():
        np.testing.assert_array_equal(arrays[name], values)
        assert arrays[name].dtype == values.dtype and arrays[name].shape == values.shape
    for name in ("P", "count", "flags"):
        assert is_aligned(arrays[name]), name
    assert arrays["scale"] == 2.5
    rows = read_rows(path, "P", 5, 30)
    np.testing.assert_array_equal(rows, stored["P"][5:30])
    assert is_aligned(rows)
    assert read_rows(path, "P", 3, 3).shape == (0, 1711)
