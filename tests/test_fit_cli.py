"""`spikeforge fit`: data formats, the run's guarantees (resume after Ctrl-C, refusals, --force), the
report, and one `error:` line with exit status 2 and nothing written for every kind of bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import assert_user_error, invoke as run, publish_figures, stop_once_written
from spikeforge.fit.data import detect_spikes, load_cell

PROTOCOL = ["--delay", "100", "--duration", "1000", "--total", "1200"]
QUICK = [*PROTOCOL, "--population", "8", "--generations", "4", "--restarts", "2", "--seed", "3"]


@pytest.fixture(scope="module")
def cell_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fitdata") / "cell.h5"
    result = run("fit", "synthetic", "cell", path, "--preset", "RS", "--amplitudes", "100,125,150", "--gain", "0.1",
                 *PROTOCOL)
    assert result.exit_code == 0, result.output
    return path


def test_synthetic_cell_file_holds_the_amplitudes_and_the_truth(cell_file):
    amplitudes, trains = load_cell(cell_file)
    assert amplitudes.tolist() == [100.0, 125.0, 150.0]
    assert [t.size for t in trains] == [23, 29, 34]  # more current, more spikes
    with h5py.File(cell_file) as handle:
        assert '"a": 0.02' in handle.attrs["truth"] and '"d": 8.0' in handle.attrs["truth"]


def test_fit_cell_writes_results_and_refuses_to_replace_them(cell_file, tmp_path):
    out = tmp_path / "fit"
    result = run("fit", "cell", cell_file, out, "--sweeps", "0,2", *QUICK)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["fit.h5", "fit.png",
                                                                                  "parameters.csv"]
    table = (out / "parameters.csv").read_text().splitlines()
    assert table[0].startswith("parameter,best,unit") and [row.split(",")[0] for row in table[1:]] == list("abcd")
    with h5py.File(out / "fit.h5") as handle:
        assert handle["restart_0/losses"].shape == (4, 8) and handle.attrs["status"] == "finished"
        assert handle["restart_0/covariance"].shape == (4, 4, 4)
    assert_user_error(run("fit", "cell", cell_file, out, "--sweeps", "0,2", *QUICK), "already holds a finished fit",
                      "--force")
    assert_user_error(run("fit", "cell", cell_file, out, "--sweeps", "0,2", *QUICK[:-1], "4"),
                      "made with seed = 3, not 4")
    assert_user_error(run("fit", "cell", cell_file, out, "--sweeps", "0,1", *QUICK), "made with data")
    replaced = run("fit", "cell", cell_file, out, "--sweeps", "0,2", *QUICK[:-1], "4", "--force")
    assert replaced.exit_code == 0, replaced.output
    report = run("fit", "report", out, "--data", cell_file, "--sweeps", "1")
    assert report.exit_code == 0, report.output
    assert (out / "held_out.csv").exists() and (out / "held_out.png").exists()
    assert "125" in (out / "held_out.csv").read_text()


def test_interrupted_fit_resumes_to_the_uninterrupted_result(cell_file, tmp_path):
    args = ["fit", "cell", str(cell_file), None, "--sweeps", "0,2", *PROTOCOL, "--population", "8",
            "--generations", "30", "--restarts", "2", "--patience", "0", "--seed", "5"]
    whole = tmp_path / "whole"
    assert run(*[a if a is not None else whole for a in args]).exit_code == 0
    part = tmp_path / "part"
    status, stderr = stop_once_written([a if a is not None else part for a in args], part / "fit.h5", signal.SIGINT)
    assert status == 130, stderr
    assert "the same command resumes the fit" in stderr
    with h5py.File(part / "fit.h5") as handle:
        assert handle.attrs["status"] == "interrupted"
        saved = sum(handle[f"restart_{k}/losses"].shape[0] for k in range(handle.attrs["restarts_saved"]))
    assert 1 <= saved < 60
    resumed = run(*[a if a is not None else part for a in args])
    assert resumed.exit_code == 0 and "resuming the fit" in resumed.output
    assert_same_fit(whole, part)
    # restarts as Dask jobs: Ctrl-C (process group) after the first restart keeps it; the same command, even
    # without --seed, takes the kept restart's seed, runs the other and gives the fit of one process
    on_dask = tmp_path / "dask"
    dask_args = [a if a is not None else on_dask for a in args] + ["--workers", "1"]
    status, stderr = stop_once_written(dask_args, on_dask / "restarts" / "restart-0.h5", signal.SIGINT, group=True)
    assert status == 130 and "Traceback" not in stderr, stderr
    assert "finished restarts are kept" in stderr and not (on_dask / "fit.h5").exists()
    changed = [a if a != "30" else "31" for a in dask_args]  # --generations 30 -> 31: the kept restart is not lost
    assert_user_error(run(*changed), "made with generations = 30, not 31", "--force")
    assert (on_dask / "restarts" / "restart-0.h5").exists()
    finished = run(*[a for a in dask_args if a not in ("--seed", "5")])
    assert finished.exit_code == 0, finished.output
    assert "restarts are in" in finished.output and "(seed 5)" in finished.output
    assert not (on_dask / "restarts").exists()
    assert_same_fit(whole, on_dask)


def assert_same_fit(first, second):
    with h5py.File(first / "fit.h5") as a, h5py.File(second / "fit.h5") as b:
        assert a.attrs["restarts_saved"] == b.attrs["restarts_saved"]
        for k in range(a.attrs["restarts_saved"]):
            assert np.array_equal(a[f"restart_{k}/losses"][()], b[f"restart_{k}/losses"][()])
            assert np.array_equal(a[f"restart_{k}/candidates"][()], b[f"restart_{k}/candidates"][()])


def test_network_fit_and_report(tmp_path):
    data = tmp_path / "net.h5"
    assert run("fit", "synthetic", "network", data, "--connectivity-seed", "7").exit_code == 0
    out = tmp_path / "netfit"
    result = run("fit", "network", data, out, "--connectivity-seed", "7", "--population", "8", "--generations", "3",
                 "--restarts", "1", "--seed", "1")
    assert result.exit_code == 0, result.output
    report = run("fit", "report", out, "--format", "png,pdf", "--noise-seeds", "2")
    assert report.exit_code == 0, report.output
    assert "noise floor: the best parameters under 2 other connectivity seeds" in report.output
    comparisons, floor = (out / "report.csv").read_text().split("\n\n")
    rows = comparisons.splitlines()
    assert rows[0].startswith("population,measure") and {row.split(",")[0] for row in rows[1:]} == {"E", "I"}
    assert [row.split(",")[0] for row in floor.splitlines()] == ["connectivity_seed", "8", "9", "fit"]
    assert (out / "report.pdf").exists()
    assert_user_error(run("fit", "report", out, "--data", data), "--data (held-out sweeps) is for cell fits")
    assert_user_error(run("fit", "network", data, tmp_path / "short", "--duration", "500", "--connectivity-seed", "7"),
                      "spikes after 500 ms")
    assert not (tmp_path / "short").exists()
    spikes = tmp_path / "x.csv"
    spikes.write_text("150\n300\n")
    assert_user_error(run("fit", "cell", spikes, out, "--amplitudes", "1", *QUICK),
                      "holds a network fit, not a cell fit")


# --- data formats ---------------------------------------------------------------------------------


def test_csv_formats(tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("time_ms\n5.0\n10.5\n")
    assert [t.tolist() for t in load_cell(one, [50.0])[1]] == [[5.0, 10.5]]
    two = tmp_path / "two.csv"
    two.write_text("0, 5.0\n1, 7.0\n0, 9.0\n")
    amplitudes, trains = load_cell(two, [50.0, 60.0])
    assert [t.tolist() for t in trains] == [[5.0, 9.0], [7.0]]


def test_voltage_traces_are_detected_by_threshold(tmp_path):
    trace = np.full(1000, -70.0)
    trace[100:103] = [-20.0, 10.0, 20.0]  # crosses 0 mV between samples 100 and 101
    trace[500] = 5.0
    assert detect_spikes(trace, 0.1).tolist() == pytest.approx([(100 + 20 / 30) * 0.1, (499 + 70 / 75) * 0.1])
    path = tmp_path / "traces.npy"
    np.save(path, np.stack([trace, trace]))
    amplitudes, trains = load_cell(path, [1.0, 2.0], trace_dt=0.1)
    assert [t.size for t in trains] == [2, 2]


def test_neo_block_with_voltage_and_amplitude_annotations(tmp_path):
    neo = pytest.importorskip("neo")
    import quantities as pq

    block = neo.Block()
    for amplitude in (100.0, 200.0):
        segment = neo.Segment()
        segment.annotate(amplitude=amplitude)
        voltage = np.full(2000, -70.0)
        voltage[[300, 900]] = 20.0
        segment.analogsignals.append(neo.AnalogSignal(voltage[:, None] * pq.mV, sampling_period=0.5 * pq.ms))
        block.segments.append(segment)
    path = tmp_path / "cell.pkl"
    neo.io.PickleIO(str(path)).write_block(block)
    amplitudes, trains = load_cell(path)
    assert amplitudes.tolist() == [100.0, 200.0]
    assert trains[0] == pytest.approx([(299 + 70 / 90) * 0.5, (899 + 70 / 90) * 0.5])


def test_nwb_units_and_trials_with_an_amplitude_column(tmp_path):
    pynwb = pytest.importorskip("pynwb")
    from datetime import datetime, timezone

    nwb = pynwb.NWBFile(session_description="cell", identifier="x", session_start_time=datetime.now(timezone.utc))
    nwb.add_trial_column("amplitude", "current step [pA]")
    nwb.add_trial(start_time=0.0, stop_time=2.0, amplitude=100.0)
    nwb.add_trial(start_time=10.0, stop_time=12.0, amplitude=150.0)
    nwb.add_unit(spike_times=[0.5, 1.0, 10.2, 10.4, 10.6])
    path = tmp_path / "cell.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    amplitudes, trains = load_cell(path, total_ms=2000.0)
    assert amplitudes.tolist() == [100.0, 150.0]
    assert [t.tolist() for t in trains] == [[500.0, 1000.0], pytest.approx([200.0, 400.0, 600.0])]


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("content, words", [
    ("", "has no spike times"),
    ("5\n3\n", "is not sorted: 5 ms comes before 3 ms"),
    ("-1\n3\n", "negative spike time (-1 ms)"),
    ("1\nnan\n", "non-finite spike time (nan)"),
    ("1\nabc\n", "expected numbers"),
])
def test_bad_spike_files(tmp_path, content, words):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out = tmp_path / "out"
    assert_user_error(run("fit", "cell", path, out, "--amplitudes", "100", *QUICK), words)
    assert not out.exists()


@pytest.mark.parametrize("extra, words", [
    (["--bounds", "a=0.3:0.002"], "bounds of a [0.3, 0.002] need low < high"),
    (["--fit", "a,tau"], "izhikevich has no parameter 'tau'"),
    (["--fit", "a,b", "--set", "a=0.02"], "a is both fitted and set"),
    (["--fit", "a,b", "--set", "c=-60", "--set", "d=6,c=-55"], "--set: 'c' is given twice"),
    (["--bounds", "a=0.01:0.1", "--bounds", "b"], "'b' is not NAME=VALUE"),
    (["--preset", "XX"], "preset 'XX' is not one of RS, IB"),
    (["--sweeps", "0,7"], "has sweeps 0 to 2"),
    (["--population", "1"], "population = 1"),
    (["--seed", "-1"], "seed -1 must be in [0, 2**63)"),
    (["--amplitudes", "1,2,3"], "holds the sweeps' amplitudes (100, 125, 150 pA)"),
    (["--gamma-window", "0", "--loss", "gamma"], "coincidence window = 0 ms"),
    (["--current", "given", "--scale", "nan"], "scale = nan"),
    (["--current", "given", "--scale", "-1"], "scale = -1 (model current per pA); expected a finite, positive"),
    (["--population", "100000000"], "expected at most 4096"),
    (["--dt", "5000"], "time step dt = 5000 ms; expected 0 < dt <= 1 ms"),
    (["--total", "inf"], "protocol total = inf"),
])
def test_bad_settings(cell_file, tmp_path, extra, words):
    out = tmp_path / "out"
    assert_user_error(run("fit", "cell", cell_file, out, *QUICK[:-2], *extra), words)
    assert not out.exists()


def test_connection_probabilities_outside_0_1_and_negative_weight_scales_are_refused(tmp_path):
    assert_user_error(run("fit", "synthetic", "network", tmp_path / "n.h5", "--truth", "0.5,1.8,0.5,0.8"),
                      "--truth p_ee = 1.8; expected values in [0, 1] (p_ee is a connection probability)")
    assert not (tmp_path / "n.h5").exists()
    assert run("fit", "synthetic", "network", tmp_path / "n.h5", "--n-e", "8", "--n-i", "2").exit_code == 0
    for bounds, words in (("p_ee=0:2", "--bounds p_ee = 0:2; expected values in [0, 1]"),
                          ("sigma_ei=-1:1", "--bounds sigma_ei = -1:1; expected values in [0, inf]")):
        assert_user_error(run("fit", "network", tmp_path / "n.h5", tmp_path / "fit", "--n-e", "8", "--n-i", "2",
                              "--bounds", bounds), words)
    assert not (tmp_path / "fit").exists()


def test_a_binary_file_named_csv_is_one_line(tmp_path):
    path = tmp_path / "cell.csv"
    path.write_bytes(b"\x89HDF\r\n\x1a\n\x00\x00")
    assert_user_error(run("fit", "cell", path, tmp_path / "out", "--amplitudes", "100"), "is not text")


def test_set_is_repeatable_like_new_set_and_equals_its_comma_form(tmp_path):
    """`--set a=1 --set b=2` (as `spikeforge new --set`) and `--set a=1,b=2` make the same cell."""
    common = ["--preset", "RS", "--amplitudes", "100", "--delay", "10", "--duration", "200", "--total", "250"]
    repeated, joined, default = (tmp_path / name for name in ("repeated.h5", "joined.h5", "default.h5"))
    assert run("fit", "synthetic", "cell", repeated, *common, "--set", "c=-50", "--set", "d=2").exit_code == 0
    assert run("fit", "synthetic", "cell", joined, *common, "--set", "c=-50,d=2").exit_code == 0
    assert run("fit", "synthetic", "cell", default, *common).exit_code == 0
    with h5py.File(repeated) as a, h5py.File(joined) as b, h5py.File(default) as c:
        assert a["time"].shape[0] > 0
        np.testing.assert_array_equal(a["time"][()], b["time"][()])
        assert a["time"].shape != c["time"].shape or not np.array_equal(a["time"][()], c["time"][()])


def test_unknown_model_and_loss_are_one_line_errors(cell_file, tmp_path):
    for option, value in (("--model", "hh"), ("--loss", "rmse"), ("--optimizer", "pso")):
        done = subprocess.run([sys.executable, "-m", "spikeforge", "fit", "cell", str(cell_file), str(tmp_path / "o"),
                               option, value], capture_output=True, text=True)
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and f"'{value}' is not one of" in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("array, words", [
    (np.array(["a", "b"]), "holds text"),
    (np.zeros((2, 2, 2)), "shape (2, 2, 2)"),
    (np.array([1 + 1j, 2]), "holds complex numbers"),
    (np.array([True, False]), "holds booleans"),
])
def test_arrays_that_are_not_spike_times(tmp_path, array, words):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    assert_user_error(run("fit", "cell", path, tmp_path / "out", "--amplitudes", "100", "--trace-dt", "0.1"), words)
    assert not (tmp_path / "out").exists()


def test_amplitudes_count_the_files_sweeps_and_report_options_need_data(tmp_path):
    path = tmp_path / "three.csv"
    path.write_text("sweep,time_ms\n0,5\n1,6\n2,7\n")
    amplitudes, trains = load_cell(path, [100.0, 125.0, 150.0], sweeps=[0, 2])
    assert amplitudes.tolist() == [100.0, 150.0] and [t.tolist() for t in trains] == [[5.0], [7.0]]
    one = tmp_path / "one.csv"
    one.write_text("103.6\n")  # a number, not a header
    assert [t.tolist() for t in load_cell(one, [1.0])[1]] == [[103.6]]
    assert_user_error(run("fit", "report", tmp_path, "--sweeps", "1"), "need --data FILE")


def test_repeated_spike_times_are_merged_with_a_warning(tmp_path):
    from spikeforge.errors import SpikeforgeWarning

    path = tmp_path / "repeat.csv"
    path.write_text("10\n10\n20\n")
    with pytest.warns(SpikeforgeWarning, match="repeats 1 spike time"):
        assert load_cell(path, [1.0])[1][0].tolist() == [10.0, 20.0]


def test_a_fit_stopped_before_its_first_generation_leaves_nothing(tmp_path):
    from spikeforge.core.interrupts import Interrupted
    from spikeforge.core.spikes import Trains
    from spikeforge.fit import runs, search

    def evaluate(values):
        raise Interrupted(signal.SIGINT)

    bounds = search.Bounds(("x",), np.zeros(1), np.ones(1))
    settings = {"optimizer": "ga", "population": 4, "generations": 3, "restarts": 1, "patience": 0}
    with pytest.raises(Interrupted):
        runs._fit_run("cell", tmp_path / "new", evaluate, bounds, ["1"], settings, Trains.from_list([[1.0]]), [1.0],
                      "data", 1, False, False, "test", lambda result: None)
    assert not (tmp_path / "new").exists()
    assert search.fit(lambda v: v[:, 0], bounds, "ga", 4, 3, should_stop=lambda: True) is None


def test_a_voltage_trace_without_spikes(tmp_path):
    path = tmp_path / "flat.npy"
    np.save(path, np.full((1, 500), -70.0))
    assert_user_error(run("fit", "cell", path, tmp_path / "out", "--trace-dt", "0.1", "--amplitudes", "100"),
                      "no voltage trace crosses 0 mV")
    assert_user_error(run("fit", "cell", path, tmp_path / "out", "--amplitudes", "100"), "--trace-dt")
    assert not (tmp_path / "out").exists()


def test_sweeps_without_any_spike(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as handle:
        handle["time"], handle["trial"], handle["unit"] = np.zeros(0), np.zeros(0, int), np.zeros(0, int)
        handle["window"], handle["n_trials"], handle["amplitude"] = [0.0, 1200.0], [2], [100.0, 150.0]
        handle["unit_ids"] = np.array([b"cell"])
    assert_user_error(run("fit", "cell", path, tmp_path / "out", *QUICK), "no sweep has a spike")


@pytest.mark.slow
@pytest.mark.tutorial
def test_the_fitting_tutorial_runs_as_written(tmp_path, monkeypatch):
    """docs/fitting.md's commands, and the numbers it states."""
    import re
    import shlex

    from spikeforge.core.store import read_h5

    text = (Path(__file__).parents[1] / "docs" / "fitting.md").read_text()
    commands = [line.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)
                for line in block.splitlines() if line.strip()]
    assert [" ".join(c.split()[1:3]) for c in commands] == ["fit synthetic", "fit cell", "fit report",
                                                             "fit synthetic", "fit network", "fit report"]
    monkeypatch.chdir(tmp_path)
    outputs = []
    for line in commands:
        result = run(*shlex.split(line)[1:])
        assert result.exit_code == 0, (line, result.output)
        outputs.append(result.output)
    assert "3 sweeps, 23, 29, 34 spikes" in outputs[0]
    cell = (tmp_path / "rs-fit" / "parameters.csv").read_text().splitlines()
    assert cell[1].startswith("a,0.0208258,") and cell[4].startswith("d,15.9341,")
    held_out = (tmp_path / "rs-fit" / "held_out.csv").read_text().splitlines()
    assert held_out[-1].split(",")[3:] == ["29", "29", "0.0226", "1.0000"]  # spikes, SPIKE-distance, Γ
    _, attrs = read_h5(tmp_path / "net-fit" / "fit.h5", [])
    best = read_h5(tmp_path / "net-fit" / "fit.h5", ["best"])[0]["best"]
    assert np.all(np.abs(best - [0.5, 0.8, 0.5, 0.8]) <= 0.1) and attrs["loss"] == pytest.approx(5.326, abs=1e-3)
    floor = re.search(r"have loss ([\d.]+) ± ([\d.]+) \(the fit: ([\d.]+)\)", outputs[5])
    assert float(floor.group(1)) > 3 * float(floor.group(3))
    report = (tmp_path / "net-fit" / "report.csv").read_text().split("\n\n")[0].splitlines()
    assert all(row.endswith(",yes") for row in report[1:])  # every measure matched, as the tutorial says
    publish_figures(tmp_path / "rs-fit", ["fit.png", "held_out.png"], "fitting")
    publish_figures(tmp_path / "net-fit", ["fit.png", "report.png"], "fitting/network")
