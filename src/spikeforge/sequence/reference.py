"""The WTA grid's step written plainly in vectorised NumPy, dense weight matrix and all: the yardstick
of the numba kernel (:func:`spikeforge.sequence.network.run_steps`).  The tests compare the two spike
for spike, and ``bench/`` measures how much faster the kernel is.  Same order, same rules (see
:mod:`spikeforge.sequence.network`); not used by the package itself.
"""

from __future__ import annotations

import numpy as np

from spikeforge.sequence.network import Options


def run(mask: np.ndarray, starts: np.ndarray, U, D, F, weight: np.ndarray, s: np.ndarray, q: np.ndarray,
        bias: np.ndarray, decay: np.ndarray, rise: np.ndarray, stp_u: np.ndarray, stp_r: np.ndarray,
        last_spike: np.ndarray, readout: np.ndarray, step: int, input_spikes: np.ndarray, uniforms: np.ndarray,
        options: Options = Options(), bias_s: np.ndarray | None = None,
        bias_q: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run the steps; ``weight``, ``s``, ``q`` are dense (neurons x presynaptic) arrays, ``mask`` says which
    synapses exist.  Arrays are updated in place; returns (spikes, rates)."""
    n_steps, n_inputs = input_spikes.shape
    n = mask.shape[0]
    circuit = np.repeat(np.arange(starts.size - 1), np.diff(starts))
    spikes = np.zeros((n_steps, n), dtype=bool)
    rates_out = np.zeros((n_steps, n))
    for t in range(n_steps):
        y = decay - rise
        u = bias + (weight * mask) @ y
        top = np.maximum.reduceat(u, starts[:-1])[circuit]
        e = np.exp(u - top)
        rates = options.r_max * e / np.add.reduceat(e, starts[:-1])[circuit]
        p = rates * options.dt / 1000.0 if options.linear_escape else 1.0 - np.exp(-rates * options.dt / 1000.0)
        fired = uniforms[t] < p
        spikes[t], rates_out[t] = fired, rates
        amplitude = np.concatenate([input_spikes[t].astype(float),
                                    np.where(fired, stp_u * stp_r if options.stp else 1.0, 0.0)])
        decay[:] = decay * options.decay_factor + amplitude
        rise[:] = rise * options.rise_factor + amplitude
        readout[:] = readout + fired - readout * options.state_decay
        if options.train and fired.any():
            rows = fired[:, None] & mask
            if options.variance_tracking:
                eta = options.eta0 * (q - s * s) / (np.exp(-s) + 1.0)
            else:
                eta = np.full_like(weight, options.eta0 / (step + 1))
            strength = np.exp(weight)
            if options.paper_stdp:
                change = eta * (options.stdp_c * np.exp(-weight) * y[None, :] - 1.0)
            else:
                change = eta * (y[None, :] - strength) / np.maximum(strength, eta)
            weight[rows] += change[rows]
            if options.variance_tracking:
                s[rows] += eta[rows] * (weight[rows] - s[rows])
                q[rows] += eta[rows] * (weight[rows] ** 2 - q[rows])
        if options.train and options.intrinsic:
            if options.variance_tracking:
                eta_b = options.eta0 * (bias_q - bias_s * bias_s) / (np.exp(-bias_s) + 1.0)
            else:
                eta_b = np.full(n, options.eta0 / (step + 1))
            strength = np.exp(bias)
            bias += eta_b * (fired - strength) / np.maximum(strength, eta_b)
            if options.variance_tracking:
                bias_s += eta_b * (bias - bias_s)
                bias_q += eta_b * (bias ** 2 - bias_q)
        if options.stp and fired.any():
            interval = (step - last_spike[fired] - 1) * options.dt
            u_old, r_old = stp_u[fired], stp_r[fired]
            stp_r[fired] = 1.0 + (r_old - r_old * u_old - 1.0) * np.exp(-interval / D[fired])
            stp_u[fired] = U[fired] + u_old * (1.0 - U[fired]) * np.exp(-interval / F[fired])
        last_spike[fired] = step
        step += 1
    return spikes, rates_out
