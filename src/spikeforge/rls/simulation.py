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

from spikeforge.core.backends import layout
from spikeforge.core.backends.layout import (GLIF, INIT, LIF, TEST, TRAIN, TRAIN_RECORD, Connectivity, Drive,
                                             NetworkParameters, Recording, State, Synapses, Timeline)
from spikeforge.core.cells import glif, lif
from spikeforge.rls.params import Params

BLOCK_STEPS = 1000  # noise and feed-forward spikes are drawn in blocks of this many steps
NEVER = -(2**40)  # "last spike" of a neuron that has not spiked


def float_dtype(p: Params) -> type:
    """numpy dtype of the simulation state and weights."""
    return np.float64 if p.float_precision == "float64" else np.float32


def per_neuron(p: Params, exc_value: float, inh_value: float) -> np.ndarray:
    """An (n_cells,) float64 array with one value for E neurons and another for I neurons."""
    return np.where(np.arange(p.n_cells) < p.ne, exc_value, inh_value).astype(np.float64)


def thresholds(p: Params) -> np.ndarray:
    """Spike threshold of each neuron."""
    return per_neuron(p, p.threshe, p.threshi)


def network_parameters(p: Params, cells: dict[str, np.ndarray] | None = None) -> NetworkParameters:
    """What stays constant in a trial of the network of parameters ``p``, by concern; ``cells``: for
    GLIF models the per-neuron cell table (default: from the parameters)."""
    dtype = float_dtype(p)
    s = p.steps
    tau_plas = np.full(p.n_cells + p.lx, p.tau_plas)
    # noise std per step (tsn.md 3.4): voltage sig*sqrt(dt/tau), current sig*sqrt(tau/dt); tau_meme for all
    scale = np.sqrt(p.dt / p.tau_meme) if p.noise_model == "voltage" else np.sqrt(p.tau_meme / p.dt)
    return NetworkParameters(
        cell_kind=LIF if p.cell_model == "lif" else GLIF,
        dt=p.dt,
        lif=lif.parameters(p.dt, per_neuron(p, p.tau_meme, p.tau_memi), thresholds(p), p.vre, s.refrac_steps, dtype),
        glif=glif_parameters(p, cells),
        synapses=Synapses(decay_e=1 - p.dt / p.tau_bale, kick_e=1 / p.tau_bale, decay_i=1 - p.dt / p.tau_bali,
                          kick_i=1 / p.tau_bali, decay_plastic=(1 - p.dt / tau_plas).astype(dtype),
                          kick_plastic=(1 / tau_plas).astype(dtype)),
        drive=Drive(x_bal=per_neuron(p, p.x_bale, p.x_bali).astype(dtype),
                    noise_scale=np.full(p.n_cells, p.sig * scale, dtype=dtype),
                    noise_on_voltage=p.noise_model == "voltage"),
        timeline=Timeline(stim_on_step=s.stim_on_step, stim_off_step=s.stim_off_step, u0_skip_steps=s.u0_skip_steps,
                          steps_per_ms=s.steps_per_ms, wid_steps=s.wid_steps, learn_step=s.learn_step,
                          wid_bins=round(2 * p.wid / p.learn_every - 1)),
    )


CELL_KEYS = ("r", "el", "b_s", "delta_thresh_s", "f_v", "delta_v", "a_v", "b_v", "asc_k", "asc_f", "asc_delta")


def cell_table(p: Params, overrides: dict | None = None) -> dict[str, np.ndarray]:
    """Per-neuron GLIF parameters: the ``glif_*`` parameters of ``p`` for model ``p.cell_model``,
    with ``overrides`` (from a cell-model plugin: "model" and any of CELL_KEYS, "c") on top.

    Returns the per-neuron fields of glif.Parameters except thresh and dt_over_c, plus "c" (capacitance) and "model"
    (one name per neuron).  For ``cell_model = "lif"`` the table describes GLIF1 neurons, which
    the LIF kernel does not read.
    """
    overrides = dict(overrides or {})
    default_model = p.cell_model if p.cell_model in glif.MODELS else "glif1"
    models = np.broadcast_to(np.asarray(overrides.pop("model", default_model)), (p.n_cells,)).astype(str)
    values = {"r": p.glif_r, "el": p.glif_el, "b_s": p.glif_b_s, "delta_thresh_s": p.glif_delta_thresh_s,
              "f_v": p.glif_f_v, "delta_v": p.glif_delta_v, "a_v": p.glif_a_v, "b_v": p.glif_b_v,
              "asc_k": p.glif_asc_k, "asc_f": p.glif_asc_f, "asc_delta": p.glif_asc_delta}
    capacitance = overrides.pop("c", per_neuron(p, p.tau_meme, p.tau_memi) / np.asarray(overrides.get("r", p.glif_r)))
    values.update(overrides)
    n_asc = np.asarray(values["asc_k"]).shape[-1] if any(glif.MODELS[m][0] for m in set(models)) else 0
    table = glif.per_neuron_parameters(models, values, n_asc, p.dt)
    table["c"] = np.broadcast_to(np.asarray(capacitance, dtype=np.float64), (p.n_cells,)).copy()
    table["model"] = models
    return table


def glif_parameters(p: Params, table: dict[str, np.ndarray] | None = None) -> glif.Parameters:
    """The GLIF parameters of a cell table (default: from the parameters, :func:`cell_table`)."""
    table = cell_table(p) if table is None else table
    dtype = float_dtype(p)
    per_neuron_fields = [name for name in glif.Parameters._fields
                         if name not in ("thresh", "vre", "refrac_steps", "dt_over_c")]
    fields = {name: np.asarray(table[name]).astype(np.uint8 if name == "reset_rule" else dtype)
              for name in per_neuron_fields}
    return glif.Parameters(thresh=thresholds(p).astype(dtype), vre=float(p.vre), refrac_steps=p.steps.refrac_steps,
                           dt_over_c=(p.dt / table["c"]).astype(dtype), **fields)


def new_state(p: Params, v0: np.ndarray, cell_state: tuple | None = None, n_asc: int | None = None) -> State:
    """Trial state at time 0: voltages ``v0``, GLIF adaptation state ``cell_state`` (default 0;
    ``n_asc`` after-spike currents per neuron), everything else at rest."""
    dtype, n = float_dtype(p), p.n_cells
    n_asc = 0 if n_asc is None else n_asc
    zeros = lambda *shape: np.zeros(shape, dtype=dtype)  # noqa: E731
    state = State(
        v=v0.astype(dtype), last_spike=np.full(n, NEVER, dtype=np.int64), spike_count=np.zeros(n, dtype=np.int64),
        spiked=np.zeros(n + p.lx, dtype=np.uint8), u_bale=zeros(n), u_bali=zeros(n), u_bal=zeros(n),
        u_plas=zeros(n), r=zeros(n + p.lx), inputs_e=zeros(2, n), inputs_i=zeros(2, n), inputs_p=zeros(2, n),
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
class Learner:
    """What an RLS update needs besides the trial state; arrays are updated in place."""

    P: np.ndarray  # scaled by p_scale, layout of spikeforge.rls.p_matrix
    weights_in: np.ndarray  # (N, Lmax)
    plastic_index: np.ndarray  # (N, Lmax)
    plastic_count: np.ndarray  # (N,)
    in_to_out: np.ndarray  # (N, Lmax)
    weights_out: np.ndarray  # out-layout plastic weights (shared with the Connectivity)
    p_scale: float
    gain_with_den: bool
    storage: str  # p_storage: full, symmetric or packed
    apply: bool
    # small mode (p_compute = "small"): a ring of recent filtered spike trains instead of P
    history: np.ndarray | None = None  # (H, N + lx)
    history_filled: int = 0  # snapshots in the ring
    history_next: int = 0  # row the next snapshot goes to
    penalties: tuple[float, float, float, int] = (0.0, 0.0, 0.0, 0)  # penlambda, penmu, penlam_ff, lx
    replay: object = None  # the backend's replay of learning intervals (CUDA graphs), kept across trials

    def update(self, backend, r: np.ndarray, u_bal: np.ndarray, target: np.ndarray) -> None:
        """One RLS update of every neuron on ``backend`` with the filtered spike trains ``r`` (N + lx,)."""
        if self.history is None:
            backend.rls_update(self.P, self.weights_in, self.plastic_index, self.plastic_count, self.in_to_out,
                               self.weights_out, r, u_bal, target, self.p_scale, self.gain_with_den, self.storage,
                               self.apply)
            return
        backend.rls_small(self.history, self.history_filled, self.weights_in, self.plastic_index, self.plastic_count,
                          self.in_to_out, self.weights_out, r, u_bal, target, *self.penalties, self.gain_with_den,
                          self.apply)
        self.history[self.history_next] = r  # after the update: the present sample is not in its own solve
        self.history_next = (self.history_next + 1) % self.history.shape[0]
        self.history_filled = min(self.history_filled + 1, self.history.shape[0])


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
    """
    if backend is None:
        from spikeforge.core.backends import get_backend

        backend = get_backend()
    learning = kind in (TRAIN, TRAIN_RECORD)
    with backend.activated():  # CUDA graphs, streams and Triton act on the current device
        state = backend.put(new_state(p, v0, cell_state, const.glif.asc_decay.shape[1]))
        rec = backend.put(new_recording(p, kind))
        replay = backend.interval_replay(learner) if learning else None
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
                backend.run_steps(state, net, const, rec, x_stim, *inputs.draw(block_first, block_last), block_first,
                                  block_last, kind)
                block_first = block_last + 1
        state, rec = backend.get(state), backend.get(rec)
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
        self.with_noise = p.sig > 0
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


def initial_voltage(p: Params, rng: np.random.Generator, cells: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """A trial's initial voltages, from the trial's stream, as the cell model prescribes."""
    if p.cell_model == "lif":
        return lif.initial_voltage(rng, p.vre, thresholds(p))
    table = cell_table(p) if cells is None else cells
    return glif.initial_voltage(rng, table["reset_rule"], p.vre, thresholds(p), table["e_l"])


__all__ = ["run_trial", "network_parameters", "Learner", "TrialResult", "initial_voltage", "layout"]
