"""Numba kernel: time steps of the RLS network between two learning updates.

Per step ``ti`` (the order of TrainSpikingNet's CPU loop, reference tsn.md 3.3):

1. for every neuron, in parallel:
   static currents ``u_bale, u_bali`` and the plastic current ``u_plas`` decay and take the
   charge that arrived from the previous step's spikes (``u <- u (1 - dt/tau) + q / tau``);
   ``u = u_bale + u_bali (+ u_plas)``; the filtered spike
   train ``r <- r (1 - dt/tau_plas) + s_prev / tau_plas``; drive ``X = x_bal (+ stimulus)``;
   voltage noise; the cell model's step unless refractory (LIF, or GLIF1-5); threshold and reset;
2. (init) sums of u and u^2; (record kinds, on 1-ms steps after ``stim_off``) the rolling sums;
3. serially, in neuron order: every neuron that spiked adds its out-weights to the
   charge accumulators that the next step reads (the one-step synaptic delay), and its
   spike count and time are recorded; then the feed-forward neurons (filtered trains,
   host-drawn spikes, plastic out-weights).

Neuron updates are independent and the propagation is serial, so results do not depend
on the number of threads.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from spikeforge.core.backends import KernelOptions
from spikeforge.core.backends.layout import (GLIF, INIT, TEST, TRAIN, TRAIN_RECORD, Connectivity, Constants,
                                             Recording, State)
from spikeforge.core.cells import glif, lif


@numba.njit(cache=True)
def _rolling_bins(ti: int, c: Constants, n_bins: int) -> tuple[int, int]:
    """0-based bins [lo, hi] that the 1-ms sample at step ti belongs to (centres stim_off + j*learn_every)."""
    first = (ti - c.stim_off_step - c.wid_steps) // c.learn_step + 1  # 1-based, floor division
    last = min(first + c.wid_bins, n_bins)
    return max(first, 1) - 1, last - 1


@functools.lru_cache(maxsize=None)
def _make_run_steps(parallel: bool, kind: int, cell_kind: int, noise_mode: int):
    """The step kernel specialised for one configuration.

    The arguments are closure constants, so numba removes the branches a configuration does
    not take (which halves the time of a step) and caches each variant separately (closure
    values are part of its cache key).  ``noise_mode``: 0 none, 1 voltage, 2 current.
    """

    @numba.njit(parallel=parallel, cache=True)
    def run_steps(
        state: State,
        net: Connectivity,
        c: Constants,
        rec: Recording,
        x_stim: np.ndarray,
        noise: np.ndarray,
        ff_spikes: np.ndarray,
        first_step: int,
        last_step: int,
    ) -> None:
        """Advance ``state`` through steps ``first_step .. last_step`` (inclusive, 1-based) in place.

        Args:
            state, net, c, rec: see :mod:`spikeforge.core.backends.layout`.
            x_stim: (n_stim_rows, N) stimulus of the current task; row ``ti - stim_on_step - 1``.
            noise: (last_step - first_step + 1, N) standard normals, or shape (0, N) for no noise.
            ff_spikes: uint8 (last_step - first_step + 1, lx) spikes of the feed-forward neurons
                (presynaptic indices N .. N + lx - 1 of ``r``, ``spiked`` and the plastic out-lists).
        """
        # numba loses writes made through NamedTuple attributes inside prange, and cannot lower nested
        # NamedTuples there: unpack everything the loops use into locals
        v_all, last_spike, spike_count, spiked_all = state.v, state.last_spike, state.spike_count, state.spiked
        u_bale_all, u_bali_all, u_bal_all, u_plas_all, r = state.u_bale, state.u_bali, state.u_bal, state.u_plas, state.r
        inputs_e, inputs_i, inputs_p = state.inputs_e, state.inputs_i, state.inputs_p
        spike_steps, roll_sum, roll_count, u_sum, u_sumsq = (rec.spike_steps, rec.roll_sum, rec.roll_count, rec.u_sum,
                                                             rec.u_sumsq)
        x_bal, thresh, dt_over_tau_mem = c.x_bal, c.thresh, c.dt_over_tau_mem
        decay_plas, kick_plas, noise_scale = c.decay_plas, c.kick_plas, c.noise_scale
        decay_bale, kick_bale, decay_bali, kick_bali = c.decay_bale, c.kick_bale, c.decay_bali, c.kick_bali
        vre, refrac_steps, u0_skip_steps = c.vre, c.refrac_steps, c.u0_skip_steps
        dt = c.dt
        static_ptr, static_post, static_weight = net.static_ptr, net.static_post, net.static_weight
        plastic_ptr, plastic_post, plastic_weight = net.plastic_ptr, net.plastic_post, net.plastic_weight
        thresh_s, thresh_v, asc = state.thresh_s, state.thresh_v, state.asc
        glif_cell = cell_kind == GLIF
        g_dt_over_c, g_inv_r, g_e_l = c.glif.dt_over_c, c.glif.inv_r, c.glif.e_l
        g_b_s, g_delta_thresh_s, g_f_v, g_delta_v = c.glif.b_s, c.glif.delta_thresh_s, c.glif.f_v, c.glif.delta_v
        g_a_v, g_b_v, g_reset_rule = c.glif.a_v, c.glif.b_v, c.glif.reset_rule
        g_asc_decay, g_asc_f, g_asc_delta = c.glif.asc_decay, c.glif.asc_f, c.glif.asc_delta
        n = v_all.shape[0]
        # numba's cache key holds the closure variables' values; ``parallel`` is only read by the
        # decorator, so without this reference the threaded and serial variants would share a key
        threaded = parallel  # noqa: F841
        plastic = kind != INIT  # kind, cell_kind and noise_mode are compile-time constants
        learning = kind == TRAIN or kind == TRAIN_RECORD
        recording = kind == TRAIN_RECORD or kind == TEST
        with_noise = noise_mode != 0
        noise_on_voltage = noise_mode == 1
        n_bins = roll_count.shape[0]
        max_times = spike_steps.shape[1]
        for ti in range(first_step, last_step + 1):
            prev = (ti - 1) & 1
            cur = ti & 1
            stim_row = ti - c.stim_on_step - 1
            stimulated = plastic and c.stim_on_step < ti < c.stim_off_step
            noise_row = ti - first_step
            # element-wise, branch-free update of every neuron (vectorises); spike bookkeeping is below
            for i in numba.prange(n):
                q_e = inputs_e[prev, i]
                q_i = inputs_i[prev, i]
                inputs_e[prev, i] = 0.0
                inputs_i[prev, i] = 0.0
                u_bale = u_bale_all[i] * decay_bale + q_e * kick_bale
                u_bali = u_bali_all[i] * decay_bali + q_i * kick_bali
                u_bale_all[i] = u_bale
                u_bali_all[i] = u_bali
                u_bal = u_bale + u_bali
                if with_noise and not noise_on_voltage:
                    u_bal += noise_scale[i] * noise[noise_row, i]
                u_bal_all[i] = u_bal
                u = u_bal
                if plastic:
                    q_p = inputs_p[prev, i]
                    inputs_p[prev, i] = 0.0
                    u_plas = u_plas_all[i] * decay_plas[i] + q_p * kick_plas[i]
                    u_plas_all[i] = u_plas
                    u += u_plas
                if learning:
                    r[i] = r[i] * decay_plas[i] + spiked_all[i] * kick_plas[i]
                drive = x_bal[i] + u
                if stimulated:
                    drive += x_stim[stim_row, i]
                v = v_all[i]
                if with_noise and noise_on_voltage:
                    v += noise_scale[i] * noise[noise_row, i]
                active = ti > last_spike[i] + refrac_steps
                if glif_cell:
                    v, fired = glif.step(i, v, drive, active, thresh[i], vre, dt, g_dt_over_c, g_inv_r, g_e_l, g_b_s,
                                         g_delta_thresh_s, g_f_v, g_delta_v, g_a_v, g_b_v, g_reset_rule, g_asc_decay,
                                         g_asc_f, g_asc_delta, thresh_s, thresh_v, asc)
                    v_all[i] = v
                else:
                    stepped = lif.step(v, drive, dt_over_tau_mem[i])
                    v = stepped if active else v
                    fired = active and v > thresh[i]
                    v_all[i] = vre if fired else v
                spiked_all[i] = fired
            if kind == INIT and ti > u0_skip_steps:
                for i in numba.prange(n):
                    u = u_bal_all[i]
                    u_sum[i] += u
                    u_sumsq[i] += u * u
            if recording and ti % c.steps_per_ms == 0 and ti > c.stim_off_step:
                lo, hi = _rolling_bins(ti, c, n_bins)
                for b in range(lo, hi + 1):
                    roll_count[b] += 1
                    for i in numba.prange(n):
                        roll_sum[0, b, i] += u_bal_all[i] + u_plas_all[i]
                        roll_sum[1, b, i] += u_plas_all[i]
            # serial, in neuron order: spike counts and times, and propagation to next step's inputs
            for j in range(n):
                if spiked_all[j]:
                    last_spike[j] = ti
                    count = spike_count[j] + 1
                    spike_count[j] = count
                    if recording and count <= max_times:
                        spike_steps[j, count - 1] = ti
                    for s in range(static_ptr[j], static_ptr[j + 1]):
                        w = static_weight[s]
                        if w > 0:
                            inputs_e[cur, static_post[s]] += w
                        else:
                            inputs_i[cur, static_post[s]] += w
                    if plastic:
                        for s in range(plastic_ptr[j], plastic_ptr[j + 1]):
                            inputs_p[cur, plastic_post[s]] += plastic_weight[s]
            if plastic:
                for c_ff in range(ff_spikes.shape[1]):
                    j = n + c_ff
                    if learning:
                        r[j] = r[j] * decay_plas[j] + spiked_all[j] * kick_plas[j]
                    fired = ff_spikes[ti - first_step, c_ff]
                    spiked_all[j] = fired
                    if fired:
                        for s in range(plastic_ptr[j], plastic_ptr[j + 1]):
                            inputs_p[cur, plastic_post[s]] += plastic_weight[s]

    return run_steps


def run_steps(state: State, net: Connectivity, c: Constants, rec: Recording, x_stim: np.ndarray, noise: np.ndarray,
              ff_spikes: np.ndarray, first_step: int, last_step: int, kind: int,
              options: KernelOptions = KernelOptions()) -> None:
    """Advance ``state`` through steps ``first_step .. last_step`` (see the module docstring).

    Networks of ``options.parallel_min_neurons`` or more neurons update them in parallel threads;
    smaller ones run on one thread, where a step (microseconds) is too short to share out.
    """
    threads = numba.get_num_threads() > 1 and state.v.shape[0] >= options.parallel_min_neurons
    noise_mode = 0 if noise.shape[0] == 0 else (1 if c.noise_on_voltage else 2)
    kernel = _make_run_steps(threads, kind, c.cell_kind, noise_mode)
    kernel(state, net, c, rec, x_stim, noise, ff_spikes, first_step, last_step)


__all__ = ["run_steps", "INIT", "TRAIN", "TRAIN_RECORD", "TEST"]
