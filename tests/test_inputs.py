"""Feed-forward Poisson inputs and noise."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge import rls
from spikeforge.core import rng as streams
from spikeforge.core.store import read_h5
from spikeforge.rls import feedforward
from spikeforge.rls.network_parameters import network_parameters

from conftest import SMALL


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
def test_noise_changes_the_spikes_reproducibly_and_keeps_rates_plausible(tmp_path, noise_model):
    p = rls.Params({**SMALL, "sig": 0.65, "noise_model": noise_model})
    expected = 0.65 * (np.sqrt(p.dt / p.tau_meme) if noise_model == "voltage" else np.sqrt(p.tau_meme / p.dt))
    np.testing.assert_allclose(network_parameters(p).drive.noise_scale, expected)
    runs = []
    for name, sig in (("quiet", 0.0), ("noisy", 0.65), ("noisy-again", 0.65)):
        directory = tmp_path / name
        rls.new(directory, {**SMALL, "sig": sig, "noise_model": noise_model})
        model = rls.init(directory, verbose=False)
        result = rls.train(directory, nloops=1, verbose=False)
        assert 0 < model.init_stats["rate_exc_hz"] < 30 and 0 < result.firing_rate[0] < 30
        runs.append(read_h5(directory / "init.h5", ["init/spike_count"])[0]["init/spike_count"])
    assert not np.array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[1], runs[2])
