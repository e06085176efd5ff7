"""Validation statistics and the network fit: Cohen's d and Welch's t by hand and against scipy, the
frozen-connectivity network (deterministic loss, noise floor), and issue 13's network acceptance."""

import numpy as np
import pytest
from scipy.stats import ttest_ind

from spikeforge.fit import network as networks
from spikeforge.fit import search, validation
from spikeforge.errors import ParameterError

CONFIG = networks.NetworkConfig()


def test_cohens_d_by_hand():
    data, model = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0])
    pooled = np.sqrt((3 * np.var(data, ddof=1) + 2 * np.var(model, ddof=1)) / 5)
    d = (4.0 - 2.5) / pooled
    half = 1.96 * np.sqrt(7 / 12 + d * d / 10)
    assert validation.cohens_d(data, model) == pytest.approx((d, d - half, d + half), rel=1e-12)
    assert validation.cohens_d(model, data)[0] == pytest.approx(-d)


def test_welch_is_scipys_unequal_variance_test_and_drops_nan():
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 40), rng.normal(0.5, 3, 25)
    expected = ttest_ind(y, x, equal_var=False)
    assert validation.welch(np.append(x, np.nan), y) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-12)


def test_identical_samples_give_t_0_and_d_0():
    rates = np.random.default_rng(1).uniform(5, 30, 50)
    comparison = validation.compare("rate", rates, rates[::-1])
    assert (comparison.t, comparison.d, comparison.p) == (0.0, 0.0, 1.0) and comparison.matched == "yes"
    assert validation.compare("rate", [3.0], [4.0]).matched == "n/a"


def truth_trains(seed: int):
    return networks.simulate_network(np.array([networks.TRUTH]), CONFIG, networks.connectivity(CONFIG, seed)).trains


def test_network_truth_has_zero_loss_and_others_do_not():
    data = truth_trains(7)
    objective = networks.NetworkObjective(data, CONFIG, 7)
    losses = objective.evaluate(np.array([networks.TRUTH, [0.5, 0.8, 0.3, 0.8], [0.6, 0.8, 0.5, 0.8]]))
    assert losses[0] == 0 and (losses[1:] > 1).all()
    spike = networks.NetworkObjective(data, CONFIG, 7, loss="spike").evaluate(np.array([networks.TRUTH]))
    assert spike[0] == 0
    floor = networks.noise_floor(networks.TRUTH, data, CONFIG, [8, 9, 10])
    assert (floor > 5).all()  # another connectivity: even the truth is far from the data


def test_network_activity_resembles_the_originals():
    """The original's rasters: E cells bursting at about 25-30 Hz."""
    counts = networks.simulate_network(np.array([networks.TRUTH]), CONFIG, networks.connectivity(CONFIG, 3)).counts
    assert 20 <= counts[0, :CONFIG.n_e].mean() <= 35


@pytest.mark.parametrize("other", [8, 9, 10, 11])
def test_ground_truth_against_another_connectivity_seed_has_a_small_rate_effect(other):
    """Issue 13: ground truth vs itself t = 0, d = 0; vs another connectivity seed |d| < 0.5 (E-cell rates,
    the original's validation)."""
    data = truth_trains(7).to_list()[:CONFIG.n_e]
    again = truth_trains(7).to_list()[:CONFIG.n_e]
    same = validation.compare_trains(data, again, CONFIG.duration)[0]
    assert same.measure == "rate" and same.t == 0 and same.d == 0
    different = validation.compare_trains(data, truth_trains(other).to_list()[:CONFIG.n_e], CONFIG.duration)[0]
    assert abs(different.d) < 0.5


def test_network_settings_are_checked():
    with pytest.raises(ParameterError, match="network loss 'rmse' is not one of count, spike, both"):
        networks.NetworkObjective(truth_trains(7), CONFIG, 7, loss="rmse")
    with pytest.raises(ParameterError, match="the data have 250 spike trains; recording excitatory cells"):
        networks.NetworkObjective(truth_trains(7), CONFIG, 7, recorded="excitatory")
    with pytest.raises(ParameterError, match="drive_spread = 2"):
        networks.NetworkConfig(drive_spread=2.0).check()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2])
def test_synthetic_network_recovers_the_four_parameters(seed):
    """Issue 13: (0.5, 0.8, 0.5, 0.8) recovered within 0.1 each, with frozen connectivity (CMA-ES,
    population 32, up to 100 generations, 4 restarts, the count loss).  The tutorial's test checks
    seed 0 through the command line."""
    objective = networks.NetworkObjective(truth_trains(7), CONFIG, 7)
    result = search.fit(objective.evaluate, search.Bounds.build(networks.NAMES, networks.BOUNDS), population=32,
                        generations=100, seed=seed, restarts=4, patience=30)
    assert np.all(np.abs(result.best - np.array(networks.TRUTH)) <= 0.1), result.best
