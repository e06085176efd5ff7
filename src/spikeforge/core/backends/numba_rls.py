"""Numba kernel: one recursive-least-squares update of every neuron's plastic weights.

For neuron ``i`` with plastic inputs ``idx = plastic_index[i, :n_i]`` (reference tsn.md 3.6)::

    a   = r[idx]                          filtered spike trains of the inputs   [spikes/ms]
    k   = P_i a / p_scale                 (P_i before the update)
    den = 1 / (1 + a'k)
    P_i <- P_i - den * p_scale * k k'
    e   = w_i . a + u_bal[i] - target[i]  prediction minus target
    w_i <- w_i - e * gain * k             gain = den ("paper") or 1 ("latest")

``P`` is stored per neuron as an (Lmax, Lmax) block scaled by ``p_scale``; with
``symmetric`` only its upper triangle is read and written (the lower one is stale).
Sums are accumulated in float64 whatever the storage type.  After a neuron's update its
weights are copied into the presynaptic (out) layout through ``in_to_out``.  Neurons are
independent, so the result does not depend on the number of threads.
"""

from __future__ import annotations

import numba
import numpy as np


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
    """Update ``P`` (N, Lmax, Lmax), ``weights_in`` (N, Lmax) and ``weights_out`` in place.

    Args:
        plastic_index: int (N, Lmax) presynaptic neuron of each plastic input (padding unused).
        plastic_count: int (N,) number of plastic inputs of each neuron.
        in_to_out: int (N, Lmax) position of each input in ``weights_out``.
        r: (N,) filtered spike trains; u_bal: (N,) static current of the previous step;
        target: (N,) target current at this learning step.
        apply: False for benchmark mode (P is updated, weights are not).
    """
    n = P.shape[0]
    for i in numba.prange(n):
        m_count = plastic_count[i]
        a = np.empty(m_count)
        k = np.zeros(m_count)
        for m in range(m_count):
            a[m] = r[plastic_index[i, m]]
        Pi = P[i]
        if symmetric:
            for m in range(m_count):
                a_m = a[m]
                k_m = Pi[m, m] * a_m
                for q in range(m + 1, m_count):
                    p_mq = Pi[m, q]
                    k_m += p_mq * a[q]
                    k[q] += p_mq * a_m
                k[m] += k_m
        else:
            for m in range(m_count):
                k_m = 0.0
                for q in range(m_count):
                    k_m += Pi[m, q] * a[q]
                k[m] = k_m
        a_k = 0.0
        for m in range(m_count):
            k[m] /= p_scale
            a_k += a[m] * k[m]
        den = 1.0 / (1.0 + a_k)
        c = den * p_scale
        for m in range(m_count):
            ck_m = c * k[m]
            start = m if symmetric else 0
            for q in range(start, m_count):
                Pi[m, q] -= ck_m * k[q]
        error = u_bal[i] - target[i]
        for m in range(m_count):
            error += weights_in[i, m] * a[m]
        if apply:
            step = error * den if gain_with_den else error
            for m in range(m_count):
                w = weights_in[i, m] - step * k[m]
                weights_in[i, m] = w
                weights_out[in_to_out[i, m]] = w
