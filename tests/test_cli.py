"""The `spikeforge` command: the contract, bad input, and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import pytest

from spikeforge.cli import parse_neurons
from spikeforge.errors import ParameterError

from conftest import SMALL, assert_user_error, invoke as run


def files_in(directory):
    """The visible files of ``directory`` (the lock file is hidden), sorted."""
    return sorted(f.name for f in directory.iterdir() if not f.name.startswith("."))


def _set_args(values):
    return [arg for name, value in values.items() for arg in ("--set", f"{name}={value}")]


def test_command_line_workflow_runs_end_to_end(tmp_path):
    directory = tmp_path / "net"
    assert run("new", directory, *_set_args(SMALL)).exit_code == 0
    assert "\nn_cells = 1024" in (directory / "params.toml").read_text()
    result = run("init", directory)
    assert result.exit_code == 0 and "mean excitatory rate" in result.output
    result = run("--threads", 1, "train", directory, "--nloops", 3, "--correlation-interval", 3)
    assert result.exit_code == 0, result.output
    assert (directory / "ckpt-3.h5").exists() and (directory / "learning-curve.h5").exists()
    result = run("test", directory, "--ntrials", 2, "--neurons", "0:4", "--no-plot")
    assert result.exit_code == 0, result.output
    assert not list(directory.glob("*.png"))
    result = run("plot", directory / "test.h5", "--neurons", "0,3")
    assert result.exit_code == 0 and (directory / "test-psth-task0.png").exists()
    with h5py.File(directory / "test.h5") as f:
        assert list(f["neurons"][:]) == [0, 1, 2, 3] and f.attrs["ntrials"] == 2


def test_bad_input_gets_one_line_and_status_2_and_writes_nothing(tmp_path):
    missing = tmp_path / "missing"
    assert_user_error(run("init", missing), "does not exist", str(missing))
    assert_user_error(run("train", missing, "--nloops", 1), "does not exist")
    assert_user_error(run("new", tmp_path / "a", "--set", "n_cels=5"), "unknown parameter 'n_cels'")
    assert_user_error(run("new", tmp_path / "b", "--set", "dt=-0.1"), "dt = -0.1 must be > 0")
    assert_user_error(run("new", tmp_path / "c", "--set", "stim_off=2500", "--set", "train_time=2000"),
                      "stim_off = 2500.0 must be <= train_time = 2000.0")
    assert not any((tmp_path / name).exists() for name in "abc")

    directory = tmp_path / "net"
    assert run("new", directory, *_set_args(SMALL)).exit_code == 0
    assert_user_error(run("new", directory), "already exists")
    assert_user_error(run("train", directory, "--nloops", 1), "init.h5", "does not exist", "spikeforge init")
    assert run("init", directory).exit_code == 0
    assert_user_error(run("train", directory, "--restore-from-checkpoint", 7), "checkpoint", "ckpt-7.h5",
                      "does not exist")
    assert_user_error(run("train", directory, "--restore-from-checkpoint", "best"), "'best' is not a checkpoint")
    assert_user_error(run("test", directory), "no checkpoint")
    assert files_in(directory) == ["init.h5", "params.toml"]

    init_file = directory / "init.h5"
    original = init_file.read_bytes()
    init_file.write_bytes(original[: len(original) // 3])  # truncated, as after a crash
    truncated = init_file.read_bytes()
    assert_user_error(run("train", directory, "--nloops", 1), "init.h5", "not a readable HDF5 file")
    assert init_file.read_bytes() == truncated
    assert files_in(directory) == ["init.h5", "params.toml"]

    init_file.write_bytes(original)
    assert run("train", directory, "--nloops", 1).exit_code == 0
    assert_user_error(run("test", directory, "--neurons", "0,5000"), "neuron index 5000 is out of range")
    assert_user_error(run("test", directory, "--neurons", "a:b"), "neurons 'a:b' is not a range")
    assert_user_error(run("init", directory), "--force")
    assert_user_error(run("plot", directory / "nothing.h5"), "does not exist")
    params = directory / "params.toml"
    params.write_text(params.read_text().replace("n_cells = 1024", "n_cells = 2048"))
    assert_user_error(run("train", directory, "--nloops", 1), "params.toml changed after init")


def _commands(command, path=()):
    import click

    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), command


def test_every_command_and_option_explains_itself_with_its_default():
    """`spikeforge <capability> <verb> --help` is the reference a user has at hand: every command and option
    has a text, and every option with a default shows it (or says it in its text)."""
    import click

    from spikeforge.cli import cli

    commands = dict(_commands(cli))
    assert {"train", "rate map", "fit cell", "fit synthetic network", "sequence run"} <= set(commands)
    problems = []
    for name, command in commands.items():
        if not command.help:
            problems.append(f"{name}: no description")
        for option in command.params:
            if not isinstance(option, click.Option) or option.name == "help":
                continue
            if not option.help:
                problems.append(f"{name} {option.opts[0]}: no help")
            elif (option.default is not None and not option.required and not option.is_flag and not option.multiple
                  and not option.show_default and "default" not in option.help):
                problems.append(f"{name} {option.opts[0]}: default {option.default!r} not shown")
    assert problems == []


def test_every_rls_verb_is_also_under_its_capability_name(tmp_path):
    from spikeforge.cli import cli

    rls = cli.commands["rls"].commands
    assert sorted(rls) == ["estimate", "init", "new", "plot", "quickstart", "sweep", "test", "train"]
    assert all(rls[verb] is cli.commands[verb] for verb in rls)
    assert run("rls", "new", tmp_path / "net", "--set", "n_cells=512").exit_code == 0
    assert "n_cells = 512" in (tmp_path / "net" / "params.toml").read_text()


def test_the_version_is_the_package_version():
    from importlib.metadata import version

    assert run("--version").output.strip() == f"spikeforge, version {version('spikeforge')}"


def test_neuron_ranges_are_zero_based():
    assert parse_neurons("0:4") == [0, 1, 2, 3]
    assert parse_neurons("0:16:5") == [0, 5, 10, 15]
    assert parse_neurons("7") == [7] and parse_neurons("0,4,8") == [0, 4, 8]
    with pytest.raises(ParameterError):
        parse_neurons("1:")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT semantics")
def test_ctrl_c_saves_a_restorable_checkpoint_of_the_last_completed_loop(tmp_path):
    directory = tmp_path / "net"
    assert run("new", directory, *_set_args(SMALL)).exit_code == 0
    assert run("init", directory).exit_code == 0
    process = subprocess.Popen([sys.executable, "-m", "spikeforge", "train", str(directory), "--nloops", "100000"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    deadline = time.monotonic() + 120
    while len(lines) < 4 and time.monotonic() < deadline:  # header plus three loops
        lines.append(process.stdout.readline())
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    labels = [f.name for f in directory.glob("ckpt-*i.h5")]
    assert len(labels) == 1, labels
    loop = int(labels[0][len("ckpt-"):-len("i.h5")])
    assert loop >= 3 and f"saved checkpoint '{loop}i'" in stderr and "continue with `spikeforge train" in stderr
    with h5py.File(directory / "learning-curve.h5") as f:
        assert list(f["loop"][:]) == list(range(1, loop + 1))
    result = run("train", directory, "--nloops", 1)  # continues from the latest checkpoint
    assert result.exit_code == 0 and (directory / f"ckpt-{loop + 1}.h5").exists()


def test_quickstart_trains_tests_and_plots(tmp_path):
    """The README's first command, shortened to 10 loops: it prints the correlation at loop 10
    and the figures it wrote, which exist; a bad backend is a one-line error."""
    result = run("quickstart", tmp_path / "qs", "--nloops", 10)
    assert result.exit_code == 0, result.output
    assert "correlation with the targets: " in result.output and "at loop 10" in result.output
    figures = [line.strip() for line in result.output.split("figures:")[1].splitlines() if line.strip()]
    assert figures and all(os.path.isfile(figure) and figure.endswith(".png") for figure in figures)
    assert_user_error(run("quickstart", tmp_path / "qs2", "--backend", "numba", "--device", "cuda"),
                      "the numba backend runs on the cpu, not on 'cuda'")
    assert not (tmp_path / "qs2").exists()
    assert_user_error(run("quickstart", tmp_path / "qs", "--nloops", 10), "already holds a network",
                      f"spikeforge train {tmp_path / 'qs'} --nloops N")


def test_a_preset_sets_its_values_and_set_values_win(tmp_path):
    from spikeforge.rls.files import RunDir
    from spikeforge.rls.presets import PRESETS

    result = run("new", tmp_path / "fit", "--preset", "recordings", "--set", "n_cells=512", "--set", "sig=0.5")
    assert result.exit_code == 0, result.output
    p = RunDir(tmp_path / "fit").params()
    for name, value in PRESETS["recordings"].items():
        assert p[name] == (0.5 if name == "sig" else value), name
    assert p.n_cells == 512 and p.jx == 0.0  # k = 0: no static synapses, no derived drive
    # params.toml says which values came from the preset (sig was set by hand)
    text = (tmp_path / "fit" / "params.toml").read_text()
    assert "Made with --preset recordings" in text.splitlines()[2]
    marked = {line.split(" = ")[0] for line in text.splitlines() if line.endswith("[preset recordings]")}
    assert marked == set(PRESETS["recordings"]) - {"sig"}
    assert_user_error(run("new", tmp_path / "other", "--preset", "bogus"), "preset 'bogus' is not one of recordings")
    assert not (tmp_path / "other").exists()


def test_init_refuses_to_replace_an_initialised_network_without_force(tmp_path):
    directory = tmp_path / "net"
    assert run("new", directory, *_set_args(SMALL)).exit_code == 0
    assert run("init", directory).exit_code == 0
    before = (directory / "init.h5").read_bytes()
    assert_user_error(run("init", directory), "already holds an initialised network (init.h5)", "--force")
    assert (directory / "init.h5").read_bytes() == before
    assert run("init", directory, "--force").exit_code == 0

