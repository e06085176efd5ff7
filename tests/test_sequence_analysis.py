"""Analysis of a trained grid on constructed activity with known answers."""

import numpy as np
import pytest

from spikeforge.sequence import analysis


def bumps(centres, length=300, width=10.0, peak=100.0):
    t = np.arange(length)[:, None]
    return peak * np.exp(-0.5 * ((t - np.asarray(centres)[None, :]) / width) ** 2)


def test_activation_times_and_order():
    centres = [250.0, 40.0, 150.0, 90.0]
    rates = np.vstack([np.zeros((50, 4)), bumps(centres), np.zeros((20, 4))])
    times = analysis.activation_times(rates, 50, 300)
    assert times == pytest.approx(centres, abs=0.5)
    assert analysis.activation_order(rates, 50, 300).tolist() == [1, 3, 2, 0]


def test_circular_mean_puts_a_neuron_active_at_both_ends_at_an_end():
    rates = np.zeros((300, 2))
    rates[:10, 0] = rates[-10:, 0] = 50.0  # both ends: the plain mean would say 150
    rates[140:160, 1] = 50.0
    times = analysis.activation_times(rates, 0, 300)
    assert min(times[0], 300 - times[0]) < 1 and times[1] == pytest.approx(149.5, abs=0.5)
    assert np.isnan(analysis.activation_times(np.zeros((10, 1)), 0, 10)[0])


def test_selectivity_criterion():
    in_pattern = np.zeros(1000, dtype=bool)
    in_pattern[300:600] = True
    rates = np.full((1000, 3), 10.0)
    rates[in_pattern, 0] = 30.0  # 30 > 2 x 10 + 5
    rates[in_pattern, 1] = 24.0  # 24 < 25
    assert analysis.selective(rates, in_pattern).tolist() == [True, False, False]
    spikes = np.zeros((1000, 1), dtype=bool)
    spikes[300:600:10, 0] = True  # 100 Hz in patterns, 0 outside
    assert analysis.selective(spikes, in_pattern).tolist() == [True]


def test_filtered_state_is_the_readouts_low_pass():
    spikes = np.zeros((50, 1), dtype=bool)
    spikes[0, 0] = True
    state = analysis.filtered_state(spikes)
    assert state[0, 0] == 1 and state[10, 0] == pytest.approx(0.95**10)
    assert analysis.sample_steps(100).tolist() == [19, 39, 59, 79, 99]


def test_readout_recovers_a_linear_target_and_not_noise():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 10))
    target = features @ rng.normal(size=10) + 0.5
    coefficients = analysis.fit_readout(features[:200], target[:200], ridge=1e-6)
    assert analysis.readout_correlation(coefficients, features[200:], target[200:]) > 0.999
    noise = rng.normal(size=400)
    coefficients = analysis.fit_readout(features[:200], noise[:200])
    assert abs(analysis.readout_correlation(coefficients, features[200:], noise[200:])) < 0.25


def test_trial_correlation_and_peak_order():
    one = bumps([40.0, 120.0, 200.0, 260.0], peak=120.0)
    rates = np.vstack([one, np.zeros((100, 4)), one, np.zeros((100, 4)), one])
    presentations = [(0, 300), (400, 300), (800, 300)]
    assert analysis.trial_correlation(rates, presentations) == pytest.approx(1.0)
    assert np.isnan(analysis.trial_correlation(rates * 0.5, presentations))  # peaks below 90 Hz
    neurons = np.arange(4)
    assert analysis.peak_order_consistency(rates, (0, 300), (400, 300), neurons) == pytest.approx(1.0)
    reversed_rates = np.vstack([one, bumps([260.0, 200.0, 120.0, 40.0], peak=120.0)])
    assert analysis.peak_order_consistency(reversed_rates, (0, 300), (300, 300), neurons) == pytest.approx(-1.0)
