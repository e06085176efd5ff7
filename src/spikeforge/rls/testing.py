"""``test``: run trials with frozen weights and record what the trained network does.

Every (trial, task) pair draws from its own stream ``("test", trial, task)``.  For the
chosen neurons it records the spike times and the boxcar-averaged total and plastic
currents at the learning times (tsn.md 3.8), and saves them with the targets in
``test.h5``, which is all the plots need::

    neurons (n,)                             0-based neuron indices
    spike_step, spike_trial, spike_task, spike_neuron (n_spikes,)
                                             one row per spike: step (1-based, time = step * dt ms),
                                             trial, task, neuron index
    u_total, u_plastic (ntrials, T, learn_nsteps, n)   boxcar means of the currents
    target (T, learn_nsteps, n)              the targets of those neurons
    target_rate (T, learn_nsteps, n)         [Hz] the target rates, when the targets came from rates
    learn_times (learn_nsteps,)              bin centres [ms]

Attributes: ``dt``, ``stim_off``, ``train_time``, ``learn_every`` [ms], ``ntrials``,
``n_tasks``, ``checkpoint``, ``network_id`` (that of init.h5).

A new ``test`` replaces ``test.h5`` (its results are reproducible from the checkpoint: every trial
has its own stream).  SIGINT or SIGTERM lets the trial in progress finish, then saves the
completed trials to ``test.h5`` and raises :class:`~spikeforge.core.interrupts.Interrupted`
(exit status 130 or 143); when no trial was complete, nothing is written and an earlier
``test.h5`` stays.
"""

from __future__ import annotations

import concurrent.futures
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spikeforge.core import rng as streams
from spikeforge.core.backends import Backend, as_backend
from spikeforge.core.backends.layout import TEST
from spikeforge.core.interrupts import Interrupted, StopSignals, signal_name
from spikeforge.core.store import write_h5
from spikeforge.errors import DataFileError, ParameterError
from spikeforge.rls.estimate import check_host_memory
from spikeforge.rls.files import RunDir, checkpoint_loop
from spikeforge.rls.model import Model
from spikeforge.rls.plotting import write_figures
from spikeforge.rls.simulation import constants, initial_voltage, run_trial
from spikeforge.rls.targets import learning_times
from spikeforge.rls.training import check_device_memory


def check_neurons(neurons: Sequence[int], n_cells: int) -> np.ndarray:
    """``neurons`` as an int array, or ParameterError naming the first index out of range."""
    indices = np.asarray(list(neurons), dtype=np.int64)
    if indices.size == 0:
        raise ParameterError("no neurons selected; expected at least one 0-based index")
    bad = indices[(indices < 0) | (indices >= n_cells)]
    if bad.size:
        raise ParameterError(f"neuron index {bad[0]} is out of range; expected 0 .. {n_cells - 1}")
    return indices


def latest_checkpoint(run: RunDir) -> str:
    """Label of the checkpoint with the highest loop number."""
    label = run.latest_checkpoint()
    if label is None:
        raise DataFileError(f"{str(run.path)!r} has no checkpoint; run `spikeforge train {run.path}` first")
    return label


def _devices(backend: "str | Backend", device: str, p) -> list[str]:
    """Devices for the trials: every visible GPU for torch on "cuda", else just ``device``."""
    if isinstance(backend, Backend):
        return [backend.device]
    if backend == "torch" and device == "cuda" and not p.cell_state_persists:
        import torch

        if torch.cuda.device_count() > 1:
            return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    return [device]


def test(
    directory: str | Path,
    ntrials: int = 1,
    neurons: Sequence[int] = range(16),
    restore_from_checkpoint: str | int | None = None,
    plot: bool = True,
    verbose: bool = True,
    backend: "str | Backend" = "numba",
    device: str = "cpu",
    devices: Sequence[str] | None = None,
) -> Path:
    """Run ``ntrials`` trials of every task with the weights of a checkpoint; save ``test.h5``.

    Args:
        neurons: 0-based indices of the neurons to record.
        restore_from_checkpoint: checkpoint label; default the one with the highest loop.
        plot: write the figures of :func:`spikeforge.rls.plotting.plot` afterwards.
        backend, device: "numba" on the cpu, or "torch" on "cpu" or "cuda[:N]"; with "cuda" the
            trials are spread over every visible GPU (one thread and one copy of the model each); or
            a :class:`~spikeforge.core.backends.Backend` with options of its own.
        devices: the devices to spread trials over, instead of those ``device`` implies.

    Returns:
        Path of ``test.h5``.  SIGINT or SIGTERM keeps the trials completed so far.
    """
    if not isinstance(ntrials, (int, np.integer)) or ntrials < 1:
        raise ParameterError(f"ntrials = {ntrials!r} must be an integer >= 1")
    run = RunDir(directory)
    with StopSignals() as signals, run.lock("spikeforge test"):
        p = run.params()
        indices = check_neurons(neurons, p.n_cells)
        label = latest_checkpoint(run) if restore_from_checkpoint is None else str(restore_from_checkpoint)
        checkpoint_loop(label)
        model = Model.load(run, label, p)
        check_host_memory(p, model.plastic.count, model.n_tasks)
        signals.raise_if_requested()  # a signal some library swallowed during start-up
        with signals.deferred("finishing this trial, then saving the completed trials"):
            completed, recorded = _run_trials(model, label, indices, ntrials, signals, verbose, backend, device, devices)
            if completed:
                write_h5(run.test_file, *recorded)
        if signals.requested:
            kept = f"kept the {completed} completed trials in {run.test_file}" if completed else "no trial was complete"
            raise Interrupted(signals.requested, f"interrupted by {signal_name(signals.requested)}: {kept}")
        if plot:
            figures = write_figures(run.test_file)
            if verbose:
                print("figures: " + ", ".join(str(f) for f in figures))
    return run.test_file


def _run_trials(model: Model, label: str, indices: np.ndarray, ntrials: int, signals: StopSignals, verbose: bool,
                backend, device: str, devices: Sequence[str] | None) -> tuple[int, tuple[dict, dict]]:
    """Run trials 0, 1, ... until ``ntrials`` are done or a stop is requested; return the number of
    consecutive completed trials and the (arrays, attributes) of test.h5 for them."""
    p = model.p
    n_bins, n_tasks = p.steps.learn_nsteps, model.n_tasks
    u_total = np.zeros((ntrials, n_tasks, n_bins, indices.size))
    u_plastic = np.zeros_like(u_total)
    spikes: dict[int, list[np.ndarray]] = {}  # per trial: rows (step, trial, task, neuron)
    done = np.zeros(ntrials, dtype=bool)

    def setup(device_name: str):
        engine = as_backend(backend, device_name)
        check_device_memory(engine, model)
        net, _ = model.connectivity()
        return engine, engine.put(net), engine.put(constants(p, model.cells)), engine.put(model.stimulus)

    def run_one(trial: int, on) -> None:
        engine, net, const, stimulus = on
        rows = []
        for task in range(n_tasks):
            started = time.perf_counter()
            rng = streams.stream(p.seed, "test", trial, task)
            result = run_trial(p, net, const, TEST, initial_voltage(p, rng, model.cells), stimulus[task], rng,
                               ff_probability=model.ff_probability, cell_state=model.cell_state, backend=engine)
            if p.cell_state_persists:
                model.cell_state = result.cell_state
            u_total[trial, task] = result.u_rolling[0][:, indices]
            u_plastic[trial, task] = result.u_rolling[1][:, indices]
            for neuron in indices:
                count = min(int(result.spike_count[neuron]), result.spike_steps.shape[1])
                rows.append(np.stack([result.spike_steps[neuron, :count], np.full(count, trial),
                                      np.full(count, task), np.full(count, neuron)], axis=1))
            if verbose:
                print(f"trial {trial}, task {task}: {time.perf_counter() - started:.2f} s ({engine.device})")
        spikes[trial] = rows
        done[trial] = True

    names = devices or _devices(backend, device, p)
    if len(names) == 1:
        on = setup(names[0])
        for trial in tqdm(range(ntrials), desc="testing", unit="trial", file=sys.stderr,
                          disable=not (verbose and sys.stderr.isatty()), leave=False):
            if signals.requested:
                break
            run_one(trial, on)
    else:  # one thread per device, each taking the next trial; streams make the order irrelevant
        queue = iter(range(ntrials))
        lock = threading.Lock()

        def worker(device_name: str) -> None:
            on = setup(device_name)
            while not signals.requested:
                with lock:
                    trial = next(queue, None)
                if trial is None:
                    return
                run_one(trial, on)

        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            for future in [pool.submit(worker, name) for name in names]:
                future.result()
    completed = ntrials if done.all() else int(np.argmin(done))
    spikes = [rows for trial in range(completed) for rows in spikes[trial]]
    table = np.concatenate(spikes).astype(np.int64) if spikes else np.zeros((0, 4), dtype=np.int64)
    arrays = {
        "neurons": indices, "spike_step": table[:, 0].astype(np.int32), "spike_trial": table[:, 1].astype(np.int32),
        "spike_task": table[:, 2].astype(np.int32), "spike_neuron": table[:, 3].astype(np.int32),
        "u_total": u_total[:completed], "u_plastic": u_plastic[:completed],
        "target": model.targets[:, :, indices], "learn_times": learning_times(p),
    }
    if model.target_rates is not None:
        arrays["target_rate"] = model.target_rates[:, :, indices]
    attrs = {"dt": p.dt, "stim_off": p.stim_off, "train_time": p.train_time, "learn_every": p.learn_every,
             "ntrials": completed, "n_tasks": n_tasks, "checkpoint": label, "network_id": model.network_id}
    return completed, (arrays, attrs)
