"""The long commands of rate-to-spike, with the guarantees of every spikeforge run: a lock on the
model directory, inputs checked before the work, progress, SIGINT/SIGTERM handled (training
saves the model as it is after the last completed step), atomic files, no silent replacement.

A model directory holds ``model.h5`` (:mod:`spikeforge.rate2spike.files`), ``training.png``,
and after ``map`` ``search.h5`` and ``search.png``, after ``eval`` ``eval.h5`` and its figures.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spikeforge.core import rng as streams
from spikeforge.core.interrupts import StopSignals
from spikeforge.core.lock import DirectoryLock
from spikeforge.core.store import read_h5, write_h5
from spikeforge.errors import DataFileError, ParameterError
from spikeforge.rate2spike import files
from spikeforge.rate2spike.tasks import task_named

MODEL = "model.h5"
SEARCH = "search.h5"
EVAL = "eval.h5"


def _echo(verbose: bool, text: str) -> None:
    if verbose:
        print(text, flush=True)


def _bar(total: int, desc: str, unit: str, verbose: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=not (verbose and sys.stderr.isatty()), leave=False)


def _refuse_existing(path: Path, force: bool | None, what: str) -> None:
    """Refuse to replace ``path`` unless ``force`` (None: the command has no --force)."""
    if path.exists() and not force:
        remedy = "choose another directory" if force is None else "use --force to replace it, or another directory"
        raise DataFileError(f"{str(path)!r} already holds {what}; {remedy}")


def train(directory: str | Path, task: str, config_values: dict, training_values: dict, seed: int | None = None,
          device: str = "cpu", verbose: bool = True) -> Path:
    """Train a rate network on ``task`` into ``directory`` (created; it must not hold a model)."""
    import torch

    from spikeforge.rate2spike import plotting
    from spikeforge.rate2spike.rate_model import RateConfig, RateRNN, initial_weights
    from spikeforge.rate2spike.training import TrainingConfig
    from spikeforge.rate2spike.training import train as train_model

    directory = Path(directory)
    try:
        the_task = task_named(task)
        config = RateConfig(n_inputs=the_task.n_inputs, **config_values)
        training = TrainingConfig(**training_values)
        device = torch.device(device)
    except (ValueError, RuntimeError) as error:
        raise ParameterError(str(error)) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {str(device)!r}: CUDA is not available here; use --device cpu")
    _refuse_existing(directory / MODEL, None, "a trained model")
    seed = streams.fresh_seed() if seed is None else int(seed)
    directory.mkdir(parents=True, exist_ok=True)
    with StopSignals() as signals, DirectoryLock(directory, "spikeforge rate train"):
        _refuse_existing(directory / MODEL, None, "a trained model")  # another process may have been first
        initial = initial_weights(config, streams.stream(seed, "rate", "weights"))
        model = RateRNN(config, initial).to(device)
        noise_seed = int(streams.stream(seed, "rate", "noise").integers(2**62))
        generator = torch.Generator(device=device).manual_seed(noise_seed)
        bar = _bar(training.max_trials, f"training {the_task.name}", "trial", verbose)
        with signals.deferred("finishing this trial, then saving the model"), bar, _one_cpu_thread(device):
            log = train_model(model, the_task, training, streams.stream(seed, "rate", "trials"), generator,
                              progress=bar.update, should_stop=lambda: signals.requested is not None)
        variables = files.model_variables(model, config, initial, log)
        attrs = {"task": the_task.name, "activation": config.activation, "loss_fn": training.loss,
                 "P_inh": config.p_inh, "P_rec": config.p_rec, "gain": config.gain, "apply_dale": config.apply_dale,
                 "decay_taus": list(config.decay_taus), "seed": seed, "converged": log.converged,
                 "interrupted": signals.requested is not None, "trials": log.trials, "seconds": log.seconds,
                 "batch": training.batch, "learning_rate": training.learning_rate,
                 "max_trials": training.max_trials, "eval_trial": log.eval_trial}
        with signals.deferred("finishing the write of the model"):
            files.write_model(directory / MODEL, {**variables, "eval_accuracy": np.asarray(log.eval_accuracy),
                                                  "eval_loss": np.asarray(log.eval_loss),
                                                  "eval_trials": np.asarray(log.eval_trial)}, attrs)
            figure = plotting.training_curve(directory / "training.png", log, training)
        state = ("converged" if log.converged else
                 "interrupted" if signals.requested is not None else "did not converge")
        accuracy = f"{log.eval_accuracy[-1]:.2f}" if log.eval_accuracy else "-"
        loss = f"{log.eval_loss[-1]:.2f}" if log.eval_loss else "-"
        _echo(verbose, f"{state} after {log.trials} trials ({log.seconds:.1f} s): evaluation accuracy {accuracy}, "
                       f"loss {loss}; mean decay time {float(model.taus().detach().mean()) * 5:.1f} ms")
        _echo(verbose, f"wrote {directory / MODEL} and {figure}")
        signals.raise_if_requested(f"interrupted; the model after {log.trials} trials is in {directory / MODEL}")
    return directory / MODEL


@contextlib.contextmanager
def _one_cpu_thread(device):
    """torch on one CPU thread while training: each step's work (a (batch, N) x (N, N) product) is
    far too small to share, and two threads made Go-NoGo training several times slower on two
    busy cores.  torch's thread count is process-wide, so it is restored afterwards."""
    if device.type != "cpu":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load(directory: str | Path, model_file: str | Path | None = None, task: str | None = None) -> files.Model:
    """The model of ``directory`` (or ``model_file``, e.g. an original ``.mat``)."""
    path = Path(model_file) if model_file is not None else Path(directory) / MODEL
    return files.read_model(path, task)


def search(directory: str | Path, scaling_factors, trials: int = 100, held_out: int = 100, seed: int | None = None,
           model_file: str | Path | None = None, task: str | None = None, backend: str = "numba",
           device: str = "cpu", force: bool = False, verbose: bool = True) -> dict:
    """The scaling-factor grid search and the held-out accuracy at the chosen factor.

    SIGINT or SIGTERM lets the factor in progress finish, then saves the finished factors in an
    incomplete ``search.h5``; the same command later resumes from them (with the same numbers an
    uninterrupted run gives), and refuses to if any input differs."""
    from spikeforge.core.provenance import differences, file_digest
    from spikeforge.rate2spike import plotting
    from spikeforge.rate2spike.lif_network import from_arrays
    from spikeforge.rate2spike.search import conclude, grid_accuracy

    directory = Path(directory)
    model_path = Path(model_file) if model_file is not None else directory / MODEL
    model = load(directory, model_file, task)
    factors = np.asarray(scaling_factors, dtype=np.float64)
    if factors.size == 0 or not np.all(np.isfinite(factors)) or np.any(factors <= 0):
        raise ParameterError(f"scaling factors {factors.tolist()} must be values > 0")
    if np.unique(factors).size != factors.size:
        raise ParameterError(f"scaling factors {factors.tolist()} repeat a value")
    if trials < 1 or held_out < 1:
        raise ParameterError(f"trials = {trials} and held-out trials = {held_out} must be >= 1")
    inputs = {"scaling_factors": factors.tolist(), "trials": trials, "held_out_trials": held_out,
              "model_sha256": file_digest(model_path), "task": model.task, "backend": backend, "device": device}
    directory.mkdir(parents=True, exist_ok=True)
    with StopSignals() as signals, DirectoryLock(directory, "spikeforge rate map"):
        known, seed = None, (None if seed is None else int(seed))
        if (directory / SEARCH).exists() and not force:
            earlier, recorded = read_h5(directory / SEARCH, ["all_perfs"], "search file")
            if recorded.get("complete", True):
                _refuse_existing(directory / SEARCH, force, "a scaling-factor search")
            changed = differences(recorded, {**inputs, "seed": recorded["seed"] if seed is None else seed},
                                  [*inputs, "seed"])
            if changed:
                name, old, new = changed[0]
                raise ParameterError(f"{str(directory / SEARCH)!r} holds an interrupted search made with {name} = "
                                     f"{old}, not {new}; repeat its command to resume it, or use --force to start "
                                     f"over")
            known, seed = earlier["all_perfs"], int(recorded["seed"])
            _echo(verbose, f"resuming: {int(np.sum(~np.isnan(known)))} of {factors.size} scaling factors were done")
        seed = streams.fresh_seed() if seed is None else seed
        the_task = task_named(model.task)
        mapped = from_arrays(model)
        _echo(verbose, f"searching {factors.size} scaling factors x {trials} trials + {held_out} held-out trials "
                       f"({model.config.n} neurons, task {model.task}, {backend})")
        start = time.perf_counter()
        attrs = {**inputs, "seed": seed, "model_file": str(model_path)}
        stopped = lambda: signals.requested is not None  # noqa: E731

        def progress(factor: float, score: float) -> None:
            bar.update(trials)
            line = f"1/lambda = {factor:g}: {score:.0%} of {trials} trials"
            if bar.disable:
                _echo(verbose, line)
            else:
                bar.write(line)  # above the bar
        with signals.deferred("finishing this scaling factor, then saving the finished ones"):
            bar = _bar(factors.size * trials + held_out, "scaling factors", "trial", verbose)
            with bar:
                if known is not None:
                    bar.update(int(np.sum(~np.isnan(known))) * trials)
                grid = grid_accuracy(mapped, the_task, seed, factors, trials, backend=backend, device=device,
                                     known=known, progress=progress, should_stop=stopped)
                result = None if stopped() else conclude(mapped, the_task, seed, factors, grid, held_out,
                                                         backend=backend, device=device)
            seconds = time.perf_counter() - start
            if result is None:
                write_h5(directory / SEARCH, {"scaling_factors": factors, "all_perfs": grid},
                         {**attrs, "complete": False, "seconds": seconds})
                signals.raise_if_requested(f"interrupted; {int(np.sum(~np.isnan(grid)))} of {factors.size} "
                                           f"scaling factors are saved in {directory / SEARCH}; run the same "
                                           f"command again to finish the search")
            arrays = {"scaling_factors": result.scaling_factors, "all_perfs": result.accuracy,
                      "opt_scaling_factor": np.float64(result.best),
                      "held_out_accuracy": np.float64(result.held_out_accuracy)}
            write_h5(directory / SEARCH, arrays, {**attrs, "complete": True, "seconds": seconds})
            figure = plotting.search_curve(directory / "search.png", result, model.task)
        _echo(verbose, f"best 1/lambda = {result.best:g}: {result.best_accuracy:.0%} on the grid's trials, "
                       f"{result.held_out_accuracy:.0%} on {held_out} held-out trials ({seconds:.1f} s)")
        _echo(verbose, f"wrote {directory / SEARCH} and {figure}")
        signals.raise_if_requested(f"interrupted; the search is complete in {directory / SEARCH}")
    return {"best": result.best, "grid": result.accuracy, "held_out": result.held_out_accuracy}


def chosen_factor(directory: Path) -> float:
    """The scaling factor ``map`` chose for ``directory``."""
    _, attrs = read_h5(directory / SEARCH, [], "search file")
    if not attrs.get("complete", True):
        raise DataFileError(f"the scaling-factor search in {str(directory)!r} was interrupted; finish it with "
                            f"`spikeforge rate map {directory}` or give --scaling-factor")
    arrays, _ = read_h5(directory / SEARCH, ["opt_scaling_factor"], "search file")
    return float(arrays["opt_scaling_factor"])


def evaluate(directory: str | Path, trials: int = 100, scaling_factor: float | None = None, seed: int | None = None,
             backend: str = "numba", device: str = "cpu", force: bool = False, verbose: bool = True,
             model_file: str | Path | None = None, task: str | None = None) -> dict:
    """The LIF network at the chosen (or given) scaling factor on ``trials`` fresh trials, and one
    example trial per condition: rate and LIF outputs and the raster (eval.h5, eval.png)."""
    import torch

    from spikeforge.rate2spike import plotting
    from spikeforge.rate2spike.lif_network import from_arrays, simulate
    from spikeforge.rate2spike.rate_model import RateRNN
    from spikeforge.rate2spike.search import accuracy

    directory = Path(directory)
    model = load(directory, model_file, task)
    if scaling_factor is None:
        if not (directory / SEARCH).exists():
            raise DataFileError(f"{str(directory)!r} has no scaling-factor search; run `spikeforge rate map "
                                f"{directory}` first or give --scaling-factor")
        scaling_factor = chosen_factor(directory)
    if not (np.isfinite(scaling_factor) and scaling_factor > 0):
        raise ParameterError(f"scaling factor {scaling_factor} must be > 0")
    if trials < 1:
        raise ParameterError(f"trials = {trials} must be >= 1")
    seed = streams.fresh_seed() if seed is None else int(seed)
    with StopSignals(), DirectoryLock(directory, "spikeforge rate eval"):
        _refuse_existing(directory / EVAL, force, "an evaluation")
        task = task_named(model.task)
        mapped = from_arrays(model)
        rng = streams.stream(seed, "rate", "eval")
        correct = float(accuracy(mapped, task, [scaling_factor], trials, rng, backend=backend, device=device)[0])
        # one example per condition, the same stimulus through the rate RNN and the LIF network
        examples = task.trials(rng, 64)
        labels = np.unique(examples.label)
        picks = np.array([int(np.flatnonzero(examples.label == label)[0]) for label in labels])
        lif = simulate(mapped, task.lif_input(examples.u[picks]), scaling_factor, rng, record_spikes=True,
                       backend=backend, device=device)
        rate_model = RateRNN(model.config, model.weights, dtype=torch.float64)
        with torch.no_grad():
            rate_out, _ = rate_model(torch.as_tensor(examples.u[picks]),
                                     torch.Generator().manual_seed(int(rng.integers(2**62))))
        rate_out = rate_out.numpy()
        names = {"go-nogo": {0: "NoGo", 1: "Go"}, "mante": {-1: "choice -1", 1: "choice +1"},
                 "xor": {-1: "different", 1: "same"}}.get(task.name, {})
        conditions = [{"name": names.get(int(label), f"label {label}"), "rate_output": rate_out[k],
                       "lif_output": lif.out[k], "spikes": lif.spikes[k], "target": examples.z[picks[k]]}
                      for k, label in enumerate(labels)]
        write_h5(directory / EVAL, {"accuracy": np.float64(correct), "labels": labels,
                                    "rate_output": rate_out, "lif_output": lif.out, "lif_rates": lif.rates},
                 {"scaling_factor": float(scaling_factor), "trials": trials, "seed": seed, "task": task.name})
        figure = plotting.outputs_and_rasters(directory / "eval.png", conditions, mapped.inh, 0.05)
        mean_rate = float(lif.rates.mean())
        _echo(verbose, f"LIF accuracy at 1/lambda = {scaling_factor:g}: {correct:.0%} of {trials} fresh trials; "
                       f"example mean rate {mean_rate:.1f} Hz")
        _echo(verbose, f"wrote {directory / EVAL} and {figure}")
    return {"accuracy": correct, "scaling_factor": float(scaling_factor)}

