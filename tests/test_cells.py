"""Cell models: GLIF1 equals LIF, GLIF mechanisms, GLIF2-5 networks train."""

from __future__ import annotations


import numpy as np
import pytest

from spikeforge import rls
from spikeforge.core.store import read_h5

from conftest import SMALL


def _train_and_test(directory, **overrides):
    rls.new(directory, {**SMALL, **overrides})
    model = rls.init(directory, verbose=False)
    result = rls.train(directory, nloops=2, verbose=False)
    rls.test(directory, ntrials=1, neurons=range(SMALL["n_cells"]), plot=False, verbose=False)
    spikes, _ = read_h5(directory / "test.h5", ["spike_step", "spike_neuron"])
    weights, _ = read_h5(directory / "ckpt-2.h5", ["plastic/weight", "P"])
    return model, result, spikes, weights


def test_glif1_configured_as_lif_gives_the_same_spikes_and_weights(tmp_path):
    lif = _train_and_test(tmp_path / "lif")
    glif1 = _train_and_test(tmp_path / "glif1", cell_model="glif1")  # R = 1, C = tau_m, E_L = 0
    np.testing.assert_array_equal(lif[0].init_stats["spike_count"], glif1[0].init_stats["spike_count"])
    assert lif[1].firing_rate == glif1[1].firing_rate
    for name in ("spike_step", "spike_neuron"):
        np.testing.assert_array_equal(lif[2][name], glif1[2][name])
    for name in ("plastic/weight", "P"):
        np.testing.assert_array_equal(lif[3][name], glif1[3][name])


@pytest.mark.parametrize("model", ["glif2", "glif3", "glif4", "glif5"])
def test_glif_networks_init_and_train_with_plausible_rates(tmp_path, model):
    init, result, _, weights = _train_and_test(tmp_path / model, cell_model=model)
    assert 0 < init.init_stats["rate_exc_hz"] < 15 and 0 < init.init_stats["rate_inh_hz"] < 15
    assert all(0 < rate < 15 for rate in result.firing_rate)
    assert not np.array_equal(weights["plastic/weight"], init.plastic.weight)


def _first_neuron(parameters):
    """The parameters of the first neuron only (per-neuron arrays cut to one row)."""
    return type(parameters)(*(field[:1] if isinstance(field, np.ndarray) else field for field in parameters))


def _single_neuron_spikes(model: str, drive: float = 1.5, n_steps: int = 5000) -> np.ndarray:
    """Spike steps of one neuron of ``model`` with constant drive and the default GLIF parameters."""
    from spikeforge.core.backends import numba_network
    from spikeforge.core.backends.layout import GLIF, TEST
    from spikeforge.rls.params import Params
    from spikeforge.rls.network_parameters import glif_parameters

    from test_kernels import NO_FF, _constants, _net, _recording, _state

    g = _first_neuron(glif_parameters(Params({"cell_model": model})))
    state, rec = _state(1), _recording(1, max_times=1000)
    state = state._replace(asc=np.zeros((1, g.asc_decay.size)))
    numba_network.run_steps(state, _net(1, [], [], []), _constants(1, [drive], cell_kind=GLIF, glif=g), rec,
                            np.zeros((1, 1)), np.zeros((0, 1)), NO_FF, 1, n_steps, TEST)
    return rec.spike_steps[0, : state.spike_count[0]]


def test_glif_mechanisms_change_the_firing_as_the_model_says():
    glif1, glif2, glif3, glif5 = (_single_neuron_spikes(m) for m in ("glif1", "glif2", "glif3", "glif5"))
    isi = np.diff(glif1)
    assert isi.min() == isi.max()  # a regular LIF
    # the threshold jumps by delta_thresh_s at each spike: longer intervals, fewer spikes
    assert glif2.size < glif1.size and np.diff(glif2)[0] > isi[0]
    # depolarising after-spike currents (delta_I > 0) shorten the intervals
    assert glif3.size > glif1.size
    # a threshold that follows the voltage slows firing further
    assert glif5.size < _single_neuron_spikes("glif4").size


def test_adaptation_state_resets_between_trials_unless_it_persists(tmp_path):
    from spikeforge.core import rng as streams
    from spikeforge.core.backends.layout import TEST
    from spikeforge.rls.files import RunDir
    from spikeforge.rls.model import Model
    from spikeforge.rls.network_parameters import initial_voltage, network_parameters
    from spikeforge.rls.trial import run_trial

    neurons = np.arange(100)
    for persists in (False, True):
        directory = tmp_path / f"persist{persists}"
        rls.new(directory, {**SMALL, "cell_model": "glif4", "cell_state_persists": persists})
        rls.init(directory, verbose=False)
        rls.train(directory, nloops=1, verbose=False)
        saved, _ = read_h5(directory / "ckpt-1.h5")
        assert ("cell/thresh_s" in saved) == persists
        rls.test(directory, ntrials=2, neurons=neurons, plot=False, verbose=False)
        tested, _ = read_h5(directory / "test.h5", ["spike_step", "spike_trial", "spike_neuron"])
        trial1 = tested["spike_step"][tested["spike_trial"] == 1]

        # trial 1 by hand, from a fresh state and from the state trial 0 ended in
        model = Model.load(RunDir(directory), "1")
        p = model.p
        net, _ = model.connectivity()
        def trial(index, cell_state):
            rng = streams.stream(p.seed, "test", index, 0)
            return run_trial(p, net, network_parameters(p), TEST, initial_voltage(p, rng), model.stimulus[0], rng,
                             cell_state=cell_state)
        start = model.cell_state if persists else None
        fresh = trial(1, None)
        adapted = trial(1, trial(0, start).cell_state)
        def steps(result):
            return np.concatenate([result.spike_steps[i, : min(result.spike_count[i], result.spike_steps.shape[1])]
                                   for i in neurons])
        assert not np.array_equal(steps(fresh), steps(adapted))
        np.testing.assert_array_equal(np.sort(trial1), np.sort(steps(adapted if persists else fresh)))


HETEROGENEOUS = '''
import numpy as np


def mixed(p, fraction_adapting=0.5, el_spread=0.1):
    """Every other excitatory neuron adapts (GLIF4), the rest are GLIF1; resting potentials vary."""
    rng = np.random.default_rng(0)
    model = np.where((np.arange(p.n_cells) % 2 == 0) & (np.arange(p.n_cells) < p.ne), "glif4", "glif1")
    return {"model": model, "el": el_spread * rng.standard_normal(p.n_cells), "asc_delta": [0.2, 0.1, 0.05]}


def wrong(p):
    return {"model": "glif9"}
'''


def test_a_cell_model_plugin_gives_per_neuron_parameters(tmp_path):
    directory = tmp_path / "net"
    directory.mkdir()
    (directory / "cells.py").write_text(HETEROGENEOUS)
    rls.new(directory, {**SMALL, "cell_model": "cells.py:mixed", "cell_model_args": {"el_spread": 0.05}})
    model = rls.init(directory, verbose=False)
    cells, _ = read_h5(directory / "init.h5", ["cell/model", "cell/e_l", "cell/asc_delta", "cell/b_s"])
    models = cells["cell/model"].astype(str)
    assert set(models) == {"glif1", "glif4"} and models[0] == "glif4" and models[1] == "glif1"
    assert np.std(cells["cell/e_l"]) == pytest.approx(0.05, rel=0.1)
    np.testing.assert_array_equal(cells["cell/asc_delta"][0], [0.2, 0.1, 0.05])
    assert np.all(cells["cell/asc_delta"][1] == 0) and cells["cell/b_s"][1] == 0  # GLIF1: mechanisms off
    result = rls.train(directory, nloops=2, verbose=False)
    assert 0 < model.init_stats["rate_exc_hz"] < 15 and all(0 < r < 15 for r in result.firing_rate)

    from spikeforge.core.plugins import PluginError

    rls.new(tmp_path / "bad", {**SMALL, "cell_model": str(directory / "cells.py") + ":wrong"})
    with pytest.raises(PluginError, match="returned model 'glif9'; expected glif1 .. glif5"):
        rls.init(tmp_path / "bad", verbose=False)
    from spikeforge.errors import ParameterError

    with pytest.raises(ParameterError, match="cell_model = 'glif7' is not lif, glif1 .. glif5"):
        rls.Params({"cell_model": "glif7"})


def _teeter_by_hand(model: str, drive: float, n_steps: int, p) -> tuple[list[int], tuple]:
    """One GLIF neuron of ``model`` with constant input, step by step from Teeter et al.'s equations
    (as written in spikeforge.core.cells.glif's docstring), in plain Python: spike steps and the
    final (v, theta_s, theta_v, after-spike currents)."""
    from spikeforge.core.cells.glif import MODELS

    has_asc, has_theta_s, has_theta_v, reset_rule = MODELS[model]
    dt, c, r, e_l = p.dt, p.tau_meme / p.glif_r, p.glif_r, p.glif_el
    k = p.glif_asc_k if has_asc else []
    v, theta_s, theta_v, asc = 0.0, 0.0, 0.0, [0.0] * len(k)
    last, spikes = -10**9, []
    for ti in range(1, n_steps + 1):
        if ti <= last + p.steps.refrac_steps:
            continue  # refractory: nothing moves
        asc = [i * (1 - dt * kj) for i, kj in zip(asc, k)]
        v = v + dt / c * (drive + sum(asc) - (v - e_l) / r)
        theta_s = theta_s * (1 - dt * p.glif_b_s) if has_theta_s else 0.0
        if has_theta_v:
            theta_v = theta_v + dt * (p.glif_a_v * (v - e_l) - p.glif_b_v * theta_v)
        if v > p.threshe + theta_s + theta_v:
            spikes.append(ti)
            last = ti
            asc = [f * i + d for f, i, d in zip(p.glif_asc_f, asc, p.glif_asc_delta)]
            v = e_l + p.glif_f_v * (v - e_l) - p.glif_delta_v if reset_rule else p.vre
            if has_theta_s:
                theta_s += p.glif_delta_thresh_s
    return spikes, (v, theta_s, theta_v, asc)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("model", ["glif2", "glif3", "glif4", "glif5"])
def test_glif_steps_follow_teeters_equations_computed_by_hand(model, backend):
    from spikeforge.core.backends import numba_network
    from spikeforge.core.backends.layout import GLIF, TEST
    from spikeforge.rls.params import Params
    from spikeforge.rls.network_parameters import glif_parameters

    from test_kernels import NO_FF, _constants, _net, _recording, _state

    # E_L and R away from their defaults, so that every term of the equations matters
    p = Params({"cell_model": model, "glif_el": -0.2, "glif_r": 1.3, "glif_a_v": 0.05, "glif_b_v": 0.3})
    drive, n_steps = 1.4, 3000
    spikes, (v, theta_s, theta_v, asc) = _teeter_by_hand(model, drive, n_steps, p)
    assert len(spikes) > 5
    g = _first_neuron(glif_parameters(p))
    state, rec = _state(1), _recording(1, max_times=1000)
    state = state._replace(asc=np.zeros((1, g.asc_decay.shape[1])))
    args = (state, _net(1, [], [], []), _constants(1, [drive], cell_kind=GLIF, glif=g, vre=p.vre), rec,
            np.zeros((1, 1)), np.zeros((0, 1)), NO_FF)
    if backend == "numba":
        numba_network.run_steps(*args, 1, n_steps, TEST)
    else:
        torch_kernels = pytest.importorskip("spikeforge.core.backends.torch_kernels")
        on = [torch_kernels.put(a, "cpu") for a in args]
        torch_kernels.run_steps(*on, 1, n_steps, TEST)
        state, rec = torch_kernels.get(on[0]), torch_kernels.get(on[3])
    np.testing.assert_array_equal(rec.spike_steps[0, : state.spike_count[0]], spikes)
    np.testing.assert_allclose([state.v[0], state.thresh_s[0], state.thresh_v[0]], [v, theta_s, theta_v],
                               rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(state.asc[0], asc, rtol=1e-11, atol=1e-13)
