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

When the targets came from rates, also the rate-space scores of
:mod:`spikeforge.rls.rate_evaluation` (NaN for hidden neurons), attribute ``psth_smoothing_ms``::

    rate/psth (T, learn_nsteps, n)           [Hz] the network's PSTHs at the learning times
    rate/correlation, rate/rms_error_hz, rate/mean_ratio, rate/poisson_correlation (n,)

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
import hashlib
import numbers
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spikeforge.core import rng as streams
from spikeforge.core.backends import Backend, as_backend
from spikeforge.core.backends.layout import TEST
from spikeforge.core.executor import Cluster, Job, raise_failures, read_result, result_path, run_jobs, uses_dask
from spikeforge.core.run_support import check_backend
from spikeforge.core.selection import neuron_indices
from spikeforge.core.interrupts import Interrupted, StopSignals, signal_name
from spikeforge.core.store import write_h5
from spikeforge.errors import DataFileError, ParameterError, SpikeforgeWarning
from spikeforge.core.resources import human_bytes
from spikeforge.rls import rate_evaluation
from spikeforge.rls.data_targets import DEFAULT_PSTH_SMOOTHING_MS
from spikeforge.rls.estimate import available_memory, check_disk, check_host_memory
from spikeforge.rls.files import RunDir, checkpoint_loop
from spikeforge.rls.model import Model
from spikeforge.rls.plotting import write_figures
from spikeforge.rls.network_parameters import initial_voltage, network_parameters
from spikeforge.rls.trial import run_trial
from spikeforge.rls.targets import learning_times
from spikeforge.rls.training import check_device_memory


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
    neurons: Sequence[int] | str | int = range(16),
    restore_from_checkpoint: str | int | None = None,
    plot: bool = True,
    verbose: bool = True,
    backend: "str | Backend" = "numba",
    device: str = "cpu",
    devices: Sequence[str] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> Path:
    """Run ``ntrials`` trials of every task with the weights of a checkpoint; save ``test.h5``.

    Args:
        neurons: 0-based indices of the neurons to record (a sequence, one index, or a text such as "0:16").
        restore_from_checkpoint: checkpoint label; default the one with the highest loop.
        plot: write the figures of :func:`spikeforge.rls.plotting.plot` afterwards (of the first 16
            recorded neurons; ``spikeforge plot`` draws others).  The figures of an earlier test.h5
            are deleted when it is replaced.
        backend, device: "numba" on the cpu, or "torch" on "cpu" or "cuda[:N]"; with "cuda" the
            trials are spread over every visible GPU (one thread and one copy of the model each); or
            a :class:`~spikeforge.core.backends.Backend` with options of its own.
        devices: the devices to spread trials over, instead of those ``device`` implies.
        scheduler, workers: run each trial as a Dask job (:mod:`spikeforge.core.executor`) on the scheduler at
            this address, or on a local cluster of ``workers`` processes; finished trials are kept under
            ``test-trials/`` until test.h5 is written, so a re-run after a crash or a stop runs only the others.

    Returns:
        Path of ``test.h5``.  SIGINT or SIGTERM keeps the trials completed so far.
    """
    if isinstance(ntrials, bool) or not isinstance(ntrials, numbers.Integral) or ntrials < 1:
        raise ParameterError(f"ntrials = {ntrials!r} must be an integer >= 1")
    on_dask = uses_dask(scheduler, workers)  # a bad address or choice is refused before any work
    if on_dask and isinstance(backend, str):  # in the jobs, a bad device would fail every trial
        check_backend(backend, device)
    run = RunDir(directory)
    with StopSignals() as signals, run.lock("spikeforge test"):
        p = run.params()
        indices = neuron_indices(neurons, p.n_cells)
        label = latest_checkpoint(run) if restore_from_checkpoint is None else str(restore_from_checkpoint)
        checkpoint_loop(label)
        model = Model.load(run, label, p, with_p=False)
        check_host_memory(p, model.plastic.count, model.n_tasks, with_p=False)
        _check_room(run, model, ntrials, indices.size)
        signals.raise_if_requested()  # a signal some library swallowed during start-up
        with signals.deferred("finishing this trial, then saving the completed trials"):
            if on_dask:
                records = _run_trials_on_dask(run, model, label, indices, ntrials, signals, verbose, backend, device,
                                              scheduler, workers)
            else:
                records = _run_trials(model, indices, ntrials, signals, verbose, backend, device, devices)
            completed = records.completed
            if completed:
                stale_figures = run.test_figures()
                write_h5(run.test_file, *_test_file(model, label, indices, records, verbose),
                         before_commit=lambda: [figure.unlink(missing_ok=True) for figure in stale_figures])
            if on_dask and completed == ntrials:
                shutil.rmtree(run.test_trials_dir, ignore_errors=True)
        if signals.requested:
            kept = f"kept the {completed} completed trials in {run.test_file}" if completed else "no trial was complete"
            if on_dask:
                kept += f"; the finished trials stay in {run.test_trials_dir} and the same command runs the rest"
            raise Interrupted(signals.requested, f"interrupted by {signal_name(signals.requested)}: {kept}")
        if plot:
            _plot(run, verbose)
    return run.test_file


def _plot(run: RunDir, verbose: bool) -> None:
    """The figures of the test.h5 just written; a stop or a failure leaves test.h5 complete and says so."""
    again = f"`spikeforge plot {run.test_file}` draws them"
    try:
        figures = write_figures(run.test_file)
    except Interrupted as interrupted:
        raise Interrupted(interrupted.signum, f"interrupted by {signal_name(interrupted.signum)} while plotting: "
                                              f"{run.test_file} is complete, its figures are not; {again}") from None
    except DataFileError as error:
        raise DataFileError(f"{error}; {run.test_file} is complete, its figures are not; {again}") from None
    if verbose:
        print("figures: " + ", ".join(str(f) for f in figures))


def _check_room(run: RunDir, model: Model, ntrials: int, n_neurons: int) -> None:
    """Refuse a test whose recordings do not fit in memory or on the disk, before running it: the
    boxcar currents (allocated at the start) and the spikes at four times the init run's rates."""
    p = model.p
    rate = max(model.init_stats["rate_exc_hz"], model.init_stats["rate_inh_hz"], 1.0)
    spikes = min(4 * rate * p.train_time / 1000, p.steps.max_times)
    need = int(ntrials * model.n_tasks * n_neurons * (2 * p.steps.learn_nsteps * 8 + spikes * 16))
    free_memory = available_memory()
    if free_memory is not None and need > free_memory:
        raise ParameterError(f"{ntrials} trials of {n_neurons} neurons record about {human_bytes(need)}, more than the "
                             f"{human_bytes(free_memory)} of memory available; record fewer trials or neurons")
    check_disk(run.path, need, f"test.h5 of {ntrials} trials of {n_neurons} neurons")


class _Records:
    """What the completed trials recorded, filled trial by trial (in any order)."""

    def __init__(self, model: Model, indices: np.ndarray, ntrials: int):
        shape = (ntrials, model.n_tasks, model.p.steps.learn_nsteps, indices.size)
        self.u_total, self.u_plastic = np.zeros(shape), np.zeros(shape)
        self.spikes: dict[int, np.ndarray] = {}  # per trial: rows (step, trial, task, neuron)
        self.done = np.zeros(ntrials, dtype=bool)
        self.max_rate = model.p.max_rate

    def add(self, trial: int, answer: dict) -> None:
        self.u_total[trial], self.u_plastic[trial] = answer["u_total"], answer["u_plastic"]
        self.spikes[trial] = np.asarray(answer["spikes"], dtype=np.int64).reshape(-1, 4)
        for task, dropped in enumerate(np.asarray(answer["dropped"]).tolist()):
            if dropped:
                warnings.warn(f"trial {trial}, task {task}: {dropped} spikes beyond max_rate = {self.max_rate} Hz "
                              "were not stored; raise max_rate", SpikeforgeWarning, stacklevel=2)
        self.done[trial] = True

    @property
    def completed(self) -> int:
        """Number of consecutive completed trials from trial 0."""
        return self.done.size if self.done.all() else int(np.argmin(self.done))


def _engine(model: Model, backend, device_name: str) -> tuple:
    """(backend, connectivity, constants, stimulus) of ``model`` on ``device_name``."""
    engine = as_backend(backend, device_name)
    check_device_memory(engine, model)
    net, _ = model.connectivity()
    return engine, engine.put(net), engine.put(network_parameters(model.p, model.cells)), engine.put(model.stimulus)


def _one_trial(model: Model, trial: int, indices: np.ndarray, on: tuple, verbose: bool) -> dict:
    """Every task of test trial ``trial`` on ``on`` (from :func:`_engine`): the boxcar currents
    (tasks, learn_nsteps, n) of ``indices``, their spikes as rows (step, trial, task, neuron) and the
    spikes per task that did not fit the buffers.  A GLIF cell state that persists carries over in ``model``."""
    p, (engine, net, const, stimulus) = model.p, on
    u_total, u_plastic, rows, dropped = [], [], [], []
    for task in range(model.n_tasks):
        started = time.perf_counter()
        rng = streams.stream(p.seed, "test", trial, task)
        result = run_trial(p, net, const, TEST, initial_voltage(p, rng, model.cells), stimulus[task], rng,
                           ff_probability=model.ff_probability, cell_state=model.cell_state, backend=engine)
        if p.cell_state_persists:
            model.cell_state = result.cell_state
        u_total.append(result.u_rolling[0][:, indices])
        u_plastic.append(result.u_rolling[1][:, indices])
        dropped.append(int(np.maximum(result.spike_count[indices] - result.spike_steps.shape[1], 0).sum()))
        for neuron in indices:
            count = min(int(result.spike_count[neuron]), result.spike_steps.shape[1])
            rows.append(np.stack([result.spike_steps[neuron, :count], np.full(count, trial),
                                  np.full(count, task), np.full(count, neuron)], axis=1))
        if verbose:
            print(f"trial {trial}, task {task}: {time.perf_counter() - started:.2f} s ({engine.device})")
    return {"u_total": np.stack(u_total), "u_plastic": np.stack(u_plastic),
            "spikes": np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 4), dtype=np.int64),
            "dropped": np.asarray(dropped, dtype=np.int64)}


def trial_job(directory: str, label: str, trial: int, indices: np.ndarray, backend: str, device: str) -> dict:
    """Test trial ``trial`` of checkpoint ``label`` of ``directory``, as one Dask job (the model is read in the
    worker, without P)."""
    run = RunDir(directory)
    model = Model.load(run, label, run.params(), with_p=False)
    return _one_trial(model, trial, indices, _engine(model, backend, device), verbose=False)


def _run_trials(model: Model, indices: np.ndarray, ntrials: int, signals: StopSignals, verbose: bool,
                backend, device: str, devices: Sequence[str] | None) -> _Records:
    """Run trials 0, 1, ... in this process until ``ntrials`` are done or a stop is requested."""
    records = _Records(model, indices, ntrials)
    names = devices or _devices(backend, device, model.p)
    if len(names) == 1:
        on = _engine(model, backend, names[0])
        for trial in tqdm(range(ntrials), desc="testing", unit="trial", file=sys.stderr,
                          disable=not (verbose and sys.stderr.isatty()), leave=False):
            if signals.requested:
                break
            records.add(trial, _one_trial(model, trial, indices, on, verbose))
    else:  # one thread per device, each taking the next trial; streams make the order irrelevant
        queue = iter(range(ntrials))
        lock = threading.Lock()

        def worker(device_name: str) -> None:
            on = _engine(model, backend, device_name)
            while not signals.requested:
                with lock:
                    trial = next(queue, None)
                if trial is None:
                    return
                answer = _one_trial(model, trial, indices, on, verbose)
                with lock:
                    records.add(trial, answer)

        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            for future in [pool.submit(worker, name) for name in names]:
                future.result()
    return records


def _run_trials_on_dask(run: RunDir, model: Model, label: str, indices: np.ndarray, ntrials: int,
                        signals: StopSignals, verbose: bool, backend, device: str, scheduler: str | None,
                        workers: int | None) -> _Records:
    """One Dask job per trial; each result is kept under ``run.test_trials_dir`` (with the weights' and the
    recorded neurons' digests, so results of other weights are recomputed), so a re-run after a crash or a stop
    runs only the missing trials.  A failed trial raises after the others finished."""
    if not isinstance(backend, str):
        raise ParameterError("trials on Dask take the backend by name ('numba' or 'torch'), not a Backend object")
    if model.p.cell_state_persists:
        raise ParameterError("this model's GLIF cell state carries over from trial to trial, so its trials run in "
                             "order, in one process; run `spikeforge test` without --scheduler and --workers")
    inputs = {"checkpoint": label, "network_id": model.network_id, "backend": backend, "device": device,
              "weights": hashlib.sha256(np.ascontiguousarray(model.plastic.weight).tobytes()).hexdigest()[:16],
              "neurons": hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]}
    jobs = [Job(f"trial-{trial:05d}", trial_job, (str(run.path), label, trial, indices, backend, device),
                {**inputs, "trial": trial}) for trial in range(ntrials)]
    with Cluster(scheduler, workers) as cluster:
        outcomes = run_jobs(jobs, run.test_trials_dir, cluster, verbose=verbose, what="trial", changed="recompute",
                            should_stop=lambda: signals.requested is not None)
    records = _Records(model, indices, ntrials)
    for trial, job in enumerate(jobs):
        if result_path(run.test_trials_dir, job.key).is_file():
            records.add(trial, read_result(run.test_trials_dir, job.key)[0])
    if signals.requested is None:  # after a stop, a failure may be the stop's: the re-run retries it
        raise_failures(outcomes, "trial", run.test_trials_dir)
    return records


def _test_file(model: Model, label: str, indices: np.ndarray, records: _Records, verbose: bool
               ) -> tuple[dict, dict]:
    """The (arrays, attributes) of test.h5 for the consecutive completed trials of ``records``."""
    p, n_tasks, completed = model.p, model.n_tasks, records.completed
    spikes = [records.spikes[trial] for trial in range(completed)]
    table = np.concatenate(spikes).astype(np.int64) if spikes else np.zeros((0, 4), dtype=np.int64)
    arrays = {
        "neurons": indices, "spike_step": table[:, 0].astype(np.int32), "spike_trial": table[:, 1].astype(np.int32),
        "spike_task": table[:, 2].astype(np.int32), "spike_neuron": table[:, 3].astype(np.int32),
        "u_total": records.u_total[:completed], "u_plastic": records.u_plastic[:completed],
        "target": model.targets[:, :, indices], "learn_times": learning_times(p),
    }
    attrs = {"dt": p.dt, "stim_off": p.stim_off, "train_time": p.train_time, "learn_every": p.learn_every,
             "ntrials": completed, "n_tasks": n_tasks, "checkpoint": label, "network_id": model.network_id}
    if model.target_rates is not None and completed:
        arrays["target_rate"] = model.target_rates[:, :, indices]
        smoothing = float(model.init_stats.get("psth_smoothing_ms", DEFAULT_PSTH_SMOOTHING_MS))
        column = np.full(p.n_cells, -1, dtype=np.int64)
        column[indices] = np.arange(indices.size)
        psth = rate_evaluation.model_psth(p, table[:, 0], table[:, 2], table[:, 1], column[table[:, 3]], indices.size,
                                          completed, n_tasks, smoothing)
        scored = rate_evaluation.scores(p, psth, arrays["target_rate"], completed, smoothing)
        arrays |= {f"rate/{name}": getattr(scored, name) for name in scored._fields}
        attrs["psth_smoothing_ms"] = smoothing
        if verbose:
            print(scored.summary(completed))
    return arrays, attrs
