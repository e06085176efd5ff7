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


def test_the_calibrated_conversion_gives_the_init_runs_rates_at_its_currents(tmp_path):
    """rate_conversion = "calibrated": the shifted Siegert function reproduces the init run's median rate
    at the init run's currents, and for a noise-driven network the shift is of the size of the time
    step's missed threshold crossings, about sigma sqrt(dt / tau_m)."""
    from spikeforge.core.store import read_h5
    from spikeforge.rls import data_targets, example_recordings, siegert

    rates, _ = example_recordings.psth_set(64, 1500.0)
    trial, unit, time = example_recordings.poisson_trials(rates, 1.0, 30)
    np.savez(tmp_path / "rec.npz", trial=trial, unit=unit, time=time, window=[0.0, 1500.0])
    # a 1.6-s init run: the first milliseconds' spikes of neurons that start above threshold are a small part
    settings = {**SMALL, "k": 0, "sig": 0.65, "l": 16, "penmu": 0.0, "train_duration": 1500.0}
    shifts = {}
    for conversion in ("siegert", "calibrated"):
        directory = tmp_path / conversion
        rls.new(directory, {**settings, "rate_conversion": conversion})
        model = rls.init(directory, spikes_file=tmp_path / "rec.npz", verbose=False)
        arrays, attrs = read_h5(directory / "init.h5", ["targets", "init/spike_count", "init/u_mean"])
        shifts[conversion] = attrs["rate_conversion_threshold_shift"]
        p = model.p
        init_rates = arrays["init/spike_count"] / (p.train_time / 1000)
        firing = (np.arange(p.n_cells) < p.ne) & (init_rates >= 0.5)
        predicted = siegert.transfer(arrays["init/u_mean"][firing] + p.x_bale, p.sig, p.tau_meme,
                                     p.threshe + shifts[conversion][0], p.vre)
        if conversion == "calibrated":
            assert np.median(np.log(predicted / init_rates[firing])) == pytest.approx(0.0, abs=1e-5)
            step_scale = p.sig * np.sqrt(p.dt / p.tau_meme)
            assert 0.3 * step_scale < shifts[conversion][0] < 1.5 * step_scale
            # higher thresholds ask for larger currents for the same rates
            assert (arrays["targets"][0, :, :64] > siegert_targets[0, :, :64]).all()
        else:
            siegert_targets = arrays["targets"]
            assert shifts[conversion] == [0.0, 0.0]
    np.testing.assert_allclose(data_targets.currents_from_rates(p, rates[None, :1, :2] * 0 + 5.0, 0.0, np.arange(2),
                                                                tuple(shifts["calibrated"])),
                               siegert.rates_to_currents(np.full((1, 1, 2), 5.0), p.sig, p.tau_meme,
                                                         p.threshe + shifts["calibrated"][0], p.vre, p.x_bale),
                               rtol=1e-12)
