"""Host-side driver of RLS network trials: schedules kernel calls, draws random numbers.

A trial runs steps ``1 .. n_steps``.  In training kinds the RLS update happens at the
start of steps ``stim_off_step + j * learn_step`` (``j = 1 .. learn_nsteps``), before that
step's neuron update and with the static current of the previous step, as in the
reference; the network kernel runs the steps in between.  Every random number (initial
voltages, noise) is drawn here from the trial's own stream, so backends and thread
counts see the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from spikeforge.core.backends.layout import (INIT, TEST, TRAIN, TRAIN_RECORD, Connectivity, NetworkParameters,
                                             Recording, State)
from spikeforge.rls.learner import Learner
from spikeforge.rls.network_parameters import float_dtype
from spikeforge.rls.params import Params

BLOCK_STEPS = 1000  # noise and feed-forward spikes are drawn in blocks of this many steps
NEVER = -(2**40)  # "last spike" of a neuron that has not spiked


def new_state(p: Params, v0: np.ndarray, cell_state: tuple | None = None, n_asc: int | None = None) -> State:
    """Trial state at time 0: voltages ``v0``, GLIF adaptation state ``cell_state`` (default 0;
    ``n_asc`` after-spike currents per neuron), everything else at rest."""
    dtype, n = float_dtype(p), p.n_cells
    n_asc = 0 if n_asc is None else n_asc
    zeros = lambda *shape: np.zeros(shape, dtype=dtype)  # noqa: E731
    state = State(
        v=v0.astype(dtype), last_spike=np.full(n, NEVER, dtype=np.int64), spike_count=np.zeros(n, dtype=np.int64),
        spiked=np.zeros(n + p.lx, dtype=np.uint8), charge_e=zeros(n), charge_i=zeros(n), charge_p=zeros(n),
        u_bal=zeros(n), u_plas=zeros(n), r=zeros(n + p.lx),
        thresh_s=zeros(n), thresh_v=zeros(n), asc=zeros(n, n_asc),
    )
    if cell_state is not None:
        for mine, given in zip((state.thresh_s, state.thresh_v, state.asc), cell_state):
            mine[...] = given
    return state


def cell_state_of(state: State) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copy of the GLIF adaptation state (thresh_s, thresh_v, asc) at the end of a trial."""
    return state.thresh_s.copy(), state.thresh_v.copy(), state.asc.copy()


def new_recording(p: Params, kind: int) -> Recording:
    """Empty recording buffers for a run of ``kind`` (size-0 arrays for what it does not record)."""
    dtype, n, s = float_dtype(p), p.n_cells, p.steps
    records = kind in (TRAIN_RECORD, TEST)
    n_bins = s.learn_nsteps if records else 0
    return Recording(
        spike_steps=np.zeros((n, s.max_times) if records else (n, 0), dtype=np.int32),
        roll_sum=np.zeros((2, n_bins, n), dtype=dtype),
        roll_count=np.zeros(n_bins, dtype=np.int64),
        u_sum=np.zeros(n if kind == INIT else 0, dtype=np.float64),
        u_sumsq=np.zeros(n if kind == INIT else 0, dtype=np.float64),
    )


@dataclasses.dataclass
class TrialResult:
    """What one trial produced (arrays over all neurons)."""

    spike_count: np.ndarray  # (N,)
    spike_steps: np.ndarray | None = None  # (N, max_times) step indices, valid up to spike_count
    u_rolling: np.ndarray | None = None  # (2, learn_nsteps, N) boxcar means of u_total and u_plastic
    u_mean: np.ndarray | None = None  # init: (N,) mean current after u0_skip_time
    u_std: np.ndarray | None = None  # init: (N,) temporal std of the current after u0_skip_time
    cell_state: tuple | None = None  # GLIF (thresh_s, thresh_v, asc) at the end of the trial


def _segments(p: Params, learning: bool) -> Iterator[tuple[int, int, int | None]]:
    """(first_step, last_step, learn_row) triples covering the trial; learn_row is the target row
    of the RLS update that runs before first_step, or None."""
    s = p.steps
    starts = [1]
    rows: list[int | None] = [None]
    if learning:
        for j in range(1, s.learn_nsteps + 1):
            starts.append(s.stim_off_step + j * s.learn_step)
            rows.append(j - 1)
    ends = [start - 1 for start in starts[1:]] + [s.n_steps]
    for first, last, row in zip(starts, ends, rows):
        yield first, last, row


def run_trial(
    p: Params,
    net: Connectivity,
    const: NetworkParameters,
    kind: int,
    v0: np.ndarray,
    x_stim: np.ndarray,
    rng: np.random.Generator,
    learner: Learner | None = None,
    target: np.ndarray | None = None,
    ff_probability: np.ndarray | None = None,
    cell_state: tuple | None = None,
    backend=None,
    dynamics=None,
) -> TrialResult:
    """Run one trial of ``kind`` from voltages ``v0``.

    Args:
        x_stim: (n_stim_rows, N) stimulus of this trial's task.
        rng: the trial's stream; draws, block by block, the noise (if ``sig > 0``) and then
            the feed-forward spikes (if ``lx > 0``).
        ff_probability: ((n_steps - stim_off_step), lx) spike probability per step of the
            feed-forward neurons after ``stim_off`` (None or lx = 0: none).
        cell_state: GLIF adaptation state to start from (default: 0); the final one is in the result.
        learner, target: for TRAIN and TRAIN_RECORD, the RLS state and the task's
            (learn_nsteps, N) targets.
        backend: a :class:`spikeforge.core.backends.Backend` (default numba); ``net``, ``const``,
            ``x_stim``, ``target``, ``ff_probability`` and the learner must already be its arrays.
        dynamics: runs the steps instead of ``backend`` (its ``run_steps`` takes the same arguments, and
            ``complete(state, rec)`` makes the neurons' final state and recording whole): the sharded network of
            :class:`spikeforge.rls.distributed.ShardedDynamics`, whose ``net`` holds one rank's synapses.
    """
    if backend is None:
        from spikeforge.core.backends import get_backend

        backend = get_backend()
    learning = kind in (TRAIN, TRAIN_RECORD)
    with backend.activated():  # CUDA graphs, streams and Triton act on the current device
        state = backend.put(new_state(p, v0, cell_state, const.glif.asc_decay.shape[1]))
        rec = backend.put(new_recording(p, kind))
        replay = backend.interval_replay(learner) if learning and dynamics is None else None
        run_steps = backend.run_steps if dynamics is None else dynamics.run_steps
        if replay is not None:
            state, rec = replay.adopt(state, rec, kind)
        inputs = _BlockInputs(p, backend, rng, ff_probability if kind != INIT else None)
        for first, last, row in _segments(p, learning):
            if replay is not None and row is not None and last - first < BLOCK_STEPS:
                replay.run_interval(learner, net, const, target[row], *inputs.draw(first, last), first, last, kind)
                continue
            if row is not None:
                learner.update(backend, state.r, state.u_bal, target[row])
            block_first = first
            while block_first <= last:
                block_last = min(last, block_first + BLOCK_STEPS - 1) if inputs.drawn else last
                run_steps(state, net, const, rec, x_stim, *inputs.draw(block_first, block_last), block_first, block_last,
                          kind)
                block_first = block_last + 1
        state, rec = backend.get(state), backend.get(rec)
        if dynamics is not None:
            state, rec = dynamics.complete(state, rec)
    result = TrialResult(spike_count=state.spike_count.copy(), cell_state=cell_state_of(state))
    if kind in (TRAIN_RECORD, TEST):
        result.spike_steps = rec.spike_steps
        result.u_rolling = rec.roll_sum / np.maximum(rec.roll_count, 1)[None, :, None]
    if kind == INIT:
        n_samples = p.steps.n_steps - p.steps.u0_skip_steps
        mean = rec.u_sum / n_samples
        variance = np.maximum(rec.u_sumsq / n_samples - mean**2, 0.0) * n_samples / max(n_samples - 1, 1)
        result.u_mean, result.u_std = mean, np.sqrt(variance)
    return result


class _BlockInputs:
    """Draws the random inputs of a block of steps from the trial's stream: the noise (if
    ``sig > 0``), then the feed-forward spikes (if there are feed-forward neurons), as the
    backend's arrays."""

    def __init__(self, p: Params, backend, rng: np.random.Generator, ff_probability: np.ndarray | None):
        self.p, self.backend, self.rng = p, backend, rng
        self.ff_probability = ff_probability if ff_probability is not None and ff_probability.shape[1] else None
        self.with_noise = p.sig_max > 0
        self.drawn = self.with_noise or self.ff_probability is not None  # blocks are limited to BLOCK_STEPS
        self.no_noise = backend.put(np.zeros((0, p.n_cells), dtype=float_dtype(p)))
        self.no_ff = backend.put(np.zeros((0, 0), dtype=np.uint8))

    def draw(self, first: int, last: int) -> tuple:
        """(noise (n_rows, N), feed-forward spikes (n_rows, lx)) of steps first .. last."""
        n_rows = last - first + 1
        noise = (self.backend.put(self.rng.standard_normal((n_rows, self.p.n_cells)).astype(float_dtype(self.p)))
                 if self.with_noise else self.no_noise)
        ff_spikes = self.no_ff
        if self.ff_probability is not None:
            ff_spikes = self.backend.put(_ff_spikes(self.p, self.ff_probability, self.rng, first, last))
        return noise, ff_spikes


def _ff_spikes(p: Params, probability: np.ndarray, rng: np.random.Generator, first: int, last: int) -> np.ndarray:
    """Bernoulli spikes of the feed-forward neurons on steps first..last (none up to stim_off)."""
    spikes = np.zeros((last - first + 1, probability.shape[1]), dtype=np.uint8)
    start = max(first, p.steps.stim_off_step + 1)
    if start <= last:
        rows = probability[start - p.steps.stim_off_step - 1: last - p.steps.stim_off_step]
        spikes[start - first:] = rng.random(rows.shape) < rows
    return spikes
