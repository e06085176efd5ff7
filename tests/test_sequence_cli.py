"""`spikeforge sequence`: the configuration file, the run's files and guarantees (the Python API's result,
resume after a signal equal to an uninterrupted run, refusals, --force), and one `error:` line with exit
status 2 and nothing written for every kind of bad input."""

from __future__ import annotations

import signal
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import assert_user_error, invoke, stop_once_written

SMALL = """\
seed = 4
training_s = {training_s}
test_s = 2.0
tests = 2
snapshot_every_s = 10

[network]
grid_shape = [{rows}, 3]
k_min = 2
k_max = 4
n_inputs = 20
n_links = 20

[inputs]
t_noise_range = [200.0, 300.0]
"""


def write_config(tmp_path: Path, name="small.toml", training_s=20, rows=3, extra="") -> Path:
    path = tmp_path / name
    path.write_text(SMALL.format(training_s=training_s, rows=rows) + extra)
    return path


def test_new_writes_the_full_scale_configuration(tmp_path):
    from spikeforge.sequence import config

    path = tmp_path / "full.toml"
    assert invoke("sequence", "new", path, "--training-s", "50").exit_code == 0
    loaded = config.load(path)
    assert loaded.training_s == 50 and loaded.seed is None and loaded.tests == 2
    network, training, testing = loaded.build()
    assert network.grid.shape == (10, 5) and network.n_inputs == 100 and network.links.sum() == 1000
    assert training.config.t_noise_range == (300.0, 500.0) and testing.config.t_noise_range == (300.0, 800.0)
    assert training.config.r_input == 5.0 and training.config.mode == "random_switching"
    assert_user_error(invoke("sequence", "new", path), "already exists", "--force")


def test_run_writes_its_files_and_agrees_with_the_python_api(tmp_path):
    from spikeforge.sequence import config, experiment, files

    path = write_config(tmp_path)
    result = invoke("sequence", "run", path)
    assert result.exit_code == 0, result.output
    out = tmp_path / "small"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        ["run.h5", "scores.csv", "raster.png", "raster-untrained.png", "circuits.png", "weights.png",
         "selectivity.png"])
    # the same experiment through the Python API
    network, training, testing = config.load(path).build()
    untrained = [experiment.test_run(network, testing, 4, k, 2000.0) for k in range(2)]
    experiment.train(network, training, 4, 20_000.0)
    trained = [experiment.test_run(network, testing, 4, 2 + k, 2000.0) for k in range(2)]
    with h5py.File(out / "run.h5") as handle:
        assert handle.attrs["status"] == "finished" and handle.attrs["seed"] == 4
        assert np.array_equal(handle["state/weight"][()], network.state.weight)
        assert handle["training/weights"].shape == (3, network.synapses.pre.size)  # 0, 10, 20 s
        assert np.array_equal(handle["training/snapshot_ms"][()], [0.0, 10_000.0, 20_000.0])
    for name, runs in (("trained", trained), ("untrained", untrained)):
        saved = files.tests(out / "run.h5", name)
        assert len(saved) == 2
        for ours, theirs in zip(saved, runs):
            assert np.array_equal(ours.spikes, theirs.spikes)
            assert np.array_equal(ours.inputs.spikes, theirs.inputs.spikes)
            assert np.array_equal(ours.inputs.from_pattern, theirs.inputs.from_pattern)
            assert ours.inputs.phases == theirs.inputs.phases
    expected = experiment.scores(trained[0], trained[1]).readout
    rows = dict(line.split(",", 1) for line in (out / "scores.csv").read_text().splitlines())
    assert float(rows["readout"].split(",")[1]) == pytest.approx(expected, rel=1e-5)
    # a finished run is kept; a changed configuration is named; --force replaces
    assert_user_error(invoke("sequence", "run", path), "already holds a finished run")
    changed = write_config(tmp_path, training_s=30)
    assert_user_error(invoke("sequence", "run", changed), "made with training_s = 20", "not 30")
    nested = write_config(tmp_path, name="nested.toml")
    nested.write_text(nested.read_text().replace("n_links = 20\n", "n_links = 20\neta0 = 0.06\n"))
    assert_user_error(invoke("sequence", "run", nested, "--out", out), "made with [network] eta0 = (unset), not 0.06")
    assert invoke("sequence", "run", changed, "--force").exit_code == 0
    with h5py.File(out / "run.h5") as handle:
        assert handle.attrs["trained_steps"] == 30_000


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    path = write_config(tmp_path, training_s=60, rows=8)
    whole = tmp_path / "whole"
    assert invoke("sequence", "run", path, "--out", whole).exit_code == 0
    part = tmp_path / "part"
    status, stderr = stop_once_written(["sequence", "run", path, "--out", part], part / "run.h5", signal.SIGTERM)
    assert status == 143, stderr
    assert "the same command resumes the run" in stderr
    with h5py.File(part / "run.h5") as handle:
        assert handle.attrs["status"] == "interrupted"
        saved = handle.attrs["trained_steps"]
    assert saved % 10_000 == 0 and 0 < saved < 60_000
    resumed = invoke("sequence", "run", path, "--out", part)
    assert resumed.exit_code == 0 and "resuming the run" in resumed.output
    with h5py.File(whole / "run.h5") as a, h5py.File(part / "run.h5") as b:
        for name in ("state/weight", "training/spike_ms", "training/spike_neuron", "trained/test_1/spike_ms",
                     "training/weights"):
            assert np.array_equal(a[name][()], b[name][()]), name
    assert (whole / "scores.csv").read_text() == (part / "scores.csv").read_text()


def test_a_signal_just_after_the_first_save_marks_the_run_interrupted(tmp_path, monkeypatch):
    """The signal lands the moment run.h5 first exists (where a timed kill can land): the run still
    trains to its next stopping point, marks run.h5 interrupted and says how to resume."""
    import os

    from spikeforge.sequence import files

    write = files.Saver.__call__
    sent = []

    def write_then_signal(self, progress, status, scores=None):
        write(self, progress, status, scores)
        if not sent:
            sent.append(status)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(files.Saver, "__call__", write_then_signal)
    path = write_config(tmp_path)
    result = invoke("sequence", "run", path)
    assert sent == ["running"] and result.exit_code == 143, result.output
    assert "the same command resumes the run" in result.stderr, result.stderr
    with h5py.File(tmp_path / "small" / "run.h5") as handle:
        assert handle.attrs["status"] == "interrupted" and handle.attrs["trained_steps"] == 10_000


@pytest.mark.parametrize("old, new, fragments", [
    ("k_min = 2", "k_min = 5", ["k_min = 5, k_max = 4"]),
    ("n_inputs = 20", "n_inputs = -3", ["n_inputs = -3"]),
    ("n_links = 20", "grid_typo = 1", ["[network] has no setting 'grid_typo'"]),
    ("[inputs]", "[test]\nmode = \"shuffle\"\n[inputs]", ["switching mode 'shuffle'"]),
    ("[inputs]", "[inputs]\nr_noise = -1.0", ["[inputs] r_noise = -1.0 Hz", "rate >= 0"]),
    ("k_min = 2", "k_min = 2.5", ["[network] k_min = 2.5; expected a whole number"]),
    ("[inputs]", "[test]\nt_noise_rnge = [1.0, 2.0]\n[inputs]", ["[test] the inputs have no setting 't_noise_rnge'",
                                                                   "did you mean 't_noise_range'"]),
    ("[inputs]", "[inputs]\ndt = 0.5", ["[inputs] dt is the network's"]),
    ("[inputs]", "[inputs]\ntime_warp = 1.0", ["[inputs] time_warp = 1.0; expected two numbers"]),
    ("n_inputs = 20", "n_inputs = 10000000", ["this run needs about", "available"]),
    ("[inputs]", "[inputs]\nt_pattern = [3000.0]", ["test_s = 2 s is shorter than a noise phase and a pattern "
                                                     "sequence"]),
])
def test_bad_network_and_input_settings(tmp_path, old, new, fragments):
    path = tmp_path / "bad.toml"
    path.write_text(SMALL.format(training_s=20, rows=3).replace(old, new))
    assert_user_error(invoke("sequence", "run", path), *fragments)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("text, fragments", [
    (SMALL.format(training_s=20, rows=3).replace("[3, 3]", "[0, 3]"), ["grid shape 0 x 3 is empty"]),
    ("seed = 1\ntraining = 5\n", ["has no setting 'training'", "training_s"]),
    ("tests = 1\n", ["tests = 1; expected a finite number >= 2"]),
    ("training_s = inf\n", ["training_s = inf; expected a finite number >= 0"]),
    ("training_s = -5\n", ["training_s = -5"]),
    ("seed = -1\n", ["seed = -1"]),
    ("[network\n", ["is not valid TOML"]),
    ("network = 3\n", ["network must be a table"]),
])
def test_bad_configuration_files(tmp_path, text, fragments):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert_user_error(invoke("sequence", "run", path), *fragments)
    assert not (tmp_path / "bad").exists()


def test_a_missing_configuration_and_a_file_in_the_way(tmp_path):
    assert_user_error(invoke("sequence", "run", tmp_path / "none.toml"), "does not exist")
    path = write_config(tmp_path)
    (tmp_path / "small").write_text("not a directory")
    assert_user_error(invoke("sequence", "run", path), "is a file")


def test_seeds_run_as_dask_jobs_and_their_table_matches_each_run(tmp_path):
    path = write_config(tmp_path, training_s=10)
    out = tmp_path / "seeds"
    result = invoke("sequence", "run", path, "--out", out, "--seeds", "5,6", "--workers", "2")
    assert result.exit_code == 0, result.output
    lines = (out / "seeds.csv").read_text().splitlines()
    header = lines[0].split(",")
    table = {row.split(",")[0]: dict(zip(header, row.split(","))) for row in lines[1:]}
    assert set(table) == {"5", "6", "mean", "sd"}
    for seed in ("5", "6"):
        scores = dict(line.split(",", 1) for line in (out / f"seed-{seed}" / "scores.csv").read_text().splitlines())
        untrained, trained = (float(v) for v in scores["readout"].split(","))
        assert float(table[seed]["trained_readout"]) == pytest.approx(trained, rel=1e-5)
        assert float(table[seed]["untrained_readout"]) == pytest.approx(untrained, rel=1e-5)
        with h5py.File(out / f"seed-{seed}" / "run.h5") as handle:
            assert handle.attrs["seed"] == int(seed)
    mean = (float(table["5"]["trained_readout"]) + float(table["6"]["trained_readout"])) / 2
    assert float(table["mean"]["trained_readout"]) == pytest.approx(mean, rel=1e-5)
    again = invoke("sequence", "run", path, "--out", out, "--seeds", "5,6", "--workers", "2")
    assert again.exit_code == 0 and "2 of 2 seeds already done (kept)" in again.output
    assert_user_error(invoke("sequence", "run", path, "--seeds", "5,5"), "expected distinct seeds")
