"""The long commands of rate-to-spike, with the guarantees of every spikeforge run: a lock on the
model directory, inputs checked before the work, progress, SIGINT/SIGTERM handled (training
saves the model as it is after the last completed step), atomic files, no silent replacement.

A model directory holds ``model.h5`` (:mod:`spikeforge.rate2spike.files`), ``training.png``,
and after ``map`` ``search.h5`` and ``search.png``, after ``eval`` ``eval.h5`` and its figures.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import numpy as np

from spikeforge.core import rng as streams
from spikeforge.core.interrupts import StopSignals
from spikeforge.core.lock import DirectoryLock
from spikeforge.core.run_support import echo as _echo
from spikeforge.core.run_support import progress_bar as _bar
from spikeforge.core.run_support import progress_line as _line
from spikeforge.core.run_support import refuse_existing as _refuse_existing
from spikeforge.core.run_support import check_backend as _check_backend
from spikeforge.core.run_support import run_seed as _seed
from spikeforge.core.run_support import torch_device as _torch_device
from spikeforge.core.executor import uses_dask
from spikeforge.core.store import read_h5, write_h5
from spikeforge.errors import DataFileError, ParameterError
from spikeforge.rate2spike import files
from spikeforge.rate2spike.tasks import task_named

MAX_FACTORS = 1000  # more scaling factors than any search needs: a mistyped grid
SUCCESS = 0.95  # the paper's "successful LIF network"
MODEL = "model.h5"
SEARCH = "search.h5"
EVAL = "eval.h5"


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
    except ValueError as error:
        raise ParameterError(str(error)) from None
    device = _torch_device(device)
    _refuse_existing(directory / MODEL, None, "a trained model")
    seed = _seed(seed, verbose)
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
                              progress=bar.update, should_stop=lambda: signals.requested is not None,
                              report=lambda trials, loss, accuracy: _line(
                                  bar, verbose, f"trial {trials}: evaluation loss {loss:.2f}, {accuracy:.0%} correct"))
        if log.diverged:
            raise ParameterError(f"the training loss became NaN or infinite after {log.trials} trials; nothing was "
                                 f"saved (lower --learning-rate, or check --gain and --decay_taus)")
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


def _map_command(directory: Path, attrs: dict) -> str:
    """The ``spikeforge rate map`` command line that made (and resumes) the search of ``attrs``."""
    factors = ",".join(f"{factor:g}" for factor in attrs["scaling_factors"])
    model = "" if attrs["model_file"] == str(directory / MODEL) else f" --model {attrs['model_file']}"
    backend = "" if attrs["backend"] == "numba" else f" --backend {attrs['backend']} --device {attrs['device']}"
    return (f"spikeforge rate map {directory}{model} --scaling-factors {factors} --trials {attrs['trials']} "
            f"--held-out {attrs['held_out_trials']}{backend}")


def _drop_stale_outputs(directory: Path) -> list[str]:
    """Remove the figure and the evaluation that belong to an earlier search (they would
    contradict the new search.h5); return their names."""
    removed = []
    for name in ("search.png", EVAL, "eval.png"):
        if (directory / name).exists():
            (directory / name).unlink()
            removed.append(name)
    return removed


def search(directory: str | Path, scaling_factors, trials: int = 100, held_out: int = 100, seed: int | None = None,
           model_file: str | Path | None = None, task: str | None = None, backend: str = "numba",
           device: str = "cpu", force: bool = False, verbose: bool = True, scheduler: str | None = None,
           workers: int | None = None) -> dict:
    """The scaling-factor grid search and the held-out accuracy at the chosen factor.

    With ``scheduler`` (an address) or ``workers`` (a local cluster's size), each scaling factor is a
    Dask job (:mod:`spikeforge.core.executor`); every factor draws from its own stream, so the numbers
    are those of a run in this process.

    SIGINT or SIGTERM lets the step in progress (a factor, or the held-out trials) finish, then
    saves the finished factors in an incomplete ``search.h5``; the same command (without
    ``--force``) later resumes from them, with the numbers an uninterrupted run gives, and refuses
    to if any input differs.  Repeating the command of a finished search prints its result (and
    draws a missing figure); ``force`` starts over and removes the earlier search's figure and
    evaluation."""
    from spikeforge.core.provenance import differences, file_digest
    from spikeforge.rate2spike import plotting
    from spikeforge.rate2spike.lif_network import from_arrays
    from spikeforge.rate2spike.search import SearchResult, conclude, grid_accuracy

    directory = Path(directory)
    model_path = Path(model_file) if model_file is not None else directory / MODEL
    model = load(directory, model_file, task)
    factors = np.asarray(scaling_factors, dtype=np.float64)
    if factors.size == 0 or not np.all(np.isfinite(factors)) or np.any(factors <= 0):
        raise ParameterError(f"scaling factors {factors.tolist()} must be finite values > 0")
    if factors.size > MAX_FACTORS:
        raise ParameterError(f"{factors.size} scaling factors is more than {MAX_FACTORS}; use a coarser grid")
    if np.unique(factors).size != factors.size:
        raise ParameterError(f"scaling factors {factors.tolist()} repeat a value")
    if trials < 1 or held_out < 1:
        raise ParameterError(f"trials = {trials} and held-out trials = {held_out} must be >= 1")
    _check_backend(backend, device)
    on_dask = uses_dask(scheduler, workers)  # a bad address or choice is refused before any work
    if seed is not None:
        seed = _seed(seed, verbose)
    inputs = {"scaling_factors": factors.tolist(), "trials": trials, "held_out_trials": held_out,
              "model_sha256": file_digest(model_path), "task": model.task, "backend": backend, "device": device}
    directory.mkdir(parents=True, exist_ok=True)
    with StopSignals() as signals, DirectoryLock(directory, "spikeforge rate map"):
        known, earlier_seconds = None, 0.0
        if (directory / SEARCH).exists() and not force:
            earlier, recorded = read_h5(directory / SEARCH, None, "search file")
            changed = differences(recorded, {**inputs, "seed": recorded.get("seed") if seed is None else seed},
                                  [*inputs, "seed"])
            complete = recorded.get("complete", True)
            if changed:
                name, old, new = changed[0]
                what = "a finished search" if complete else "an interrupted search"
                remedy = ("use --force to replace it" if complete
                          else "repeat its command to resume it, or use --force to start over")
                raise ParameterError(f"{str(directory / SEARCH)!r} holds {what} made with {name} = {old}, not "
                                     f"{new}; {remedy}")
            if complete:  # the same command again: its result, and the figure if it is missing
                best = int(np.argmax(earlier["all_perfs"]))
                result = SearchResult(earlier["scaling_factors"], earlier["all_perfs"],
                                      float(earlier["opt_scaling_factor"]), float(earlier["all_perfs"][best]),
                                      float(earlier["held_out_accuracy"]), held_out)
                if not (directory / "search.png").exists():
                    plotting.search_curve(directory / "search.png", result, model.task)
                _echo(verbose, f"{directory / SEARCH} already holds this search (--force repeats it):")
                _report_search(result, held_out, float(recorded.get("seconds", 0.0)), verbose)
                return {"best": result.best, "grid": result.accuracy, "held_out": result.held_out_accuracy}
            known, seed = earlier["all_perfs"], int(recorded["seed"])
            earlier_seconds = float(recorded.get("seconds", 0.0))
            _echo(verbose, f"resuming: {int(np.sum(~np.isnan(known)))} of {factors.size} scaling factors were done")
        seed = _seed(seed, verbose)
        if not model.attrs.get("converged", True):
            _echo(verbose, f"note: this rate network did not reach its training criterion "
                           f"({'interrupted' if model.attrs.get('interrupted') else 'trial budget spent'}); "
                           f"its LIF network is unlikely to do the task")
        the_task = task_named(model.task)
        mapped = from_arrays(model)
        plural = "s" if factors.size > 1 else ""
        _echo(verbose, f"searching {factors.size} scaling factor{plural} x {trials} trials + {held_out} held-out "
                       f"trials ({model.config.n} neurons, task {model.task}, {backend})")
        start = time.perf_counter()
        attrs = {**inputs, "seed": seed, "model_file": str(model_path)}
        stopped = lambda: signals.requested is not None  # noqa: E731

        def progress(factor: float, score: float) -> None:
            bar.update(trials)
            _line(bar, verbose, f"1/lambda = {factor:g}: {score:.0%} of {trials} trials")

        with signals.deferred("finishing the step in progress (a scaling factor or the held-out trials), then "
                              "saving what is done"):
            bar = _bar(factors.size * trials + held_out, "scaling factors", "trial", verbose)
            with bar:
                if known is not None:
                    bar.update(int(np.sum(~np.isnan(known))) * trials)
                if on_dask:
                    grid = _grid_on_dask(directory, model_path, inputs, seed, factors, known, progress, stopped,
                                         scheduler, workers, verbose)
                else:
                    grid = grid_accuracy(mapped, the_task, seed, factors, trials, backend=backend, device=device,
                                         known=known, progress=progress, should_stop=stopped)
                result = None if stopped() else conclude(mapped, the_task, seed, factors, grid, held_out,
                                                         backend=backend, device=device)
            seconds = earlier_seconds + time.perf_counter() - start
            removed = _drop_stale_outputs(directory)
            if removed:
                _echo(verbose, f"removed the earlier search's {', '.join(removed)}")
            if result is None:
                write_h5(directory / SEARCH, {"scaling_factors": factors, "all_perfs": grid},
                         {**attrs, "complete": False, "seconds": seconds})
                signals.raise_if_requested(f"interrupted; {int(np.sum(~np.isnan(grid)))} of {factors.size} "
                                           f"scaling factors are saved in {directory / SEARCH}; "
                                           f"`{_map_command(directory, attrs)}` finishes the search")
            arrays = {"scaling_factors": result.scaling_factors, "all_perfs": result.accuracy,
                      "opt_scaling_factor": np.float64(result.best),
                      "held_out_accuracy": np.float64(result.held_out_accuracy)}
            write_h5(directory / SEARCH, arrays, {**attrs, "complete": True, "seconds": seconds})
            shutil.rmtree(directory / "search-factors", ignore_errors=True)  # Dask jobs' results, now in search.h5
            figure = plotting.search_curve(directory / "search.png", result, model.task)
        _report_search(result, held_out, seconds, verbose)
        _echo(verbose, f"wrote {directory / SEARCH} and {figure}")
        signals.raise_if_requested(f"interrupted; the search is complete in {directory / SEARCH}")
    return {"best": result.best, "grid": result.accuracy, "held_out": result.held_out_accuracy}


def factor_job(model_path: str, task: str, seed: int, factor: float, trials: int, backend: str, device: str) -> dict:
    """The grid accuracy at one scaling factor, as a Dask job (the model is read in the worker)."""
    from spikeforge.rate2spike.lif_network import from_arrays
    from spikeforge.rate2spike.search import accuracy, factor_stream

    model = files.read_model(Path(model_path), task)
    scores = accuracy(from_arrays(model), task_named(model.task), [factor], trials, factor_stream(seed, factor),
                      backend=backend, device=device)
    return {"accuracy": float(scores[0])}


def _grid_on_dask(directory: Path, model_path: Path, inputs: dict, seed: int, factors: np.ndarray, known,
                  progress, stopped, scheduler: str | None, workers: int | None, verbose: bool) -> np.ndarray:
    """The grid's accuracies with one Dask job per factor not in ``known``; NaN for those a stop left out.
    Finished factors are kept under ``search-factors/`` until the search is saved."""
    from spikeforge.core.executor import Cluster, Job, raise_failures, run_jobs

    grid = np.full(factors.size, np.nan) if known is None else np.array(known, dtype=np.float64)
    todo = [k for k in range(factors.size) if np.isnan(grid[k])]
    shared = {name: inputs[name] for name in ("model_sha256", "task", "trials", "backend", "device")}
    jobs = [Job(f"sf={factors[k]:g}", factor_job, (str(model_path), inputs["task"], seed, float(factors[k]),
                                                   inputs["trials"], inputs["backend"], inputs["device"]),
                {**shared, "seed": seed, "scaling_factor": float(factors[k])}) for k in todo]
    position = {job.key: k for job, k in zip(jobs, todo)}

    def record(outcome) -> None:
        if outcome.status == "done":
            grid[position[outcome.key]] = outcome.values["accuracy"]
            progress(float(factors[position[outcome.key]]), outcome.values["accuracy"])

    with Cluster(scheduler, workers) as cluster:
        _echo(verbose, f"running {len(jobs)} scaling factor(s) on {cluster.describe()}")
        outcomes = run_jobs(jobs, directory / "search-factors", cluster, verbose=False, what="scaling factor",
                            on_result=record, changed="recompute", should_stop=stopped)
    for outcome in outcomes:
        if outcome.status == "kept":
            grid[position[outcome.key]] = outcome.values["accuracy"]
            progress(float(factors[position[outcome.key]]), outcome.values["accuracy"])
    if not stopped():
        raise_failures(outcomes, "scaling factor", directory / "search-factors")
    return grid


def _report_search(result, held_out: int, seconds: float, verbose: bool) -> None:
    _echo(verbose, f"best 1/lambda = {result.best:g}: {result.best_accuracy:.0%} on the grid's trials, "
                   f"{result.held_out_accuracy:.0%} on {held_out} held-out trials ({seconds:.1f} s)")
    if result.held_out_accuracy < SUCCESS:
        _echo(verbose, f"note: below the {SUCCESS:.0%} the paper calls a successful LIF network; not every "
                       f"trained rate network maps (docs/rate2spike.md, 'When the spiking network fails')")


def chosen_factor(directory: Path, model_path: Path) -> float:
    """The scaling factor ``map`` chose for ``directory``, which must have searched ``model_path``."""
    from spikeforge.core.provenance import file_digest

    _, attrs = read_h5(directory / SEARCH, [], "search file")
    if not attrs.get("complete", True):
        raise DataFileError(f"the scaling-factor search in {str(directory)!r} was interrupted; finish it with "
                            f"`{_map_command(directory, attrs)}`, or give --scaling-factor")
    if "model_sha256" in attrs and attrs["model_sha256"] != file_digest(model_path):
        raise DataFileError(f"the scaling-factor search in {str(directory)!r} was made for the model "
                            f"{attrs.get('model_file')!r}, not for {str(model_path)!r} (their contents differ); "
                            f"search this model with `spikeforge rate map`, or give --scaling-factor")
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
        scaling_factor = chosen_factor(directory, Path(model_file) if model_file is not None else directory / MODEL)
    if not (np.isfinite(scaling_factor) and scaling_factor > 0):
        raise ParameterError(f"scaling factor {scaling_factor} must be > 0")
    if trials < 1:
        raise ParameterError(f"trials = {trials} must be >= 1")
    _check_backend(backend, device)
    seed = _seed(seed, verbose)
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

