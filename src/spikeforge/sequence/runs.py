"""``spikeforge sequence run CONFIG.toml``: the experiment of a configuration (:mod:`.config`) as a safe
long run.

Order: ``tests`` test runs of the untrained network, ``training_s`` of training, ``tests`` test runs of
the trained one (test k from rest, learning off, streams ("sequence", "test", k) and ("sequence",
"test-spiking", k); training streams ("sequence", "train") and ("sequence", "spiking")): the same
streams as :func:`spikeforge.sequence.experiment.full_scale`, so the command and the Python API agree.

The directory is locked.  ``run.h5`` is written after the first tests, then every ``SAVE_SECONDS`` of
wall time during training and at the end: a SIGINT or SIGTERM lets the 10-s chunk in progress finish,
saves, and exits with 130 or 143; the same command then resumes from the saved state (the spiking
stream's position included) and gives exactly the result of an uninterrupted run.  A finished run is
not replaced without ``force``; a run made from another configuration is refused, naming the first
difference.  Files (all HDF5 or PNG or CSV; see :mod:`.files`): ``run.h5``, ``scores.csv``,
``raster.png``, ``raster-untrained.png``, ``circuits.png``, ``weights.png``, ``selectivity.png``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from spikeforge.core import rng as streams
from spikeforge.core.interrupts import StopSignals
from spikeforge.core.lock import DirectoryBusy, DirectoryLock
from spikeforge.core.provenance import differences
from spikeforge.core.run_support import echo, progress_bar, progress_line, refuse_existing, run_seed
from spikeforge.errors import ParameterError
from spikeforge.sequence import config as configs
from spikeforge.sequence import experiment, files
from spikeforge.sequence.inputs import window
from spikeforge.sequence.model import Network, Run

SAVE_SECONDS = 2.0  # wall seconds between saves during training (a crash loses at most this)
CHUNK_S = 10.0  # simulated seconds between the points where a run can stop and save
OUTPUTS = (files.RUN, files.SCORES, "raster.png", "raster-untrained.png", "circuits.png", "weights.png",
           "selectivity.png")


def default_directory(config_path) -> Path:
    """Where a configuration's results go when no directory is named: its path without ``.toml``."""
    path = Path(config_path)
    return path.with_suffix("") if path.suffix else path.with_name(path.name + "-run")


def run(config_path, directory=None, force: bool = False, verbose: bool = True, seed: int | None = None) -> dict:
    """Run the configuration in ``config_path`` (with ``seed`` instead of its own, if given); results in
    ``directory`` (see the module docstring).  Returns the scores: {"untrained": {...}, "trained": {...}}."""
    config = configs.load(config_path)  # every value checked before anything is written
    if seed is not None:
        config = configs.RunConfig(**{**config.__dict__, "seed": int(seed)})
    directory = Path(directory) if directory is not None else default_directory(config_path)
    if directory.exists() and not directory.is_dir():
        raise ParameterError(f"{str(directory)!r} is a file; expected a directory for the results")
    if config.seed is not None:
        run_seed(config.seed, False)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with StopSignals() as signals, DirectoryLock(directory, "spikeforge sequence run"):
            return _locked_run(config, Path(config_path), directory, force, verbose, signals)
    except DirectoryBusy:
        raise
    except BaseException:
        if created and not (directory / files.RUN).exists():
            shutil.rmtree(directory, ignore_errors=True)
        raise


def _previous(directory: Path, config: configs.RunConfig, force: bool, verbose: bool):
    """(the saved run to continue or None, the run's seed)."""
    path = directory / files.RUN
    if force:
        for name in OUTPUTS:
            (directory / name).unlink(missing_ok=True)
        return None, run_seed(config.seed, verbose)
    if not path.exists():
        return None, run_seed(config.seed, verbose)
    saved = files.read_run(path)
    recorded = _flat({**saved.attrs["config"], "seed": saved.attrs["seed"]})
    current = _flat({**config.as_dict(), "seed": saved.attrs["seed"] if config.seed is None else config.seed})
    changed = differences(recorded, current, list(dict.fromkeys([*recorded, *current])))
    finished = saved.attrs.get("status") == "finished"
    if changed:
        name, old, new = (value if value is not None else "(unset)" for value in changed[0])
        what = "a finished run" if finished else "an interrupted run"
        raise ParameterError(f"{str(path)!r} holds {what} made with {name} = {old}, not {new}; use --force to "
                             "replace it" + ("" if finished else ", or undo the change to resume it"))
    if finished:
        refuse_existing(path, False, "a finished run of this configuration (see scores.csv)")
    echo(verbose, f"resuming the run in {path}: {saved.trained_steps / 1000.0:g} s of training saved")
    return saved, int(saved.attrs["seed"])


def _flat(values: dict, prefix: str = "") -> dict:
    """{"network": {"eta0": 0.05}} -> {"[network] eta0": 0.05}, so a refusal names the setting."""
    out = {}
    for name, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"[{name}] "))
        else:
            out[prefix + name] = value
    return out


def _locked_run(config, config_path: Path, directory: Path, force: bool, verbose: bool, signals) -> dict:
    saved, seed = _previous(directory, config, force, verbose)
    config = configs.RunConfig(**{**config.__dict__, "seed": seed})
    network, training_inputs, test_inputs = config.build()
    n_tests, test_ms = config.tests, config.test_s * 1000.0
    attrs = {"kind": "sequence", "config": config.as_dict(), "seed": seed, "config_file": str(config_path)}
    echo(verbose, f"{network.grid.shape[0]} x {network.grid.shape[1]} circuits, {network.n_neurons} neurons, "
                  f"{network.n_inputs} inputs; {config.training_s:g} s of training, {n_tests} tests of "
                  f"{config.test_s:g} s before and after")
    if saved is None:
        with signals.deferred("finishing the tests of the untrained network, then stopping (nothing is saved "
                              "before they end)"):
            untrained = [experiment.test_run(network, test_inputs, seed, k, test_ms) for k in range(n_tests)]
        signals.raise_if_requested("interrupted before the tests of the untrained network ended; nothing was saved")
        state = files.Progress(untrained=untrained, trained_steps=0, training_spikes=files.empty_spikes(),
                               snapshots=[(0.0, network.state.weight.astype(np.float32))], spiking_state=None)
    else:
        state = saved.progress(network)
        untrained = state.untrained
    training_steps = int(round(config.training_s * 1000.0 / network.neuron.dt))
    inputs = training_inputs.generate(config.training_s * 1000.0, streams.stream(seed, "sequence", "train")) \
        if training_steps else None
    spiking = streams.stream(seed, "sequence", "spiking")
    if state.spiking_state is not None:
        spiking.bit_generator.state = state.spiking_state
    elif training_steps:
        network.reset_transients()
    save = files.Saver(directory / files.RUN, network, attrs)
    # deferred from this invocation's first save on: a signal then never stops the run between two of its
    # steps with a bare "interrupted" and run.h5 not marked
    with signals.deferred("finishing this chunk of training, then saving" if state.trained_steps < training_steps
                          else "finishing the tests, then saving the results"):
        save(state, "running")
        state = _train(network, inputs, spiking, state, config, save, signals, verbose)
        with signals.deferred("finishing the tests, then saving the results"):
            trained = [experiment.test_run(network, test_inputs, seed, n_tests + k, test_ms)
                       for k in range(n_tests)]
            scores = _scores(untrained, trained, test_inputs.config.n_patterns)
            state = state._replace(trained=trained)
            save(state, "finished", scores)
            files.write_scores(directory / files.SCORES, scores)
            made = _figures(directory, network, state, verbose)
    _print_scores(verbose, scores)
    echo(verbose, f"wrote {directory / files.RUN}, {directory / files.SCORES} and {', '.join(made)}")
    signals.raise_if_requested(f"interrupted after the run finished; its results are complete in {directory}")
    return scores


def _train(network: Network, inputs, spiking, state, config, save, signals, verbose: bool):
    """Training from ``state.trained_steps`` to the end, in chunks of CHUNK_S; saves at most every
    SAVE_SECONDS and when a signal asks to stop."""
    if inputs is None:
        return state
    n_steps = inputs.spikes.shape[0]
    dt = network.neuron.dt
    chunk = int(round(CHUNK_S * 1000.0 / dt))
    every = max(1, int(round(config.snapshot_every_s * 1000.0 / dt)))
    bar = progress_bar(int(round(n_steps * dt / 1000.0)), "training", "simulated s", verbose)
    bar.update(int(state.trained_steps * dt / 1000.0))
    last_save, started = time.monotonic(), time.monotonic()
    with signals.deferred("finishing this chunk of training, then saving"), bar:
        while state.trained_steps < n_steps:
            start = state.trained_steps
            stop = min(start + chunk, n_steps, (start // every + 1) * every)
            part = network.run(window(inputs, start, stop), spiking, train=True)
            state = state._replace(trained_steps=stop, spiking_state=spiking.bit_generator.state,
                                   training_spikes=files.add_spikes(state.training_spikes, part.spikes, start))
            if stop % every == 0 or stop == n_steps:
                snapshot = (stop * dt, network.state.weight.astype(np.float32))
                state = state._replace(snapshots=state.snapshots + [snapshot])
            bar.update(int(stop * dt / 1000.0) - bar.n)
            rate = (stop - start) * dt / 1000.0 / max(time.monotonic() - started, 1e-9)
            progress_line(bar, verbose and (stop % chunk == 0 or stop == n_steps),
                          f"trained {stop * dt / 1000.0:g} of {n_steps * dt / 1000.0:g} s "
                          f"({rate:.1f} simulated s per s)")
            if signals.requested is not None or time.monotonic() - last_save >= SAVE_SECONDS:
                save(state, "running" if signals.requested is None else "interrupted")
                last_save = time.monotonic()
            started = time.monotonic()
            if signals.requested is not None:
                signals.raise_if_requested(f"interrupted; {stop * dt / 1000.0:g} s of training are saved in "
                                           f"{save.path}; the same command resumes the run")
    save(state, "running")
    return state


def _scores(untrained: list[Run], trained: list[Run], n_patterns: int) -> dict:
    out = {}
    for name, runs in (("untrained", untrained), ("trained", trained)):
        values = experiment.scores(runs[0], runs[1])._asdict()
        values.pop("warped_readout")
        if n_patterns > 1:
            identity = experiment.identity_accuracy(runs[0], runs[1], n_patterns)
            values["pattern_identity"], values["identity_chance"] = identity.accuracy, identity.chance
        out[name] = {key: float(value) for key, value in values.items()}
    return out


def _print_scores(verbose: bool, scores: dict) -> None:
    if not verbose:
        return
    names = list(scores["trained"])
    width = max(len(name) for name in names)
    print(f"{'':{width}}  untrained  trained")
    for name in names:
        print(f"{name:{width}}  {scores['untrained'][name]:9.3f}  {scores['trained'][name]:7.3f}")


def _figures(directory: Path, network: Network, state, verbose: bool) -> list[str]:
    from spikeforge.sequence import plotting

    made = []
    for name, runs in (("raster.png", state.trained), ("raster-untrained.png", state.untrained)):
        test = runs[-1]
        order = plotting.ordered_by_last_pattern(test.rates, test.inputs)
        plotting.raster(directory / name, test.spikes, test.inputs, rates=test.rates, order=order,
                        title=f"{'trained' if runs is state.trained else 'untrained'} network, test "
                              f"(rows by mean activation time)")
        made.append(name)
    plotting.circuits(directory / "circuits.png", network.grid)
    times_s = [t / 1000.0 for t, _ in state.snapshots]
    plotting.weights(directory / "weights.png", [w for _, w in state.snapshots], times_s)
    plotting.selectivity(directory / "selectivity.png", state.trained[-1].rates, state.trained[-1].inputs)
    return made + ["circuits.png", "weights.png", "selectivity.png"]


def seed_job(config_path: str, directory: str, seed: int) -> dict:
    """One seed of :func:`run_seeds` (a Dask job): the run in ``directory``, resumed if a crash left it
    unfinished; the scores as "untrained_<name>" and "trained_<name>"."""
    scores = run(config_path, directory, verbose=False, seed=seed)
    return {f"{when}_{name}": value for when, values in scores.items() for name, value in values.items()}


def run_seeds(config_path, seeds, directory=None, scheduler: str | None = None, workers: int | None = None,
              force: bool = False, verbose: bool = True) -> list[dict]:
    """The configuration once per seed, each an independent Dask job (:mod:`spikeforge.core.executor`):
    ``<directory>/seed-<k>/`` is an ordinary run directory; ``seeds.csv`` holds every seed's scores and
    their mean and standard deviation.  Finished seeds are kept on a re-run."""
    from spikeforge.core.executor import Cluster, Job, run_jobs, scheduler_address

    config = configs.load(config_path)
    seeds = [run_seed(seed, False) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ParameterError(f"seeds {seeds}; expected distinct seeds")
    scheduler_address(scheduler, workers)  # a bad address or choice is refused before any work
    directory = Path(directory) if directory is not None else default_directory(config_path)
    if directory.exists() and not directory.is_dir():
        raise ParameterError(f"{str(directory)!r} is a file; expected a directory for the results")
    inputs = {"config": config.as_dict()}
    jobs = [Job(f"seed-{seed}", seed_job, (str(Path(config_path).resolve()), str(directory / f"seed-{seed}"), seed),
                {**inputs, "seed": seed}) for seed in seeds]
    directory.mkdir(parents=True, exist_ok=True)
    with StopSignals(), DirectoryLock(directory, "spikeforge sequence run --seeds"):
        echo(verbose, f"{len(seeds)} seed(s) of {config_path}: {config.training_s:g} s of training each")
        with Cluster(scheduler, workers) as cluster:
            outcomes = run_jobs(jobs, directory / "results", cluster, force=force, verbose=verbose, what="seed")
        rows = [{"seed": seed, "status": "failed" if o.status == "failed" else "done", **o.values,
                 "error": o.error or ""} for seed, o in zip(seeds, outcomes)]
        files.write_seed_table(directory / "seeds.csv", rows)
    done = [row for row in rows if row["status"] == "done"]
    if verbose and done:
        for name in [name for name in done[0] if name.startswith("trained_")]:
            score = name[len("trained_"):]
            trained = files.mean_and_sd([row[name] for row in done])
            untrained = files.mean_and_sd([row[f"untrained_{score}"] for row in done])
            print(f"{score:18} {trained[0]:.3f} +- {trained[1]:.3f} (trained, {len(done)} seed(s); untrained "
                  f"{untrained[0]:.3f})")
    echo(verbose, f"{len(done)} seed(s) done, {len(rows) - len(done)} failed; wrote {directory / 'seeds.csv'}")
    return rows
