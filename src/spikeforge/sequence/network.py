"""The WTA grid as arrays, and its step kernel (numba): one call runs a chunk of 1-ms steps.

Presynaptic indices: the ``n_inputs`` input channels first, then the network's neurons.  Each neuron's
synapses are a row of a CSR structure (:class:`Synapses`): every input, then every neuron of the
circuits linked to its circuit (:mod:`~spikeforge.sequence.connectivity`).  The state (:class:`State`):
log weights, variance-tracking moments, EPSP traces per presynaptic index, short-term plasticity per
neuron, the low-pass filtered spike trains the readouts use, and the step count.

One step (the legacy simulator's order, sequence.md 2.3):

1. Y = decay - rise, every presynaptic index (before this step's spikes);
2. u_k = w_k0 + sum over k's synapses of w Y (:mod:`spikeforge.core.cells.wta`);
3. the circuit softmax gives the rates, and uniforms drawn outside the kernel give the spikes Z;
4. the EPSP traces take this step's spikes: inputs with amplitude 1, neurons with their short-term
   plasticity amplitude u R;
5. the filtered state: ``state <- state + Z - state dt / tau_state``;
6. in training, STDP at every neuron that spiked, over all its synapses, with the Y of step 1
   (:mod:`~spikeforge.sequence.plasticity`), with variance tracking or the eta0 / t rate;
   and (``intrinsic``, the legacy bias rule) every neuron's bias w_k0 moves by the same rule with y = Z_k,
   towards log P(spike in a step), with its own variance tracking;
7. the short-term plasticity of every neuron that spiked advances, with the interval since its previous
   spike (its first spike counts from step -1).

A spike at step n thus first moves u at step n + 2.  Random numbers come from the caller (one uniform
per neuron and step), so results do not depend on the number of threads.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from spikeforge.core.cells import wta
from spikeforge.sequence import plasticity


class Synapses(NamedTuple):
    """Row k holds neuron k's synapses: ``pre[offsets[k]:offsets[k + 1]]`` (presynaptic indices)."""

    offsets: np.ndarray  # int64 (neurons + 1,)
    pre: np.ndarray  # int64 (synapses,)


class Options(NamedTuple):
    """How the kernel steps (scalars; see the module docstring)."""

    dt: float = 1.0  # [ms]
    decay_factor: float = 0.95  # 1 - dt / tau_decay
    rise_factor: float = 0.5  # 1 - dt / tau_rise
    r_max: float = 100.0  # [Hz]
    linear_escape: bool = False  # spike probability r dt instead of 1 - exp(-r dt)
    train: bool = True  # STDP on
    variance_tracking: bool = True  # else eta = eta0 / t
    eta0: float = 0.05
    paper_stdp: bool = False  # the paper's rule c e^(-w) y - 1 instead of the code's
    stdp_c: float = 1.0  # c of the paper's rule
    stp: bool = True  # short-term plasticity on recurrent synapses
    state_decay: float = 0.05  # dt / tau of the readout state (tau 20 ms)
    intrinsic: bool = False  # the legacy bias rule (intrinsic plasticity; off in every published run)


class State(NamedTuple):
    """The network's state between steps, updated in place by :func:`run_steps`.  Per-synapse arrays follow the
    rows of :class:`Synapses`; the EPSP traces are indexed by presynaptic index (the inputs first, then the
    neurons)."""

    weight: np.ndarray  # float64 (synapses,) log weights w
    s: np.ndarray  # float64 (synapses,) variance tracking: running mean of w
    q: np.ndarray  # float64 (synapses,) running mean of w^2
    bias: np.ndarray  # float64 (neurons,) w_k0
    decay: np.ndarray  # float64 (inputs + neurons,) EPSP decay trace
    rise: np.ndarray  # float64 (inputs + neurons,) EPSP rise trace
    stp_u: np.ndarray  # float64 (neurons,)
    stp_r: np.ndarray  # float64 (neurons,)
    last_spike: np.ndarray  # int64 (neurons,) step of the last spike (-1: none yet)
    readout: np.ndarray  # float64 (neurons,) low-pass filtered spikes
    step: np.ndarray  # int64 (1,) steps simulated so far (the eta0 / t schedule counts them)
    bias_s: np.ndarray  # float64 (neurons,) variance tracking of the bias: running mean of w_k0
    bias_q: np.ndarray  # float64 (neurons,) running mean of w_k0^2


@numba.njit(parallel=True, cache=True)
def run_steps(offsets, pre, starts, U, D, F, weight, s, q, bias, decay, rise, stp_u, stp_r, last_spike, readout,
              step, bias_s, bias_q, input_spikes, uniforms, spikes_out, rates_out, record_rates, dt, decay_factor,
              rise_factor, r_max, linear_escape, train, variance_tracking, eta0, paper_stdp, stdp_c, stp, state_decay,
              intrinsic):
    """Run ``input_spikes.shape[0]`` steps; spikes into ``spikes_out`` (bool, steps x neurons), rates [Hz]
    into ``rates_out`` when ``record_rates``.  Every state array is updated in place."""
    n_steps, n_inputs = input_spikes.shape
    n = offsets.size - 1
    n_circuits = starts.size - 1
    y = np.empty(n_inputs + n)
    u = np.empty(n)
    rates = np.empty(n)
    fired = np.zeros(n, dtype=np.bool_)
    for t in range(n_steps):
        for i in range(n_inputs + n):
            y[i] = decay[i] - rise[i]
        for k in numba.prange(n):
            total = bias[k]
            for j in range(offsets[k], offsets[k + 1]):
                total += weight[j] * y[pre[j]]
            u[k] = total
        for c in range(n_circuits):
            wta.circuit_rates(u, starts[c], starts[c + 1], r_max, rates)
        for k in range(n):
            fired[k] = uniforms[t, k] < wta.spike_probability(rates[k], dt, linear_escape)
            spikes_out[t, k] = fired[k]
            if record_rates:
                rates_out[t, k] = rates[k]
        for i in range(n_inputs):
            amplitude = 1.0 if input_spikes[t, i] else 0.0
            decay[i], rise[i] = wta.epsp_step(decay[i], rise[i], amplitude, decay_factor, rise_factor)
        for k in range(n):
            amplitude = 0.0
            if fired[k]:
                amplitude = stp_u[k] * stp_r[k] if stp else 1.0
            decay[n_inputs + k], rise[n_inputs + k] = wta.epsp_step(decay[n_inputs + k], rise[n_inputs + k],
                                                                    amplitude, decay_factor, rise_factor)
            readout[k] += (1.0 if fired[k] else 0.0) - readout[k] * state_decay
        current = step[0] + 1  # the 1/t schedule counts steps from 1
        if train:
            for k in numba.prange(n):
                if not fired[k]:
                    continue
                for j in range(offsets[k], offsets[k + 1]):
                    eta = plasticity.tracked_rate(s[j], q[j], eta0) if variance_tracking else eta0 / current
                    if paper_stdp:
                        weight[j] += eta * plasticity.stdp_paper_step(weight[j], y[pre[j]], stdp_c)
                    else:
                        weight[j] += plasticity.stdp_step(weight[j], y[pre[j]], eta)
                    if variance_tracking:
                        s[j], q[j] = plasticity.track(s[j], q[j], weight[j], eta)
            if intrinsic:  # every neuron, every step: w_k0 moves towards log P(spike in a step)
                for k in range(n):
                    eta = plasticity.tracked_rate(bias_s[k], bias_q[k], eta0) if variance_tracking else eta0 / current
                    bias[k] += plasticity.stdp_step(bias[k], 1.0 if fired[k] else 0.0, eta)
                    if variance_tracking:
                        bias_s[k], bias_q[k] = plasticity.track(bias_s[k], bias_q[k], bias[k], eta)
        if stp:
            for k in range(n):
                if fired[k]:
                    interval = (step[0] - last_spike[k] - 1) * dt
                    stp_u[k], stp_r[k] = plasticity.stp_advance(stp_u[k], stp_r[k], U[k], D[k], F[k], interval)
        for k in range(n):
            if fired[k]:
                last_spike[k] = step[0]
        step[0] += 1


def initial_state(synapses: Synapses, n_inputs: int, n_neurons: int, U: np.ndarray,
                  weights: np.ndarray | None = None) -> State:
    """A fresh state: log weights 0 (or ``weights``), S = 0, Q = 1, traces 0, STP at (U, 1)."""
    n_synapses = synapses.pre.size
    weight = np.zeros(n_synapses) if weights is None else np.array(weights, dtype=np.float64)
    return State(weight, np.zeros(n_synapses), np.ones(n_synapses), np.zeros(n_neurons),
                 np.zeros(n_inputs + n_neurons), np.zeros(n_inputs + n_neurons), np.array(U, dtype=np.float64),
                 np.ones(n_neurons), np.full(n_neurons, -1, dtype=np.int64), np.zeros(n_neurons),
                 np.zeros(1, dtype=np.int64), np.zeros(n_neurons), np.ones(n_neurons))


def run(synapses: Synapses, starts: np.ndarray, stp_parameters: tuple[np.ndarray, np.ndarray, np.ndarray],
        state: State, input_spikes: np.ndarray, uniforms: np.ndarray, options: Options = Options(),
        record_rates: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Run the steps of ``input_spikes`` (bool, steps x inputs) with ``uniforms`` (steps x neurons);
    returns (spikes, rates or None) and updates ``state`` in place."""
    n_steps = input_spikes.shape[0]
    n = synapses.offsets.size - 1
    if uniforms.shape != (n_steps, n):
        raise ValueError(f"uniforms of shape {uniforms.shape}; expected ({n_steps}, {n})")
    spikes = np.zeros((n_steps, n), dtype=bool)
    rates = np.zeros((n_steps, n) if record_rates else (1, 1))
    U, D, F = stp_parameters
    run_steps(synapses.offsets, synapses.pre, starts, U, D, F, *state, np.ascontiguousarray(input_spikes),
              np.ascontiguousarray(uniforms), spikes, rates, record_rates, *options)
    return spikes, rates if record_rates else None


def synapses_of(circuit_of: np.ndarray, links: np.ndarray, n_inputs: int) -> Synapses:
    """Every input, then every neuron of the circuits linked to k's circuit, for every neuron k."""
    n = circuit_of.size
    rows = []
    for circuit in range(links.shape[0]):  # one row pattern per circuit, shared by its neurons
        sources = np.flatnonzero(links[circuit_of, circuit])
        rows.append(np.concatenate([np.arange(n_inputs), n_inputs + sources]))
    lengths = np.array([rows[c].size for c in circuit_of], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    pre = np.concatenate([rows[c] for c in circuit_of]) if n else np.zeros(0, dtype=np.int64)
    return Synapses(offsets, pre.astype(np.int64))
