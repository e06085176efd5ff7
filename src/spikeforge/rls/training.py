"""``train``: RLS training loops with checkpoints, a learning curve and safe interruption.

Each loop is one trial of a task (``task_schedule``: cyclic by default) during which every neuron's
plastic weights are updated by RLS every ``learn_every`` ms after ``stim_off``.  P
persists across loops.  Loop ``n`` draws its random numbers from the stream
``("train", n)``, so training 2 loops, restoring and training 2 more gives exactly the
weights of 4 loops in one go.

Ctrl-C finishes the loop in progress, saves checkpoint ``<loop>i`` and the learning
curve, and raises :class:`TrainingInterrupted`; a second Ctrl-C stops at once without
saving that loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spikeforge.core import rng as streams
from spikeforge.core.backends import get_backend
from spikeforge.core.backends.layout import TRAIN, TRAIN_RECORD
from spikeforge.core.store import read_h5, write_h5
from spikeforge.errors import ParameterError, SpikeforgeError
from spikeforge.rls.estimate import check_fits
from spikeforge.rls.evaluation import network_correlation
from spikeforge.rls.files import RunDir, checkpoint_loop
from spikeforge.rls.model import Model
from spikeforge.rls.simulation import Learner, constants, initial_voltage, run_trial


class TrainingInterrupted(SpikeforgeError):
    """Training stopped on Ctrl-C after saving a checkpoint (its label is in ``label``)."""

    def __init__(self, label: str, path: Path):
        super().__init__(f"interrupted: saved checkpoint {label!r} ({path}); resume with --restore-from-checkpoint {label}")
        self.label = label


@dataclasses.dataclass
class TrainResult:
    """Outcome of a ``train`` call.  Per-loop lists cover only this call's loops."""

    loops: list[int]
    correlation: list[float]  # NaN where not measured
    firing_rate: list[float]  # mean over neurons and trial [Hz]
    elapsed_time: list[float]  # [s]
    checkpoint: str  # label of the checkpoint saved at the end
    model: Model


def learner_for(model: Model, weights_out: np.ndarray, in_to_out: np.ndarray) -> Learner:
    """The RLS state of ``model`` (its P, or in small mode its history of filtered spike trains)."""
    p = model.p
    learner = Learner(P=model.P, weights_in=model.plastic.weight, plastic_index=model.plastic.index,
                      plastic_count=model.plastic.count, in_to_out=in_to_out, weights_out=weights_out,
                      p_scale=p.p_scale, gain_with_den=p.rls_gain == "paper", storage=p.p_storage,
                      apply=not p.benchmark)
    if p.p_compute == "small":
        learner.history, learner.history_filled, learner.history_next = model.history
        learner.penalties = (p.penlambda, p.penmu, p.penlam_ff, p.lx)
    return learner


def check_device_memory(engine, model: Model) -> None:
    """On a CUDA device, refuse a model that does not fit before allocating anything."""
    if not engine.device.startswith("cuda") or model.p.p_compute == "small":
        return
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(engine.device))
    check_fits(model.p, free, engine.device, model.plastic.count, model.n_tasks)


def _on_backend(learner: Learner, engine) -> Learner:
    """The learner with its arrays on the backend (the same arrays for numba)."""
    for name in ("P", "weights_in", "plastic_index", "plastic_count", "in_to_out", "history"):
        setattr(learner, name, engine.put(getattr(learner, name)))
    return learner


def _copy_back(learner: Learner, model: Model, engine) -> None:
    """Make the model's numpy arrays hold the learner's current P, weights and history."""
    if engine.name != "numba":
        model.P[...] = engine.get(learner.P)
        model.plastic.weight[...] = engine.get(learner.weights_in)
    if learner.history is not None:
        model.history = (engine.get(learner.history), learner.history_filled, learner.history_next)


def task_of_loop(p, loop: int, n_tasks: int) -> int:
    """Task trained in loop ``loop`` (1-based): cyclic, or drawn from the stream ("task_schedule", loop)."""
    if p.task_schedule == "random":
        return int(streams.stream(p.seed, "task_schedule", loop).integers(n_tasks))
    return (loop - 1) % n_tasks


@contextlib.contextmanager
def _deferred_interrupt():
    """Turn the first Ctrl-C into a flag (``flag["set"]``); the second raises KeyboardInterrupt."""
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["set"]:
            raise KeyboardInterrupt
        flag["set"] = True
        print("\nCtrl-C: finishing this loop, then saving a checkpoint (press again to stop at once)",
              file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _write_learning_curve(run: RunDir, first_loop: int, rows: dict[str, list]) -> None:
    """Write the learning curve: entries of loops before ``first_loop`` are kept from the old file."""
    kept: dict[str, np.ndarray] = {}
    if run.learning_curve_file.exists() and first_loop > 1:
        try:
            old, _ = read_h5(run.learning_curve_file, list(rows), what="learning curve")
            keep = old["loop"] < first_loop
            kept = {name: values[keep] for name, values in old.items()}
        except SpikeforgeError:
            kept = {}
    arrays = {name: np.concatenate([kept.get(name, np.zeros(0)), np.asarray(values, dtype=np.float64)])
              for name, values in rows.items()}
    arrays["loop"] = arrays["loop"].astype(np.int64)
    arrays["task"] = arrays["task"].astype(np.int64)
    write_h5(run.learning_curve_file, arrays,
             {"units": {"correlation": "1", "elapsed_time": "s", "firing_rate": "Hz", "max_memory": "bytes"}})


def train(
    directory: str | Path,
    nloops: int = 1,
    correlation_interval: int = 1,
    save_best_checkpoint: bool = False,
    restore_from_checkpoint: str | int | None = None,
    verbose: bool = True,
    backend: str = "numba",
    device: str = "cpu",
    cuda_graphs: bool = True,
) -> TrainResult:
    """Train the network in ``directory`` for ``nloops`` loops.

    Args:
        nloops: number of training trials.
        correlation_interval: measure the correlation with the targets every this many
            loops (the loops in between are faster and record NaN).
        save_best_checkpoint: also save ``ckpt-<loop>-cor<c>.h5`` whenever the correlation
            beats the best so far with no NaN neuron (the previous best is deleted).
        restore_from_checkpoint: continue from this checkpoint label (``"100"``, ``"12i"``,
            ``"37-cor0.712"``); loop numbers continue after it.
        verbose: print a line per loop and a progress bar.
        backend, device: "numba" on the cpu, or "torch" on "cpu" or "cuda[:N]".
        cuda_graphs: on CUDA, capture each learning interval once as a CUDA graph and replay
            it (:mod:`spikeforge.core.backends.torch_graphs`); False runs the plain loop.

    Returns:
        A :class:`TrainResult`.  Files: ``ckpt-<last loop>.h5`` and ``learning-curve.h5``.

    Raises:
        TrainingInterrupted: after Ctrl-C, once the checkpoint is saved.
    """
    if nloops < 1:
        raise ParameterError(f"nloops = {nloops} must be >= 1")
    if correlation_interval < 1:
        raise ParameterError(f"correlation_interval = {correlation_interval} must be >= 1")
    run = RunDir(directory)
    if restore_from_checkpoint is not None:
        checkpoint_loop(str(restore_from_checkpoint))  # validate the label before loading anything
    engine = get_backend(backend, device, cuda_graphs)
    model = Model.load(run, restore_from_checkpoint)
    p = model.p
    check_device_memory(engine, model)
    net, in_to_out = model.connectivity()
    net, const = engine.put(net), engine.put(constants(p, model.cells))
    learner = _on_backend(learner_for(model, net.plastic_weight, in_to_out), engine)
    stimulus, targets = engine.put(model.stimulus), engine.put(model.targets)
    first_loop = model.loop + 1
    rows: dict[str, list] = {k: [] for k in ("loop", "task", "correlation", "n_nan", "elapsed_time", "firing_rate",
                                             "max_memory")}
    best_correlation, best_label = -np.inf, None
    if verbose:
        print(f"{'loop':>6} {'task':>5} {'seconds':>8} {'rate (Hz)':>10} {'correlation':>12}")
    bar = tqdm(total=nloops, desc="training", unit="loop", disable=not (verbose and sys.stderr.isatty()), leave=False, file=sys.stderr)
    interrupted = False
    try:
        with _deferred_interrupt() as stop:
            for loop in range(first_loop, first_loop + nloops):
                started = time.perf_counter()
                task = task_of_loop(p, loop, model.n_tasks)
                measure = loop % correlation_interval == 0
                rng = streams.stream(p.seed, "train", loop)
                result = run_trial(p, net, const, TRAIN_RECORD if measure else TRAIN, initial_voltage(p, rng, model.cells),
                                   stimulus[task], rng, learner, targets[task], model.ff_probability,
                                   model.cell_state, engine)
                model.loop = loop
                if p.cell_state_persists:
                    model.cell_state = result.cell_state
                rate = float(result.spike_count.mean() / (p.train_time / 1000))
                correlation, n_nan = float("nan"), 0
                if measure:
                    which = 0 if p.correlation_var == "utotal" else 1
                    correlation, n_nan = network_correlation(result.u_rolling[which], model.targets[task])
                elapsed = time.perf_counter() - started
                for name, value in zip(rows, (loop, task, correlation, n_nan, elapsed, rate,
                                              resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)):
                    rows[name].append(value)
                if verbose:
                    nan_note = f" ({n_nan} are NaN)" if n_nan else ""
                    tqdm.write(f"{loop:>6} {task:>5} {elapsed:>8.2f} {rate:>10.3f} {correlation:>12.4f}{nan_note}")
                bar.update()
                if save_best_checkpoint and measure and n_nan == 0 and correlation > best_correlation:
                    _copy_back(learner, model, engine)
                    label = f"{loop}-cor{correlation:.3f}"
                    model.save_checkpoint(run, label, correlation)
                    if best_label is not None:
                        run.checkpoint_file(best_label).unlink(missing_ok=True)
                    best_correlation, best_label = correlation, label
                if stop["set"]:
                    interrupted = True
                    break
        label = f"{model.loop}i" if interrupted else str(model.loop)
        _copy_back(learner, model, engine)
        if model.loop >= first_loop:
            model.save_checkpoint(run, label, rows["correlation"][-1])
    finally:
        bar.close()
        if rows["loop"]:
            _write_learning_curve(run, first_loop, rows)
    if interrupted:
        raise TrainingInterrupted(label, run.checkpoint_file(label))
    return TrainResult(rows["loop"], rows["correlation"], rows["firing_rate"], rows["elapsed_time"], label, model)
