"""The new -> init -> train -> test -> plot workflow on a small network."""

from __future__ import annotations

import shutil

import h5py
import numba
import numpy as np
import pytest

from spikeforge import rls
from spikeforge.core import rng as streams
from spikeforge.core.store import read_h5
from spikeforge.errors import ParameterError

from conftest import SMALL


def _weights(directory, label):
    arrays, _ = read_h5(directory / f"ckpt-{label}.h5", ["plastic/weight", "P"])
    return arrays["plastic/weight"], arrays["P"]


def test_init_saves_a_consistent_network(small_run):
    arrays, attrs = read_h5(small_run / "init.h5")
    p = rls.Params({})  # defaults, to check that the file holds the small network instead
    assert arrays["P"].shape[0] == 1024 != p.n_cells
    assert arrays["targets"].shape == (1, 20, 1024) and arrays["stimulus"].shape == (1, 500, 1024)
    assert attrs["rate_exc_hz"] > 0 and attrs["rate_inh_hz"] > 0
    assert {tuple(s["path"]) for s in attrs["rng_streams"]} >= {("static_weights",), ("targets", 0)}
    # tsn.md 4.3: target[j, i] = amp sin(2 pi (t_j - phase_i) / period) + u_mean[i], t_j = stim_off + j learn_every,
    # phase_i = period U(0, 1) from the task's own stream
    p = rls.Params(SMALL)
    phase = p.target_period * streams.stream(p.seed, "targets", 0).random(p.n_cells)
    t = p.stim_off + p.learn_every * np.arange(1, 21)
    expected = p.target_amp * np.sin(2 * np.pi * (t[:, None] - phase) / p.target_period) + arrays["init/u_mean"]
    np.testing.assert_allclose(arrays["targets"][0], expected, rtol=1e-12, atol=1e-12)


def test_results_do_not_depend_on_the_number_of_threads(small_run, tmp_path, monkeypatch):
    """The threaded step kernel (forced here: 1024 neurons are below its default size) and the
    threaded RLS update give the spikes, weights and P of one thread."""
    from spikeforge.core.backends import get_backend, numba_network

    made = []
    make = numba_network._make_run_steps
    monkeypatch.setattr(numba_network, "_make_run_steps", lambda *key: made.append(key) or make(*key))
    threaded = get_backend("numba", parallel_min_neurons=0)
    outcomes = []
    for threads in (1, 2):
        directory = tmp_path / f"threads{threads}"
        shutil.copytree(small_run, directory)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            rls.train(directory, nloops=2, verbose=False, backend=threaded)
            rls.test(directory, ntrials=1, neurons=range(1024), plot=False, verbose=False, backend=threaded)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        spikes, _ = read_h5(directory / "test.h5", ["spike_step", "spike_neuron"])
        outcomes.append((*_weights(directory, "2"), spikes["spike_step"], spikes["spike_neuron"]))
    if numba.config.NUMBA_NUM_THREADS > 1:
        assert any(parallel for parallel, *_ in made) and any(not parallel for parallel, *_ in made)
    assert outcomes[0][2].size > 100  # the network is active
    for one, two in zip(*outcomes):
        np.testing.assert_array_equal(one, two)


def test_restoring_a_checkpoint_continues_exactly(small_run, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(small_run, resumed)
    rls.train(small_run, nloops=4, correlation_interval=2, verbose=False)
    rls.train(resumed, nloops=2, correlation_interval=2, verbose=False)
    result = rls.train(resumed, nloops=2, correlation_interval=2, restore_from_checkpoint="2", verbose=False)
    assert result.loops == [3, 4]
    for straight, restored in zip(_weights(small_run, "4"), _weights(resumed, "4")):
        np.testing.assert_array_equal(straight, restored)
    assert not np.array_equal(_weights(small_run, "4")[0], read_h5(small_run / "init.h5")[0]["plastic/weight"])
    curve, units = read_h5(resumed / "learning-curve.h5")
    np.testing.assert_array_equal(curve["loop"], [1, 2, 3, 4])
    assert np.isnan(curve["correlation"][[0, 2]]).all() and np.isfinite(curve["correlation"][[1, 3]]).all()
    assert (curve["elapsed_time"] > 0).all() and (curve["firing_rate"] > 0).all() and (curve["max_memory"] > 0).all()
    straight_curve, _ = read_h5(small_run / "learning-curve.h5")
    np.testing.assert_array_equal(straight_curve["correlation"], curve["correlation"])


def test_training_raises_the_correlation_and_keeps_the_best_checkpoint(small_run):
    result = rls.train(small_run, nloops=15, correlation_interval=1, save_best_checkpoint=True, verbose=False)
    assert np.mean(result.correlation[-3:]) > np.mean(result.correlation[:3]) + 0.1
    best = [f for f in small_run.glob("ckpt-*-cor*.h5")]
    assert len(best) == 1
    _, attrs = read_h5(best[0], [])
    assert attrs["correlation"] == pytest.approx(max(result.correlation))
    assert best[0].name == f"ckpt-{attrs['loop']}-cor{max(result.correlation):.3f}.h5"
    # a best checkpoint can be restored (deleting the later ones), and loop numbers continue after it
    label = best[0].name[5:-3]
    with pytest.raises(ParameterError, match="--discard-later"):
        rls.train(small_run, nloops=1, restore_from_checkpoint=label, verbose=False)
    resumed = rls.train(small_run, nloops=1, restore_from_checkpoint=label, discard_later=True, verbose=False)
    assert resumed.loops == [attrs["loop"] + 1]
    assert sorted(f.name for f in small_run.glob("ckpt-*.h5")) == sorted([best[0].name, f"ckpt-{attrs['loop'] + 1}.h5"])


def test_test_records_spikes_and_currents_and_plots_them(small_run):
    rls.train(small_run, nloops=2, verbose=False)
    path = rls.test(small_run, ntrials=3, neurons=[0, 5, 200], plot=True, verbose=False)
    with h5py.File(path) as f:
        assert list(f["neurons"][:]) == [0, 5, 200]
        assert f["u_total"].shape == (3, 1, 20, 3)
        steps = f["spike_step"][:]
        assert steps.size > 0 and steps.min() >= 1 and steps.max() <= 3000
        assert set(f["spike_neuron"][:]) <= {0, 5, 200} and set(f["spike_trial"][:]) <= {0, 1, 2}
        assert f.attrs["checkpoint"] == "2"
        np.testing.assert_allclose(f["learn_times"][:], 100 + 10 * np.arange(1, 21))
    for kind in ("syninput", "psth"):
        for suffix in ("png", "pdf"):
            assert (small_run / f"test-{kind}-task0.{suffix}").stat().st_size > 1000
    # trials are reproducible: the same stream per (trial, task)
    first = read_h5(path)[0]
    rls.test(small_run, ntrials=3, neurons=[0, 5, 200], plot=False, verbose=False)
    np.testing.assert_array_equal(read_h5(path)[0]["spike_step"], first["spike_step"])
