"""Numba kernel: time steps of the RLS network between two learning updates.

Per step ``ti`` (the order of TrainSpikingNet's CPU loop, reference tsn.md 3.3):

1. for every neuron:
   the static excitatory and inhibitory currents and the plastic current, from the charge each
   synapse type holds (its past, decayed, plus what the previous step's spikes brought), which
   then decays for the next step (:func:`spikeforge.core.cells.synapse.charge_step`; one static
   charge for E and I when they share a time constant, :func:`layout.one_static_charge`);
   ``u = u_e + u_i (+ u_plas)``; the filtered spike train ``r`` (the same filter, kicked by
   the previous step's spike); drive ``X = x_bal (+ stimulus)``; voltage noise; the cell model's
   step (:func:`spikeforge.core.cells.lif.step` or :func:`spikeforge.core.cells.glif.step`:
   refractoriness, membrane, threshold and reset);
2. (init) sums of u and u^2; (record kinds, on 1-ms steps after ``stim_off``) the rolling sums;
3. every neuron that spiked, in neuron order, adds its out-weights to the charge of its targets,
   which the next step reads (the one-step synaptic delay), and its spike count and time are
   recorded; then the feed-forward neurons (filtered trains, host-drawn spikes, plastic out-weights).

With threads, the neurons are cut into one chunk per thread, and a thread does everything for the
neurons of its chunk in one parallel region per step: it adds the previous step's spikes onto them
(the stretch of each spiking neuron's out-list, which is sorted by target, that falls into the
chunk), updates them, and lists those that spiked.  Every neuron thus receives
its charges in the same order (by presynaptic neuron) whatever the number of threads, and the
results do not depend on it.  The spikes of a call's last step are delivered before it returns.

Sharded networks (:mod:`spikeforge.rls.distributed`): a process that owns neurons ``lo .. hi - 1``
runs each step in two calls with a spike exchange in between: phase ``UPDATE`` (1-2 above for its
own neurons, and the filtered trains ``r`` of every neuron from the spikes exchanged after the
previous step) and phase ``DELIVER`` (3 above for every neuron that spiked, onto its own neurons: its
connectivity holds only the synapses onto them).  ``BOTH`` with ``lo, hi = 0, N`` is one process.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from spikeforge.core.backends import KernelOptions
from spikeforge.core.backends.layout import (BOTH, DELIVER, GLIF, INIT, NOISE_CURRENT, NOISE_NONE, NOISE_VOLTAGE, TEST,
                                             TRAIN, TRAIN_RECORD, UPDATE, Connectivity, Drive, NetworkParameters,
                                             Recording, State, Synapses, Timeline, one_static_charge,
                                             population_split)
from spikeforge.core.cells import glif, lif, synapse


@numba.njit(cache=True)
def _rolling_bins(ti: int, t: Timeline, n_bins: int) -> tuple[int, int]:
    """0-based bins [lo, hi] that the 1-ms sample at step ti belongs to (centres stim_off + j*learn_every)."""
    first = (ti - t.stim_off_step - t.wid_steps) // t.learn_step + 1  # 1-based, floor division
    last = min(first + t.wid_bins, n_bins)
    return max(first, 1) - 1, last - 1


@numba.njit(inline="always", cache=True)
def _first_target_at_least(post, start, stop, target, lo, hi):
    """The first position ``s`` in ``start .. stop - 1`` with ``post[s] >= target`` (``stop`` if none), where
    ``post[start:stop]`` is sorted and holds targets in ``lo .. hi - 1`` (all unsigned).

    The search starts where a row spread evenly over the targets would have it and steps from there: a
    random network's row is found within a cache line or two, which the delivery then reads anyway (a
    bisection touched lines all over the row, and its cache misses cost as much as the delivery).  Any
    sorted row gives the right position; an uneven one only takes more steps."""
    if target <= lo:  # the first chunk's stretch starts where the row does
        return start
    if target >= hi:  # the last chunk's ends where the row does
        return stop
    guess = start + (stop - start) * (target - lo) // (hi - lo)
    while guess > start and np.uint64(post[guess - np.uint64(1)]) >= target:
        guess -= np.uint64(1)
    while guess < stop and np.uint64(post[guess]) < target:
        guess += np.uint64(1)
    return guess


@numba.njit(inline="always", cache=True)
def _push(j, ptr, post, weight, source, in_place, begin, end, lo, hi, charge_e, charge_i, split_sign):
    """Add presynaptic neuron ``j``'s out-weights onto the targets ``begin .. end - 1`` to their charge,
    which the next step reads: to the excitatory (w > 0) or inhibitory charge with ``split_sign``, all to
    ``charge_e`` without (plastic synapses; static ones with :func:`layout.one_static_charge`).  The weight of
    synapse ``s`` is ``weight[s]``, or with ``in_place`` ``weight[source[s]]`` (the in-layout:
    :attr:`layout.Connectivity.plastic_source`; ``source`` is not read without), rounded to the charge's type as
    a copy to an out-layout of that type rounds it (a training run's weights all have that type already).

    ``j``'s out-list is sorted by target and holds targets in ``lo .. hi - 1`` (the neurons a process owns),
    so its synapses onto ``begin .. end - 1`` are one stretch of it (:func:`_first_target_at_least`).
    Indices are unsigned, so that numba does not test each for wrap-around: the caller guarantees
    ``0 <= post < N`` (init.h5 and connectivity plugins are checked when read)."""
    row_start, row_stop = np.uint64(ptr[j]), np.uint64(ptr[j + 1])
    first = _first_target_at_least(post, row_start, row_stop, begin, lo, hi)
    stop = _first_target_at_least(post, row_start, row_stop, end, lo, hi)
    for s in range(first, stop):
        w = charge_e.dtype.type(weight[source[s]]) if in_place else weight[s]
        target = np.uint64(post[s])
        if not split_sign or w > 0:
            charge_e[target] += w
        else:
            charge_i[target] += w


@numba.njit(inline="always", cache=True)
def _chunk_size(lo, hi, chunks):
    """The number of neurons of each chunk of ``lo .. hi - 1`` but the last (:func:`_chunk`): a multiple of 8,
    so that the chunks of ``0 .. N - 1`` start at whole words of spike flags."""
    return ((hi - lo + chunks - 1) // chunks + 7) // 8 * 8


@numba.njit(inline="always", cache=True)
def _chunk(lo, hi, chunk, chunks):
    """Neurons ``begin .. end - 1`` of chunk ``chunk`` of ``chunks`` equal parts of ``lo .. hi - 1``, as
    unsigned integers: the compiler then knows that an index is not negative, drops the wrap-around
    check of every array access and vectorises the loop (with signed bounds a step took 2.5 times longer).
    """
    size = _chunk_size(lo, hi, chunks)
    begin = min(lo + chunk * size, hi)
    return np.uint64(begin), np.uint64(min(begin + size, hi))


@numba.njit(inline="always", cache=True)
def _note_spike(i, ti, last_spike, spike_count, spike_steps, recording, spike_lists, which, chunk, found):
    """Neuron ``i`` spiked at step ``ti``: its spike count, last spike step (and spike step when
    ``recording``, up to the recording's capacity), and its place ``found`` in ``spike_lists[which, chunk]``."""
    last_spike[i] = ti
    count = spike_count[i] + 1
    spike_count[i] = count
    if recording and count <= spike_steps.shape[1]:
        spike_steps[i, count - 1] = ti
    spike_lists[which, chunk, found] = i


@numba.njit(inline="always", cache=True)
def _collect(begin, end, ti, spiked_all, flag_words, last_spike, spike_count, spike_steps, recording, spike_lists,
             which, chunk):
    """Note every neuron of ``begin .. end - 1`` (``begin`` a multiple of 8) that spiked at step ``ti``
    (:func:`_note_spike`), in order; return how many did.  ``flag_words``: the spike flags of eight
    neurons at a time (spikes are rare: most words are zero)."""
    found = 0
    words_end = min(end // 8, flag_words.shape[0])
    for word in range(begin // 8, words_end):
        if flag_words[word] != 0:
            for i in range(8 * word, 8 * word + 8):
                if spiked_all[i]:
                    _note_spike(i, ti, last_spike, spike_count, spike_steps, recording, spike_lists, which, chunk,
                                found)
                    found += 1
    for i in range(max(begin, 8 * words_end), end):
        if spiked_all[i]:
            _note_spike(i, ti, last_spike, spike_count, spike_steps, recording, spike_lists, which, chunk, found)
            found += 1
    return found


@numba.njit(inline="always", cache=True)
def _deliver(begin, end, lo, hi, spike_lists, spike_counts, which, ff_spikes, ff_row, n, plastic, split_sign,
             static_ptr, static_post, static_weight, charge_e, charge_i, plastic_ptr, plastic_post, plastic_weight,
             plastic_source, charge_p):
    """Deliver one step's spikes onto the targets ``begin .. end - 1``: those of the network's neurons
    (``spike_lists[which, c, :spike_counts[which, c]]`` for each chunk ``c``: in neuron order), then, with
    ``plastic``, those of the feed-forward neurons (presynaptic ``n ..``) that ``ff_spikes[ff_row]``
    marks.  ``lo .. hi - 1``: the targets the out-lists hold (all unsigned).  Every target receives its
    additions in this order, whatever the chunks are."""
    in_place = plastic_source.shape[0] != 0  # the plastic weights are read in the in-layout
    for c in range(spike_counts.shape[1]):
        for k in range(spike_counts[which, c]):
            j = spike_lists[which, c, k]
            _push(j, static_ptr, static_post, static_weight, plastic_source, False, begin, end, lo, hi, charge_e,
                  charge_i, split_sign)
            if plastic:
                _push(j, plastic_ptr, plastic_post, plastic_weight, plastic_source, in_place, begin, end, lo, hi,
                      charge_p, charge_p, False)
    if plastic:
        for c_ff in range(ff_spikes.shape[1]):
            if ff_spikes[ff_row, c_ff]:
                _push(n + c_ff, plastic_ptr, plastic_post, plastic_weight, plastic_source, in_place, begin, end, lo,
                      hi, charge_p, charge_p, False)


@functools.lru_cache(maxsize=None)
def _make_run_steps(parallel: bool, kind: int, cell_kind: int, noise_mode: int, phase: int = BOTH,
                    two_populations: bool = False, init_sums: bool = False, one_charge: bool = False):
    """The step kernel specialised for one configuration.

    The arguments are closure constants, so numba removes the branches a configuration does
    not take (which halves the time of a step) and caches each variant separately (closure
    values are part of its cache key).  ``noise_mode``: NOISE_NONE, NOISE_VOLTAGE or NOISE_CURRENT;
    ``phase``: BOTH, UPDATE or DELIVER.  ``two_populations``: the per-neuron LIF parameters, drive,
    noise scale and plastic filter take one value on neurons ``0 .. split - 1`` and another on the rest
    (the E and I populations of the default model), so the neuron loop reads two numbers instead of
    an array each (the same values: results are unchanged).  ``init_sums``: steps of the init run whose
    currents enter its statistics (after ``u0_skip_steps``); they are summed in the neuron loop.
    ``one_charge``: the static synapses share one filter and one charge
    (:func:`spikeforge.core.backends.layout.one_static_charge`).
    """

    @numba.njit(parallel=parallel, cache=True)
    def run_steps(state: State, net: Connectivity, lif_p: lif.Parameters, glif_p: glif.Parameters, syn: Synapses,
                  drive: Drive, timeline: Timeline, rec: Recording, x_stim: np.ndarray, noise: np.ndarray,
                  ff_spikes: np.ndarray, first_step: int, last_step: int, lo: int, hi: int, split: int,
                  chunks: int) -> None:
        """Advance ``state`` through steps ``first_step .. last_step`` (inclusive, 1-based) in place.

        Args:
            state, net, rec: see :mod:`spikeforge.core.backends.layout`; the parameter tuples are
                the fields of its NetworkParameters, passed one by one (numba reads a tuple inside a
                parallel loop only when it is an argument of its own).
            x_stim: (n_stim_rows, N) stimulus of the current task; row ``ti - stim_on_step - 1``.
            noise: (last_step - first_step + 1, N) standard normals, or shape (0, N) for no noise.
            ff_spikes: uint8 (last_step - first_step + 1, lx) spikes of the feed-forward neurons
                (presynaptic indices N .. N + lx - 1 of ``r``, ``spiked`` and the plastic out-lists).
            lo, hi: the neurons this call updates (and whose currents it records) and onto which it delivers
                spikes: ``lo .. hi - 1``.
            split: with ``two_populations``, the first neuron of the second population.
            chunks: the neuron loops run in this many chunks (one per thread; 1 without threads).
        """
        # numba loses writes made through NamedTuple attributes inside prange: unpack what the loops write
        v_all, last_spike, spike_count, spiked_all = state.v, state.last_spike, state.spike_count, state.spiked
        charge_e, charge_i, charge_p = state.charge_e, state.charge_i, state.charge_p
        u_bal_all, u_plas_all, r = state.u_bal, state.u_plas, state.r
        thresh_s, thresh_v, asc = state.thresh_s, state.thresh_v, state.asc
        spike_steps, roll_sum, roll_count, u_sum, u_sumsq = (rec.spike_steps, rec.roll_sum, rec.roll_count, rec.u_sum,
                                                             rec.u_sumsq)
        static_ptr, static_post, static_weight = net.static_ptr, net.static_post, net.static_weight
        plastic_ptr, plastic_post, plastic_weight = net.plastic_ptr, net.plastic_post, net.plastic_weight
        plastic_source = net.plastic_source
        # the parameters the neuron loop reads, as locals: read through the tuples inside the loop they
        # made a training loop of 4096 LIF neurons slower (simulation 0.76-0.99 s against 0.62-0.66 s)
        decay_e, kick_e, decay_i, kick_i = syn.decay_e, syn.kick_e, syn.decay_i, syn.kick_i
        decay_plastic, kick_plastic = syn.decay_plastic, syn.kick_plastic
        x_bal, noise_scale = drive.x_bal, drive.noise_scale
        dt_over_tau, thresh, vre, refrac_steps = lif_p.dt_over_tau, lif_p.thresh, lif_p.vre, lif_p.refrac_steps
        n = v_all.shape[0]
        # numba's cache key holds the closure variables' values; ``parallel`` is only read by the
        # decorator, so without this reference the threaded and serial variants would share a key
        threaded = parallel  # noqa: F841
        glif_cell = cell_kind == GLIF  # kind, cell_kind and noise_mode are compile-time constants
        plastic = kind != INIT
        learning = kind == TRAIN or kind == TRAIN_RECORD
        recording = kind == TRAIN_RECORD or kind == TEST
        with_noise = noise_mode != NOISE_NONE
        noise_on_voltage = noise_mode == NOISE_VOLTAGE
        updates, delivers = phase != DELIVER, phase != UPDATE
        store_u_bal = kind != INIT  # RLS and the recordings read it; the init run only sums it
        split_u = np.uint64(split)
        second = min(split, n - 1)  # a neuron of the second population (if there is one)
        x_bal_1, noise_1, tau_1, thresh_1 = x_bal[second], noise_scale[second], dt_over_tau[second], thresh[second]
        decay_p1, kick_p1 = decay_plastic[second], kick_plastic[second]
        x_bal_0, noise_0, tau_0, thresh_0 = x_bal[0], noise_scale[0], dt_over_tau[0], thresh[0]
        decay_p0, kick_p0 = decay_plastic[0], kick_plastic[0]
        n_bins = roll_count.shape[0]
        split_sign = not one_charge
        lo_u, hi_u = np.uint64(lo), np.uint64(hi)
        # spikes are delivered by target: each chunk adds the charges onto its own neurons lo .. hi - 1.  The
        # neurons that spiked are listed chunk by chunk of 0 .. n - 1 (by the threads that updated them, in
        # BOTH), in two alternating sets of lists: one step's are delivered while the next step's are written
        spike_lists = np.empty((2, chunks, _chunk_size(0, n, chunks) if delivers else 0), dtype=np.int32)
        spike_counts = np.zeros((2, chunks), dtype=np.int64)
        flag_words = spiked_all[:n - n % 8].view(np.uint64)  # the spike flags of eight neurons at a time
        pending = False  # whether the spikes of the previous step are still to be delivered
        for ti in range(first_step, last_step + 1):
            stim_row = ti - timeline.stim_on_step - 1
            stimulated = plastic and timeline.stim_on_step < ti < timeline.stim_off_step
            noise_row = ti - first_step
            now, before = ti & 1, 1 - (ti & 1)
            for chunk in numba.prange(chunks):
                begin, end = _chunk(lo, hi, chunk, chunks)
                if pending:  # the previous step's spikes onto this chunk's neurons, which the update reads
                    _deliver(begin, end, lo_u, hi_u, spike_lists, spike_counts, before, ff_spikes, noise_row - 1, n,
                             plastic, split_sign, static_ptr, static_post, static_weight, charge_e, charge_i,
                             plastic_ptr, plastic_post, plastic_weight, plastic_source, charge_p)
                if updates:
                    # element-wise, branch-free update of the chunk's neurons (vectorises)
                    for part in range(2 if two_populations else 1):
                        # the chunk's neurons of the first population, then those of the second: a population's
                        # values are then constants of the neuron loop (chosen neuron by neuron, they spilled
                        # registers and took a tenth of a step)
                        middle = min(end, max(begin, split_u)) if two_populations else end
                        part_begin, part_end = (begin, middle) if part == 0 else (middle, end)
                        first = part == 0  # (a tuple of the two populations' values fails in a parallel loop)
                        x_c, noise_c = (x_bal_0, noise_0) if first else (x_bal_1, noise_1)
                        tau_c, thresh_c = (tau_0, thresh_0) if first else (tau_1, thresh_1)
                        decay_c, kick_c = (decay_p0, kick_p0) if first else (decay_p1, kick_p1)
                        for i in range(part_begin, part_end):
                            if two_populations:
                                x_i, noise_i, tau_i, thresh_i = x_c, noise_c, tau_c, thresh_c
                                decay_p, kick_p = decay_c, kick_c
                            else:
                                x_i, noise_i, tau_i, thresh_i = x_bal[i], noise_scale[i], dt_over_tau[i], thresh[i]
                                decay_p, kick_p = decay_plastic[i], kick_plastic[i]
                            if one_charge:
                                u_bal, charge_e[i] = synapse.charge_step(charge_e[i], decay_e, kick_e)
                            else:
                                u_e, charge_e[i] = synapse.charge_step(charge_e[i], decay_e, kick_e)
                                u_i, charge_i[i] = synapse.charge_step(charge_i[i], decay_i, kick_i)
                                u_bal = u_e + u_i
                            if with_noise and not noise_on_voltage:
                                u_bal += noise_i * noise[noise_row, i]
                            if store_u_bal:
                                u_bal_all[i] = u_bal
                            if init_sums:
                                u_sum[i] += u_bal
                                u_sumsq[i] += u_bal * u_bal
                            u = u_bal
                            if plastic:
                                u_plas, charge_p[i] = synapse.charge_step(charge_p[i], decay_p, kick_p)
                                if recording:
                                    u_plas_all[i] = u_plas
                                u += u_plas
                            if learning:
                                r[i] = synapse.step(r[i], spiked_all[i], decay_p, kick_p)
                            total_drive = x_i + u
                            if stimulated:
                                total_drive += x_stim[stim_row, i]
                            v = v_all[i]
                            if with_noise and noise_on_voltage:
                                v += noise_i * noise[noise_row, i]
                            active = lif.is_active(ti, last_spike[i], refrac_steps)
                            if glif_cell:
                                v, fired = glif.step(i, v, total_drive, active, glif_p, thresh_s, thresh_v, asc)
                            else:
                                v, fired = lif.step(v, total_drive, active, tau_i, thresh_i, vre)
                            v_all[i] = v
                            spiked_all[i] = fired
                if delivers:  # who spiked (every neuron's flag is known: updated here, or exchanged), with counts
                    scan_begin, scan_end = _chunk(0, n, chunk, chunks)
                    spike_counts[now, chunk] = _collect(int(scan_begin), int(scan_end), ti, spiked_all, flag_words,
                                                        last_spike, spike_count, spike_steps, recording, spike_lists,
                                                        now, chunk)
                    if plastic and chunk == chunks - 1:  # the feed-forward neurons' trains and flags
                        for c_ff in range(ff_spikes.shape[1]):
                            j = n + c_ff
                            if learning:
                                r[j] = synapse.step(r[j], spiked_all[j], decay_plastic[j], kick_plastic[j])
                            spiked_all[j] = ff_spikes[noise_row, c_ff]
            pending = delivers
            if updates and learning:  # the neurons other processes own: their spikes of the previous step were exchanged
                for i in range(0, lo):
                    r[i] = synapse.step(r[i], spiked_all[i], decay_plastic[i], kick_plastic[i])
                for i in range(hi, n):
                    r[i] = synapse.step(r[i], spiked_all[i], decay_plastic[i], kick_plastic[i])
            if updates and recording and ti % timeline.steps_per_ms == 0 and ti > timeline.stim_off_step:
                first_bin, last_bin = _rolling_bins(ti, timeline, n_bins)
                for b in range(first_bin, last_bin + 1):
                    roll_count[b] += 1
                    for chunk in numba.prange(chunks):
                        begin, end = _chunk(lo, hi, chunk, chunks)
                        for i in range(begin, end):
                            roll_sum[0, b, i] += u_bal_all[i] + u_plas_all[i]
                            roll_sum[1, b, i] += u_plas_all[i]
        if pending:  # the last step's spikes, so that the state is whole between calls
            for chunk in numba.prange(chunks):
                begin, end = _chunk(lo, hi, chunk, chunks)
                _deliver(begin, end, lo_u, hi_u, spike_lists, spike_counts, last_step & 1, ff_spikes,
                         last_step - first_step, n, plastic, split_sign, static_ptr, static_post, static_weight,
                         charge_e, charge_i, plastic_ptr, plastic_post, plastic_weight, plastic_source, charge_p)

    return run_steps


def run_steps(state: State, net: Connectivity, c: NetworkParameters, rec: Recording, x_stim: np.ndarray, noise: np.ndarray,
              ff_spikes: np.ndarray, first_step: int, last_step: int, kind: int,
              options: KernelOptions = KernelOptions(), owned: tuple[int, int] | None = None,
              phase: int = BOTH) -> None:
    """Advance ``state`` through steps ``first_step .. last_step`` (see the module docstring).

    Networks of ``options.parallel_min_neurons`` or more neurons update them, and deliver their spikes, in
    parallel threads; smaller ones run on one thread, where a step (microseconds) is too short to share out.
    ``owned``: the neurons ``(lo, hi)`` this process updates (default: all); ``phase``: BOTH,
    UPDATE or DELIVER (a sharded network's step is two calls with a spike exchange between them).
    """
    n = state.v.shape[0]
    lo, hi = (0, n) if owned is None else owned
    if phase == BOTH and (lo, hi) != (0, n):
        raise ValueError(f"phase BOTH updates and delivers every neuron; owned={owned} needs the phases UPDATE and "
                         "DELIVER with a spike exchange between them")
    threads = numba.get_num_threads() > 1 and hi - lo >= options.parallel_min_neurons
    noise_mode = NOISE_NONE if noise.shape[0] == 0 else (NOISE_VOLTAGE if c.drive.noise_on_voltage else NOISE_CURRENT)
    split = c.population_split if c.population_split is not None else population_split(c, n)
    parts = [(first_step, last_step, False)]
    if kind == INIT:  # the steps before u0_skip_steps and those whose currents are summed
        skip = c.timeline.u0_skip_steps
        parts = [(first_step, min(last_step, skip), False), (max(first_step, skip + 1), last_step, True)]
    for first, last, sums in parts:
        if first <= last:
            kernel = _make_run_steps(threads, kind, c.cell_kind, noise_mode, phase, split >= 0, sums,
                                     one_static_charge(c.synapses))
            kernel(state, net, c.lif, c.glif, c.synapses, c.drive, c.timeline, rec, x_stim, noise[first - first_step:],
                   ff_spikes[first - first_step:], first, last, lo, hi, max(split, 0),
                   numba.get_num_threads() if threads else 1)


__all__ = ["run_steps", "INIT", "TRAIN", "TRAIN_RECORD", "TEST", "BOTH", "UPDATE", "DELIVER"]
