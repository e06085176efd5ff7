"""The arrays the RLS network kernels read and write, grouped by lifetime.

The same NamedTuples hold numpy arrays (numba backend) or tensors (torch backend).
``N`` is the number of neurons, ``Lmax`` the largest number of plastic inputs of a neuron.

Time is counted in integer steps ``ti = 1 .. n_steps`` (step ``ti`` ends at ``ti * dt`` ms).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikeforge.core.cells import glif, lif

# run kinds (the reference's :init, :train, :train_test and :test)
INIT, TRAIN, TRAIN_RECORD, TEST = 0, 1, 2, 3
# cell models: LIF, or the GLIF family (spikeforge.core.cells.glif)
LIF, GLIF = 0, 1
# where white noise enters (compile-time constants of the step kernels): nowhere, the voltage, the static current
NOISE_NONE, NOISE_VOLTAGE, NOISE_CURRENT = 0, 1, 2
# which phases of each step a kernel call runs: both; the update of the neurons a process owns; the
# delivery of every spike onto them (a network sharded across processes exchanges spikes in between)
BOTH, UPDATE, DELIVER = 0, 1, 2


class Connectivity(NamedTuple):
    """Synapses in presynaptic (out-list) layout, as compressed rows.

    The targets of presynaptic neuron ``j`` are ``static_post[static_ptr[j]:static_ptr[j+1]]``, in
    ascending order (the numba kernel searches each out-list for the stretch that one thread delivers),
    with weights ``static_weight[...]`` (charge per spike; > 0 excitatory, < 0 inhibitory);
    likewise for plastic synapses.  Their weights change with every RLS update, which works on them in
    the in-layout (each neuron's inputs, (N, Lmax)).  Either they are copied to the out-layout after each
    update (``plastic_weight`` holds them in out-list order, ``plastic_source`` is empty), or the kernel
    reads them where the update writes them: ``plastic_weight`` is then the in-layout, flattened, and the
    weight of plastic synapse ``s`` is ``plastic_weight[plastic_source[s]]``
    (:func:`spikeforge.rls.connectivity.out_to_in`; numba only).  A training loop of the default model copies
    every weight 100 times (23.8 M copies), while its deliveries read 2.3 M (20,000 steps, about 2 spikes per
    step, 58 plastic synapses each), though each of those is a scattered read
    (:attr:`spikeforge.core.backends.KernelOptions.plastic_in_place` says which is faster where).
    """

    static_ptr: np.ndarray  # int64 (N + 1,)
    static_post: np.ndarray  # int32 (nnz,)
    static_weight: np.ndarray  # float (nnz,) charge per spike [voltage ms]
    plastic_ptr: np.ndarray  # int64 (N + lx + 1,): feed-forward neurons are presynaptic N .. N+lx-1
    plastic_post: np.ndarray  # int32 (nnz_plastic,)
    plastic_weight: np.ndarray  # float (nnz_plastic,) charge per spike [voltage ms] (or the in-layout, flattened)
    plastic_source: np.ndarray = np.empty(0, dtype=np.int32)  # int (nnz_plastic,) or empty: see above


class Synapses(NamedTuple):
    """The exponential filters (:mod:`spikeforge.core.cells.synapse`) of the static currents (one time
    constant per population), of the plastic current and of the filtered spike trains (one per
    presynaptic neuron, feed-forward neurons last)."""

    decay_e: float  # 1 - dt / tau_bale [1]
    kick_e: float  # 1 / tau_bale [1/ms]
    decay_i: float  # 1 - dt / tau_bali [1]
    kick_i: float  # 1 / tau_bali [1/ms]
    decay_plastic: np.ndarray  # (N + lx,) 1 - dt / tau_plas [1]
    kick_plastic: np.ndarray  # (N + lx,) 1 / tau_plas [1/ms]


def one_static_charge(synapses: Synapses) -> bool:
    """Whether the excitatory and inhibitory static synapses share one filter (tau_bale = tau_bali, as
    by default).  Their charges then add up into one, ``State.charge_e``, which a step reads once and
    to which a spike adds each weight without testing its sign (``charge_i`` stays 0): 16 bytes less per
    neuron-step, and the rounding of one sum instead of two.  Every backend makes this choice alike."""
    return float(synapses.decay_e) == float(synapses.decay_i) and float(synapses.kick_e) == float(synapses.kick_i)


class Drive(NamedTuple):
    """External input to every neuron: a constant drive and white noise."""

    x_bal: np.ndarray  # (N,) constant external drive [voltage]
    noise_scale: np.ndarray  # (N,) standard deviation of the noise per step (0 = none)
    noise_on_voltage: bool  # True: noise kicks v; False: noise adds to the static current


class Timeline(NamedTuple):
    """When things happen in a trial, in steps ``ti = 1 .. n_steps``."""

    stim_on_step: int  # the stimulus is added on steps stim_on_step < ti < stim_off_step
    stim_off_step: int  # learning and recording start after it
    u0_skip_steps: int  # init statistics are taken on steps ti > u0_skip_steps
    steps_per_ms: int  # rolling averages sample u every steps_per_ms steps
    wid_steps: int  # half-width of the rolling boxcar [steps]
    learn_step: int  # steps between RLS updates (= between rolling-average bin centres)
    wid_bins: int  # each sample goes to wid_bins + 1 consecutive bins


class NetworkParameters(NamedTuple):
    """Everything constant in a trial of the RLS network, by concern (units: ms, dimensionless voltage)."""

    cell_kind: int  # LIF or GLIF: which of ``lif`` and ``glif`` the neurons follow
    lif: lif.Parameters
    glif: glif.Parameters
    synapses: Synapses
    drive: Drive
    timeline: Timeline
    # population_split(self, N), found once by the builder (:func:`with_population_split`); None: the numba
    # kernel finds it on every call (30-60 us: a sharded run calls the kernel twice per step).  Whoever
    # replaces a per-neuron array of a NetworkParameters that holds it must find it again
    population_split: int | None = None


def population_split(c: NetworkParameters, n: int) -> int:
    """The neuron ``s`` at which the per-neuron LIF parameters, drive, noise scale and plastic filter
    change from one value to another (``n``: one value for all), or -1 when they vary otherwise.

    Each array must be constant on ``0 .. s - 1`` and on ``s .. n - 1`` for one common ``s``; the
    step kernel then reads two numbers instead of an array each."""
    split = n
    for values in (c.lif.dt_over_tau, c.lif.thresh, c.drive.x_bal, c.drive.noise_scale, c.synapses.decay_plastic[:n],
                   c.synapses.kick_plastic[:n]):
        changes = np.flatnonzero(values[1:] != values[:-1])
        if changes.size > 1:
            return -1
        if changes.size == 1:
            here = int(changes[0]) + 1
            if split not in (n, here):
                return -1
            split = here
    return split


def with_population_split(c: NetworkParameters, n: int) -> NetworkParameters:
    """``c`` with its :func:`population_split` for ``n`` neurons recorded (its arrays must not change later)."""
    return c._replace(population_split=population_split(c, n))


class State(NamedTuple):
    """Everything that changes during a trial.  Reset at the start of each trial."""

    v: np.ndarray  # (N,) membrane potential
    last_spike: np.ndarray  # int64 (N,) step of the last spike (very negative = never)
    spike_count: np.ndarray  # int64 (N,) spikes this trial
    spiked: np.ndarray  # uint8 (N + lx,) 1 if the neuron spiked in the last step (feed-forward last)
    # synaptic charge (current / kick, cells.synapse): the last step's, decayed, plus what the spikes
    # since then brought; the next step's current is charge * kick
    charge_e: np.ndarray  # (N,) static excitatory synapses, or all static ones (one_static_charge) [weight units]
    charge_i: np.ndarray  # (N,) static inhibitory synapses (0 with one_static_charge)
    charge_p: np.ndarray  # (N,) plastic synapses
    u_bal: np.ndarray  # (N,) static current (+ current noise) of the last step; RLS reads it (not in the init run)
    u_plas: np.ndarray  # (N,) plastic current of the last step (numba writes it in the recording kinds only)
    r: np.ndarray  # (N + lx,) filtered spike trains [spikes/ms] (feed-forward neurons last)
    thresh_s: np.ndarray  # (N,) GLIF spike-induced threshold
    thresh_v: np.ndarray  # (N,) GLIF voltage-induced threshold
    asc: np.ndarray  # (N, n_asc) GLIF after-spike currents


class Recording(NamedTuple):
    """What a run records.  Arrays of size 0 when the run kind does not record them."""

    spike_steps: np.ndarray  # int32 (N, max_times) steps of the first max_times spikes (record kinds)
    roll_sum: np.ndarray  # (2, n_bins, N) sums of u_total and u_plastic per rolling bin (record kinds)
    roll_count: np.ndarray  # int64 (n_bins,) samples per rolling bin
    u_sum: np.ndarray  # (N,) init: sum of u over steps ti > u0_skip_steps
    u_sumsq: np.ndarray  # (N,) init: sum of u^2 over the same steps
