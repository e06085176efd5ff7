"""``train``: RLS training loops with checkpoints, a learning curve, safe stops and health checks.

Each loop is one trial of a task (``task_schedule``: cyclic by default) during which every neuron's
plastic weights are updated by RLS every ``learn_every`` ms after ``stim_off``.  P
persists across loops.  Loop ``n`` draws its random numbers from the stream
``("train", n)``, so training 2 loops, restoring and training 2 more gives exactly the
weights of 4 loops in one go.

Where a call starts: from ``restore_from_checkpoint`` when given, otherwise from the directory's
latest checkpoint (from the initial weights when there is none), so a second ``train`` continues
the first.  Restoring an earlier checkpoint while checkpoints of later loops exist is refused
unless ``discard_later`` (which deletes them): a directory never holds two diverging histories
under the same loop numbers.  Every loop trained is logged in ``learning-curve.h5``
(:mod:`spikeforge.rls.learning_curve`), with the segment (call) it belongs to.

Stops: SIGINT (Ctrl-C) or SIGTERM (a batch scheduler) during a loop lets the loop finish, saves
checkpoint ``<loop>i`` and raises :class:`TrainingInterrupted` (exit status 130 or 143); during
start-up it stops at once with nothing changed; during a checkpoint write the write is finished
first.  A second signal stops at once, leaving the checkpoints saved so far (never a
half-written file).  ``checkpoint_every`` saves the latest loop periodically, so that even a
SIGKILL loses at most that many loops.

Health: after every loop the plastic weights are checked for NaN and infinity, and a 16-bit P
for entries at the int16 limits (clipped) or not finite; the counts go into the learning curve,
a warning line reports them, and non-finite weights stop training with
:class:`TrainingDiverged`, keeping the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import numbers
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spikeforge.core import rng as streams
from spikeforge.core.backends import Backend, as_backend
from spikeforge.core.backends.layout import TRAIN, TRAIN_RECORD
from spikeforge.core.interrupts import Interrupted, StopSignals, signal_name
from spikeforge.core.resources import ResourceMonitor, peak_rss_bytes
from spikeforge.core.store import read_attrs
from spikeforge.errors import DataFileError, ParameterError, SpikeforgeError, SpikeforgeWarning
from spikeforge.rls import p_matrix, rate_evaluation
from spikeforge.rls.connectivity import out_to_in
from spikeforge.rls.data_targets import DEFAULT_PSTH_SMOOTHING_MS
from spikeforge.rls.estimate import check_disk, check_fits, check_host_memory
from spikeforge.rls.evaluation import network_correlation
from spikeforge.rls.files import RunDir, checkpoint_loop
from spikeforge.rls.learning_curve import LearningCurve
from spikeforge.rls.model import Model
from spikeforge.rls.learner import Learner
from spikeforge.rls.network_parameters import initial_voltage, network_parameters
from spikeforge.rls.trial import run_trial

LOW_PRECISION = ("float16", "int16")


class TrainingInterrupted(Interrupted):
    """Training stopped on a signal after saving checkpoint ``label``; ``remaining``: loops of the
    call that were not trained."""

    def __init__(self, signum: int, label: str, path: Path, directory: Path, remaining: int):
        if remaining:
            what = (f"saved checkpoint {label!r} ({path}); continue with "
                    f"`spikeforge train {directory} --nloops {remaining}` for the {remaining} loops not trained")
        else:
            what = f"every loop was trained and saved in checkpoint {label!r} ({path}) before stopping"
        super().__init__(signum, f"interrupted by {signal_name(signum)}: {what}")
        self.label, self.remaining = label, remaining


class TrainingDiverged(SpikeforgeError):
    """The plastic weights became NaN or infinite; nothing after the last good checkpoint was saved."""


@dataclasses.dataclass
class TrainResult:
    """Outcome of a ``train`` call.  Per-loop lists cover only this call's loops."""

    loops: list[int]
    correlation: list[float]  # NaN where not measured
    firing_rate: list[float]  # mean over neurons and trial [Hz]
    elapsed_time: list[float]  # [s]
    checkpoint: str  # label of the checkpoint saved at the end
    model: Model
    psth_correlation: list[float] = dataclasses.field(default_factory=list)  # targets from rates; NaN elsewhere


def in_layout_view(weights: np.ndarray) -> np.ndarray:
    """The in-layout plastic weights (N, Lmax), flattened without a copy (the RLS update writes them in place)."""
    if not weights.flags.c_contiguous:
        raise ValueError("the in-layout plastic weights must be C-contiguous to be read in place")
    return weights.reshape(-1)


def learner_for(model: Model, weights_out: np.ndarray | None, in_to_out: np.ndarray) -> Learner:
    """The RLS state of ``model`` (its P, or in small mode its history of filtered spike trains); ``weights_out``:
    the out-layout plastic weights the update copies its weights to (None: the step kernel reads the in-layout)."""
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


def task_of_loop(p, loop: int, n_tasks: int) -> int:
    """Task trained in loop ``loop`` (1-based): cyclic, or drawn from the stream ("task_schedule", loop)."""
    if p.task_schedule == "random":
        return int(streams.stream(p.seed, "task_schedule", loop).integers(n_tasks))
    return (loop - 1) % n_tasks


def starting_point(run: RunDir, restore_from_checkpoint: str | int | None, discard_later: bool) -> tuple[str, list[str]]:
    """(label to start from, labels of later checkpoints to delete) for a train call."""
    if restore_from_checkpoint is None:
        return run.latest_checkpoint() or "init", []
    label = str(restore_from_checkpoint)
    loop = checkpoint_loop(label)  # validates the label before anything is loaded
    if label != "init" and not run.checkpoint_file(label).is_file():
        raise DataFileError(f"checkpoint {str(run.checkpoint_file(label))!r} does not exist; "
                            f"checkpoints here: {', '.join(run.checkpoint_labels()) or 'none'}")
    later = run.checkpoints_after(loop)
    if later and not discard_later:
        raise ParameterError(
            f"restoring checkpoint {label!r} would train loops that checkpoints of this directory already hold "
            f"({', '.join(later)}); pass --discard-later to delete them and train from {label!r}, or omit "
            f"--restore-from-checkpoint to continue from {run.latest_checkpoint()!r}")
    return label, later


def _check_disk_space(run: RunDir, model: Model, n_checkpoints: int) -> None:
    """Refuse to start when the directory's file system cannot hold the checkpoints training will write."""
    check_disk(run.path, model.checkpoint_bytes() * n_checkpoints, f"the {n_checkpoints} checkpoint(s) training writes")


class _Session:
    """The state of one train call: the model on its backend, the learner and the checkpoints written."""

    def __init__(self, run: RunDir, model: Model, engine, curve: LearningCurve, verbose: bool, group=None,
                 dynamics=None):
        self.run, self.model, self.engine, self.curve, self.verbose = run, model, engine, curve, verbose
        self.group = group  # the ranks of a --distributed run (spikeforge.rls.distributed), or None
        self.writes = group is None or group.rank == 0  # only rank 0 writes files
        p = model.p
        net, in_to_out = model.connectivity()
        self.dynamics = dynamics  # the steps of a sharded network (ShardedDynamics), or None: the backend's own
        if dynamics is not None:
            from spikeforge.rls.distributed import owned_synapses

            net, in_to_out = owned_synapses(net, in_to_out, dynamics.shard)  # the synapses onto this rank's neurons
        # numba, one process: the step kernel may read the plastic weights where the RLS update writes them (the
        # in-layout), instead of a copy to the out-layout after every update (Connectivity.plastic_source); never
        # with a sharded network, whose owned_synapses (above) keeps the out-layout's weights
        one_process = engine.name == "numba" and group is None and dynamics is None
        in_place = one_process and engine.options.plastic_in_place
        if in_place:
            net = net._replace(plastic_weight=in_layout_view(model.plastic.weight),
                               plastic_source=out_to_in(in_to_out, model.plastic.count))
        self.net, self.const = engine.put(net), engine.put(network_parameters(p, model.cells))
        learner = learner_for(model, None if in_place else self.net.plastic_weight, in_to_out)
        if one_process and not in_place and learner.apply:
            learner.write_plan = out_to_in(in_to_out, model.plastic.count)  # the copy, in the out-layout's order
        if group is not None:
            from spikeforge.rls.distributed import sharded

            # each rank holds its block of P only (and, with a sharded network, keeps only its weights current)
            learner = sharded(learner, group, p.n_cells, shares_weights=dynamics is None)
        self.learner = self._on_backend(learner)
        self.learner.interleave_p(engine)  # until finish(); checkpoints are written packed
        self.stimulus, self.targets = engine.put(model.stimulus), engine.put(model.targets)
        self.last_saved = model.label  # the last good checkpoint
        self.periodic: str | None = None  # label of this call's latest periodic checkpoint
        self.best_correlation, self.best_labels = self._earlier_best()

    def _on_backend(self, learner: Learner) -> Learner:
        """The learner with its arrays on the backend (the same arrays for numba)."""
        for name in ("P", "weights_in", "plastic_index", "plastic_count", "in_to_out", "history"):
            setattr(learner, name, self.engine.put(getattr(learner, name)))
        return learner

    def _earlier_best(self) -> tuple[float, list[str]]:
        """The best correlation of this directory's best-correlation checkpoints up to the start, and their labels."""
        labels = [label for label in self.run.checkpoint_labels()
                  if "-cor" in label and checkpoint_loop(label) <= self.model.loop]
        best = max((float(read_attrs(self.run.checkpoint_file(label), "checkpoint").get("correlation", -np.inf))
                    for label in labels), default=-np.inf)
        return best, labels

    def run_loop(self, loop: int, measure: bool) -> dict:
        """Train loop ``loop``; return its learning-curve row."""
        p, model = self.model.p, self.model
        started = time.perf_counter()
        task = task_of_loop(p, loop, model.n_tasks)
        rng = streams.stream(p.seed, "train", loop)
        result = run_trial(p, self.net, self.const, TRAIN_RECORD if measure else TRAIN,
                           initial_voltage(p, rng, model.cells), self.stimulus[task], rng, self.learner,
                           self.targets[task], model.ff_probability, model.cell_state, self.engine, self.dynamics)
        model.loop = loop
        if p.cell_state_persists:
            model.cell_state = result.cell_state
        correlation, n_nan, psth_correlation = float("nan"), 0, float("nan")
        if measure:
            which = 0 if p.correlation_var == "utotal" else 1
            followed = slice(None) if model.unit_neurons is None else model.unit_neurons  # hidden neurons: not scored
            correlation, n_nan = network_correlation(result.u_rolling[which][:, followed], model.targets[task][:, followed])
            if model.target_rates is not None:
                psth_correlation = rate_evaluation.trial_psth_correlation(
                    p, result.spike_steps, result.spike_count, model.target_rates[task],
                    float(model.init_stats.get("psth_smoothing_ms", DEFAULT_PSTH_SMOOTHING_MS)))
        saturated, nonfinite = (self.engine.count_p_faults(self.learner.P)
                                if p.p_precision in LOW_PRECISION and p.p_compute != "small" else (0, 0))
        return {"loop": loop, "task": task, "correlation": correlation, "psth_correlation": psth_correlation,
                "n_nan": n_nan,
                "elapsed_time": time.perf_counter() - started,
                "firing_rate": float(result.spike_count.mean() / (p.train_time / 1000)),
                "max_memory": peak_rss_bytes(), "p_saturated": saturated, "p_nonfinite": nonfinite}

    def check_health(self, row: dict) -> None:
        """Warn about clipped or non-finite P entries; raise TrainingDiverged on non-finite weights."""
        loop, saturated, nonfinite = row["loop"], row["p_saturated"], row["p_nonfinite"]
        advice = ("raise penlambda (and penlam_ff), or use p_precision = 'float32'" if self.model.p.p_precision ==
                  "float16" else "lower p_scale, raise penlambda (and penlam_ff), or use p_precision = 'float32'")
        if saturated:
            warnings.warn(f"loop {loop}: {saturated} entries of P are at the int16 limits (they were clipped, so P is "
                          f"wrong there); {advice}", SpikeforgeWarning, stacklevel=2)
        if nonfinite:
            warnings.warn(f"loop {loop}: {nonfinite} entries of P are NaN or infinite ({self.model.p.p_precision} "
                          f"overflowed); {advice}", SpikeforgeWarning, stacklevel=2)
        bad_weights = self.engine.kernels.count_nonfinite(self.learner.weights_in)
        if self.group is not None:  # every rank stops, or none (a sharded network's ranks see only their own weights)
            bad_weights = self.group.largest(bad_weights, "comparing a check")
        if bad_weights:
            raise TrainingDiverged(
                f"loop {loop}: {bad_weights} plastic weights became NaN or infinite"
                + (f" (P has {nonfinite} non-finite entries)" if nonfinite else "")
                + f"; nothing after checkpoint {self.last_saved!r} was saved, which is the last good one; {advice}")

    def save(self, label: str, correlation: float) -> Path:
        """Save the current weights and P as checkpoint ``label`` (refused if P is not finite).  A rank of a
        sharded run packs its interleaved block again for the save, in place (it is sent or written as it is)."""
        interleaved = self.group is not None and self.learner.p_interleaved
        if interleaved:
            self.learner.restore_packed_p()
        try:
            return self._save(label, correlation)
        finally:
            if interleaved:
                self.learner.interleave_p(self.engine)

    def _save(self, label: str, correlation: float) -> Path:
        learner, model, engine = self.learner, self.model, self.engine
        if model.p.p_compute != "small":
            _, nonfinite = engine.count_p_faults(learner.P)
            if self.group is not None:
                nonfinite = int(self.group.any(nonfinite > 0))
            if nonfinite:
                raise TrainingDiverged(f"loop {model.loop}: {nonfinite} entries of P are NaN or infinite; checkpoint "
                                       f"{label!r} was not saved; the last good checkpoint is {self.last_saved!r}")
        pieces = None
        if self.group is not None:
            # rank 0 writes P block by block as the others send theirs (every rank comes here)
            model.plastic.weight[...] = learner.whole_weights(engine)  # first: sending P blocks waits for rank 0
            pieces = learner.p_pieces(engine, lambda block: p_matrix.to_file_from_memory(block, model.p.p_storage))
            if not self.writes:
                self.group.barrier()  # rank 0 has written the file: exiting earlier could get it stopped mid-write
                self.last_saved = label
                return self.run.checkpoint_file(label)
        elif engine.name != "numba":
            model.P[...] = engine.get(learner.P)
            model.plastic.weight[...] = engine.get(learner.weights_in)
        elif learner.p_interleaved:
            pieces = learner.packed_p_pieces()
        if learner.history is not None:
            model.history = (engine.get(learner.history), learner.history_filled, learner.history_next)
        try:
            path = model.save_checkpoint(self.run, label, correlation,
                                         {"restored_from": self.curve.segment["restored_from"],
                                          "segment": self.curve.segment["segment"]}, pieces)
        except DataFileError as error:
            raise DataFileError(f"{error}; the last good checkpoint is {self.last_saved!r}") from None
        self.last_saved = label
        self.curve.saved(label)
        try:  # the learning curve goes with every checkpoint, so a crash loses no saved loop's row
            self.curve.write()
        except DataFileError as error:
            raise DataFileError(f"{error}; checkpoint {label!r} was saved") from None
        if self.group is not None:
            self.group.barrier()  # the other ranks wait for the file before they go on (or exit)
        return path

    def finish(self) -> None:
        """The model's P packed again after the last loop (on numba it is the learner's, interleaved in place)."""
        self.learner.restore_packed_p()

    def save_if_best(self, row: dict) -> None:
        """Save ``<loop>-cor<c>`` when the correlation beats every earlier one with no NaN neuron."""
        correlation = row["correlation"]
        if row["n_nan"] or not correlation > self.best_correlation:
            return
        label = f"{row['loop']}-cor{correlation:.3f}"
        self.save(label, correlation)
        for old in self.best_labels if self.writes else ():
            self.run.checkpoint_file(old).unlink(missing_ok=True)
        self.best_correlation, self.best_labels = correlation, [label]

    def save_periodic(self, row: dict) -> None:
        """Save ``<loop>`` and delete this call's previous periodic checkpoint."""
        previous, self.periodic = self.periodic, str(row["loop"])
        self.save(self.periodic, row["correlation"])
        if previous is not None and self.writes:
            self.run.checkpoint_file(previous).unlink(missing_ok=True)

    def save_final(self, label: str, correlation: float) -> None:
        """Save the final checkpoint; the periodic ones of this call are then superfluous."""
        self.save(label, correlation)
        if self.periodic is not None and self.periodic != label and self.writes:
            self.run.checkpoint_file(self.periodic).unlink(missing_ok=True)


def train(
    directory: str | Path,
    nloops: int = 1,
    correlation_interval: int = 1,
    save_best_checkpoint: bool = False,
    restore_from_checkpoint: str | int | None = None,
    verbose: bool = True,
    backend: "str | Backend" = "numba",
    device: str = "cpu",
    cuda_graphs: bool = True,
    discard_later: bool = False,
    checkpoint_every: int = 0,
    monitor_resources: float | None = None,
    distributed: bool = False,
    shard_network: bool = False,
) -> TrainResult:
    """Train the network in ``directory`` for ``nloops`` loops.

    Args:
        nloops: number of training trials.
        correlation_interval: measure the correlation with the targets every this many
            loops (the loops in between are faster and record NaN).
        save_best_checkpoint: also save ``ckpt-<loop>-cor<c>.h5`` whenever the correlation
            beats the best so far (of this directory's history) with no NaN neuron; the
            previous best is deleted.
        restore_from_checkpoint: start from this checkpoint label (``"100"``, ``"12i"``,
            ``"37-cor0.712"``, or ``"init"`` for the initial weights); loop numbers continue
            after it.  Default: the latest checkpoint, or init when there is none.
        discard_later: allow restoring a checkpoint when checkpoints of later loops exist, by
            deleting those (their rows stay in the learning curve).
        checkpoint_every: also save ``ckpt-<loop>.h5`` every this many loops (0: only at the
            end), replacing this call's previous periodic one.
        verbose: print a line per loop and a progress bar.
        backend, device: "numba" on the cpu, or "torch" on "cpu" or "cuda[:N]"; or a
            :class:`~spikeforge.core.backends.Backend` with options of its own (``device`` is then its).
        cuda_graphs: on CUDA, capture each learning interval once as a CUDA graph and replay
            it (:mod:`spikeforge.core.backends.torch_graphs`); False runs the plain loop.
        monitor_resources: every this many seconds print a line with the CPU use, memory and
            (on CUDA) device memory and utilisation (:mod:`spikeforge.core.resources`); None: no.
        distributed: this process is one rank of a run started by ``torchrun``: the neurons' RLS
            state is sharded across the ranks (:mod:`spikeforge.rls.distributed`); results equal a
            single process's.
        shard_network: with ``distributed``, also shard the synapses and the neurons' dynamics: each rank
            holds the synapses onto its own neurons, and the ranks exchange their spikes every step (one
            collective per 0.1-ms step: about 1 ms over gloo).  Results are the same.

    Returns:
        A :class:`TrainResult`.  Files: ``ckpt-<last loop>.h5`` and ``learning-curve.h5``.

    Raises:
        TrainingInterrupted: after SIGINT or SIGTERM, once the checkpoint is saved.
        TrainingDiverged: the weights became NaN or infinite.
    """
    for name, value, low in (("nloops", nloops, 1), ("correlation_interval", correlation_interval, 1),
                             ("checkpoint_every", checkpoint_every, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ParameterError(f"{name} = {value!r} must be an integer >= {low}")
    if monitor_resources is not None and not (isinstance(monitor_resources, numbers.Real)
                                              and not isinstance(monitor_resources, bool)
                                              and 0 < monitor_resources < float("inf")):
        raise ParameterError(f"monitor_resources = {monitor_resources!r} must be a number of seconds > 0")
    if shard_network and not distributed:
        raise ParameterError("--shard-network shards the network across the ranks of a --distributed run; add "
                             "--distributed and start it with torchrun")
    world = os.environ.get("WORLD_SIZE", "1")
    if not distributed and world.isdigit() and int(world) > 1:
        raise ParameterError(f"this process is one of {world} that torchrun started (WORLD_SIZE = {world}); add "
                             "--distributed so that they train the network together, or run it without torchrun")
    run = RunDir(directory)
    group = None
    if distributed:
        from spikeforge.rls.distributed import Group

        as_backend(backend, device, cuda_graphs)  # a device this machine lacks is refused before joining the others
        group = Group(device=backend.device if isinstance(backend, Backend) else device)
        if group.rank != 0:
            verbose, monitor_resources = False, None
        if group.cuda:
            device = group.device
    try:
        with StopSignals(notify=group is None or group.rank == 0) as signals, _directory_lock(run, group):
            p = run.params()
            label, later = starting_point(run, restore_from_checkpoint, discard_later)
            engine = as_backend(backend, device, cuda_graphs)
            dynamics = None
            if shard_network:
                from spikeforge.rls.distributed import ShardedDynamics

                dynamics = ShardedDynamics.of(engine, group, p.n_cells)
            if group is None:
                model = Model.load(run, label, p)
                check_host_memory(p, model.plastic.count, model.n_tasks)
            else:  # each rank reads only its neurons' P
                from spikeforge.rls.distributed import shard_of

                shard = shard_of(p.n_cells, group.rank, group.world)
                model = Model.load(run, label, p, p_rows=(shard.lo, shard.hi))
                check_host_memory(p, model.plastic.count, model.n_tasks, ranks=group.world,
                                  ranks_here=int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
            check_device_memory(engine, model)
            _check_disk_space(run, model, 1 + 2 * save_best_checkpoint + (checkpoint_every > 0))
            curve = LearningCurve(run, model.network_id, model.label, model.loop + 1)
            session = _Session(run, model, engine, curve, verbose, group, dynamics)
            if verbose and restore_from_checkpoint is None and label != "init":
                print(f"continuing from checkpoint {label!r} (loop {model.loop})")
            if verbose and group is not None:
                sizes = sorted(set(session.learner.sizes))
                print(f"{group.world} rank{'s' if group.world > 1 else ''}, each holding the P of "
                      f"{' or '.join(map(str, sizes))} neurons"
                      + (" and the synapses onto them" if dynamics is not None else ""))
            signals.raise_if_requested()  # a signal some library swallowed during start-up
            with ResourceMonitor(monitor_resources, write=tqdm.write):
                try:
                    result = _train_loops(session, signals, later, nloops, correlation_interval, save_best_checkpoint,
                                          checkpoint_every)
                    if verbose and group is not None:
                        total = sum(result.elapsed_time)
                        exchanged = "spikes" if dynamics is not None else "weights"
                        print(f"rank 0 spent {group.seconds:.2f} s of the {total:.2f} s of its loops exchanging "
                              f"{exchanged} and checks with the other ranks ({100 * group.seconds / max(total, 1e-9):.0f} %)")
                    return result
                except SpikeforgeError as error:
                    if group is None or type(error).__name__ != "DistributedError":
                        raise
                    raise type(error)(f"{error}; the last checkpoint, {session.last_saved!r}, stays valid: run the "
                                      "same command again to continue from it") from None
                except Interrupted as stop:
                    if group is None or isinstance(stop, TrainingInterrupted):
                        raise
                    # a signal outside a loop's end, or a second one: torchrun sends SIGTERM to every rank when one
                    # rank fails, and when it is itself interrupted a second time
                    why = (" (torchrun sends SIGTERM to every rank when one rank fails, see its report, or when it is "
                           "interrupted a second time)" if stop.signum == signal.SIGTERM else "")
                    raise Interrupted(stop.signum, f"{stop}{why}; the last checkpoint, {session.last_saved!r}, "
                                                   "stays valid: run the same command again to continue from it"
                                      ) from None
    finally:
        if group is not None:
            group.close()


@contextlib.contextmanager
def _directory_lock(run: RunDir, group):
    """The directory's lock for a train call.  In a distributed run rank 0 takes it for every rank, and
    every rank learns whether it could, so all of them stop with an error when it could not."""
    if group is None:
        with run.lock("spikeforge train"):
            yield
        return
    failure = None
    with contextlib.ExitStack() as held:
        if group.rank == 0:
            try:
                held.enter_context(run.lock("spikeforge train"))
            except SpikeforgeError as error:
                failure = error
        if group.any(failure is not None):
            raise failure or DataFileError(f"rank 0 could not lock the data directory {str(run.path)!r}; its error "
                                           "says why")
        yield


def _train_loops(session: _Session, signals: StopSignals, discard: list[str], nloops: int, correlation_interval: int,
                 save_best: bool, checkpoint_every: int) -> TrainResult:
    """The loops of a train call, its checkpoints, and the learning curve whatever happens."""
    run, model, curve, verbose = session.run, session.model, session.curve, session.verbose
    group, writes = session.group, session.writes

    def stop_requested() -> bool:  # every rank of a distributed run stops at the same loop, for the same signal
        if group is not None:
            signals.requested = group.largest(signals.requested or 0) or None
        return signals.requested is not None

    first_loop = model.loop + 1
    last_loop = first_loop + nloops - 1
    if verbose:
        rate_targets = model.target_rates is not None
        print(f"{'loop':>6} {'task':>5} {'seconds':>8} {'rate (Hz)':>10} {'correlation':>12}"
              + (f" {'PSTH corr.':>11}" if rate_targets else ""))
    bar = tqdm(total=nloops, desc="training", unit="loop", disable=not (verbose and sys.stderr.isatty()), leave=False,
               file=sys.stderr)
    ended, label = "running", ""
    try:
        with signals.deferred("finishing this loop, then saving a checkpoint"):
            for old in discard if writes else ():
                run.checkpoint_file(old).unlink(missing_ok=True)
            for loop in range(first_loop, last_loop + 1):
                row = session.run_loop(loop, measure=loop % correlation_interval == 0)
                curve.add(**row)
                if verbose:
                    nan_note = f" ({row['n_nan']} are NaN)" if row["n_nan"] else ""
                    psth = f" {row['psth_correlation']:>11.4f}" if rate_targets else ""
                    tqdm.write(f"{loop:>6} {row['task']:>5} {row['elapsed_time']:>8.2f} {row['firing_rate']:>10.3f} "
                               f"{row['correlation']:>12.4f}{psth}{nan_note}")
                bar.update()
                session.check_health(row)
                if save_best:
                    session.save_if_best(row)
                stop = stop_requested()
                if checkpoint_every and loop % checkpoint_every == 0 and loop < last_loop and not stop:
                    session.save_periodic(row)
                    stop = stop_requested()  # a signal during that save: this loop is saved, stop here
                if stop:
                    break
            label = f"{model.loop}i" if model.loop < last_loop else str(model.loop)
            # P packed again first, so that the final checkpoint is written from it as it is (inside the deferred
            # block: a signal cannot stop the conversion half done)
            session.finish()
            session.save_final(label, curve.rows["correlation"][-1])
            ended = "interrupted" if signals.requested else "completed"
            try:
                if writes:
                    curve.write(ended)
            except DataFileError as error:
                raise DataFileError(f"{error}; checkpoint {label!r} was saved") from None
    except BaseException as error:
        if ended == "running":  # the segment's end is not recorded yet: record how it ended
            ended = "stopped at once" if isinstance(error, Interrupted) else f"failed: {type(error).__name__}: {error}"
            if curve.rows["loop"] and writes:
                with contextlib.suppress(SpikeforgeError):
                    curve.write(ended)
        raise
    finally:
        bar.close()
    if signals.requested:
        raise TrainingInterrupted(signals.requested, label, run.checkpoint_file(label), run.path, last_loop - model.loop)
    rows = curve.rows
    return TrainResult(rows["loop"], rows["correlation"], rows["firing_rate"], rows["elapsed_time"], label, model,
                       rows["psth_correlation"])
