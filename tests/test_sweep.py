"""Batches on Dask (issue 15): a sweep of RLS networks whose summary holds every point, a failing point
that does not stop the others, a re-run that recomputes nothing, a killed worker that loses no finished
result, and one `error:` line for a bad sweep."""

from __future__ import annotations

import os
import signal
import sys
import time

import cloudpickle
import h5py
import numpy as np
import pytest

from spikeforge.core.executor import Cluster, Job, read_result, result_path, run_jobs
from spikeforge.errors import ParameterError

from conftest import SMALL, assert_user_error, invoke, stop_once_written

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import the tests


def slow_square(x: int, seconds: float) -> dict:
    time.sleep(seconds)
    if x < 0:
        raise ValueError(f"negative input {x}")
    return {"square": x * x, "pid": os.getpid(), "trace": np.arange(x + 1.0)}


FIXED = [arg for name, value in SMALL.items() if name not in ("penlambda", "pree")
         for arg in ("--fix", f"{name}={value}")]


@pytest.mark.slow
def test_a_sweep_summarises_every_point_and_a_rerun_recomputes_nothing(tmp_path):
    from spikeforge import rls

    out = tmp_path / "sweep"
    result = invoke("sweep", out, "--set", "penlambda=0.02,0.5", "--set", "pree=0.2,1.5", *FIXED, "--nloops", "2",
                    "--workers", "2")
    assert result.exit_code == 0, result.output
    lines = (out / "summary.csv").read_text().splitlines()
    assert lines[0] == "penlambda,pree,status,correlation,firing_rate_hz,seconds,error"
    rows = [line.split(",", 6) for line in lines[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [("0.02", "0.2", "done"), ("0.02", "1.5", "failed"),
                                                  ("0.5", "0.2", "done"), ("0.5", "1.5", "failed")]
    assert all("pree" in r[6] for r in rows if r[2] == "failed")  # the error names the bad value
    # each done point is an ordinary data directory whose learning curve ends at the summary's value
    for r in rows:
        if r[2] == "done":
            point = out / "points" / f"penlambda={r[0]},pree={r[1]}"
            curve = rls.train(point, nloops=1, verbose=False)  # one more loop works on it
            assert curve.loops == [3]
            with h5py.File(out / "summary.h5") as handle:
                assert np.isfinite(handle["correlation"][()]).sum() == 2
            assert float(r[3]) == pytest.approx(read_result(out / "results", point.name)[1]["correlation"], rel=1e-5)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.h5")}
    again = invoke("sweep", out, "--set", "penlambda=0.02,0.5", "--set", "pree=0.2,1.5", *FIXED, "--nloops", "2",
                   "--workers", "2")
    assert again.exit_code == 0 and "2 of 4 points already done (kept)" in again.output
    assert {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.h5")} == stamps
    assert_user_error(invoke("sweep", out, "--set", "penlambda=0.02,0.5", "--set", "pree=0.2,1.5", *FIXED,
                             "--nloops", "3"), "made with nloops = 2, not 3", "--force")


def test_the_executor_keeps_every_result_when_a_worker_is_killed(tmp_path):
    jobs = [Job(f"x={x}", slow_square, (x, 1.0), {"x": x}) for x in range(6)]
    killed = []

    with Cluster(workers=2) as cluster:
        pids = list(cluster.client.run(os.getpid).values())

        def kill_once(line_job_done):  # after the first result, kill one worker
            if not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        outcomes = run_jobs(jobs, tmp_path / "results", cluster, verbose=False, on_result=kill_once)
    assert killed and [o.status for o in outcomes] == ["done"] * 6
    assert [o.values["square"] for o in outcomes] == [x * x for x in range(6)]
    for x in range(6):
        arrays, values, inputs = read_result(tmp_path / "results", f"x={x}")
        assert np.array_equal(arrays["trace"], np.arange(x + 1.0)) and inputs == {"x": x}


def test_the_executor_reports_a_failing_job_and_retries_it_next_time(tmp_path):
    jobs = [Job("bad", slow_square, (-1, 0.0), {"x": -1}), Job("good", slow_square, (3, 0.0), {"x": 3})]
    with Cluster(workers=1) as cluster:
        first = run_jobs(jobs, tmp_path, cluster, verbose=False)
        assert [o.status for o in first] == ["failed", "done"] and first[0].error == "ValueError: negative input -1"
        assert (tmp_path / "bad.error.txt").read_text().startswith("ValueError: negative input -1")
        second = run_jobs(jobs, tmp_path, cluster, verbose=False)
        assert [o.status for o in second] == ["failed", "kept"]
        with pytest.raises(ParameterError, match="made with x = 3, not 4"):
            run_jobs([Job("good", slow_square, (4, 0.0), {"x": 4})], tmp_path, cluster, verbose=False)
        assert run_jobs([Job("good", slow_square, (4, 0.0), {"x": 4})], tmp_path, cluster, force=True,
                        verbose=False)[0].values["square"] == 16
    assert not result_path(tmp_path, "bad").exists()
    with pytest.raises(ParameterError, match="not a safe file name"):
        run_jobs([Job("../escape", slow_square, (1, 0.0))], tmp_path, verbose=False)


@pytest.mark.parametrize("args, fragments", [
    (["--set", "n_cels=1,2"], ["unknown parameter 'n_cels'", "n_cells"]),
    (["--set", "pree=0.1,", "--nloops", "1"], ["empty value"]),
    (["--set", "pree=0.1", "--set", "pree=0.2"], ["names 'pree' twice"]),
    (["--set", "pree=0.1,0.1"], ["repeats a value"]),
    (["--set", "pree=0.1", "--fix", "pree=0.2"], ["both swept and fixed"]),
    (["--set", "pree=0.1", "--scheduler", " "], ["scheduler address is empty"]),
    (["--set", "pree=0.1", "--scheduler", "bogus"], ["'bogus' is not a Dask scheduler address", "tcp://host:port"]),
    (["--set", "pree=0.1", "--scheduler", "tcp://localhost"], ["is not a Dask scheduler address"]),
    (["--set", "pree=0.1", "--scheduler", "tcp://h:1", "--workers", "2"], ["give one of them"]),
])
def test_bad_sweeps(tmp_path, args, fragments):
    assert_user_error(invoke("sweep", tmp_path / "s", *args), *fragments)
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_points_and_the_same_command_runs_the_rest(tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", out, "--set", "penlambda=0.02,0.05,0.1,0.2", *FIXED, "--nloops", "2", "--workers", "1"]
    status, stderr = stop_once_written(args, out / "results" / "penlambda=0.02.h5", signal.SIGINT)
    assert status == 130, stderr
    assert "finished point(s) are kept" in stderr and "the same command runs the rest" in stderr
    kept = sorted(p.name for p in (out / "results").glob("*.h5"))
    assert 1 <= len(kept) < 4
    again = invoke(*args)
    assert again.exit_code == 0 and f"{len(kept)} of 4 points already done (kept)" in again.output
    lines = (out / "summary.csv").read_text().splitlines()[1:]
    assert [line.split(",")[1] for line in lines] == ["done"] * 4


def _datasets(path) -> dict:
    with h5py.File(path) as handle:
        return {name: handle[name][()] for name in handle if isinstance(handle[name], h5py.Dataset)}


@pytest.mark.slow
def test_test_trials_on_dask_equal_those_in_one_process_and_a_stop_keeps_the_finished_ones(tmp_path):
    from spikeforge import rls

    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    rls.init(directory, verbose=False)
    rls.train(directory, nloops=2, verbose=False)
    ntrials = 120
    rls.test(directory, ntrials=ntrials, neurons=range(0, 1024, 8), plot=False, verbose=False)
    alone = _datasets(directory / "test.h5")
    # Ctrl-C (to the process group, workers included) as soon as the first trial's result is saved: the finished
    # trials stay, test.h5 holds the leading ones, and no worker prints a traceback
    args = ["test", directory, "--ntrials", ntrials, "--neurons", "0:1024:8", "--no-plot", "--workers", "2"]
    status, stderr = stop_once_written(args, directory / "test-trials" / "trial-00000.h5", signal.SIGINT, group=True)
    assert status == 130, stderr
    assert "the same command runs the rest" in stderr and "Traceback" not in stderr
    kept = len(list((directory / "test-trials").glob("trial-*.h5")))
    assert 1 <= kept < ntrials
    with h5py.File(directory / "test.h5") as handle:
        assert 1 <= handle.attrs["ntrials"] <= kept
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert f"{kept} of {ntrials} trials already done (kept)" in again.output
    assert not (directory / "test-trials").exists()  # test.h5 holds them all now
    on_dask = _datasets(directory / "test.h5")
    assert sorted(on_dask) == sorted(alone)
    for name in alone:
        np.testing.assert_array_equal(on_dask[name], alone[name], err_msg=name)


def test_trials_whose_cell_state_carries_over_are_refused_on_dask(tmp_path):
    from spikeforge import rls

    directory = tmp_path / "net"
    rls.new(directory, {**SMALL, "cell_model": "glif4", "cell_state_persists": True})
    rls.init(directory, verbose=False)
    rls.train(directory, nloops=1, verbose=False)
    assert_user_error(invoke("test", directory, "--workers", "2"), "carries over from trial to trial",
                      "without --scheduler and --workers")
    assert not (directory / "test.h5").exists()


def test_a_failed_job_of_a_batch_is_one_error_naming_it_and_the_kept_results(tmp_path):
    from spikeforge.core.executor import Outcome, raise_failures
    from spikeforge.errors import SpikeforgeError

    done = Outcome("trial-00000", "done", {}, None)
    raise_failures([done, Outcome("trial-00001", "kept", {}, None)], "trial", tmp_path)  # nothing failed: no error
    with pytest.raises(SpikeforgeError) as error:
        raise_failures([done, Outcome("trial-00001", "failed", {}, "ValueError: bad"),
                        Outcome("trial-00002", "failed", {}, "OSError: gone")], "trial", tmp_path)
    assert str(error.value) == (f"2 of 3 trials failed (trial-00001: ValueError: bad); the finished ones are kept in "
                                f"{tmp_path}, and the same command runs the rest")


def test_a_malformed_scheduler_in_the_environment_is_one_error_and_workers_mean_a_local_cluster(small_run,
                                                                                             monkeypatch):
    monkeypatch.setenv("SPIKEFORGE_SCHEDULER", "bogus")
    assert_user_error(invoke("test", small_run), "$SPIKEFORGE_SCHEDULER = 'bogus' is not a Dask scheduler address")
    from spikeforge.core.executor import scheduler_address, uses_dask

    assert scheduler_address(None, workers=2) is None and uses_dask(None, 2)  # --workers: a local cluster
    monkeypatch.setenv("SPIKEFORGE_SCHEDULER", "tcp://10.1.2.3:8786")
    assert scheduler_address(None) == "tcp://10.1.2.3:8786" and uses_dask(None, None)
    monkeypatch.delenv("SPIKEFORGE_SCHEDULER")
    assert not uses_dask(None, None)


def test_a_sweep_never_deletes_a_point_directory_it_did_not_leave_half_done(tmp_path):
    import json

    from spikeforge.errors import DataFileError
    from spikeforge.rls.sweep import POINT_MARK, run_point

    point = tmp_path / "points" / "pree=0.2"
    point.mkdir(parents=True)
    (point / "ckpt-5.h5").write_text("the user's own work")
    with pytest.raises(DataFileError, match="was not left half-done by this sweep"):
        run_point(str(point), dict(SMALL), 1, 1)
    assert (point / "ckpt-5.h5").read_text() == "the user's own work"
    (point / POINT_MARK).write_text(json.dumps({"state": "running"}))  # a job cut short: started again
    first = run_point(str(point), dict(SMALL), 1, 1)
    assert np.isfinite(first["correlation"]) and not (point / "ckpt-5.h5").exists()
    # finished, but its result never reached the sweep: the same job gives it again without recomputing
    (point / "ckpt-1.h5").rename(point / "moved.h5")
    again = run_point(str(point), dict(SMALL), 1, 1)
    assert again["correlation"] == first["correlation"] and not (point / "ckpt-1.h5").exists()
    # made by a version whose defaults differ (e.g. another p_storage): the parameters as set are the same,
    # the values they resolve to are not, so the point is not taken for this one
    mark = json.loads((point / POINT_MARK).read_text())
    mark["inputs"]["resolved_parameters_fingerprint"] = "another version's defaults"
    (point / POINT_MARK).write_text(json.dumps(mark))
    with pytest.raises(DataFileError, match="use --force to replace it"):
        run_point(str(point), dict(SMALL), 1, 1)
    with pytest.raises(DataFileError, match="use --force to replace it"):  # other settings: refused
        run_point(str(point), dict(SMALL), 2, 1)
    assert run_point(str(point), dict(SMALL), 2, 1, replace=True)["learning_curve"].size == 2


def test_a_grid_without_the_points_of_the_earlier_summary_is_refused_before_any_work(tmp_path):
    """The summary covers one grid: a sweep that would drop earlier points from it is refused (extending the
    grid, or --force, is not)."""
    from spikeforge.rls import sweep

    directory = tmp_path / "grid"
    directory.mkdir()
    done = {"status": "done", "correlation": 0.5, "firing_rate_hz": 4.0, "seconds": 1.0, "error": ""}
    sweep.write_summary(directory, ["penlambda", "pree"],
                        [{"penlambda": a, "pree": b, **done} for a in (0.5, 1.0) for b in (0.2, 0.3)])
    assert sweep.summarised_points(directory) == (
        ["penlambda", "pree"], ["penlambda=0.5,pree=0.2", "penlambda=0.5,pree=0.3", "penlambda=1,pree=0.2",
                                "penlambda=1,pree=0.3"])
    before = sorted(p.name for p in directory.iterdir())
    for args, fragment in ((["--set", "penlambda=0.5,1"], "over penlambda, pree"),
                           (["--set", "penlambda=0.5", "--set", "pree=0.2,0.3"], "e.g. penlambda=1,pree=0.2")):
        line = assert_user_error(invoke("sweep", directory, *args, "--fix", "n_cells=1024"), fragment)
        assert "extend that grid" in line and "--force" in line
    assert sorted(p.name for p in directory.iterdir()) == before  # nothing ran, nothing was written
