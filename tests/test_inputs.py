"""Feed-forward Poisson inputs and noise."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge import rls
from spikeforge.core import rng as streams
from spikeforge.core.store import read_h5
from spikeforge.core.backends.layout import INIT
from spikeforge.core.backends.numba_network import run_steps
from spikeforge.errors import ParameterError
from spikeforge.rls import feedforward
from spikeforge.rls.network_parameters import network_parameters

from conftest import SMALL
from test_kernels import NO_FF, _net, _recording, _state


def test_feedforward_rates_are_smoothed_ou_profiles_in_spikes_per_step():
    p = rls.Params({**SMALL, "lx": 50})
    prob = feedforward.spike_probabilities(p, streams.stream(1, "ff"))
    assert prob.shape == (2000, 50) and prob.min() >= 0
    rate_hz = prob / p.dt * 1000
    assert rate_hz.mean() == pytest.approx(p.ff_mu, rel=0.2)
    # a +/- 50 ms moving average: consecutive steps differ far less than the raw OU kicks
    assert np.abs(np.diff(rate_hz, axis=0)).mean() < 0.1 * p.ff_sig * np.sqrt(p.dt)


def test_feedforward_inputs_get_plastic_weights_that_train(tmp_path):
    directory = tmp_path / "net"
    rls.new(directory, {**SMALL, "lx": 7, "wpx": 0.3})
    model = rls.init(directory, verbose=False)
    n = SMALL["n_cells"]
    np.testing.assert_array_equal(model.plastic.index[:, :7], np.broadcast_to(n + np.arange(7), (n, 7)))
    initial = model.plastic.weight.copy()
    result = rls.train(directory, nloops=3, verbose=False)
    change = np.abs(result.model.plastic.weight - initial)
    assert change[:, :7].mean() > 0 and all(np.isfinite(result.correlation))
    rls.test(directory, ntrials=1, neurons=[0], plot=False, verbose=False)


@pytest.mark.parametrize("noise_model", ["voltage", "current"])
def test_noise_gives_the_membrane_the_variance_of_tsn_3_4_in_both_noise_models(noise_model):
    """tsn.md 3.4: either way the voltage gets a kick of std sig sqrt(dt/tau_m) per step (the current
    noise through the membrane's dt/tau_m), so a free membrane (no drive, no synapses, no threshold)
    reaches the stationary variance of v <- (1 - a) v + sig sqrt(a) xi, a = dt/tau_m:
    sig^2 a / (1 - (1 - a)^2), about sig^2 / 2."""
    n, steps, sig = 4000, 1500, 0.65
    p = rls.Params({**SMALL, "n_cells": n, "sig": sig, "noise_model": noise_model, "threshe": 1e9, "threshi": 1e9})
    c = network_parameters(p)
    c = c._replace(drive=c.drive._replace(x_bal=np.zeros(n)))
    state = _state(n)
    noise = streams.stream(3, "noise").standard_normal((steps, n))
    run_steps(state, _net(n, [], [], []), c, _recording(n), np.zeros((1, n)), noise, NO_FF, 1, steps, INIT)
    a = p.dt / p.tau_meme
    expected = sig**2 * a / (1 - (1 - a) ** 2)
    # 1500 steps are 15 membrane time constants: stationary; 4000 neurons: the sample variance is within 5 %
    assert state.v.var() == pytest.approx(expected, rel=0.08)


def test_noise_changes_the_spikes_reproducibly_and_keeps_rates_plausible(tmp_path):
    runs = []
    for name, sig in (("quiet", 0.0), ("noisy", 0.65), ("noisy-again", 0.65)):
        directory = tmp_path / name
        rls.new(directory, {**SMALL, "sig": sig})
        model = rls.init(directory, verbose=False)
        result = rls.train(directory, nloops=1, verbose=False)
        assert 0 < model.init_stats["rate_exc_hz"] < 30 and 0 < result.firing_rate[0] < 30
        runs.append(read_h5(directory / "init.h5", ["init/spike_count"])[0]["init/spike_count"])
    assert not np.array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[1], runs[2])


def test_per_neuron_tau_plas_and_sig_are_drawn_from_their_ranges_reproducibly():
    p = rls.Params({**SMALL, "lx": 3, "tau_plas": 70.0, "tau_plas_max": 150.0, "sig": 0.2, "sig_max": 0.6})
    c = network_parameters(p)
    tau_plas = 1 / c.synapses.kick_plastic
    assert tau_plas.shape == (p.n_cells + 3,) and 70 <= tau_plas.min() and tau_plas.max() <= 150
    assert tau_plas.std() == pytest.approx(80 / np.sqrt(12), rel=0.1)  # uniform on [70, 150]
    np.testing.assert_allclose(c.synapses.decay_plastic, 1 - p.dt / tau_plas, rtol=1e-12)
    sig = c.drive.noise_scale / np.sqrt(p.dt / p.tau_meme)
    assert 0.2 <= sig.min() and sig.max() <= 0.6 and sig.std() > 0.1
    again = network_parameters(rls.Params(dict(p.user)))
    np.testing.assert_array_equal(again.synapses.kick_plastic, c.synapses.kick_plastic)
    one = network_parameters(rls.Params(SMALL))
    assert np.all(one.synapses.kick_plastic == 1 / 150) and "tau_plas_max" not in rls.Params(SMALL).user
    with pytest.raises(ParameterError, match="tau_plas_max = 60.0 must be >= tau_plas = 70.0"):
        rls.Params({**SMALL, "tau_plas": 70.0, "tau_plas_max": 60.0})
