"""What the network cannot reach is reported before training (issue 11's checks)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spikeforge import rls
from spikeforge.errors import DataFileError, ParameterError, SpikeforgeWarning
from spikeforge.rls import target_checks

from conftest import SMALL

IDS = np.array(["u0", "u1", "u2", "u3"])


def _reachable(p):
    """Slow, moderate profiles: a ramp, a 150-ms transient, a suppression, a 1-s oscillation."""
    t = p.learn_every * np.arange(1, p.steps.learn_nsteps + 1)
    return np.stack([5 + 10 * t / t[-1], 5 + 15 * np.exp(-0.5 * ((t - 600) / 150) ** 2),
                     8 - 6 * np.exp(-0.5 * ((t - 1200) / 200) ** 2), 10 + 5 * np.sin(2 * np.pi * t / 1000)], axis=1)[None]


def test_a_reachable_set_passes_quietly():
    p = rls.Params({**SMALL, "train_duration": 2000.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert target_checks.check_target_rates(p, _reachable(p), IDS, "rates") == []


def test_unreachable_rates_and_a_20_ms_transient_are_reported_with_their_units():
    p = rls.Params({**SMALL, "train_duration": 2000.0})
    rates = _reachable(p)
    t = p.learn_every * np.arange(1, p.steps.learn_nsteps + 1)
    rates[0, :, 1] = 5 + 25 * np.exp(-0.5 * ((t - 600) / 8.5) ** 2)  # a 20-ms transient
    rates[0, 40:60, 2] = 60.0  # above 1000 / (2 tau_m) = 50 Hz
    rates[0, :, 3] = 0.0  # silent
    with pytest.warns(SpikeforgeWarning) as caught:
        findings = target_checks.check_target_rates(p, rates, IDS, "rates")
    text = [str(w.message) for w in caught]
    assert len(findings) == 3 == len(text)
    assert any("1 of 4 units (u3) never reach 0.1 Hz" in line for line in text)
    assert any("1 of 4 units (u2) exceed 50 Hz" in line and "up to 60 Hz" in line for line in text)
    assert any("1 of 4 units (u1) have more than 25% of their variance above 10.6 Hz" in line for line in text)


def test_the_fast_fraction_follows_the_periodogram():
    # a pure 20-Hz sine sampled every 10 ms: all of its variance lies above 10.6 Hz; a 1-Hz one: none
    t = 10.0 * np.arange(200)
    rates = np.stack([10 + np.sin(2 * np.pi * 20 * t / 1000), 10 + np.sin(2 * np.pi * 1 * t / 1000)], axis=1)[None]
    np.testing.assert_allclose(target_checks.fast_variance_fraction(rates, 10.0, 10.56), [1.0, 0.0], atol=1e-9)
    assert target_checks.fastest_followed_hz(rls.Params(SMALL)) == pytest.approx(np.sqrt(99) / (2 * np.pi * 0.15))


def test_all_silent_targets_and_a_silent_network_are_errors(tmp_path, monkeypatch):
    p = rls.Params(SMALL)
    with pytest.raises(DataFileError, match="every unit's rate is below 0.1 Hz throughout"):
        target_checks.check_target_rates(p, np.zeros((1, 20, 4)), IDS, "rates")
    directory = tmp_path / "net"
    rls.new(directory, {**SMALL, "x_bale": 0.0, "x_bali": 0.0})
    from spikeforge.rls import initialize  # every neuron starts at rest: without drive none ever spikes

    monkeypatch.setattr(initialize, "initial_voltage", lambda p, rng, cells=None: np.zeros(p.n_cells))
    with pytest.warns(SpikeforgeWarning, match="silent"), pytest.raises(ParameterError,
                                                                      match="the init run produced no spike in 300 ms"):
        rls.init(directory, verbose=False)
    assert not (directory / "init.h5").exists()
