"""Fault injection: signals at every moment of a run, kills during writes, concurrent writers,
edited parameters, foreign checkpoints, damaged files, overflowing P, full and read-only disks,
bad input.  After every fault the directory either resumes to exactly the weights of an
uninterrupted run or says clearly why it cannot; nothing ends in a traceback or a corrupt file.

Processes are started through tests/fault_launcher.py, which can pause inside the write of a
chosen file (after its content is complete, before it is flushed and renamed), so that a signal
can be sent at that moment.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from spikeforge import rls
from spikeforge.core import store
from spikeforge.core.store import TEMPORARY_SUFFIX, read_h5
from spikeforge.errors import DataFileError, ParameterError, SpikeforgeWarning

import conftest
from conftest import SMALL, invoke

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and file modes")

LAUNCHER = Path(__file__).with_name("fault_launcher.py")
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


# --- helpers -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """An initialised small network (the same for every test of the module; tests copy it)."""
    directory = tmp_path_factory.mktemp("faults") / "base"
    rls.new(directory, SMALL)
    rls.init(directory, verbose=False)
    return directory


_REFERENCE: dict[int, np.ndarray] = {}


def reference_weights(base: Path, tmp_path: Path, loops: int) -> np.ndarray:
    """The plastic weights after ``loops`` uninterrupted loops from init."""
    if loops not in _REFERENCE:
        directory = copy_of(base, tmp_path / f"reference-{loops}")
        rls.train(directory, nloops=loops, verbose=False)
        _REFERENCE[loops] = weights(directory, str(loops))
    return _REFERENCE[loops]


def copy_of(base: Path, directory: Path) -> Path:
    shutil.copytree(base, directory)
    return directory


def weights(directory: Path, label: str) -> np.ndarray:
    return read_h5(directory / f"ckpt-{label}.h5", ["plastic/weight"], "checkpoint")[0]["plastic/weight"]


def visible(directory: Path) -> list[str]:
    return sorted(f.name for f in directory.iterdir() if not f.name.startswith("."))


def temporaries(directory: Path) -> list[str]:
    return sorted(f.name for f in directory.iterdir() if f.name.endswith(TEMPORARY_SUFFIX))


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every visible file."""
    return {f.name: (f.stat().st_size, f.stat().st_mtime_ns) for f in directory.iterdir() if not f.name.startswith(".")}


def start(*args, pause: str | None = None, marker: Path | None = None, seconds: float = 6.0,
          umask: int | None = None, reading: bool = False, started: Path | None = None) -> subprocess.Popen:
    """``spikeforge ARGS`` in a new process, optionally pausing inside the write (or, with
    ``reading``, before the first read) of file ``pause``.  With ``started`` (a path), return only
    once the process has installed its signal handlers, so that delays are timed from there."""
    command = [sys.executable, str(LAUNCHER)]
    if started is not None:
        command += ["--started", str(started)]
    if pause is not None:
        command += ["--pause-reading" if reading else "--pause-writing", pause, "--marker", str(marker),
                    "--seconds", str(seconds)]
    command += ["--", *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
    if started is not None:
        wait_for(lambda: started.exists() or process.poll() is not None, what="the signal handlers")
    return process


def wait_for(condition, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def read_loop_lines(process: subprocess.Popen, count: int) -> list[str]:
    """Read stdout until ``count`` loop lines (a line starting with a loop number) arrived."""
    lines = []
    while sum(line.split()[0].isdigit() for line in lines if line.split()) < count:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"the process ended early: {process.communicate()}")
        lines.append(line)
    return lines


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


def stopped_at(tmp_path: Path, pause: str, *args, send=(signal.SIGTERM,), seconds: float = 2.0,
               reading: bool = False) -> tuple[int, str, str]:
    """Run ``spikeforge ARGS``, pause inside the write (or before the first read) of file ``pause``,
    then send the signals ``send`` 0.3 s apart (SIGKILL kills); return (status, stdout, stderr)."""
    marker = tmp_path / f"paused-{len(list(tmp_path.glob('paused-*')))}"
    process = start(*args, pause=pause, marker=marker, seconds=seconds, reading=reading)
    wait_for(marker.exists, what=f"the pause at {pause}")
    for index, signum in enumerate(send):
        if index:
            time.sleep(0.3)
        process.send_signal(signum)
    return finish(process)


def assert_clean_exit(stderr: str) -> None:
    assert "Traceback" not in stderr and "Aborted" not in stderr, stderr


def assert_user_error(result, *fragments) -> str:
    return conftest.assert_user_error(result, *fragments, allow_warnings=True)  # bad inputs may also warn


# --- 1, 2: signals -------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_a_loop_saves_the_last_completed_loop_and_training_resumes_exactly(base, tmp_path, signum):
    directory = copy_of(base, tmp_path / "net")
    process = start("train", directory, "--nloops", 100000)
    read_loop_lines(process, 2)
    process.send_signal(signum)
    status, _, stderr = finish(process)
    assert status == STATUS[signum]
    assert_clean_exit(stderr)
    (label,) = [name[len("ckpt-"):-len(".h5")] for name in visible(directory) if name.startswith("ckpt-")]
    assert label.endswith("i") and f"saved checkpoint '{label}'" in stderr
    loop = int(label[:-1])
    curve, _ = read_h5(directory / "learning-curve.h5")
    assert list(curve["loop"]) == list(range(1, loop + 1)) and set(curve["segment"]) == {1}
    rls.train(directory, nloops=2, verbose=False)  # continues from the interrupted checkpoint
    np.testing.assert_array_equal(weights(directory, str(loop + 2)), reference_weights(base, tmp_path, loop + 2))


def test_a_signal_at_start_up_exits_130_and_changes_nothing(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    before = snapshot(directory)
    for index, delay in enumerate(np.linspace(0.0, 0.5, 6)):  # while the libraries are imported (about 1.3 s here)
        process = start("train", directory, "--nloops", 3, started=tmp_path / f"started-{index}")
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        status, _, stderr = finish(process)
        assert status == 130 and "interrupted by SIGINT" in stderr, (delay, stderr)
        assert_clean_exit(stderr)
        assert snapshot(directory) == before
    # while the lock is being taken, and while the network is read (deterministic moments)
    for pause, reading, signum in ((".spikeforge.owner", False, signal.SIGTERM), ("init.h5", True, signal.SIGINT)):
        status, _, stderr = stopped_at(tmp_path, pause, "train", directory, "--nloops", 3, send=[signum], seconds=6,
                                       reading=reading)
        assert status == STATUS[signum] and f"interrupted by {signal.Signals(signum).name}" in stderr
        assert_clean_exit(stderr)
        assert snapshot(directory) == before and temporaries(directory) == []


def test_a_signal_that_a_library_turns_into_its_own_error_is_reported_as_the_signal(monkeypatch, capsys):
    """numpy's import turns the exception of a signal that arrives while it loads into an ImportError (seen
    when a signal came just after start-up): the command still ends as interrupted, exit 130, one line."""
    import spikeforge.cli
    from spikeforge.__main__ import main

    def numpy_like_import(args, signals):
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the handler raises Interrupted here
            time.sleep(1)
        except BaseException as error:
            raise ImportError("PyCapsule_Import could not import module \"datetime\"") from error

    monkeypatch.setattr(spikeforge.cli, "run", numpy_like_import)
    with pytest.raises(SystemExit) as done:
        main(["train", "anything"])
    assert done.value.code == 130
    assert capsys.readouterr().err.strip() == "interrupted by SIGINT (Ctrl-C)"


def test_c_code_that_prints_the_signals_exception_prints_nothing(capfd):
    """numpy's ``import_array()`` prints (``PyErr_Print``) the exception that made numpy's import fail and
    raises an ImportError of its own; a signal during that import printed a traceback before the one line
    (seen in CI).  While the handlers are installed, the printed report of an Interrupted is dropped;
    any other exception's report still appears, and the previous hook is back afterwards."""
    import ctypes

    from spikeforge.core.interrupts import StopSignals

    def print_from_c(raising: str) -> None:
        """Run ``raising`` from C, which prints the exception with PyErr_Print and returns -1."""
        assert ctypes.pythonapi.PyRun_SimpleString(raising.encode()) == -1

    hook = sys.excepthook
    with StopSignals():
        print_from_c(f"from spikeforge.core.interrupts import Interrupted; raise Interrupted({int(signal.SIGINT)})")
        assert capfd.readouterr().err == ""
        print_from_c("raise ValueError('a real failure')")
        assert "ValueError: a real failure" in capfd.readouterr().err
    assert sys.excepthook is hook


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_final_checkpoint_is_written_finishes_the_write(base, tmp_path, signum):
    directory = copy_of(base, tmp_path / "net")
    status, _, stderr = stopped_at(tmp_path, "ckpt-3.h5", "train", directory, "--nloops", 3, send=[signum])
    assert status == STATUS[signum] and "every loop was trained and saved in checkpoint '3'" in stderr
    assert_clean_exit(stderr)
    np.testing.assert_array_equal(weights(directory, "3"), reference_weights(base, tmp_path, 3))
    assert list(read_h5(directory / "learning-curve.h5")[0]["loop"]) == [1, 2, 3]
    assert temporaries(directory) == []


def test_a_second_signal_during_the_final_write_stops_at_once_and_leaves_no_corrupt_file(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    rls.train(directory, nloops=2, verbose=False)
    saved = (directory / "ckpt-2.h5").read_bytes()
    status, _, stderr = stopped_at(tmp_path, "ckpt-4.h5", "train", directory, "--nloops", 2,
                                   send=[signal.SIGINT, signal.SIGINT], seconds=20)
    assert status == 130 and "stopped at once" in stderr
    assert_clean_exit(stderr)
    assert not (directory / "ckpt-4.h5").exists() and temporaries(directory) == []
    assert (directory / "ckpt-2.h5").read_bytes() == saved
    rls.train(directory, nloops=2, verbose=False)  # loops 3 and 4 again, from checkpoint 2
    np.testing.assert_array_equal(weights(directory, "4"), reference_weights(base, tmp_path, 4))
    curve, attrs = read_h5(directory / "learning-curve.h5")
    assert list(curve["loop"]) == [1, 2, 3, 4, 3, 4] and list(curve["segment"]) == [1, 1, 2, 2, 3, 3]
    assert [s["ended"] for s in attrs["segments"]] == ["completed", "stopped at once", "completed"]


def test_a_signal_during_an_intermediate_checkpoint_saves_that_loop(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    status, _, stderr = stopped_at(tmp_path, "ckpt-2.h5", "train", directory, "--nloops", 6, "--checkpoint-every", 2)
    assert status == 143 and "saved checkpoint '2i'" in stderr
    assert_clean_exit(stderr)
    assert [name for name in visible(directory) if name.startswith("ckpt")] == ["ckpt-2i.h5"]
    rls.train(directory, nloops=2, verbose=False)
    np.testing.assert_array_equal(weights(directory, "4"), reference_weights(base, tmp_path, 4))


def test_a_signal_while_the_learning_curve_is_written_keeps_every_loop(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    rls.train(directory, nloops=2, verbose=False)
    # the curve is written with checkpoint 5
    status, _, stderr = stopped_at(tmp_path, "learning-curve.h5", "train", directory, "--nloops", 3)
    assert status == 143 and "every loop was trained and saved in checkpoint '5'" in stderr
    curve, attrs = read_h5(directory / "learning-curve.h5")
    assert list(curve["loop"]) == [1, 2, 3, 4, 5] and attrs["segments"][-1]["saved"] == ["5"]


def test_sigkill_during_a_write_leaves_the_old_files_and_the_next_command_cleans_up(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    rls.train(directory, nloops=1, verbose=False)
    before = snapshot(directory)
    stopped_at(tmp_path, "ckpt-2.h5", "train", directory, "--nloops", 1, send=[signal.SIGKILL], seconds=30)
    assert len(temporaries(directory)) == 1 and snapshot(directory) == before  # the half-done write is hidden
    rls.train(directory, nloops=1, verbose=False)
    assert temporaries(directory) == []
    np.testing.assert_array_equal(weights(directory, "2"), reference_weights(base, tmp_path, 2))


def test_periodic_checkpoints_bound_what_a_kill_loses(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    stopped_at(tmp_path, "ckpt-6.h5", "train", directory, "--nloops", 6, "--checkpoint-every", 2, send=[signal.SIGKILL],
               seconds=30)
    assert [name for name in visible(directory) if name.startswith("ckpt")] == ["ckpt-4.h5"]  # the latest periodic
    np.testing.assert_array_equal(weights(directory, "4"), reference_weights(base, tmp_path, 4))
    # the learning curve went with checkpoint 4; its segment never ended
    curve, attrs = read_h5(directory / "learning-curve.h5")
    assert list(curve["loop"]) == [1, 2, 3, 4] and attrs["segments"][-1]["ended"] == "running"
    rls.train(directory, nloops=2, verbose=False)
    curve, attrs = read_h5(directory / "learning-curve.h5")
    assert list(curve["loop"]) == [1, 2, 3, 4, 5, 6] and attrs["segments"][-1]["restored_from"] == "4"


def test_init_interrupted_leaves_the_previous_network_and_results(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    rls.train(directory, nloops=1, verbose=False)
    before = snapshot(directory)
    # importing, then running the init run; the whole init of this small network takes about 2 s on an idle
    # machine, so a later signal could come after the new network is written (as one CI run saw)
    for index, delay in enumerate((0.3, 0.9)):
        process = start("init", directory, "--force", started=tmp_path / f"started-{index}")
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        status, _, stderr = finish(process)
        assert status == 143 and "interrupted by SIGTERM" in stderr
        assert_clean_exit(stderr)
        assert snapshot(directory) == before
    # during the write of the new init.h5 the write is finished first, then the old results go
    status, _, stderr = stopped_at(tmp_path, "init.h5", "init", directory, "--force", send=[signal.SIGINT])
    assert status == 130 and "the write was completed" in stderr
    assert visible(directory) == ["init.h5", "params.toml"]
    rls.train(directory, nloops=1, verbose=False)
    np.testing.assert_array_equal(weights(directory, "1"), reference_weights(base, tmp_path, 1))


def test_init_killed_while_replacing_a_network_leaves_a_consistent_directory(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    rls.train(directory, nloops=1, verbose=False)
    old_init = (directory / "init.h5").read_bytes()
    # killed when the new init.h5 is complete and the old results are gone
    stopped_at(tmp_path, "init.h5", "init", directory, "--force", send=[signal.SIGKILL], seconds=30)
    assert visible(directory) == ["init.h5", "params.toml"] and (directory / "init.h5").read_bytes() == old_init
    rls.train(directory, nloops=1, verbose=False)  # the old network, from its initial weights
    np.testing.assert_array_equal(weights(directory, "1"), reference_weights(base, tmp_path, 1))


def test_test_interrupted_keeps_the_completed_trials(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    rls.train(directory, nloops=1, verbose=False)
    rls.test(directory, ntrials=1, plot=False, verbose=False)
    earlier = (directory / "test.h5").read_bytes()
    # stopped before any trial: nothing is written
    status, _, stderr = stopped_at(tmp_path, "ckpt-1.h5", "test", directory, "--ntrials", 50, send=[signal.SIGINT],
                                   reading=True)
    assert status == 130 and (directory / "test.h5").read_bytes() == earlier
    assert_clean_exit(stderr)
    process = start("test", directory, "--ntrials", 50, "--no-plot")
    lines = []
    while not any(line.startswith("trial 2,") for line in lines):
        lines.append(process.stdout.readline())
    process.send_signal(signal.SIGTERM)
    status, _, stderr = finish(process)
    assert status == 143
    assert_clean_exit(stderr)
    _, attrs = read_h5(directory / "test.h5", [])
    assert 3 <= attrs["ntrials"] < 50 and f"kept the {attrs['ntrials']} completed trials" in stderr
    full = tmp_path / "full"
    shutil.copytree(directory, full)
    rls.test(full, ntrials=attrs["ntrials"], plot=False, verbose=False)  # the kept trials are the first ones
    kept, complete = read_h5(directory / "test.h5")[0], read_h5(full / "test.h5")[0]
    for name in ("spike_step", "spike_trial", "spike_neuron", "u_total"):
        np.testing.assert_array_equal(kept[name], complete[name])


# --- 5: one writer per directory -----------------------------------------------------------------

def test_a_second_writer_is_refused_with_the_holders_pid_and_host(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    process = start("train", directory, "--nloops", 100000)
    read_loop_lines(process, 1)
    holder = f"spikeforge train (PID {process.pid} on host {socket.gethostname()}"
    try:
        assert_user_error(invoke("init", directory, "--force"), "is in use by", holder)
        assert_user_error(invoke("train", directory, "--nloops", 1), holder)
        assert_user_error(invoke("test", directory), holder)
    finally:
        process.send_signal(signal.SIGTERM)
    status, _, stderr = finish(process)
    assert status == 143
    (stale,) = [name for name in visible(directory) if name.startswith("ckpt-")]
    assert invoke("init", directory, "--force").exit_code == 0  # now the directory is free
    assert not (directory / stale).exists() and not (directory / "learning-curve.h5").exists()


# --- 3: parameters edited after init -------------------------------------------------------------

@pytest.mark.parametrize("name, value", [("dt", 0.05), ("stim_on", 60.0), ("stim_off", 110.0), ("learn_every", 5.0),
                                         ("seed", 12), ("n_cells", 1200)])
def test_a_parameter_init_depends_on_cannot_change_after_init(base, tmp_path, name, value):
    directory = copy_of(base, tmp_path / "net")
    rls.train(directory, nloops=1, verbose=False)
    old = rls.Params(SMALL)[name]
    params = directory / "params.toml"
    params.write_text(params.read_text().replace(f"\n{name} = {old} ", f"\n{name} = {value} "))
    before = snapshot(directory)
    message = assert_user_error(invoke("train", directory, "--nloops", 1), "params.toml changed after init",
                                f"{name} {old!r} -> {value!r}", "init --force")
    assert "wid" in message.split("only ")[1]  # it says which parameters may change
    assert_user_error(invoke("test", directory), "params.toml changed after init")
    assert snapshot(directory) == before


def test_a_left_out_parameter_whose_default_changed_is_named_with_the_line_to_write(tmp_path):
    """A hand-written params.toml without p_storage, for a network built when symmetric was the default: the
    refusal says which line restores the value it was built with."""
    directory = tmp_path / "net"
    rls.new(directory, {**SMALL, "p_storage": "symmetric"})
    rls.init(directory, verbose=False)
    params = directory / "params.toml"
    params.write_text("\n".join(line for line in params.read_text().splitlines() if not line.startswith("p_storage")))
    assert_user_error(invoke("train", directory, "--nloops", 1), "p_storage 'symmetric' -> 'packed' (default)",
                      "write p_storage = 'symmetric' into it")


def test_parameters_init_does_not_depend_on_may_change(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    params = directory / "params.toml"
    text = params.read_text()
    for old, new in (("wid = 50.0", "wid = 20.0"), ("max_rate = 500.0", "max_rate = 300.0"),
                     ('rls_gain = "paper"', 'rls_gain = "latest"')):
        assert old in text
        text = text.replace(old, new)
    params.write_text(text)
    rls.train(directory, nloops=1, verbose=False)
    rls.test(directory, ntrials=1, plot=False, verbose=False)
    assert (directory / "test.h5").exists()


# --- 4: checkpoints of another network -----------------------------------------------------------

def test_a_checkpoint_of_another_network_is_refused(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    rls.train(directory, nloops=1, verbose=False)
    other = tmp_path / "other"
    rls.new(other, {**SMALL, "seed": 12})  # the same size, another network
    rls.init(other, verbose=False)
    rls.train(other, nloops=3, verbose=False)
    shutil.copy(other / "ckpt-3.h5", directory / "ckpt-3.h5")
    before = snapshot(directory)
    assert_user_error(invoke("train", directory, "--nloops", 1), "ckpt-3.h5", "belongs to another network")
    assert_user_error(invoke("test", directory), "belongs to another network")
    assert snapshot(directory) == before
    shutil.copy(directory / "ckpt-1.h5", directory / "ckpt-3.h5")  # renamed: its loop gives it away
    assert_user_error(invoke("train", directory, "--nloops", 1), "it holds loop 1, but its name says loop 3")


def test_an_old_or_foreign_init_file_without_provenance_is_refused(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    with h5py.File(directory / "init.h5", "a") as handle:
        del handle.attrs["network_id"]
    assert_user_error(invoke("train", directory), "does not record the parameters", "init --force")


# --- 6: history --------------------------------------------------------------------------------

def test_history_is_continued_or_kept_never_silently_replaced(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    rls.train(directory, nloops=3, verbose=False)
    rls.train(directory, nloops=2, verbose=False)  # continues: loops 4 and 5
    assert [name for name in visible(directory) if name.startswith("ckpt")] == ["ckpt-3.h5", "ckpt-5.h5"]
    np.testing.assert_array_equal(weights(directory, "5"), reference_weights(base, tmp_path, 5))
    assert_user_error(invoke("train", directory, "--restore-from-checkpoint", 3), "--discard-later", "ckpt-5"[5:])
    assert invoke("train", directory, "--restore-from-checkpoint", 3, "--discard-later").exit_code == 0
    assert [name for name in visible(directory) if name.startswith("ckpt")] == ["ckpt-3.h5", "ckpt-4.h5"]
    curve, attrs = read_h5(directory / "learning-curve.h5")
    assert list(curve["loop"]) == [1, 2, 3, 4, 5, 4] and list(curve["segment"]) == [1, 1, 1, 2, 2, 3]
    assert [s["restored_from"] for s in attrs["segments"]] == ["init", "3", "3"]
    assert [s["saved"] for s in attrs["segments"]] == [["3"], ["5"], ["4"]]
    # training from the initial weights again also needs the explicit option
    assert_user_error(invoke("train", directory, "--restore-from-checkpoint", "init"), "--discard-later")


# --- 7: low-precision P --------------------------------------------------------------------------

def test_parameters_that_overflow_16_bit_p_are_refused_and_the_derived_scale_fits(tmp_path):
    with pytest.raises(ParameterError, match="beyond the float16 maximum 65504"):
        rls.new(tmp_path / "a", {**SMALL, "p_precision": "float16", "penlambda": 1e-5, "p_scale": 1.0})
    with pytest.raises(ParameterError, match="beyond the int16 maximum 32767"):
        rls.new(tmp_path / "b", {**SMALL, "p_precision": "int16", "p_scale": 2.0**10})  # 1/0.02 * 1024 > 32767
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    p = rls.Params({"p_precision": "int16", "lx": 2, "penlam_ff": 0.01})  # the feed-forward diagonal counts
    assert p.p_scale == 2.0**8 and 100 * p.p_scale <= 32767 < 100 * 2 * p.p_scale
    # with the derived scale the initial P fits; float16 is still too coarse for so small a penalty:
    # P loses its positive definiteness and overflows, which is reported, never trained on silently
    directory = tmp_path / "c"
    rls.new(directory, {**SMALL, "p_precision": "float16", "penlambda": 1e-5})
    assert rls.Params({**SMALL, "p_precision": "float16", "penlambda": 1e-5}).p_scale == 0.5
    rls.init(directory, verbose=False)
    result = invoke("train", directory, "--nloops", 5)
    assert "warning: loop 1: 0" not in result.stderr
    assert_user_error(result, "plastic weights became NaN or infinite", "nothing after checkpoint 'init' was saved")
    assert re.search(r"warning: loop \d: \d+ entries of P are NaN or infinite \(float16 overflowed\)", result.stderr)
    assert [name for name in visible(directory) if name.startswith("ckpt")] == []


def _spoil_p_after_each_update(monkeypatch, value):
    """Make the RLS update put ``value`` into P[0] (an injected fault of the arithmetic)."""
    from spikeforge.core.backends import numba_rls

    update = numba_rls.rls_update

    def spoiled(P, *args, **options):
        update(P, *args, **options)
        P[0].reshape(-1)[0] = value

    monkeypatch.setattr(numba_rls, "rls_update", spoiled)


def test_p_entries_clipped_to_int16_are_counted_and_reported_every_loop(base, tmp_path, monkeypatch):
    directory = tmp_path / "net"
    rls.new(directory, {**SMALL, "p_precision": "int16"})
    rls.init(directory, verbose=False)
    _spoil_p_after_each_update(monkeypatch, 32767)
    with pytest.warns(SpikeforgeWarning, match=r"loop 1: 1 entries of P are at the int16 limits"):
        rls.train(directory, nloops=2, verbose=False)
    curve, _ = read_h5(directory / "learning-curve.h5")
    assert list(curve["p_saturated"]) == [1, 1]


def test_non_finite_weights_stop_training_and_keep_the_last_good_checkpoint(base, tmp_path, monkeypatch):
    directory = tmp_path / "net"
    rls.new(directory, {**SMALL, "p_precision": "float16", "penlambda": 0.5})
    rls.init(directory, verbose=False)
    rls.train(directory, nloops=1, verbose=False)
    good = (directory / "ckpt-1.h5").read_bytes()
    _spoil_p_after_each_update(monkeypatch, np.inf)
    with pytest.warns(SpikeforgeWarning, match=r"loop 2: \d+ entries of P are NaN or infinite"):
        with pytest.raises(rls.TrainingDiverged, match=r"loop 2: \d+ plastic weights became NaN .* checkpoint '1'"):
            rls.train(directory, nloops=3, verbose=False)
    assert [name for name in visible(directory) if name.startswith("ckpt")] == ["ckpt-1.h5"]
    assert (directory / "ckpt-1.h5").read_bytes() == good
    curve, attrs = read_h5(directory / "learning-curve.h5")
    assert list(curve["loop"]) == [1, 2] and curve["p_nonfinite"][1] > 0
    assert attrs["segments"][-1]["ended"].startswith("failed: TrainingDiverged")


# --- 8: damaged init.h5 ------------------------------------------------------------------------

@pytest.mark.parametrize("damage, message", [
    (lambda f: f["static/post"].__setitem__(5, 10**6), "static/post holds 1000000"),
    (lambda f: f["plastic/index"].__setitem__((3, 2), -1), "plastic/index holds -1"),
    (lambda f: _replace(f, "stimulus", f["stimulus"][:, :-7]), "stimulus has shape (1, 493, 1024)"),
    (lambda f: f["targets"].__setitem__((0, 4, 9), np.nan), "targets[0, 4, 9] is nan"),
    (lambda f: _replace(f, "static/ptr", f["static/ptr"][()][::-1]), "static/ptr is not a row index"),
])
def test_a_damaged_init_file_is_refused(base, tmp_path, damage, message):
    directory = copy_of(base, tmp_path / "net")
    with h5py.File(directory / "init.h5", "a") as handle:
        damage(handle)
    assert_user_error(invoke("train", directory), "init.h5", "is damaged", message, "init --force")


def _replace(handle, name, values):
    del handle[name]
    handle[name] = values


def test_a_damaged_checkpoint_is_refused(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    rls.train(directory, nloops=1, verbose=False)
    with h5py.File(directory / "ckpt-1.h5", "a") as handle:
        handle["plastic/weight"][2, 3] = np.nan
    assert_user_error(invoke("train", directory), "ckpt-1.h5", "plastic/weight[2, 3] is nan")
    (directory / "ckpt-1.h5").write_bytes(b"\x89HDF\r\n")  # truncated
    assert_user_error(invoke("test", directory), "ckpt-1.h5", "not a readable HDF5 file")


# --- bad input at the boundary -------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    ((), "Usage: spikeforge"), (("train",), "error: Missing argument 'DIRECTORY'"),
    (("train", "x", "--nloops", "0"), "error: Invalid value for '--nloops': 0 is not in the range x>=1"),
    (("train", "x", "--bogus"), "error: No such option '--bogus'"), (("bogus",), "error: No such command 'bogus'"),
    (("new", ""), "error: Invalid value for 'DIRECTORY': is empty"),
])
def test_usage_errors_of_the_installed_command_are_one_line_and_status_2(args, message):
    result = subprocess.run([sys.executable, "-m", "spikeforge", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 1


def test_the_python_api_refuses_bad_argument_types(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    with pytest.raises(ParameterError, match="nloops = True must be an integer >= 1"):
        rls.train(directory, nloops=True)
    with pytest.raises(ParameterError, match="number of tasks = '2' must be an integer"):
        rls.init(directory, n_tasks="2", force=True)
    rls.train(directory, nloops=1, verbose=False)
    for neurons, message in (([1.5, 2.9], "neuron 1.5 is not an integer index"), ([0, 0, 3], "neuron 0 is selected "
                             "more than once"), ("a:b", "neurons 'a:b' is not a range"), (5.0, "is not a selection")):
        with pytest.raises(ParameterError, match=re.escape(message)):
            rls.test(directory, neurons=neurons, plot=False, verbose=False)
    rls.test(directory, neurons="0:4", plot=False, verbose=False)  # a text selection, as on the command line
    assert list(read_h5(directory / "test.h5", ["neurons"])[0]["neurons"]) == [0, 1, 2, 3]
    import numpy as np_
    assert rls.Params({"n_cells": np_.int64(1024), "seed": np_.uint64(5)}).n_cells == 1024

@pytest.mark.parametrize("setting, message", [
    ("seed=-1", "seed = -1 must be in [0,"), ("seed=12345678901234567890", "seed = 12345678901234567890 must be in"),
    ("dt=1e-300", "steps of dt = 1e-300 ms; expected at most"), ("max_rate=1e30", "max_rate = 1e+30 Hz exceeds"),
    ("n_cells=100000000000000", "n_cells + lx = 100000000000000 exceeds"), ("penlambda=0", "penlambda = 0.0 must be > 0"),
    ("pree=-1", "pree = -1.0 must be in [0.0, 1.0]"),
])
def test_out_of_range_parameters_are_one_line_errors(tmp_path, setting, message):
    assert_user_error(invoke("new", tmp_path / "net", "--set", setting), message)
    assert not (tmp_path / "net").exists()


def test_edited_params_toml_is_checked_too(base, tmp_path):
    directory = copy_of(base, tmp_path / "net")
    params = directory / "params.toml"
    text = params.read_text()
    params.write_text(text.replace(f"\nseed = {SMALL['seed']}", "\nseed = -5"))
    assert_user_error(invoke("train", directory), "seed = -5 must be in")
    params.write_text(text.replace(f"\nseed = {SMALL['seed']}", ""))
    assert_user_error(invoke("train", directory), "sets no seed", "seed = ")
    assert_user_error(invoke("init", directory, "--force"), "sets no seed")


def test_a_model_too_large_for_the_machine_is_refused_before_any_work(tmp_path):
    directory = tmp_path / "huge"
    result = invoke("new", directory, "--set", "n_cells=2000000000", "--set", "seed=1")
    assert result.exit_code == 0 and "warning: the model needs about" in result.stderr
    result = invoke("estimate", directory)
    assert result.exit_code == 0 and "available on this machine" in result.output
    started = time.monotonic()
    assert_user_error(invoke("init", directory), "the model needs about", "TB of memory", "this machine has")
    assert time.monotonic() - started < 10 and visible(directory) == ["params.toml"]


@pytest.mark.parametrize("kind, values, message", [
    ("empty", None, "is not a readable .npy array"),
    ("complex", 5.0 + 1j, "holds complex values; expected real numbers"),
    ("absurd", 1e6, "is 1000000.0 Hz; expected a rate in [0, max_rate = 500.0] Hz"),
    ("negative", -2.0, "is -2.0 Hz; expected a rate in [0, max_rate"),
])
def test_bad_rate_files_are_refused_before_the_init_run(base, tmp_path, kind, values, message):
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    path = tmp_path / f"{kind}.npy"
    if values is None:
        path.write_bytes(b"")
    else:
        rates = np.full((20, 1024), 5.0, dtype=complex if kind == "complex" else float)
        rates[7, 3] = values
        np.save(path, rates)
    result = invoke("init", directory, "--spikerate-file", path)
    assert_user_error(result, message)
    assert "init run" not in result.output and visible(directory) == ["params.toml"]


# --- files: disk full, read-only, permissions, fsync ------------------------------------------

@contextlib.contextmanager
def small_filesystem(path: Path, size_bytes: int):
    """A tmpfs of ``size_bytes`` at ``path`` (root only), or None where none can be mounted."""
    path.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)], capture_output=True).returncode == 0
    try:
        yield path if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_full_disk_is_one_error_line_and_leaves_the_previous_files(base, tmp_path, monkeypatch):
    init_bytes = (base / "init.h5").stat().st_size
    with small_filesystem(tmp_path / "disk", init_bytes + (2 << 20)) as disk:
        directory = disk / "net" if disk is not None else tmp_path / "net"
        shutil.copytree(base, directory)
        before = snapshot(directory)
        if disk is not None:  # a real tmpfs: the checked free space refuses before any work ...
            assert_user_error(invoke("train", directory, "--nloops", 1), "free, but the 1 checkpoint(s) training writes will take")
            assert snapshot(directory) == before
            monkeypatch.setattr("spikeforge.rls.training._check_disk_space", lambda *args: None)
        else:  # ... and without one, a stub of the file layer fails like a full disk
            def full(temporary, path):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            monkeypatch.setattr(store, "_commit", full)
        # the write itself fails: one error, no temporary left, earlier files unchanged
        with pytest.raises(DataFileError, match=r"cannot write .*ckpt-1.h5.*: No space left on device"):
            rls.train(directory, nloops=1, verbose=False)
        assert temporaries(directory) == [] and not (directory / "ckpt-1.h5").exists()
        assert {name: value for name, value in snapshot(directory).items() if name in before} == before


def test_a_read_only_directory_is_reported_before_any_work(base, tmp_path):
    with small_filesystem(tmp_path / "disk", 64 << 20) as disk:
        root = disk if disk is not None else tmp_path / "ro"
        root.mkdir(exist_ok=True)
        directory = copy_of(base, root / "net")
        if disk is not None:
            subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        else:
            directory.chmod(0o555)
        try:
            started = time.monotonic()
            assert_user_error(invoke("train", directory, "--nloops", 50), "cannot write into data directory")
            assert time.monotonic() - started < 5
            assert_user_error(invoke("test", directory), "cannot write into data directory")
        finally:
            if disk is not None:
                subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
            directory.chmod(0o755)


def test_files_get_the_umask_permissions_and_are_flushed(base, tmp_path, monkeypatch):
    directory = tmp_path / "net"
    process = start("new", directory, "--set", "n_cells=1024", "--set", "seed=3", "--set", "pree=0.2", umask=0o027)
    assert finish(process)[0] == 0
    process = start("init", directory, umask=0o002)
    assert finish(process)[0] == 0
    assert (directory / "params.toml").stat().st_mode & 0o777 == 0o640
    assert (directory / "init.h5").stat().st_mode & 0o777 == 0o664
    synced = []
    fsync = os.fsync
    monkeypatch.setattr(store.os, "fsync", lambda handle: synced.append(os.readlink(f"/proc/self/fd/{handle}"))
                        or fsync(handle))
    store.write_h5(tmp_path / "x.h5", {"a": np.arange(3)})
    assert len(synced) == 2 and synced[0].endswith(TEMPORARY_SUFFIX) and synced[1] == str(tmp_path)


# --- a silent network --------------------------------------------------------------------------

def test_a_silent_network_is_reported_in_the_users_terms(tmp_path):
    directory = tmp_path / "net"
    result = invoke("new", directory, "--set", "n_cells=1024", "--set", "seed=1")
    warning = ("warning: the network will be silent: the constant drive is below threshold: x_bale = 0.857 < threshe "
               "= 1 and x_bali = 0.571 < threshi = 1 (the derived x_bale is 0.12 sqrt(k), with k = round(ne * pree) = "
               "51 (n_cells = 1024, pree = 0.1)); set k >= 70, or pree, or x_bale")
    assert result.exit_code == 0 and warning in result.stderr.splitlines()
    result = invoke("init", directory)
    assert result.exit_code == 0 and warning in result.stderr.splitlines()
    assert re.search(r"warning: the init run is nearly silent \(excitatory 0\.\d+ Hz and inhibitory 0\.\d+ Hz, below "
                     r"0\.5 Hz\): RLS cannot learn from neurons that do not spike; the constant drive", result.stderr)
    # with k >= 70 the drive reaches threshold: no warning
    result = invoke("new", tmp_path / "active", "--set", "n_cells=1024", "--set", "seed=1", "--set", "k=70")
    assert result.exit_code == 0 and "warning" not in result.stderr
