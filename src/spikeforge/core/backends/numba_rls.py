"""Numba kernel: one recursive-least-squares update of every neuron's plastic weights.

For neuron ``i`` with plastic inputs ``idx = plastic_index[i, :n_i]`` (reference tsn.md 3.6)::

    a   = r[idx]                          filtered spike trains of the inputs   [spikes/ms]
    k   = P_i a / p_scale                 (P_i before the update)
    den = 1 / (1 + a'k)
    P_i <- P_i - den * p_scale * k k'
    e   = w_i . a + u_bal[i] - target[i]  prediction minus target
    w_i <- w_i - e * gain * k             gain = den ("paper") or 1 ("latest")

Layout and arithmetic, chosen for speed (the update streams every P once per learning
step, so it is memory-bound):

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

Neurons are independent, so the result does not depend on the number of threads.
"""

from __future__ import annotations

import numba
import numpy as np

SIMD_BYTES = 64  # one AVX-512 register / one cache line


def padded_width(n_inputs: int, itemsize: int) -> int:
    """Columns of a P row: ``n_inputs`` rounded up to a whole number of SIMD_BYTES."""
    per_vector = max(1, SIMD_BYTES // itemsize)
    return -(-n_inputs // per_vector) * per_vector


@numba.njit(parallel=True, cache=True)
def rls_update(
    P: np.ndarray,
    weights_in: np.ndarray,
    plastic_index: np.ndarray,
    plastic_count: np.ndarray,
    in_to_out: np.ndarray,
    weights_out: np.ndarray,
    r: np.ndarray,
    u_bal: np.ndarray,
    target: np.ndarray,
    p_scale: float,
    gain_with_den: bool,
    symmetric: bool,
    apply: bool,
) -> None:
    """Update ``P`` (N, Lmax, W), ``weights_in`` (N, Lmax) and ``weights_out`` in place.

    Args:
        plastic_index: int (N, Lmax) presynaptic neuron of each plastic input (padding unused).
        plastic_count: int (N,) number of plastic inputs of each neuron.
        in_to_out: int (N, Lmax) position of each input in ``weights_out``.
        r: (N,) filtered spike trains; u_bal: (N,) static current of the previous step;
        target: (N,) target current at this learning step.
        apply: False for benchmark mode (P is updated, weights are not).
    """
    n, width = P.shape[0], P.shape[2]
    for i in numba.prange(n):
        count = plastic_count[i]
        a = np.zeros(width, dtype=P.dtype)
        k = np.zeros(width, dtype=P.dtype)
        for m in range(count):
            a[m] = r[plastic_index[i, m]]
        Pi = P[i]
        for q in range(count):
            a_q = a[q]
            row = Pi[q]
            for m in range(width):
                k[m] += a_q * row[m]
        in_p_type = np.empty(2, dtype=P.dtype)  # scalars rounded to P's type
        in_p_type[0] = 1.0 / p_scale
        inv_scale = in_p_type[0]
        for m in range(width):
            k[m] *= inv_scale
        a_k = 0.0
        for m in range(count):
            a_k += np.float64(a[m]) * np.float64(k[m])
        den = 1.0 / (1.0 + a_k)
        in_p_type[1] = den * p_scale
        c = in_p_type[1]
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
        error = u_bal[i] - target[i]
        for m in range(count):
            error += weights_in[i, m] * a[m]
        if apply:
            step = error * den if gain_with_den else error
            for m in range(count):
                w = weights_in[i, m] - step * k[m]
                weights_in[i, m] = w
                weights_out[in_to_out[i, m]] = w
