"""Targets from files (currents, or rates through the Siegert function) and multiple tasks."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from spikeforge import rls
from spikeforge.cli import cli
from spikeforge.core.store import read_h5
from spikeforge.errors import DataFileError, ParameterError
from spikeforge.rls import siegert
from spikeforge.rls.training import task_of_loop

from conftest import SMALL

N, T = SMALL["n_cells"], 20  # neurons, learning steps


def test_two_sinusoid_tasks_differ_and_train_test_and_plot(tmp_path):
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    model = rls.init(directory, n_tasks=2, verbose=False)
    assert model.targets.shape == (2, T, N) and model.stimulus.shape[0] == 2
    assert not np.allclose(model.targets[0], model.targets[1])  # each task has its own phases
    assert not np.allclose(model.stimulus[0], model.stimulus[1])
    curve = rls.train(directory, nloops=3, verbose=False)
    assert curve.loops == [1, 2, 3]
    saved, _ = read_h5(directory / "learning-curve.h5", ["task"])
    np.testing.assert_array_equal(saved["task"], [0, 1, 0])
    rls.test(directory, ntrials=2, neurons=[0, 1, 2, 3], verbose=False)
    with h5py.File(directory / "test.h5") as f:
        assert f["u_total"].shape == (2, 2, T, 4) and set(f["spike_task"][:]) == {0, 1}
    for task in (0, 1):
        assert (directory / f"test-syninput-task{task}.png").exists()
        assert (directory / f"test-psth-task{task}.pdf").exists()


def test_random_task_schedule_is_reproducible_and_uses_every_task():
    p = rls.Params({**SMALL, "task_schedule": "random"})
    tasks = [task_of_loop(p, loop, 3) for loop in range(1, 40)]
    assert set(tasks) == {0, 1, 2} and tasks == [task_of_loop(p, loop, 3) for loop in range(1, 40)]


def test_target_currents_from_a_npy_file_with_two_tasks(tmp_path):
    rng = np.random.default_rng(1)
    currents = rng.normal(-1, 0.3, size=(T, N, 2))
    path = tmp_path / "utarg.npy"
    np.save(path, currents)
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    model = rls.init(directory, utarg_file=path, verbose=False)
    np.testing.assert_array_equal(model.targets, np.moveaxis(currents, 2, 0))
    rls.train(directory, nloops=2, verbose=False)
    curve, _ = read_h5(directory / "learning-curve.h5", ["task", "correlation"])
    np.testing.assert_array_equal(curve["task"], [0, 1])  # loop 1 learns task 0's file column, loop 2 task 1's
    rls.test(directory, ntrials=1, neurons=[0, 5, 9], plot=False, verbose=False)
    tested, _ = read_h5(directory / "test.h5", ["target", "u_total"])
    np.testing.assert_array_equal(tested["target"], np.moveaxis(currents[:, [0, 5, 9]], 2, 0))
    # the correlation is measured against each loop's own task: the file's currents, not the sinusoids
    assert tested["u_total"].shape == (1, 2, T, 3) and np.all(np.abs(curve["correlation"]) <= 1)


def test_rates_from_hdf5_become_currents_that_follow_them(tmp_path):
    rates = np.full((T, N), 3.0)
    rates[:, 0] = np.linspace(1, 40, T)  # rising ramp
    rates[:, 1] = np.linspace(40, 1, T)  # falling ramp
    rates[:, 2] = 0.0  # silent: raised to 0.1 Hz
    path = tmp_path / "psth.h5"
    with h5py.File(path, "w") as f:
        f["rate"] = rates
        f["bins"] = np.arange(T)  # a second dataset: the one named "rate" is used
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    model = rls.init(directory, spikerate_file=path, verbose=False)
    u = model.targets[0]
    assert np.all(np.diff(u[:, 0]) > 0) and np.all(np.diff(u[:, 1]) < 0)
    # currents convert back to the rates through the Siegert function of each neuron
    p = model.p
    sigma = model.init_stats["ustd0"] / np.sqrt(1.3 * p.tau_bale)
    back = siegert.transfer(u + p.x_bale, sigma, p.tau_meme, p.threshe, p.vre)
    np.testing.assert_allclose(back[:, :2], rates[:, :2], rtol=1e-6)
    np.testing.assert_allclose(back[:, 2], 0.1, rtol=1e-6)
    rls.train(directory, nloops=1, verbose=False)
    rls.test(directory, ntrials=1, neurons=[0, 1], verbose=False)
    with h5py.File(directory / "test.h5") as f:
        np.testing.assert_array_equal(f["target_rate"][0], rates[:, :2])


@pytest.mark.parametrize("content, message", [
    (np.zeros((T + 1, N)), "has shape (21, 1024); expected (time = 20, neurons = 1024"),
    (np.zeros((T, N - 1)), "has shape (20, 1023)"),
    (np.where(np.arange(N) == 7, np.nan, 1.0) * np.ones((T, 1)), "neuron 7, task 0 is nan"),
])
def test_bad_target_files_are_errors_and_nothing_is_written(tmp_path, content, message):
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    path = tmp_path / "bad.npy"
    np.save(path, content)
    with pytest.raises(DataFileError) as info:
        rls.init(directory, utarg_file=path, verbose=False)
    assert message in str(info.value) and not (directory / "init.h5").exists()


def test_negative_rates_and_two_files_are_errors(tmp_path):
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    rates = np.ones((T, N))
    rates[4, 9] = -2.0
    np.save(tmp_path / "r.npy", rates)
    with pytest.raises(DataFileError, match=r"r.npy': the rate at row 4, unit 9, task 0 is -2.0 Hz; expected a rate in "
                                            r"\[0, max_rate"):
        rls.init(directory, spikerate_file=tmp_path / "r.npy", verbose=False)
    with pytest.raises(ParameterError, match="give one target file, not a target-current file and a spike-rate file"):
        rls.init(directory, spikerate_file=tmp_path / "r.npy", utarg_file=tmp_path / "r.npy", verbose=False)
    result = CliRunner().invoke(cli, ["init", str(directory), "--utarg-file", str(tmp_path / "none.h5")])
    assert result.exit_code == 2 and "none.h5' does not exist" in result.stderr
    assert not (directory / "init.h5").exists()


def _rates_file(path, rates, time=None):
    if path.suffix == ".npy":
        np.save(path, rates)
    else:
        with h5py.File(path, "w") as f:
            f["rates"] = rates
            if time is not None:
                f["time"] = time
    return path


TIME = 5.0 * np.arange(301)  # 1500 ms in 5-ms rows


@pytest.mark.parametrize("name, rates, time, rate_dt, message", [
    ("r.npy", np.zeros((0, 96)), None, 10.0, "r.npy' has no rows (shape (0, 96))"),
    ("r.h5", np.zeros((0, 96)), np.zeros(0), None, "r.h5' has no rows (shape (0, 96))"),
    ("r.h5", np.ones((301, 96)), TIME[::-1], None,
     "the time axis is not strictly increasing: row 1 is at 1495 ms, row 0 at 1500 ms"),
    ("r.h5", np.ones((301, 96)), np.where(np.arange(301) == 50, TIME[49], TIME), None,
     "the time axis is not strictly increasing: row 50 is at 245 ms, row 49 at 245 ms"),
    ("r.h5", np.ones((301, 96)), TIME[:298], None, "the time axis has 298 values but the rates have 301 rows"),
    ("r.h5", np.ones((301, 96)), TIME[:, None], None,
     "the time axis has shape (301, 1); expected a 1-D axis of one time [ms] per row of rates, shape (301,)"),
    ("r.h5", np.ones((1, 96)), TIME[:1], None, "r.h5' has 1 row; a time axis needs at least 2 rows"),
    ("r.npy", np.ones((1, 96)), None, 10.0, "r.npy' has 1 row; a time axis needs at least 2 rows"),
    ("r.h5", np.ones((301, 96)), np.where(np.arange(301) == 7, np.nan, TIME), None,
     "the time axis holds nan at row 7; expected finite times [ms]"),
    ("r.h5", np.ones((301, 96)), TIME.astype("S"), None, "the time axis holds text; expected real times [ms]"),
    ("r.npy", np.where(np.arange(301)[:, None] == 10, np.nan, np.ones((301, 96))), None, 10.0,
     "the value at row 10 (time 100 ms), unit 0, task 0 is nan; expected a finite number"),
])
def test_rate_files_with_a_bad_time_axis_are_refused_before_their_length_is_used(tmp_path, name, rates, time, rate_dt,
                                                                                 message):
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    path = _rates_file(tmp_path / name, rates, time)
    with pytest.raises(DataFileError, match=re.escape(message)):
        rls.init(directory, spikerate_file=path, rate_dt_ms=rate_dt, verbose=False)
    assert not (directory / "init.h5").exists()


def test_an_empty_rate_file_with_a_time_axis_is_one_line_from_the_command_line(tmp_path):
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    path = _rates_file(tmp_path / "r.npy", np.zeros((0, 96)))
    result = CliRunner().invoke(cli, ["init", str(directory), "--spikerate-file", str(path), "--rate-dt", "10"])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        f"error: spike-rate file '{path}' has no rows (shape (0, 96)); expected rates over time, one row per time"]
    assert not (directory / "init.h5").exists()


def test_the_ou_target_bias_follows_the_euler_recurrence_and_is_common_to_all_neurons():
    """tsn.md 4.3, biasType = :ou: bias_1 = 0, bias_{i+1} = bias_i + b (mu - bias_i) dt + sig sqrt(dt) xi_i
    on every step, sampled at the learning times; the phases do not change."""
    from spikeforge.core import rng as streams
    from spikeforge.rls import targets

    settings = {**SMALL, "target_bias": "ou", "target_bias_mu": 0.3, "target_bias_b": 0.01, "target_bias_sig": 0.2}
    p, plain = rls.Params(settings), rls.Params(SMALL)
    mean = np.linspace(-1, 1, N)
    with_bias = targets.sinusoids(p, mean, streams.stream(7, "targets", 0))
    without = targets.sinusoids(plain, mean, streams.stream(7, "targets", 0))
    bias = with_bias - without
    np.testing.assert_allclose(bias, np.broadcast_to(bias[:, :1], bias.shape), atol=1e-12)  # the same for every neuron
    rng = streams.stream(7, "targets", 0)
    rng.random(N)  # the phases come first
    xi = rng.standard_normal(p.steps.n_steps - 1)
    value, by_step = 0.0, [0.0]
    for i in range(p.steps.n_steps - 1):  # the recurrence, step by step
        value = value + 0.01 * (0.3 - value) * p.dt + 0.2 * np.sqrt(p.dt) * xi[i]
        by_step.append(value)
    learning_steps = [round((p.stim_off + j * p.learn_every) / p.dt) for j in range(1, T + 1)]
    np.testing.assert_allclose(bias[:, 0], [by_step[s - 1] for s in learning_steps], rtol=1e-9, atol=1e-12)
    assert np.ptp(bias) > 0.1
