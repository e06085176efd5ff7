"""The LIF network a trained rate RNN maps onto, simulated for a batch of trials and scaling
factors at once (spikernn.md 5.1-5.3).

What carries over from the rate network: the topology and signs (``W_eff``), the input weights
(unscaled), each unit's synaptic decay ``tau_d`` (from the trained ``taus_gaus``, 5 ms per step)
and the readout.  The recurrent weights and the readout are divided by the scaling factor ``sf``
(the paper's ``1/lambda``); the rate network's ``b_out`` is dropped, as in the original.

Per LIF step ``i = 1 .. n_t`` (``dt`` = 0.05 ms, ``t_i = i dt``), for every trial of the batch:

1. ``I = IPSC + bias + (W_in u)[:, k(i)]`` with input column ``k(i) = round(i dt / 5 ms)``
   (halves round up: each column is held for the 5 ms centred on its time);
2. the neurons step (:func:`spikeforge.core.cells.lif_mv.step`, voltage noise every step);
3. the spikes' weights ``JD = sum_{j spiked} W_eff[:, j] / sf`` enter each postsynaptic neuron's
   double exponential (decay ``tau_d`` of that neuron, rise 2 ms), and each spike enters the
   presynaptic filtered train ``r`` [Hz] (same kernel);
4. ``out_i = (w_out / sf) . r``.

Firing rates count spikes from step 10 on (the original skips the first steps' volley of the
neurons that start above threshold) and divide by the trial length.

The trial's noise comes from its own counter-based stream
(:mod:`spikeforge.core.backends.counter_normal`), so results do not depend on thread count.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from spikeforge.core.backends import counter_normal
from spikeforge.core.cells import lif_mv
from spikeforge.core.cells.synapse import double_exponential_step

RATE_STEP_MS = 5.0
RISE_MS = 2.0  # synaptic rise time tau_r [ms]
RATE_SKIP_STEPS = 10  # spikes before this step do not count in the firing rates


class Mapped(NamedTuple):
    """A rate network as the LIF network uses it (unscaled; the scaling factor is per trial)."""

    w: np.ndarray  # (N, N) W_eff, row postsynaptic [mV s per spike before scaling]
    w_in: np.ndarray  # (N, n_inputs) [mV per unit input]
    w_out: np.ndarray  # (N,) readout [per Hz before scaling]
    tau_d: np.ndarray  # (N,) synaptic decay [ms]
    inh: np.ndarray  # (N,) bool


class Batch(NamedTuple):
    """What a batch simulation returns."""

    out: np.ndarray  # (batch, n_t) float32: the readout at every LIF step
    rates: np.ndarray  # (batch, N) firing rates [Hz], spikes from step 10 on over the trial length
    spikes: np.ndarray | None  # (batch, n_t, N) bool when recorded, else None


def lif_steps(n_columns: int, cell: lif_mv.Parameters) -> tuple[int, int]:
    """(LIF steps per input column, LIF steps of a trial with ``n_columns`` columns)."""
    per_column = RATE_STEP_MS / cell.dt
    if abs(per_column - round(per_column)) > 1e-9:
        raise ValueError(f"dt = {cell.dt} ms must divide the rate model's 5-ms step")
    per_column = int(round(per_column))
    return per_column, (n_columns - 1) * per_column


@numba.njit(parallel=True, cache=True)
def _run(w_t, w_in, w_out, decay, kick, u, trial_scale, v0, seeds, per_column, n_t,
         dt_over_tau, v_th, v_reset, bias, noise_std, refrac, rise_decay, dt_s, record, out, counts, spikes):
    batch = u.shape[0]
    n = w_t.shape[0]
    for b in numba.prange(batch):
        state = np.empty(1, dtype=np.uint64)
        state[0] = seeds[b]
        ext = w_in @ u[b]  # (N, n_columns)
        scale = trial_scale[b]
        v = v0[b].copy()
        last = np.zeros(n, dtype=np.int64)  # t_last = 0: nobody integrates in the first tau_ref
        ipsc = np.zeros(n)
        rise = np.zeros(n)
        r = np.zeros(n)
        r_rise = np.zeros(n)
        jd = np.zeros(n)
        fired = np.zeros(n, dtype=np.bool_)
        spiked = np.empty(n, dtype=np.int64)
        for i in range(1, n_t + 1):
            column = (i + per_column // 2) // per_column
            n_spiked = 0
            for j in range(n):
                active = i - last[j] > refrac
                drive = ipsc[j] + bias + ext[j, column]
                v[j], fired[j] = lif_mv.step(v[j], drive, active, noise_std * counter_normal.normal(state),
                                             dt_over_tau, v_th, v_reset)
                if fired[j]:
                    last[j] = i
                    spiked[n_spiked] = j
                    n_spiked += 1
                    if i >= 10:
                        counts[b, j] += 1
                    if record:
                        spikes[b, i - 1, j] = True
            jd[:] = 0.0
            for s in range(n_spiked):
                jd += w_t[spiked[s]]
            total = 0.0
            for j in range(n):
                ipsc[j], rise[j] = double_exponential_step(ipsc[j], rise[j], jd[j] * scale, decay[j], rise_decay,
                                                           dt_s, kick[j])
                r[j], r_rise[j] = double_exponential_step(r[j], r_rise[j], 1.0 if fired[j] else 0.0, decay[j],
                                                          rise_decay, dt_s, kick[j])
                total += w_out[j] * r[j]
            out[b, i - 1] = total * scale


def simulate(mapped: Mapped, u: np.ndarray, scaling_factor: np.ndarray, rng: np.random.Generator,
             cell: lif_mv.Parameters = lif_mv.Parameters(), record_spikes: bool = False, backend: str = "numba",
             device: str = "cpu") -> Batch:
    """Simulate ``u.shape[0]`` trials.

    Args:
        mapped: the network.
        u: inputs (batch, n_inputs, n_columns), one column per 5-ms rate step.
        scaling_factor: ``sf = 1/lambda`` per trial (batch,) or one value.
        rng: draws the initial voltages and the trials' noise seeds.
        cell: LIF parameters (Table S1 by default).
        record_spikes: also return every spike (batch, n_t, N) bool (memory: batch * n_t * N bytes).
        backend: ``numba`` (CPU threads) or ``torch`` (on ``device``: cpu, cuda, cuda:N).
    """
    if backend not in ("numba", "torch"):
        raise ValueError(f"backend {backend!r} is not one of numba, torch")
    lif_mv.check(cell)
    u = np.ascontiguousarray(u, dtype=np.float64)
    batch, n_inputs, n_columns = u.shape
    n = mapped.w.shape[0]
    if mapped.w_in.shape != (n, n_inputs):
        raise ValueError(f"inputs have {n_inputs} channels; the network expects {mapped.w_in.shape[1]}")
    scale = 1.0 / np.broadcast_to(np.asarray(scaling_factor, dtype=np.float64), (batch,))
    per_column, n_t = lif_steps(n_columns, cell)
    tau_d_s = np.asarray(mapped.tau_d, dtype=np.float64) / 1000.0
    dt_s = cell.dt / 1000.0
    decay = np.exp(-dt_s / tau_d_s)
    kick = 1.0 / (RISE_MS / 1000.0 * tau_d_s)
    v0 = lif_mv.initial_voltage(rng, (batch, n), cell)
    seeds = counter_normal.seeds(rng, batch)
    duration_s = n_t * dt_s
    if backend == "torch":
        from spikeforge.rate2spike import lif_torch

        out, counts, spikes = lif_torch.run(mapped.w, mapped.w_in, np.reshape(mapped.w_out, n), decay, kick, u, scale,
                                            v0, per_column, n_t, cell, math.exp(-cell.dt / RISE_MS), dt_s,
                                            record_spikes, int(seeds[0] >> np.uint64(1)), device)
        return Batch(out=out, rates=counts / duration_s, spikes=spikes)
    out = np.zeros((batch, n_t), dtype=np.float32)
    counts = np.zeros((batch, n), dtype=np.int64)
    spikes = np.zeros((batch, n_t, n) if record_spikes else (1, 1, 1), dtype=np.bool_)
    _run(np.ascontiguousarray(mapped.w.T, dtype=np.float64), np.ascontiguousarray(mapped.w_in, dtype=np.float64),
         np.ascontiguousarray(mapped.w_out, dtype=np.float64).reshape(n), decay, kick, u, scale, v0, seeds,
         per_column, n_t, cell.dt_over_tau, cell.v_th, cell.v_reset, cell.bias, cell.noise_std,
         cell.refrac_steps, math.exp(-cell.dt / RISE_MS), dt_s, record_spikes, out, counts, spikes)
    return Batch(out=out, rates=counts / duration_s, spikes=spikes if record_spikes else None)


def from_arrays(model) -> Mapped:
    """The LIF network of a model read from a file (:class:`spikeforge.rate2spike.files.Model`), as
    the original's ``LIF_network_fnc.m`` builds it: ``W = (w m) * som_m``, ``tau_d`` from the
    trained ``taus_gaus`` (one fixed value when ``taus`` has one)."""
    w = model.weights
    n = model.config.n
    w_eff = (w["w"] @ np.diag(np.where(w["inh"], -1.0, 1.0))) * w["som_mask"]
    taus = model.config.decay_taus
    if len(taus) == 1:
        tau_steps = np.full(n, taus[0])
    else:
        tau_steps = 1.0 / (1.0 + np.exp(-w["taus_gaus"][:, 0])) * (taus[1] - taus[0]) + taus[0]
    return Mapped(w=w_eff, w_in=w["w_in"], w_out=w["w_out"][0], tau_d=tau_steps * RATE_STEP_MS, inh=w["inh"])


def from_rate_model(model) -> Mapped:
    """The LIF network of a trained :class:`~spikeforge.rate2spike.rate_model.RateRNN`: its ``W_eff``,
    ``W_in``, readout and trained decay times (steps x 5 ms)."""
    import torch

    with torch.no_grad():
        return Mapped(w=model.effective_weights().double().cpu().numpy(),
                      w_in=model.w_in.double().cpu().numpy(),
                      w_out=model.w_out[0].double().cpu().numpy(),
                      tau_d=model.taus().double().cpu().numpy() * RATE_STEP_MS,
                      inh=np.asarray(model.inh, dtype=bool))
