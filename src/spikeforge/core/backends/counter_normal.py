"""Gaussian numbers inside numba kernels, from one counter-based stream per trial.

A kernel that simulates many independent trials in parallel (``prange`` over trials) draws each
trial's noise from that trial's own stream, so the numbers do not depend on the number of threads
or on the order the trials run in (DESIGN.md, "Reproducible").  A stream is SplitMix64 (Steele,
Lea & Flood 2014): the ``k``-th 64-bit word is ``mix(seed + k * golden_gamma)``, seeded from the
run's named :mod:`spikeforge.core.rng` stream.  Normals come from the 128-layer ziggurat of
Marsaglia & Tsang (2000), with the layer index and the value taken from separate bits of one word
(the original's shared bits are a known flaw, Doornik 2005); about 98.8 % of draws cost one word,
a table look-up and a multiply.

Usage inside a kernel (the state is one uint64 per stream, held in a 1-element array)::

    state = np.empty(1, np.uint64); state[0] = seed
    x = normal(state)
"""

from __future__ import annotations

import math

import numba
import numpy as np

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_LAYERS = 128
_R = 3.442619855899  # start of the tail
_V = 9.91256303526217e-3  # area of each layer


def _tables():
    """The ziggurat tables for 31-bit magnitudes: k (acceptance bounds), w (scales), f (densities)."""
    m = 2.0 ** 31
    k = np.zeros(_LAYERS, dtype=np.uint64)
    w = np.zeros(_LAYERS)
    f = np.zeros(_LAYERS)
    dn = tn = _R
    q = _V / math.exp(-0.5 * dn * dn)
    k[0] = int(dn / q * m)
    k[1] = 0
    w[0] = q / m
    w[_LAYERS - 1] = dn / m
    f[0] = 1.0
    f[_LAYERS - 1] = math.exp(-0.5 * dn * dn)
    for i in range(_LAYERS - 2, 0, -1):
        dn = math.sqrt(-2.0 * math.log(_V / dn + math.exp(-0.5 * dn * dn)))
        k[i + 1] = int(dn / tn * m)
        tn = dn
        f[i] = math.exp(-0.5 * dn * dn)
        w[i] = dn / m
    return k, w, f


_K, _W, _F = _tables()


@numba.njit(inline="always", cache=True)
def next_word(state) -> np.uint64:
    """The stream's next 64-bit word (SplitMix64); advances ``state[0]``."""
    z = state[0] + GOLDEN_GAMMA
    state[0] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always", cache=True)
def uniform(state) -> float:
    """A uniform number in (0, 1) from the top 53 bits."""
    return ((next_word(state) >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True)
def _normal_slow(state, magnitude, layer, negative) -> float:
    """The rare ziggurat cases: the tail (layer 0) and the wedges."""
    while True:
        x = magnitude * _W[layer]
        if layer == 0:  # the tail beyond R (Marsaglia 1964)
            while True:
                x = -math.log(uniform(state)) / _R
                y = -math.log(uniform(state))
                if y + y >= x * x:
                    break
            return -(_R + x) if negative else _R + x
        if _F[layer] + uniform(state) * (_F[layer - 1] - _F[layer]) < math.exp(-0.5 * x * x):
            return -x if negative else x
        word = next_word(state)
        layer = np.int64(word & np.uint64(_LAYERS - 1))
        negative = (word >> np.uint64(7)) & np.uint64(1) == 1
        magnitude = word >> np.uint64(33)  # 31 bits
        if magnitude < _K[layer]:
            x = magnitude * _W[layer]
            return -x if negative else x


@numba.njit(inline="always", cache=True)
def normal(state) -> float:
    """A standard normal number from the stream (ziggurat)."""
    word = next_word(state)
    layer = np.int64(word & np.uint64(_LAYERS - 1))
    negative = (word >> np.uint64(7)) & np.uint64(1) == 1
    magnitude = word >> np.uint64(33)
    if magnitude < _K[layer]:
        x = magnitude * _W[layer]
        return -x if negative else x
    return _normal_slow(state, magnitude, layer, negative)


def seeds(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` stream seeds (uint64) from a numpy generator."""
    return rng.integers(0, 2 ** 63, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)


@numba.njit(cache=True)
def fill_normal(seed: np.uint64, out: np.ndarray) -> None:
    """Fill ``out`` (1-D) with the stream's first normals (for tests and host-side use)."""
    state = np.empty(1, dtype=np.uint64)
    state[0] = seed
    for i in range(out.shape[0]):
        out[i] = normal(state)
