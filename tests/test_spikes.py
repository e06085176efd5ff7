"""Spike-train distances and statistics: closed forms (spikenetopt.md 7 and 13), and PySpike and
Elephant as oracles on random trains."""

import numpy as np
import pytest

from spikeforge.core import spikes
from spikeforge.errors import ParameterError

T = 1000.0


def random_pairs(seed: int, n_pairs: int = 150, max_spikes: int = 30):
    """Random train pairs on [0, T] ms, including empty trains, single spikes and spikes at 0."""
    rng = np.random.default_rng(seed)
    for k in range(n_pairs):
        a, b = (np.sort(rng.uniform(0, T, rng.integers(0, max_spikes))) for _ in range(2))
        if k % 5 == 0 and a.size:
            a[0] = 0.0
        if k % 11 == 0:
            a = a[:1]
        yield a, b


# --- closed forms ---------------------------------------------------------------------------------


def test_spike_distance_closed_forms_of_spikesynchrony():
    assert spikes.spike_distance([1], [2], 0, 3, edges="auxiliary") == pytest.approx(67 / 216, rel=1e-12)
    assert spikes.spike_distance([2, 5, 8], [1, 5, 9], 0, 10, edges="auxiliary") == pytest.approx(0.184864, abs=1e-6)


@pytest.mark.parametrize("edges", spikes.EDGES)
def test_spike_distance_is_zero_for_itself_symmetric_and_bounded(edges):
    for a, b in random_pairs(1, n_pairs=60):
        assert spikes.spike_distance(a, a, 0, T, edges) == pytest.approx(0, abs=1e-12)
        d = spikes.spike_distance(a, b, 0, T, edges)
        assert d == pytest.approx(spikes.spike_distance(b, a, 0, T, edges), rel=1e-12, abs=1e-15)
        assert 0 <= d <= 1


def test_van_rossum_identities():
    tau = 7.0
    rng = np.random.default_rng(2)
    train = np.sort(rng.uniform(0, 500, 20))
    assert spikes.van_rossum_distance(train, train, tau) == pytest.approx(0, abs=1e-6)
    for tau in (1.0, 5.0, 40.0):  # one extra spike far from all others: d = 1
        assert spikes.van_rossum_distance(train, np.append(train, 1e6), tau) == pytest.approx(1, rel=1e-9)
    for delta in (0.5, 3.0, 20.0):  # one spike shifted by delta: d^2 / 2 = 1 - exp(-delta / tau)
        d = spikes.van_rossum_distance([100.0], [100.0 + delta], 7.0)
        assert d**2 / 2 == pytest.approx(1 - np.exp(-delta / 7.0), rel=1e-12)


def test_victor_purpura_closed_forms():
    assert spikes.victor_purpura_distance([1], [1.5], 1.0) == pytest.approx(0.5)
    assert spikes.victor_purpura_distance([1], [4], 1.0) == pytest.approx(2)  # delete and insert beat a shift of 3
    assert spikes.victor_purpura_distance([1, 2], [], 1.0) == 2
    assert spikes.victor_purpura_distance([1, 2, 3], [7], 0.0) == 2  # q = 0: the count difference


def test_lv_and_cv_of_regular_and_poisson_trains():
    assert spikes.lv(np.arange(0, 1000, 10.0)) == pytest.approx(0, abs=1e-12)
    assert spikes.cv(np.arange(0, 1000, 10.0)) == pytest.approx(0, abs=1e-12)
    rng = np.random.default_rng(3)
    lvs, cvs = [], []
    for _ in range(200):
        train = np.cumsum(rng.exponential(10.0, 200))
        lvs.append(spikes.lv(train))
        cvs.append(spikes.cv(train))
    assert np.mean(lvs) == pytest.approx(1, abs=0.05)
    assert np.mean(cvs) == pytest.approx(1, abs=0.05)
    assert np.isnan(spikes.lv([1.0, 2.0])) and np.isnan(spikes.cv([5.0]))


def test_gamma_factor_is_one_for_itself_and_near_zero_for_independent_trains():
    rng = np.random.default_rng(4)
    train = np.sort(rng.uniform(0, 2000, 20))
    assert spikes.gamma_factor(train, train, 4.0, 2000) == pytest.approx(1, rel=1e-12)
    values = [spikes.gamma_factor(np.sort(rng.uniform(0, 2000, 20)), np.sort(rng.uniform(0, 2000, 20)), 4.0, 2000)
              for _ in range(400)]
    assert abs(np.mean(values)) < 0.03


def test_gamma_factor_hand_computed():
    # data 100, 200, 300; model 102 (coincident), 195 (6 ms off: not), 300 (coincident), 500
    data, model = [100.0, 200.0, 300.0], [102.0, 195.0, 300.0, 500.0]
    rate = 3 / 1000.0
    expected = 2 / (1 - 2 * 4 * rate) * (2 - 2 * 4 * rate * 3) / (3 + 4)
    assert spikes.gamma_factor(model, data, 4.0, 1000.0) == pytest.approx(expected, rel=1e-12)


def test_one_model_spike_matches_one_data_spike():
    # two data spikes within the window of one model spike: one coincidence, not two
    value = spikes.gamma_factor([100.0], [99.0, 101.0], 4.0, 1000.0)
    rate = 2 / 1000.0
    assert value == pytest.approx(2 / (1 - 8 * rate) * (1 - 8 * rate * 2) / 3, rel=1e-12)


# --- oracles --------------------------------------------------------------------------------------


def test_spike_and_isi_distances_equal_pyspike():
    pyspike = pytest.importorskip("pyspike")
    for a, b in random_pairs(5):
        first, second = pyspike.SpikeTrain(a, [0, T]), pyspike.SpikeTrain(b, [0, T])
        assert spikes.spike_distance(a, b, 0, T) == pytest.approx(pyspike.spike_distance(first, second), rel=1e-6)
        assert spikes.isi_distance(a, b, 0, T) == pytest.approx(pyspike.isi_distance(first, second), rel=1e-6,
                                                               abs=1e-12)


def test_van_rossum_and_victor_purpura_equal_elephant():
    pytest.importorskip("elephant")
    import neo
    import quantities as pq
    from elephant.spike_train_dissimilarity import van_rossum_distance, victor_purpura_distance

    for a, b in random_pairs(6, n_pairs=60):
        trains = [neo.SpikeTrain(x * pq.ms, t_stop=T * pq.ms) for x in (a, b)]
        for tau in (2.0, 20.0):
            expected = van_rossum_distance(trains, time_constant=tau * pq.ms)[0, 1]
            assert spikes.van_rossum_distance(a, b, tau) == pytest.approx(expected, rel=1e-6, abs=1e-9)
        for q in (0.05, 1.0):
            expected = victor_purpura_distance(trains, cost_factor=q / pq.ms)[0, 1]
            assert spikes.victor_purpura_distance(a, b, q) == pytest.approx(expected, rel=1e-6)


def test_lv_and_cv_equal_elephant():
    pytest.importorskip("elephant")
    from elephant.statistics import cv, lv

    rng = np.random.default_rng(7)
    for _ in range(20):
        train = np.sort(rng.uniform(0, T, rng.integers(3, 40)))
        assert spikes.lv(train) == pytest.approx(lv(np.diff(train)), rel=1e-9)
        assert spikes.cv(train) == pytest.approx(cv(np.diff(train)), rel=1e-9)


# --- batches --------------------------------------------------------------------------------------


def test_batched_distances_equal_the_pairwise_ones():
    pairs = list(random_pairs(8, n_pairs=40))
    first = spikes.Trains.from_list([a for a, _ in pairs])
    second = spikes.Trains.from_list([b for _, b in pairs])
    for edges in spikes.EDGES:
        batch = spikes.spike_distances(first, second, 0, T, edges)
        assert np.array_equal(batch, [spikes.spike_distance(a, b, 0, T, edges) for a, b in pairs])
    one = spikes.Trains.from_list([pairs[3][1]])
    assert np.array_equal(spikes.spike_distances(first, one, 0, T),
                          [spikes.spike_distance(a, pairs[3][1], 0, T) for a, _ in pairs])
    data = spikes.Trains.from_list([np.sort(np.random.default_rng(9).uniform(0, T, 12))])
    assert np.array_equal(spikes.gamma_factors(first, data, 4.0, T),
                          [spikes.gamma_factor(a, data.train(0), 4.0, T) for a, _ in pairs])


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("train, words", [
    ([3.0, 1.0], "not sorted: 3 ms comes before 1 ms"),
    ([-1.0, 2.0], "negative spike time (-1 ms)"),
    ([1.0, np.nan], "non-finite spike time (nan)"),
    ([[1.0, 2.0]], "expected a 1-d list"),
])
def test_bad_trains_are_refused_with_the_value(train, words):
    with pytest.raises(ParameterError, match=None) as error:
        spikes.spike_distance(train, [1.0], 0, 10)
    assert words in str(error.value)


def test_bad_windows_and_options_are_refused():
    with pytest.raises(ParameterError, match="t_end > t_start"):
        spikes.spike_distance([1.0], [2.0], 5, 5)
    with pytest.raises(ParameterError, match="outside the window"):
        spikes.spike_distance([1.0, 12.0], [2.0], 0, 10)
    with pytest.raises(ParameterError, match="edges 'kreuz' is not one of pyspike, auxiliary"):
        spikes.spike_distance([1.0], [2.0], 0, 10, edges="kreuz")
    with pytest.raises(ParameterError, match="tau = 0 ms"):
        spikes.van_rossum_distance([1.0], [2.0], 0)
    with pytest.raises(ParameterError, match="too wide"):
        spikes.gamma_factor([1.0], np.arange(1.0, 100.0, 2.0), 4.0, 100.0)


def test_repeated_spike_times_count_once_with_a_warning():
    from spikeforge.errors import SpikeforgeWarning

    with pytest.warns(SpikeforgeWarning, match="repeats 1 spike time"):
        assert spikes.check_train([1.0, 1.0, 2.0]).tolist() == [1.0, 2.0]
