"""Hand-computed cases of what a trial does around the neuron update, shared by both backends:
the rolling averages behind the correlation, the correlation itself, the learning schedule,
the init-run statistics, the stimulus window, the feed-forward spikes and the noise.

Each expected value comes from the reference's definition (tsn.md 3.3, 3.4, 3.8), computed
here independently of the kernels; the kernels' currents are made known by feeding them
current noise we choose (with no synapse and no spike, ``u = noise_scale * noise``).
"""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge import rls
from spikeforge.core import rng as streams
from spikeforge.core.backends import Backend, kernels_of, numba_network
from spikeforge.core.backends.layout import INIT, TEST, TRAIN, Recording
from spikeforge.core.store import read_h5
from spikeforge.rls import evaluation
from spikeforge.rls.trial import _ff_spikes, run_trial

from conftest import SMALL
from test_kernels import NO_FF, _constants, _net, _state

torch = pytest.importorskip("torch")
from spikeforge.core.backends import torch_kernels  # noqa: E402

BACKENDS = {
    "numba": (numba_network.run_steps, lambda x: x, lambda x: x),
    "torch": (torch_kernels.run_steps, lambda x: torch_kernels.put(x, "cpu"), torch_kernels.get),
}

# a 30-ms trial: learning from 10 ms, a learning step (and rolling bin) every 2 ms, boxcar +/- 5 ms
DT, STIM_OFF_MS, LEARN_MS, WID_MS, TRAIN_MS = 0.1, 10, 2, 5, 30
N_BINS = (TRAIN_MS - STIM_OFF_MS) // LEARN_MS


def _window_constants(n):
    return _constants(n, np.zeros(n), thresh=np.full(n, 1e9), noise_scale=np.ones(n), noise_on_voltage=False,
                      stim_off_step=round(STIM_OFF_MS / DT), learn_step=round(LEARN_MS / DT),
                      wid_steps=round(WID_MS / DT), wid_bins=round(2 * WID_MS / LEARN_MS - 1),
                      steps_per_ms=round(1 / DT))


@pytest.mark.parametrize("backend", BACKENDS)
def test_rolling_bins_average_the_current_over_the_spec_boxcar(backend):
    """Bin j (centre tau_j = stim_off + j learn_every) averages u at the 1-ms samples t in
    (stim_off, train_time] with tau_j - wid <= t < tau_j + wid (tsn.md 3.8)."""
    run_steps, put, get = BACKENDS[backend]
    n, n_steps = 3, round(TRAIN_MS / DT)
    current = np.random.default_rng(1).normal(size=(n_steps, n))  # u at steps 1 .. n_steps
    rec = Recording(spike_steps=np.zeros((n, 0), dtype=np.int32), roll_sum=np.zeros((2, N_BINS, n)),
                    roll_count=np.zeros(N_BINS, dtype=np.int64), u_sum=np.zeros(0), u_sumsq=np.zeros(0))
    state, rec = put(_state(n)), put(rec)
    run_steps(state, put(_net(n, [], [], [])), put(_window_constants(n)), rec, put(np.zeros((1, n))), put(current),
              put(NO_FF), 1, n_steps, TEST)
    rec = get(rec)
    for j in range(1, N_BINS + 1):
        centre = STIM_OFF_MS + j * LEARN_MS
        samples = [t for t in range(STIM_OFF_MS + 1, TRAIN_MS + 1) if centre - WID_MS <= t < centre + WID_MS]
        expected = current[[round(t / DT) - 1 for t in samples]]
        assert rec.roll_count[j - 1] == len(samples)
        np.testing.assert_allclose(rec.roll_sum[0, j - 1], expected.sum(axis=0), rtol=1e-13)
        np.testing.assert_array_equal(rec.roll_sum[1, j - 1], 0.0)  # no plastic current
    # 10 samples per bin, truncated at stim_off and at the end of the trial
    assert list(rec.roll_count) == [6, 8, 10, 10, 10, 10, 10, 10, 8, 6]


def test_network_correlation_is_the_mean_pearson_correlation_over_defined_neurons():
    rng = np.random.default_rng(2)
    current, target = rng.normal(size=(20, 5)), rng.normal(size=(20, 5))
    target[:, 2] = 3.0  # a constant target: undefined correlation
    current[:, 4] = 2 * target[:, 4] + 1  # a perfect linear relation
    per_neuron = evaluation.pearson_columns(current, target)
    for i in (0, 1, 3):
        assert per_neuron[i] == pytest.approx(np.corrcoef(current[:, i], target[:, i])[0, 1], rel=1e-12)
    assert np.isnan(per_neuron[2]) and per_neuron[4] == pytest.approx(1.0, rel=1e-12)
    mean, n_nan = evaluation.network_correlation(current, target)
    assert n_nan == 1 and mean == pytest.approx(np.mean(per_neuron[[0, 1, 3, 4]]), rel=1e-12)
    assert evaluation.network_correlation(np.ones((4, 2)), rng.normal(size=(4, 2)))[1] == 2


class _LoggedKernels:
    """The numba kernels, logging the order of step blocks and RLS updates."""

    def __init__(self):
        self.log = []

    def run_steps(self, state, net, c, rec, x_stim, noise, ff, first, last, kind, options, owned, phase):
        self.log.append(("steps", first, last))
        numba_network.run_steps(state, net, c, rec, x_stim, noise, ff, first, last, kind, options, owned, phase)

    def rls_update(self, P, weights_in, index, count, in_to_out, weights_out, r, u_bal, target, *rest, **options):
        self.log.append(("rls", float(target[0]), u_bal.copy()))


def test_rls_updates_come_before_the_steps_of_the_learning_times_with_the_previous_static_current(tmp_path):
    """tsn.md 3.3: updates at steps stim_off/dt + j learn_every/dt (j = 1 .. learn_nsteps), target row
    j, before that step's neuron update and with u_bal of the step before."""
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    rls.init(directory, verbose=False)
    from spikeforge.rls.files import RunDir
    from spikeforge.rls.model import Model
    from spikeforge.rls.network_parameters import initial_voltage, network_parameters
    from spikeforge.rls.training import learner_for

    model = Model.load(RunDir(directory))
    p = model.p
    net, in_to_out = model.connectivity()
    kernels = _LoggedKernels()
    backend = Backend("numba", "cpu", kernels_of("numba")._replace(run_steps=kernels.run_steps,
                                                                    rls_update=kernels.rls_update))
    rng = streams.stream(p.seed, "train", 1)
    targets = np.repeat(np.arange(p.steps.learn_nsteps, dtype=float)[:, None], p.n_cells, axis=1)
    run_trial(p, net, network_parameters(p), TRAIN, initial_voltage(p, rng), model.stimulus[0], rng,
              learner_for(model, net.plastic_weight, in_to_out), targets, backend=backend)
    updates = [i for i, entry in enumerate(kernels.log) if entry[0] == "rls"]
    assert len(updates) == p.steps.learn_nsteps == 20
    for j, position in enumerate(updates, start=1):
        _, row, u_bal = kernels.log[position]
        (_, previous_first, previous_last), (_, first, _) = kernels.log[position - 1], kernels.log[position + 1]
        assert row == j - 1 and first == p.steps.stim_off_step + j * p.steps.learn_step == previous_last + 1
    assert kernels.log[-1][2] == p.steps.n_steps  # the trial ends with the steps after the last update


def test_init_statistics_are_the_mean_and_sample_std_after_u0_skip_time(tmp_path):
    """With no synapse and current noise, u = noise_scale * noise; the init run's u_mean and u_std
    are its mean and (n - 1)-normalised std over steps after u0_skip_time, and ustd0 the mean std of
    the first u0_ncells neurons."""
    params = {"n_cells": 6, "k": 0, "l": 1, "sig": 0.3, "noise_model": "current", "seed": 5, "stim_on": 50.0,
              "stim_off": 100.0, "train_duration": 100.0, "u0_skip_time": 80.0, "u0_ncells": 4,
              "x_bale": 2.0, "x_bali": 2.0}  # a drive makes the neurons fire; it is not part of u
    directory = tmp_path / "net"
    with pytest.warns(Warning, match="saturated"):  # about 144 Hz, as intended here
        rls.new(directory, params)
        rls.init(directory, verbose=False)
    p = rls.Params(params)
    rng = streams.stream(p.seed, "init_run")
    rng.standard_normal(p.n_cells)  # the initial voltages come first
    u = 0.3 * np.sqrt(p.tau_meme / p.dt) * rng.standard_normal((p.steps.n_steps, p.n_cells))
    after_skip = u[p.steps.u0_skip_steps:]
    arrays, attrs = read_h5(directory / "init.h5", ["init/u_mean", "init/u_std"])
    np.testing.assert_allclose(arrays["init/u_mean"], after_skip.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(arrays["init/u_std"], after_skip.std(axis=0, ddof=1), rtol=1e-9)
    assert attrs["ustd0"] == pytest.approx(after_skip.std(axis=0, ddof=1)[:4].mean(), rel=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_stimulus_acts_on_steps_strictly_between_stim_on_and_stim_off(backend):
    """tsn.md 3.3: X = x_bal + stimulus[ti - stim_on/dt] (1-based row) when stim_on < t < stim_off."""
    run_steps, put, get = BACKENDS[backend]
    n, stim_on, stim_off = 2, 5, 12
    c = _constants(n, np.full(n, 0.25), thresh=np.full(n, 1e9), dt_over_tau_mem=np.ones(n), stim_on_step=stim_on,
                   stim_off_step=stim_off)
    stimulus = np.arange(1.0, stim_off - stim_on + 1)[:, None] * np.array([1.0, -1.0])  # rows 1..7
    state, net, c, x_stim = put(_state(n)), put(_net(n, [], [], [])), put(c), put(stimulus)
    rec = put(Recording(np.zeros((n, 0), dtype=np.int32), np.zeros((2, 0, n)), np.zeros(0, dtype=np.int64),
                        np.zeros(0), np.zeros(0)))
    for ti in range(1, 16):
        run_steps(state, net, c, rec, x_stim, put(np.zeros((0, n))), put(NO_FF), ti, ti, TEST)
        expected = 0.25 + (stimulus[ti - stim_on - 1] if stim_on < ti < stim_off else 0.0)
        np.testing.assert_array_equal(get(state.v), expected)  # dt/tau = 1: v equals the drive
    # the init run ignores the stimulus
    state = put(_state(n))
    rec = put(Recording(np.zeros((n, 0), dtype=np.int32), np.zeros((2, 0, n)), np.zeros(0, dtype=np.int64),
                        np.zeros(n), np.zeros(n)))
    run_steps(state, net, c, rec, x_stim, put(np.zeros((0, n))), put(NO_FF), 1, 8, INIT)
    np.testing.assert_array_equal(get(state.v), 0.25)


def test_feed_forward_neurons_spike_only_after_stim_off_with_the_probability_of_their_row():
    p = rls.Params({**SMALL, "lx": 3})
    s = p.steps
    rows = s.n_steps - s.stim_off_step
    probability = np.zeros((rows, 3))
    probability[::7, 0] = 1.0  # neuron 0 certainly fires at rows 0, 7, 14, ...: steps stim_off + 1, + 8, ...
    probability[:, 2] = 1.0
    spikes = _ff_spikes(p, probability, np.random.default_rng(0), 1, s.n_steps)
    assert not spikes[: s.stim_off_step].any()
    np.testing.assert_array_equal(np.flatnonzero(spikes[:, 0]) + 1, s.stim_off_step + 1 + np.arange(0, rows, 7))
    assert not spikes[:, 1].any() and spikes[s.stim_off_step:, 2].all()
    # drawn in two blocks, the same spikes (one uniform per neuron and step after stim_off, in order)
    one, two = np.random.default_rng(9), np.random.default_rng(9)
    probability = np.full((rows, 3), 0.5)
    whole = _ff_spikes(p, probability, one, 1, s.n_steps)
    split = np.vstack([_ff_spikes(p, probability, two, 1, 1500), _ff_spikes(p, probability, two, 1501, s.n_steps)])
    np.testing.assert_array_equal(whole, split)


@pytest.mark.parametrize("backend", BACKENDS)
def test_voltage_noise_kicks_v_even_while_refractory(backend):
    """tsn.md 3.3: v <- v + sig xi before the refractory test, so a refractory neuron still moves."""
    run_steps, put, get = BACKENDS[backend]
    noise = np.array([[0.0], [0.5], [0.25], [-0.125]])
    c = put(_constants(1, [0.0], dt_over_tau_mem=np.zeros(1), noise_scale=np.full(1, 2.0), refrac_steps=2))
    state = _state(1)
    state.v[0] = 1.5  # above threshold: spikes at step 1 and is reset to 0
    state = put(state)
    rec = put(Recording(np.zeros((1, 0), dtype=np.int32), np.zeros((2, 0, 1)), np.zeros(0, dtype=np.int64),
                        np.zeros(0), np.zeros(0)))
    vs = []
    for ti in range(1, 5):
        run_steps(state, put(_net(1, [], [], [])), c, rec, put(np.zeros((1, 1))), put(noise[ti - 1:ti]), put(NO_FF),
                  ti, ti, TEST)
        vs.append(float(get(state.v)[0]))
    # step 1: 1.5 + 0 > 1, spike, reset to 0; steps 2, 3 refractory: only the kicks 2 * 0.5 and 2 * 0.25,
    # and no spike although v = 1.5 > 1; step 4 active again: 1.5 + 2 * -0.125 = 1.25 > 1, spike, reset
    assert vs == [0.0, 1.0, 1.5, 0.0]
    assert list(get(state.spike_count)) == [2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_current_noise_is_part_of_the_static_current_the_rls_error_reads(backend):
    run_steps, put, get = BACKENDS[backend]
    n = 2
    c = put(_constants(n, np.zeros(n), thresh=np.full(n, 1e9), noise_scale=np.array([0.5, 2.0]),
                       noise_on_voltage=False))
    state = _state(n)
    state.charge_e[:] = [0.3, 0.0]  # excitatory charge that arrived before step 1
    state = put(state)
    rec = put(Recording(np.zeros((n, 0), dtype=np.int32), np.zeros((2, 0, n)), np.zeros(0, dtype=np.int64),
                        np.zeros(0), np.zeros(0)))
    run_steps(state, put(_net(n, [], [], [])), c, rec, put(np.zeros((1, n))), put(np.array([[1.0, -1.0]])),
              put(NO_FF), 1, 1, TRAIN)
    state = get(state)
    np.testing.assert_allclose(state.u_bal, [0.3 / 3 + 0.5, 0.0 - 2.0], rtol=1e-15)  # charge / tau_bale + noise
    np.testing.assert_allclose(state.charge_e, [0.3 * (1 - 0.1 / 3), 0.0], rtol=1e-15)  # decayed for step 2
