"""test's scores in rate space: PSTHs of the tested network against the target rates."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge import rls
from spikeforge.core import rng as streams
from spikeforge.core.store import read_h5
from spikeforge.rls import rate_evaluation

from conftest import SMALL


def test_model_psths_count_only_spikes_after_stim_off_and_average_over_trials():
    p = rls.Params(SMALL)  # stim_off 100 ms, train_duration 200 ms, dt 0.1 ms, learn_every 10 ms
    after = p.steps.stim_off_step + np.arange(1, p.steps.n_steps - p.steps.stim_off_step + 1, 100)  # every 10 ms
    before = np.arange(1, p.steps.stim_off_step, 10)  # dense spikes during the stimulus: not counted
    steps = np.concatenate([after, after, before])
    trials = np.concatenate([np.zeros(after.size), np.ones(after.size), np.zeros(before.size)]).astype(int)
    psth = rate_evaluation.model_psth(p, steps, np.zeros(steps.size, dtype=int), trials, np.zeros(steps.size, dtype=int),
                                      2, ntrials=2, n_tasks=1, smoothing_ms=8.0)
    assert psth.shape == (1, 20, 2)
    np.testing.assert_allclose(psth[0, 3:-3, 0], 100.0, rtol=0.01)  # one spike per 10 ms in each trial
    np.testing.assert_array_equal(psth[0, :, 1], 0.0)  # the second recorded neuron never spiked


def test_scores_are_perfect_for_the_target_itself_and_nan_for_hidden_neurons():
    p = rls.Params(SMALL)
    t = p.learn_every * np.arange(1, 21)
    target = np.stack([10 + 5 * np.sin(2 * np.pi * t / 200), 3 + 0.02 * t, np.full(20, np.nan)], axis=1)[None]
    scored = rate_evaluation.scores(p, np.nan_to_num(target, nan=7.0), target, ntrials=20, smoothing_ms=25.0)
    np.testing.assert_allclose(scored.correlation[:2], 1.0)
    np.testing.assert_allclose(scored.rms_error_hz[:2], 0.0, atol=1e-12)
    np.testing.assert_allclose(scored.mean_ratio[:2], 1.0)
    assert np.isnan([scored.correlation[2], scored.rms_error_hz[2], scored.mean_ratio[2],
                     scored.poisson_correlation[2]]).all()
    half = rate_evaluation.scores(p, 0.5 * np.nan_to_num(target), target, ntrials=20, smoothing_ms=25.0)
    np.testing.assert_allclose(half.mean_ratio[:2], 0.5)
    np.testing.assert_allclose(half.correlation[:2], 1.0)
    assert "2 recorded neurons, 20 trials" in scored.summary(20) and "median PSTH correlation 1.000" in scored.summary(20)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_poisson_ceiling_rises_with_the_number_of_trials(seed):
    p = rls.Params({**SMALL, "train_duration": 2000.0})
    t = p.learn_every * np.arange(1, p.steps.learn_nsteps + 1)
    target = np.stack([5 + 10 * np.exp(-((t - c) / 150) ** 2) for c in (300, 900, 1500)], axis=1)[None]
    ceilings = []
    for ntrials in (2, 20, 2000):
        psth = rate_evaluation.poisson_psth(p, target, ntrials, 25.0, streams.stream(seed, "ceiling", ntrials))
        ceilings.append(np.mean([np.corrcoef(psth[0, :, k], target[0, :, k])[0, 1] for k in range(3)]))
    assert ceilings[0] < ceilings[1] < ceilings[2] and ceilings[2] > 0.98 and ceilings[0] < 0.9


def test_test_reports_rate_space_scores_when_the_targets_came_from_spikes(tmp_path, capsys):
    from test_recordings import WINDOW, _poisson_recording

    trial, unit, time, _, _ = _poisson_recording(n_trials=30)
    np.savez(tmp_path / "rec.npz", trial=trial, unit=unit, time=time, window=WINDOW)
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    rls.init(directory, spikes_file=tmp_path / "rec.npz", verbose=False)
    rls.train(directory, nloops=2, verbose=False)
    rls.test(directory, ntrials=3, neurons=[0, 1, 2, 3, 500], plot=False)
    arrays, attrs = read_h5(directory / "test.h5")
    assert attrs["psth_smoothing_ms"] == 25.0 and arrays["rate/psth"].shape == (1, 20, 5)
    for name in ("correlation", "rms_error_hz", "mean_ratio", "poisson_correlation"):
        assert arrays[f"rate/{name}"].shape == (5,) and np.isnan(arrays[f"rate/{name}"][4])  # neuron 500 is hidden
        assert np.isfinite(arrays[f"rate/{name}"][:4]).sum() >= 3
    np.testing.assert_allclose(arrays["rate/mean_ratio"][:4], arrays["rate/psth"][0, :, :4].mean(axis=0)
                               / arrays["target_rate"][0, :, :4].mean(axis=0))
    assert "rate space (4 recorded neurons, 3 trials): median PSTH correlation" in capsys.readouterr().out


def test_the_single_trial_psth_correlation_of_a_training_loop():
    p = rls.Params(SMALL)  # stim_off 100 ms, 200 ms of learning times every 10 ms
    first_half = p.steps.stim_off_step + np.arange(1, 1000, 20)  # 500 Hz in the first 100 ms, none after
    spike_steps = np.zeros((3, 60), dtype=np.int32)
    spike_steps[0, :50] = first_half
    spike_steps[1, :50] = first_half
    spike_count = np.array([50, 50, 0])
    t = p.learn_every * np.arange(1, 21)
    high_then_low = np.where(t < 100, 40.0, 2.0)
    targets = np.stack([high_then_low, high_then_low[::-1], np.full(20, np.nan)], axis=1)
    # neuron 0 follows its target (+1), neuron 1 the reverse (about -1), neuron 2 is hidden: the median of two
    value = rate_evaluation.trial_psth_correlation(p, spike_steps, spike_count, targets, 10.0)
    single = rate_evaluation.trial_psth_correlation(p, spike_steps, spike_count, targets[:, [0, 2, 2]], 10.0)
    assert single > 0.9 and abs(value) < 0.1


def test_training_on_rate_targets_records_the_psth_correlation_and_reads_older_curves(tmp_path):
    import h5py

    from spikeforge.rls import example_recordings

    rates, _ = example_recordings.psth_set(256, 300.0)  # 256 units: a single trial has spikes in most
    trial, unit, time = example_recordings.poisson_trials(rates, 1.0, 30)
    np.savez(tmp_path / "rec.npz", trial=trial, unit=unit, time=time, window=[0.0, 300.0])
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    rls.init(directory, spikes_file=tmp_path / "rec.npz", verbose=False)
    result = rls.train(directory, nloops=2, correlation_interval=2, verbose=False)
    assert np.isnan(result.psth_correlation[0]) and np.isfinite(result.psth_correlation[1])
    with h5py.File(directory / "learning-curve.h5", "a") as f:  # as an earlier version wrote it
        del f["psth_correlation"]
    rls.train(directory, nloops=1, correlation_interval=1, verbose=False)
    curve, _ = read_h5(directory / "learning-curve.h5")
    assert np.isnan(curve["psth_correlation"][:2]).all() and np.isfinite(curve["psth_correlation"][2])
