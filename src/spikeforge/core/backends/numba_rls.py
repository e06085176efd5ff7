"""Numba kernel: one recursive-least-squares update of every neuron's plastic weights.

For neuron ``i`` with plastic inputs ``idx = plastic_index[i, :n_i]`` (reference tsn.md 3.6)::

    a   = r[idx]                          filtered spike trains of the inputs   [spikes/ms]
    k   = P_i a / p_scale                 (P_i before the update)
    den = 1 / (1 + a'k)
    P_i <- P_i - den * p_scale * k k'
    e   = w_i . a + u_bal[i] - target[i]  prediction minus target
    w_i <- w_i - e * gain * k             gain = den ("paper") or 1 ("latest")

Layout and arithmetic, chosen for speed (the update streams every P once per learning step).
``packed``, the default, stores each P as its upper triangle (last item below); ``symmetric`` and
``full`` store the whole matrix:

* ``P`` is (N, Lmax, W) with ``W >= Lmax`` columns; columns past a neuron's inputs are zero.
  Padding W to a whole number of SIMD vectors (:func:`padded_width`) lets every row be
  processed by vector instructions without a scalar remainder.
* ``k`` is accumulated row by row, ``k += a_q P[q, :]`` (an axpy over a contiguous row, which
  vectorises without reordering any sum), i.e. ``k = P'a``, which is ``P a`` for symmetric P.
* ``symmetric`` updates every element as ``P[q, m] -= c (k_q k_m)``; the product ``k_q k_m``
  is the same number for (q, m) and (m, q), so a symmetric P stays exactly symmetric.
  Otherwise (``full``) the update is the general ``P[q, m] -= (c k_q) k_m``.
* Arithmetic is in P's floating type (float32 by default, as the reference's BLAS calls);
  the scalars ``a'k``, the error and the weight step are in float64.

* ``packed`` stores each P as its upper triangle, row by row (N, Lmax (Lmax + 1) / 2, C-contiguous):
  half the memory and traffic.  Its kernel reads each row in 16-lane column chunks
  (:mod:`spikeforge.core.backends.simd`); ``k = P a`` is each row's column part (added row by row)
  plus its part right of the diagonal (added after all rows), so it rounds differently from the dense
  kernels (the torch backend's ordered path follows it).  When P is large enough to stream from memory,
  the next neuron's block is prefetched during the update (``KernelOptions.rls_prefetch_min_bytes``).
* ``interleaved`` (numba, packed float32/float64 P, during training): each full group of LANES = 16 consecutive
  neurons stores its triangles element by element, one neuron per SIMD lane (:func:`interleave`; the last
  ``N % 16`` neurons stay packed).  One vector operation then does the same step for 16 neurons and no lane is
  ever masked: a third faster than ``packed`` at the default model's 58 inputs, a fifth at 210
  (BENCHMARKS.md).  The sums are done in ``packed``'s order, so the results are the same bit for bit (for finite
  input rates, and but for the sign and payload of NaNs; a group whose neurons differ in their number of inputs
  is updated by the packed code, neuron by neuron).
* float16 and int16 P (stored ``round(P * p_scale)``, clipped to the int16 range) are
  converted to float32 in blocks of neurons, updated, and rounded back
  (:func:`rls_update`), so the kernels only ever compute in float32 or float64.

Neurons are independent, so the result does not depend on the number of threads.
"""

from __future__ import annotations

import numba
import numpy as np

# numba's cache of the kernels below does not notice edits to simd.py: after changing it, delete the
# __pycache__ folder of this package (or point NUMBA_CACHE_DIR at an empty folder while working on it)
from spikeforge.core.backends import default_prefetch_min_bytes
from spikeforge.core.backends.simd import (LANES, gain_rows, lanes_gain_row, lanes_scalars, lanes_update_rows, prefetch,
                                           update_row)

_GAIN_4, _GAIN_1 = gain_rows(4), gain_rows(1)
_LANES_UPDATE_2, _LANES_UPDATE_1 = lanes_update_rows(2), lanes_update_rows(1)

SIMD_BYTES = 64  # one AVX-512 register / one cache line


def padded_width(n_inputs: int, itemsize: int) -> int:
    """Columns of a P row: ``n_inputs`` rounded up to a whole number of SIMD_BYTES."""
    per_vector = max(1, SIMD_BYTES // itemsize)
    return -(-n_inputs // per_vector) * per_vector


@numba.njit(inline="always", cache=True)
def _scalars(a, k, count, p_scale, in_p_type):
    """Scale k by 1/p_scale; return (den, c = den * p_scale rounded to P's type); ``in_p_type``: a scratch
    array of two elements of P's type."""
    in_p_type[0] = 1.0 / p_scale
    inv_scale = in_p_type[0]
    for m in range(k.shape[0]):
        k[m] *= inv_scale
    a_k = 0.0
    for m in range(count):
        a_k += np.float64(a[m]) * np.float64(k[m])
    den = 1.0 / (1.0 + a_k)
    in_p_type[1] = den * p_scale
    return den, in_p_type[1]


BLOCKS = 256  # the neurons of an update are shared out in this many blocks (each with its scratch arrays)


@numba.njit(inline="always", cache=True)
def _block(n, block, length, P):
    """Neurons ``begin .. end - 1`` of block ``block`` of BLOCKS, and the block's scratch vectors in P's
    type: input rates ``a`` and gain ``k`` (``length``), and two scalars."""
    size = (n + BLOCKS - 1) // BLOCKS
    begin = min(block * size, n)
    return (begin, min(begin + size, n), np.empty(length, dtype=P.dtype), np.empty(length, dtype=P.dtype),
            np.empty(2, dtype=P.dtype))


@numba.njit(inline="always", cache=True)
def _neuron(i, P, plastic_count, r, plastic_index, a, k):
    """Neuron i's number of inputs and its P block, with ``a`` and ``k`` set (:func:`_inputs_and_gain`)."""
    count = plastic_count[i]
    _inputs_and_gain(i, count, r, plastic_index, a, k)
    return count, P[i]


@numba.njit(inline="always", cache=True)
def _inputs_and_gain(i, count, r, plastic_index, a, k):
    """Neuron i's input rates into ``a`` (zero-padded) and ``k`` zeroed (scratch arrays of P's type,
    made once per block of neurons: an allocation per neuron cost a tenth of an update)."""
    a[:] = 0
    k[:] = 0
    for m in range(count):
        a[m] = r[plastic_index[i, m]]


@numba.njit(inline="always", cache=True)
def _prediction_error(i, a, count, weights_in, u_bal, target):
    """Neuron i's prediction minus its target (float64), summed input after input.  The kernels compute it
    as soon as ``a`` is gathered: the sum is a chain of dependent additions that then overlaps the gain's work
    instead of ending the neuron's update (the same additions in the same order)."""
    error = u_bal[i] - target[i]
    for m in range(count):
        error += weights_in[i, m] * a[m]
    return error


@numba.njit(inline="always", cache=True)
def _update_weights(i, k, den, error, count, weights_in, gain_with_den, apply):
    """Neuron i's weight step, in the in-layout (:func:`write_back` copies the weights to the out-layout after
    every neuron's update, unless the step kernel reads the in-layout); ``error``: :func:`_prediction_error`."""
    if apply:
        step = error * den if gain_with_den else error
        for m in range(count):
            weights_in[i, m] -= step * k[m]


@numba.njit(parallel=True, cache=True)
def write_back(weights_in, plastic_count, in_to_out, weights_out):
    """Copy the in-layout weights (N, Lmax) to their places in the out-layout ``weights_out``.

    A pass of its own after the update of every neuron: written inside the update, these scattered
    writes missed the caches that streaming P had filled, and took half of an update's time."""
    for i in numba.prange(weights_in.shape[0]):
        for m in range(plastic_count[i]):
            weights_out[in_to_out[i, m]] = weights_in[i, m]


GATHER_CHUNK = 4096  # out-layout synapses per parallel chunk of gather_back
GATHER_AHEAD = 128  # gather_back prefetches the source this many synapses ahead


@numba.njit(parallel=True, cache=True)
def gather_back(weights_in, sources, weights_out):
    """``weights_out[s] = weights_in.flat[sources[s]]``: the write-back of :func:`write_back` in the
    out-layout's order (:func:`spikeforge.rls.connectivity.out_to_in`).  The writes are sequential
    and the reads (of the in-layout, a few MB) random: a third of the time of the scatter on two threads.
    Each read is prefetched GATHER_AHEAD synapses before it is made, so that many are under way at once:
    65,536 neurons (3.8 M weights, 30 MB, not in the caches), 2 threads: 11-18 -> 7-9 ms."""
    flat = weights_in.reshape(-1)
    n = sources.shape[0]
    for chunk in numba.prange((n + GATHER_CHUNK - 1) // GATHER_CHUNK):
        end = min((chunk + 1) * GATHER_CHUNK, n)
        for s in range(chunk * GATHER_CHUNK, end):
            if s + GATHER_AHEAD < end:
                prefetch(flat, sources[s + GATHER_AHEAD])
            weights_out[s] = flat[sources[s]]


def _write_back(weights_in, plastic_count, in_to_out, weights_out, write_plan):
    """The new weights into the out-layout: by ``write_plan`` (the sources of every out-layout synapse) if
    given, else by ``in_to_out``."""
    if write_plan is None:
        write_back(weights_in, plastic_count, in_to_out, weights_out)
    else:
        gather_back(weights_in, write_plan, weights_out)


@numba.njit(parallel=True, cache=True)
def rls_dense(P, weights_in, plastic_index, plastic_count, r, u_bal, target, p_scale,
              gain_with_den, symmetric, apply):
    """RLS with P stored as (N, Lmax, W) float32/float64 blocks (``full`` or ``symmetric``)."""
    n, width = P.shape[0], P.shape[2]
    for block in numba.prange(BLOCKS):
        begin, end, a, k, in_p_type = _block(n, block, width, P)
        for i in range(begin, end):
            count, Pi = _neuron(i, P, plastic_count, r, plastic_index, a, k)
            error = _prediction_error(i, a, count, weights_in, u_bal, target)
            q = 0
            while q + 3 < count:  # four rows per pass over k; the same additions, in the same order
                a0, a1, a2, a3 = a[q], a[q + 1], a[q + 2], a[q + 3]
                r0, r1, r2, r3 = Pi[q], Pi[q + 1], Pi[q + 2], Pi[q + 3]
                for m in range(width):
                    k[m] = (((k[m] + a0 * r0[m]) + a1 * r1[m]) + a2 * r2[m]) + a3 * r3[m]
                q += 4
            while q < count:
                a_q = a[q]
                row = Pi[q]
                for m in range(width):
                    k[m] += a_q * row[m]
                q += 1
            den, c = _scalars(a, k, count, p_scale, in_p_type)
            for q in range(count):
                row = Pi[q]
                if symmetric:
                    k_q = k[q]
                    for m in range(width):
                        row[m] -= c * (k_q * k[m])
                else:
                    ck_q = c * k[q]
                    for m in range(width):
                        row[m] -= ck_q * k[m]
            _update_weights(i, k, den, error, count, weights_in, gain_with_den, apply)


@numba.njit(cache=True)
def packed_row_bases(lmax, stored):
    """For a packed block of ``stored`` numbers per neuron: ``row_base`` (uint64, lmax), the position of row
    q's column 0 (P[q, m] is at ``row_base[q] + m`` for m >= q), and the first row whose last column chunk
    would reach past the block (that row and the later ones are updated lane by lane)."""
    row_base = np.empty(lmax, dtype=np.uint64)
    chunks = (lmax + LANES - 1) // LANES
    start, first_tail_row = 0, lmax
    for q in range(lmax):
        row_base[q] = start - q
        if first_tail_row == lmax and start - q + LANES * chunks > stored:
            first_tail_row = q
        start += lmax - q
    return row_base, first_tail_row


@numba.njit(inline="always", cache=True)
def _tail_row_gain(Pi, row_base, q, lmax, a, k, lower):
    """:func:`spikeforge.core.backends.simd.gain_rows` for one row, lane by lane."""
    base, a_q = np.int64(row_base[q]), a[q]  # (uint64 plus int64 would be a float in numba)
    k[q] += a_q * Pi[base + q]
    lower[q] = 0  # the sum in P's type, as in the vector rows
    for m in range(q + 1, lmax):
        p_qm = Pi[base + m]
        k[m] += a_q * p_qm
        lower[q] += p_qm * a[m]


@numba.njit(inline="always", cache=True)
def _prefetch_lines(following, line, count):
    """Prefetch ``count`` cache lines of ``following`` (1-d) from its line ``line`` on (none past its end); return
    the next line.  (No bound per line: a ``min`` on each address made the prefetches cost a quarter more.)"""
    per_line = max(1, 64 // following.itemsize)
    end = min(line + count, (following.shape[0] - 1) // per_line + 1)
    for each in range(line, end):
        prefetch(following, each * per_line)
    return line + count


@numba.njit(inline="always", cache=True)
def _packed_neuron(i, Pi, following, lines_per_row, weights_in, plastic_index, plastic_count, r, u_bal, target,
                   p_scale, gain_with_den, apply, row_base, first_tail_row, a, k, lower, in_p_type):
    """The RLS update of neuron ``i`` with its packed triangle ``Pi`` (:func:`rls_packed`); ``lines_per_row`` cache
    lines of ``following`` are prefetched per row of the update pass."""
    lmax = plastic_index.shape[1]
    chunks = (lmax + LANES - 1) // LANES
    chunks_u, lmax_u = np.uint64(chunks), np.uint64(lmax)
    count = plastic_count[i]
    _inputs_and_gain(i, count, r, plastic_index, a, k)
    error = _prediction_error(i, a, count, weights_in, u_bal, target)
    vector_rows = min(count, first_tail_row)
    q = 0
    while q + 3 < vector_rows:
        _GAIN_4(k, Pi, a, lower, row_base, np.uint64(q), lmax_u, chunks_u)
        q += 4
    while q < vector_rows:
        _GAIN_1(k, Pi, a, lower, row_base, np.uint64(q), lmax_u, chunks_u)
        q += 1
    for q in range(vector_rows, count):
        _tail_row_gain(Pi, row_base, q, lmax, a, k, lower)
    for q in range(count):
        k[q] += lower[q]
    den, c = _scalars(a, k, count, p_scale, in_p_type)
    line = 0
    for parity in range(2):  # even rows, then odd ones: the last store of a row overlaps the next row's
        for q in range(parity, vector_rows, 2):  # first load, which would wait for it (a fifth of a neuron)
            line = _prefetch_lines(following, line, lines_per_row)
            update_row(Pi, row_base[q], np.uint64(q), lmax_u, chunks_u, c, k[q], k)
    for q in range(vector_rows, count):
        base, k_q = np.int64(row_base[q]), k[q]
        for m in range(q, lmax):
            Pi[base + m] -= c * (k_q * k[m])
    _update_weights(i, k, den, error, count, weights_in, gain_with_den, apply)


@numba.njit(parallel=True, cache=True)
def rls_packed(P, weights_in, plastic_index, plastic_count, r, u_bal, target, p_scale,
               gain_with_den, apply, prefetch_next):
    """RLS with P stored as packed upper triangles (N, Lmax (Lmax + 1) / 2), row by row.

    ``k = P a`` from the triangle: row q adds ``a_q P[q, m]`` to ``k[m]`` for m >= q (its column part) and
    gives ``k[q]`` the sum of ``P[q, m] a[m]`` for m > q (its row part, added after every row).  Rows are
    processed in column chunks of SIMD lanes (:mod:`spikeforge.core.backends.simd`), four rows per pass
    over ``k``; the last rows, whose final chunk would reach into the next neuron's block, lane by lane.
    ``prefetch_next``: while a neuron's rows are updated, the next neuron's block is prefetched, a few cache
    lines per row (for a P that streams from memory rather than from the last-level cache)."""
    n, lmax = P.shape[0], plastic_index.shape[1]
    chunks = (lmax + LANES - 1) // LANES
    row_base, first_tail_row = packed_row_bases(lmax, P.shape[1])
    lines = (P.shape[1] * P.itemsize + 63) // 64  # of one neuron's block
    for block in numba.prange(BLOCKS):
        begin, end, a, k, in_p_type = _block(n, block, LANES * chunks, P)
        lower = np.zeros(LANES * chunks, dtype=P.dtype)
        for i in range(begin, end):
            vector_rows = min(plastic_count[i], first_tail_row)
            lines_per_row = (lines + vector_rows - 1) // max(vector_rows, 1) if prefetch_next else 0
            # (the block's last neuron prefetches itself, a no-op)
            _packed_neuron(i, P[i], P[min(i + 1, end - 1)], lines_per_row, weights_in, plastic_index, plastic_count,
                           r, u_bal, target, p_scale, gain_with_den, apply, row_base, first_tail_row, a, k, lower,
                           in_p_type)


GROUP = LANES  # neurons per interleaved group: one per SIMD lane


@numba.njit(parallel=True, cache=True)
def _transpose_groups(P, groups, to_lanes):
    """In place, the first ``groups`` groups of GROUP rows of the 2-d C-contiguous P: each group's (GROUP, S)
    block becomes its (S, GROUP) transpose (``to_lanes``) or back."""
    size = P.shape[1]
    flat = P.reshape(-1)
    blocks = min(BLOCKS, groups)
    for block in numba.prange(blocks):
        scratch = np.empty(GROUP * size, dtype=P.dtype)
        for g in range(block * groups // blocks, (block + 1) * groups // blocks):
            start = g * GROUP * size
            scratch[:] = flat[start:start + GROUP * size]
            for j in range(GROUP):
                for e in range(size):
                    if to_lanes:
                        flat[start + e * GROUP + j] = scratch[j * size + e]
                    else:
                        flat[start + j * size + e] = scratch[e * GROUP + j]


MOST_UNEQUAL_GROUPS = 1 / 32  # worth_interleaving's largest share of groups whose neurons differ in input count


def worth_interleaving(plastic_count: np.ndarray) -> bool:
    """Whether the interleaved layout pays for neurons with these numbers of plastic inputs: a group of 16 whose
    neurons differ in their count is updated by the packed code after copying its block out and back, about twice
    the packed kernel's time (4096 neurons, counts drawn from 50-58: 7.4 against 3.5 ms per update; equal counts
    2.3 against 2.6), so it pays when at most MOST_UNEQUAL_GROUPS of the groups are such (the default
    connectivity has none; a plugin's may have many)."""
    full = plastic_count.shape[0] // GROUP * GROUP
    if full == 0:
        return False
    groups = np.asarray(plastic_count[:full]).reshape(-1, GROUP)
    return np.count_nonzero(groups.min(axis=1) != groups.max(axis=1)) <= MOST_UNEQUAL_GROUPS * groups.shape[0]


def interleave(P: np.ndarray) -> None:
    """Packed P (N, S), C-contiguous, in place into the interleaved layout: each full group of GROUP neurons
    ``16 g .. 16 g + 15`` holds element ``e`` of neuron ``16 g + j`` at ``P.flat[16 g S + 16 e + j]`` (the group's
    rows, read as an (S, 16) block); the last ``N % 16`` neurons stay packed.  Undone by :func:`deinterleave`."""
    _require_rows(P)
    _transpose_groups(P, P.shape[0] // GROUP, True)


def _require_rows(P: np.ndarray) -> None:
    if P.ndim != 2 or not P.flags.c_contiguous:
        raise ValueError(f"only a C-contiguous (N, S) packed P can be interleaved; got shape {P.shape}, "
                         f"C-contiguous: {P.flags.c_contiguous}")


def deinterleave(P: np.ndarray) -> None:
    """Undo :func:`interleave` in place."""
    _require_rows(P)
    _transpose_groups(P, P.shape[0] // GROUP, False)


def deinterleaved_rows(P: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo .. hi - 1`` of an interleaved P in the packed layout (a copy): whole groups, so ``lo`` and ``hi``
    multiples of GROUP (or ``hi`` past the last full group)."""
    full = P.shape[0] // GROUP * GROUP
    for end in (lo, hi):
        if end % GROUP and end < full:
            raise ValueError(f"interleaved P is read in whole groups of {GROUP} neurons; row {end} is inside one")
    rows = P[lo:hi].copy()
    _transpose_groups(rows, max(0, min(hi, full) - lo) // GROUP, False)
    return rows


@numba.njit(inline="always", cache=True)
def _group_inputs(first, count, r, plastic_index, a, k, error, weights_in, u_bal, target):
    """A group's input rates into ``a`` (rows past ``count``, the number of inputs its neurons share, zero), ``k``
    zeroed, and each neuron's prediction minus its target (:func:`_inputs_and_gain`, :func:`_prediction_error` for a
    group: each neuron's sum in the same order, the 16 sums side by side)."""
    a[:] = 0
    k[:] = 0
    for j in range(GROUP):
        for m in range(count):
            a[m, j] = r[plastic_index[first + j, m]]
    for j in range(GROUP):
        error[j] = u_bal[first + j] - target[first + j]
    for m in range(count):
        for j in range(GROUP):
            error[j] += weights_in[first + j, m] * a[m, j]


@numba.njit(inline="always", cache=True)
def _lanes_tail_row_gain(Pg, row_base, q, lmax, a, k, lower):
    """:func:`_tail_row_gain` for the GROUP neurons of an interleaved group at once."""
    base = np.int64(row_base[q])
    for j in range(GROUP):
        k[q, j] += a[q, j] * Pg[base + q, j]
        lower[q, j] = 0
    for m in range(q + 1, lmax):
        for j in range(GROUP):
            p_qm = Pg[base + m, j]
            k[m, j] += a[q, j] * p_qm
            lower[q, j] += p_qm * a[m, j]


@numba.njit(cache=True)
def _unequal_group(Pg, first, weights_in, plastic_index, plastic_count, r, u_bal, target, p_scale, gain_with_den,
                   apply, row_base, first_tail_row):
    """A group whose neurons have different numbers of inputs: each neuron by the packed kernel's code, on its
    triangle copied out of the interleaved block and back (the scratch arrays are made here, so that the common
    path allocates nothing more: P is interleaved only when such groups are few, :func:`worth_interleaving`)."""
    chunks = (plastic_index.shape[1] + LANES - 1) // LANES
    scratch = np.empty((GROUP, Pg.shape[0]), dtype=Pg.dtype)
    a, k = np.empty(LANES * chunks, dtype=Pg.dtype), np.empty(LANES * chunks, dtype=Pg.dtype)
    lower, in_p_type = np.zeros(LANES * chunks, dtype=Pg.dtype), np.empty(2, dtype=Pg.dtype)
    for j in range(GROUP):
        for e in range(Pg.shape[0]):
            scratch[j, e] = Pg[e, j]
    for j in range(GROUP):
        _packed_neuron(first + j, scratch[j], scratch[j], 0, weights_in, plastic_index, plastic_count, r, u_bal,
                       target, p_scale, gain_with_den, apply, row_base, first_tail_row, a, k, lower, in_p_type)
    for e in range(Pg.shape[0]):
        for j in range(GROUP):
            Pg[e, j] = scratch[j, e]


@numba.njit(parallel=True, cache=True)
def rls_interleaved(P3, weights_in, plastic_index, plastic_count, r, u_bal, target, p_scale, gain_with_den, apply,
                    prefetch_next):
    """:func:`rls_packed` for full groups of an interleaved P, ``P3``: (groups, S, GROUP); neurons 0 .. 16 groups - 1.

    Row by row as the packed kernel, each step for the GROUP neurons of a group at once
    (:func:`spikeforge.core.backends.simd.lanes_gain_row`, ``lanes_update_rows``); the rows past the first lane-by-lane
    row of the packed kernel (``packed_row_bases``) sum their part right of the diagonal in column order, as there.
    A group whose neurons do not all have the same number of inputs is updated neuron by neuron by the packed
    kernel's code (:func:`_unequal_group`; the default connectivity has none, and training interleaves P only
    when they are few: :func:`worth_interleaving`).  ``prefetch_next``: the next group's block is prefetched a few
    cache lines per row of both passes."""
    groups, size, lmax = P3.shape[0], P3.shape[1], plastic_index.shape[1]
    chunks = (lmax + LANES - 1) // LANES
    row_base, first_tail_row = packed_row_bases(lmax, size)
    block_lines = (size * GROUP * P3.itemsize + 63) // 64
    blocks = min(BLOCKS, groups)
    for block in numba.prange(blocks):
        a = np.empty((LANES * chunks, GROUP), dtype=P3.dtype)
        k = np.empty((LANES * chunks, GROUP), dtype=P3.dtype)
        lower = np.empty((lmax, GROUP), dtype=P3.dtype)
        c = np.empty((1, GROUP), dtype=P3.dtype)  # den p_scale, in P's type
        den, error = np.empty(GROUP), np.empty(GROUP)
        c[0, 0] = 1.0 / p_scale  # 1/p_scale rounded to P's type, as _scalars does (c is set per group below)
        inv_scale = c[0, 0]
        for g in range(block * groups // blocks, (block + 1) * groups // blocks):
            first, Pg = g * GROUP, P3[g]
            # the group's largest and smallest count (with the count found this way, rather than read from the
            # first neuron, the kernel ran 5-10 % faster: a matter of the code LLVM makes)
            count, fewest = 0, plastic_count[first]
            for j in range(GROUP):
                count, fewest = max(count, plastic_count[first + j]), min(fewest, plastic_count[first + j])
            if fewest != count:
                _unequal_group(Pg, first, weights_in, plastic_index, plastic_count, r, u_bal, target, p_scale,
                               gain_with_den, apply, row_base, first_tail_row)
                continue
            _group_inputs(first, count, r, plastic_index, a, k, error, weights_in, u_bal, target)
            following = P3[min(g + 1, groups - 1)].reshape(-1)  # (the last group prefetches itself: a no-op)
            vector_rows = min(count, first_tail_row)
            calls = vector_rows + count  # of _prefetch_lines: the gain pass's vector rows, then every row's update
            lines_per_row = (block_lines + calls - 1) // max(calls, 1) if prefetch_next else 0
            line = 0
            for q in range(vector_rows):
                line = _prefetch_lines(following, line, lines_per_row)
                lanes_gain_row(Pg, k, a, lower, row_base[q], q, lmax, chunks)
            for q in range(vector_rows, count):
                _lanes_tail_row_gain(Pg, row_base, q, lmax, a, k, lower)
            lanes_scalars(k, a, lower, den, c, count, lmax, inv_scale, p_scale)
            q = 0
            while q + 1 < count:  # two rows per call: k loaded once for both
                line = _prefetch_lines(following, line, 2 * lines_per_row)
                _LANES_UPDATE_2(Pg, k, c, row_base, q, lmax)
                q += 2
            if q < count:
                line = _prefetch_lines(following, line, lines_per_row)
                _LANES_UPDATE_1(Pg, k, c, row_base, q, lmax)
            if apply:  # _update_weights, neuron by neuron (inline: through a strided view of k it ran slower)
                for j in range(GROUP):
                    step = error[j] * den[j] if gain_with_den else error[j]
                    for m in range(count):
                        weights_in[first + j, m] -= step * k[m, j]


BLOCK_NEURONS = 128  # neurons converted to float32 at a time for float16 / int16 P
INT16_RANGE = (-32768, 32767)


@numba.njit(parallel=True, cache=True)
def _count_outside(rows, low, high):
    """Entries of the 2-D ``rows`` not strictly between ``low`` and ``high`` (NaN included)."""
    counts = np.zeros(rows.shape[0], dtype=np.int64)
    for i in numba.prange(rows.shape[0]):
        count = 0
        for m in range(rows.shape[1]):
            value = rows[i, m]
            if not (value > low and value < high):
                count += 1
        counts[i] = count
    return counts.sum()


def count_p_faults(P) -> tuple[int, int]:
    """(saturated, non-finite) entries of P: for int16 P the entries at the int16 limits (where
    clipping put them), for floating P the NaN and infinite ones."""
    rows = P.reshape(P.shape[0], -1)
    if P.dtype == np.int16:
        return int(_count_outside(rows, INT16_RANGE[0], INT16_RANGE[1])), 0
    if P.dtype == np.float16:  # numba has no float16: count in numpy, a block of neurons at a time
        return 0, sum(count_nonfinite(rows[lo:lo + BLOCK_NEURONS]) for lo in range(0, rows.shape[0], BLOCK_NEURONS))
    return 0, int(_count_outside(rows, -np.inf, np.inf))


def count_nonfinite(values: np.ndarray) -> int:
    """NaN and infinite entries of ``values``."""
    return int(values.size - np.count_nonzero(np.isfinite(values)))


def rls_update(P, weights_in, plastic_index, plastic_count, in_to_out, weights_out, r, u_bal, target, p_scale,
               gain_with_den, storage, apply, write_plan=None,
               prefetch_min_bytes=None, interleaved=False):
    """One RLS update of every neuron, whatever P's storage and type.

    Args:
        P: (N, Lmax, W) for ``storage`` "full" or "symmetric", (N, Lmax (Lmax+1)/2) C-contiguous for "packed";
            float64, float32, float16, or int16 holding ``round(P * p_scale)``.
        plastic_index: int (N, Lmax) presynaptic neuron of each plastic input (padding unused).
        plastic_count: int (N,) number of plastic inputs of each neuron.
        in_to_out: int (N, Lmax) position of each input in ``weights_out``.
        weights_in: (N, Lmax) plastic weights (updated in place).
        weights_out: the out-layout plastic weights, which the new ones are copied to; None where the step kernel
            reads ``weights_in`` itself (:attr:`spikeforge.core.backends.layout.Connectivity.plastic_source`).
        r: (N + lx,) filtered spike trains; u_bal: (N,) static current of the previous step;
        target: (N,) target current at this learning step.
        apply: False for benchmark mode (P is updated, weights are not).
        write_plan: :func:`spikeforge.rls.connectivity.out_to_in` of the whole network (``weights_in`` holds
            every neuron, ``weights_out`` every plastic synapse), to copy the new weights to ``weights_out`` in
            its order (faster); default: by ``in_to_out``.
        prefetch_min_bytes: packed float32/float64 P of at least this many bytes prefetches each next neuron's
            block (interleaved: each next group's) (:class:`spikeforge.core.backends.KernelOptions`; None: its
            default on this machine).
        interleaved: P (packed, float32 or float64) is in the layout of :func:`interleave`.
    """
    if prefetch_min_bytes is None:
        prefetch_min_bytes = default_prefetch_min_bytes()
    if storage == "packed":  # its kernel addresses each neuron's triangle directly, in SIMD chunks
        lmax = plastic_index.shape[1]
        if P.ndim != 2 or P.shape[1] != lmax * (lmax + 1) // 2 or not P.flags.c_contiguous:
            raise ValueError(f"packed P must be a C-contiguous (N, {lmax * (lmax + 1) // 2}) array for "
                             f"{lmax} plastic inputs; got shape {P.shape}, C-contiguous: {P.flags.c_contiguous}")
    if interleaved and (storage != "packed" or P.dtype not in (np.float32, np.float64)):
        raise ValueError(f"only packed float32 or float64 P is interleaved, not {storage} {P.dtype}")

    def run(P_block, lo, hi):
        args = (P_block, weights_in[lo:hi], plastic_index[lo:hi], plastic_count[lo:hi], r, u_bal[lo:hi],
                target[lo:hi], p_scale, gain_with_den)
        if storage == "packed":  # (a float16/int16 P's float32 blocks are small, in the caches already)
            rls_packed(*args, apply, P_block is P and P.nbytes >= prefetch_min_bytes)
        else:
            rls_dense(*args, storage == "symmetric", apply)

    if interleaved:
        full = P.shape[0] // GROUP * GROUP
        rls_interleaved(P[:full].reshape(full // GROUP, P.shape[1], GROUP), weights_in, plastic_index, plastic_count,
                        r, u_bal, target, p_scale, gain_with_den, apply, P.nbytes >= prefetch_min_bytes)
        if full < P.shape[0]:  # the neurons after the last full group stay packed
            run(P[full:], full, P.shape[0])
    elif P.dtype in (np.float32, np.float64):
        run(P, 0, P.shape[0])
    else:
        for lo in range(0, P.shape[0], BLOCK_NEURONS):
            hi = min(lo + BLOCK_NEURONS, P.shape[0])
            block = P[lo:hi].astype(np.float32)
            run(block, lo, hi)
            if P.dtype == np.int16:
                np.clip(np.rint(block), *INT16_RANGE, out=block)
            with np.errstate(over="ignore"):  # float16 overflow: counted after the loop (count_p_faults)
                P[lo:hi] = block
    if apply and weights_out is not None:
        _write_back(weights_in, plastic_count, in_to_out, weights_out, write_plan)


@numba.njit(inline="always", cache=True)
def _cholesky_solve(A, b):
    """Solve A x = b for symmetric positive definite A (n, n), in place of A; returns x."""
    n = b.shape[0]
    for j in range(n):
        diagonal = A[j, j]
        for k in range(j):
            diagonal -= A[j, k] * A[j, k]
        diagonal = np.sqrt(diagonal)
        A[j, j] = diagonal
        for i in range(j + 1, n):
            value = A[i, j]
            for k in range(j):
                value -= A[i, k] * A[j, k]
            A[i, j] = value / diagonal
    x = b.copy()
    for i in range(n):  # L y = b
        for k in range(i):
            x[i] -= A[i, k] * x[k]
        x[i] /= A[i, i]
    for i in range(n - 1, -1, -1):  # L' x = y
        for k in range(i + 1, n):
            x[i] -= A[k, i] * x[k]
        x[i] /= A[i, i]
    return x


def rls_small(history, n_history, weights_in, plastic_index, plastic_count, in_to_out, weights_out, r, u_bal, target,
              penlambda, penmu, penlam_ff, n_ff, gain_with_den, apply, write_plan=None):
    """Memory-light update (``p_compute = "small"``): :func:`_rls_small`, then the weights' write-back
    (``write_plan``: see :func:`rls_update`)."""
    _rls_small(history, n_history, weights_in, plastic_index, plastic_count, r, u_bal, target, penlambda, penmu,
               penlam_ff, n_ff, gain_with_den, apply)
    if apply and weights_out is not None:
        _write_back(weights_in, plastic_count, in_to_out, weights_out, write_plan)


@numba.njit(parallel=True, cache=True)
def _rls_small(history, n_history, weights_in, plastic_index, plastic_count, r, u_bal, target, penlambda, penmu,
               penlam_ff, n_ff, gain_with_den, apply):
    """Memory-light update (``p_compute = "small"``, tsn.md 3.7): no P is stored.

    For neuron i the inverse covariance is rebuilt from the penalty (``penlam_ff`` on the
    feed-forward diagonal, ``penlambda`` on the recurrent one, ``penmu`` between recurrent
    inputs whose *current* weights have the same sign) plus ``sum_h g_h g_h'`` over the
    ``n_history`` snapshots ``g_h = history[h, idx]`` of the filtered spike trains; then
    ``k = Pinv^-1 a`` (Cholesky) and the weight step is as in the fast mode.  It is a
    sliding-window regularised least squares, not equivalent to the fast mode.
    """
    n = weights_in.shape[0]
    for i in numba.prange(n):
        count = plastic_count[i]
        if count == 0:
            continue
        idx = plastic_index[i, :count]
        A = np.zeros((count, count))
        for m in range(count):
            A[m, m] = penlam_ff if m < n_ff else penlambda
            w_m = weights_in[i, m]
            if m >= n_ff and w_m != 0.0:
                for q in range(n_ff, count):
                    w_q = weights_in[i, q]
                    if (w_m > 0.0 and w_q > 0.0) or (w_m < 0.0 and w_q < 0.0):
                        A[m, q] += penmu
        for h in range(n_history):
            for m in range(count):
                g_m = history[h, idx[m]]
                if g_m != 0.0:
                    for q in range(count):
                        A[m, q] += g_m * history[h, idx[q]]
        a = np.empty(count)
        for m in range(count):
            a[m] = r[idx[m]]
        k = _cholesky_solve(A, a)
        a_k = 0.0
        for m in range(count):
            a_k += a[m] * k[m]
        den = 1.0 / (1.0 + a_k)
        _update_weights(i, k, den, _prediction_error(i, a, count, weights_in, u_bal, target), count, weights_in,
                        gain_with_den, apply)
