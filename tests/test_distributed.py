"""`spikeforge train --distributed` under torchrun (issue 15): two ranks give one rank's result, a
checkpoint of two ranks resumes on one and on three with the same result, a killed rank ends the other
within seconds with an error naming the valid checkpoint, and a run outside torchrun is refused."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from spikeforge import rls
from spikeforge.cli import cli
from spikeforge.rls.distributed import shard_of

from conftest import SMALL

FLOAT64 = {**SMALL, "p_precision": "float64"}


def torchrun(ranks: int, *args: str, wait: bool = True):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", "-m",
               "spikeforge", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if wait:
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def checkpoint(directory: Path, label: str) -> dict:
    with h5py.File(directory / f"ckpt-{label}.h5") as handle:
        return {"P": handle["P"][()], "weight": handle["plastic/weight"][()]}


def curve(directory: Path) -> dict:
    with h5py.File(directory / "learning-curve.h5") as handle:
        return {name: handle[name][()] for name in ("loop", "correlation", "firing_rate")}


def assert_same(a: dict, b: dict) -> None:
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=0, err_msg=name)


def test_shards_cover_the_neurons_once():
    for n, world in ((1024, 1), (1024, 3), (10, 4), (7, 7)):
        shards = [shard_of(n, k, world) for k in range(world)]
        assert shards[0].lo == 0 and shards[-1].hi == n
        assert all(a.hi == b.lo for a, b in zip(shards, shards[1:]))
        sizes = [s.hi - s.lo for s in shards]
        assert max(sizes) - min(sizes) <= 1


def test_distributed_outside_torchrun_is_refused(small_run):
    result = CliRunner().invoke(cli, ["train", str(small_run), "--distributed"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --distributed needs torchrun's environment")
    result = CliRunner().invoke(cli, ["train", str(small_run), "--shard-network"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --shard-network shards the network across the "
                                                              "ranks of a --distributed run; add --distributed")
    # under torchrun without --distributed every rank would train the same directory on its own
    result = CliRunner(env={"WORLD_SIZE": "2"}).invoke(cli, ["train", str(small_run)])
    assert result.exit_code == 2 and result.stderr.startswith("error: this process is one of 2 that torchrun started")
    assert not list(small_run.glob("ckpt-*.h5"))


def test_estimate_per_rank_is_refused_without_p(tmp_path):
    rls.new(tmp_path / "small", {**SMALL, "p_compute": "small"})
    out = CliRunner().invoke(cli, ["estimate", str(tmp_path / "small"), "--ranks", "2"]).output
    assert "p_compute = 'small' does not keep: set p_compute = 'fast'" in out and "per rank" not in out


@pytest.mark.parametrize("backend_name, n_shards", [("numba", 2), ("numba-threads", 2), ("torch", 2), ("torch", 1)])
def test_two_shards_stepped_in_turn_equal_the_whole_network(small_run, backend_name, n_shards):
    """The two phases of a sharded step (update own neurons; exchange spikes; deliver onto own neurons through
    the owned synapses only) reproduce the whole network's step exactly, run here in one process with the
    exchange done by hand: the spikes, voltages, currents, filtered trains and rolling sums of a whole trial
    with current noise, on either backend. ("numba-threads": the neurons of each phase shared out among
    threads whatever the network's size, so that each thread delivers onto its part of the rank's neurons)."""
    from spikeforge.core import rng as streams
    from spikeforge.core.backends import get_backend
    from spikeforge.core.backends.layout import DELIVER, TRAIN_RECORD, UPDATE
    from spikeforge.rls.distributed import owned_synapses
    from spikeforge.rls.files import RunDir
    from spikeforge.rls.model import Model
    from spikeforge.rls.network_parameters import float_dtype, initial_voltage, network_parameters
    from spikeforge.rls.trial import new_recording, new_state

    if backend_name == "torch":
        pytest.importorskip("torch")
    backend = get_backend("numba", parallel_min_neurons=0) if backend_name == "numba-threads" else get_backend(backend_name)
    model = Model.load(RunDir(small_run))
    p, n = model.p, model.p.n_cells
    net, in_to_out = model.connectivity()
    const = network_parameters(p, model.cells)
    dtype = float_dtype(p)
    const = backend.put(const._replace(drive=const.drive._replace(noise_scale=np.full(n, 0.02, dtype))))
    rng = streams.stream(1, "test")
    v0 = initial_voltage(p, rng, model.cells)
    noise = backend.put(rng.standard_normal((p.steps.n_steps, n)).astype(dtype))
    no_ff, x_stim = backend.put(np.zeros((0, 0), dtype=np.uint8)), backend.put(model.stimulus[0])

    whole, whole_rec = backend.put(new_state(p, v0)), backend.put(new_recording(p, TRAIN_RECORD))
    backend.run_steps(whole, backend.put(net), const, whole_rec, x_stim, noise, no_ff, 1, p.steps.n_steps, TRAIN_RECORD)
    whole, whole_rec = backend.get(whole), backend.get(whole_rec)
    assert whole.spike_count.sum() > 1000  # the comparison below sees spikes and their deliveries

    shards = [shard_of(n, k, n_shards) for k in range(n_shards)]  # one shard: a single rank's two phases
    owned = [owned_synapses(net, in_to_out, shard) for shard in shards]
    assert sum(len(o.static_post) for o, _ in owned) == len(net.static_post)
    for shard, (o, o_in_to_out) in zip(shards, owned):  # the RLS write-back finds each own synapse's weight
        assert np.all((o.static_post >= shard.lo) & (o.static_post < shard.hi))
        rows = slice(shard.lo, shard.hi)
        np.testing.assert_array_equal(o.plastic_weight[o_in_to_out[rows]], net.plastic_weight[in_to_out[rows]])
    nets = [backend.put(o) for o, _ in owned]
    states = [backend.put(new_state(p, v0)) for _ in shards]
    recs = [backend.put(new_recording(p, TRAIN_RECORD)) for _ in shards]
    for ti in range(1, p.steps.n_steps + 1):
        for phase in (UPDATE, DELIVER):
            for shard, o, state, rec in zip(shards, nets, states, recs):
                backend.run_steps(state, o, const, rec, x_stim, noise[ti - 1:ti], no_ff, ti, ti, TRAIN_RECORD,
                                  owned=(shard.lo, shard.hi), phase=phase)
            if phase == UPDATE:  # the exchange
                for shard, state in zip(shards, states):
                    for other in states:
                        other.spiked[shard.lo:shard.hi] = state.spiked[shard.lo:shard.hi]
    for shard, state, rec in zip(shards, states, recs):
        state, rec = backend.get(state), backend.get(rec)
        rows = slice(shard.lo, shard.hi)
        for name in ("v", "u_bal", "u_plas"):
            np.testing.assert_array_equal(getattr(state, name)[rows], getattr(whole, name)[rows], err_msg=name)
        for name in ("r", "spike_count", "spiked", "last_spike"):  # known on every rank for every neuron
            np.testing.assert_array_equal(getattr(state, name), getattr(whole, name), err_msg=name)
        np.testing.assert_array_equal(rec.spike_steps, whole_rec.spike_steps)
        np.testing.assert_array_equal(rec.roll_sum[:, :, rows], whole_rec.roll_sum[:, :, rows])
        np.testing.assert_array_equal(rec.roll_count, whole_rec.roll_count)


@pytest.mark.slow
def test_two_ranks_equal_one_and_their_checkpoint_resumes_on_one_and_three(tmp_path):
    """Two ranks shard the network (its synapses, dynamics and RLS state; spikes exchanged every step); three
    ranks continue with the dynamics replicated and the RLS state sharded, and two with the torch backend's
    sharded network: all equal one process (torch on the CPU computes as numba does)."""
    single, double = tmp_path / "single", tmp_path / "double"
    for directory in (single, double):
        rls.new(directory, FLOAT64)
        rls.init(directory, verbose=False)
    assert CliRunner().invoke(cli, ["train", str(single), "--nloops", "2"]).exit_code == 0
    done = torchrun(2, "train", str(double), "--nloops", "2", "--distributed", "--shard-network")
    assert done.returncode == 0, done.stderr
    assert "each holding the P of 512 neurons and the synapses onto them" in done.stdout
    assert done.stdout.count("saved ") == 1  # only rank 0 prints
    assert_same(checkpoint(single, "2"), checkpoint(double, "2"))
    assert_same(curve(single), curve(double))  # the same spikes: rates and correlations of every loop
    # the two-rank checkpoint continues on one rank and on three
    on_one, on_three = tmp_path / "on_one", tmp_path / "on_three"
    shutil.copytree(double, on_one)
    shutil.copytree(double, on_three)
    assert CliRunner().invoke(cli, ["train", str(single), "--nloops", "2"]).exit_code == 0
    assert CliRunner().invoke(cli, ["train", str(on_one), "--nloops", "2"]).exit_code == 0
    done = torchrun(3, "train", str(on_three), "--nloops", "2", "--distributed")
    assert done.returncode == 0, done.stderr
    assert "3 ranks, each holding the P of 341 or 342 neurons" in done.stdout
    # the torch backend's sharded network (its kernel's phases and the exchange of tensors) continues it too
    on_torch = tmp_path / "on_torch"
    shutil.copytree(double, on_torch)
    done = torchrun(2, "train", str(on_torch), "--nloops", "2", "--distributed", "--shard-network", "--backend", "torch")
    assert done.returncode == 0, done.stderr
    for directory in (on_one, on_three, on_torch):
        assert_same(checkpoint(single, "4"), checkpoint(directory, "4"))
        assert_same(curve(single), curve(directory))


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


@pytest.mark.slow
def test_a_directory_in_use_stops_every_rank_with_its_error(small_run):
    from spikeforge.rls.files import RunDir

    with RunDir(small_run).lock("spikeforge train"):
        done = torchrun(2, "train", str(small_run), "--nloops", "1", "--distributed", "--shard-network")
    assert done.returncode != 0
    assert done.stderr.count("error: data directory") == 1  # rank 0's own error
    assert "error: rank 0 could not lock the data directory" in done.stderr  # rank 1 knows why, and stops at once
    # no traceback of ours (torchrun prints its own report of the failed ranks)
    assert "with the other ranks failed" not in done.stderr and "spikeforge/rls" not in done.stderr
    assert not list(small_run.glob("ckpt-*.h5"))


@pytest.mark.slow
def test_a_killed_rank_ends_the_other_with_a_clear_error(tmp_path):
    directory = tmp_path / "net"
    rls.new(directory, FLOAT64)
    rls.init(directory, verbose=False)
    assert CliRunner().invoke(cli, ["train", str(directory), "--nloops", "1"]).exit_code == 0
    process = torchrun(2, "train", str(directory), "--nloops", "500", "--checkpoint-every", "1", "--distributed",
                       wait=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:  # until the ranks have trained two loops
        if any(int(p.stem[5:]) >= 3 for p in directory.glob("ckpt-*.h5") if p.stem[5:].isdigit()):
            break
        time.sleep(0.1)
    ranks = children(process.pid)
    assert len(ranks) == 2
    os.kill(max(ranks), signal.SIGKILL)
    killed = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - killed < 20 and process.returncode != 0
    # the survivor either finds the dead peer in its next exchange, or first gets the SIGTERM that torchrun
    # sends every rank when one fails, and says so; torchrun's report names the killed rank
    assert "with the other ranks failed" in stderr or "torchrun sends SIGTERM to every rank when one rank fails" in stderr
    assert "Signal 9 (SIGKILL) received by PID" in stderr
    valid = re.search(r"the last checkpoint, '(\d+)', stays valid", stderr)
    assert valid, stderr[-2000:]
    assert checkpoint(directory, valid.group(1))["P"].shape[0] == SMALL["n_cells"]  # complete and readable


def test_a_rank_reads_only_its_rows_of_p(small_run):
    from spikeforge.rls.files import RunDir
    from spikeforge.rls.model import Model

    run = RunDir(small_run)
    whole = Model.load(run)
    block = Model.load(run, p_rows=(256, 512))
    assert block.P.shape[0] == 256
    np.testing.assert_array_equal(block.P, whole.P[256:512])
    np.testing.assert_array_equal(block.plastic.weight, whole.plastic.weight)  # everything else is whole


def test_estimate_per_rank_divides_p_only(small_run):
    from spikeforge.rls.estimate import estimate, per_rank

    p = rls.Params(SMALL)
    e = estimate(p)
    p_all, rest = e.p_memory[e.chosen], e.total(*e.chosen) - e.p_memory[e.chosen]
    steady, writing = per_rank(e, 4)
    assert steady == rest + p_all // 4 and writing == rest + 2 * (p_all // 4)  # 1024 neurons: 256 each
    assert per_rank(e, 1)[0] == e.total(*e.chosen)
    assert per_rank(e, 4, shard_network=True)[0] == steady - e.connectivity + -(-e.connectivity // 4)
    out = CliRunner().invoke(cli, ["estimate", str(small_run), "--ranks", "4"]).output
    assert "train --distributed over 4 ranks" in out and "per rank while training" in out
    assert "with --shard-network" in out
    too_many = CliRunner().invoke(cli, ["estimate", str(small_run), "--ranks", "1025"])
    assert too_many.exit_code == 2 and "--ranks 1025 for 1024 neurons" in too_many.stderr
