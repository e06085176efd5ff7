"""``spikeforge fit cell`` and ``spikeforge fit network``: fits as safe long runs.

Everything is checked before the first simulation (the model, the parameter names, bounds and
values, the data, the protocol, the optimizer's settings).  The directory is locked; ``fit.h5`` is
written after the first generation and then at most every ``SAVE_SECONDS`` and at the end, so a
SIGINT or SIGTERM (which lets the generation in progress finish) keeps every completed generation,
and the same command resumes the fit by replaying the saved history.  A finished fit is not
replaced without ``force``; a fit made from other data or settings is refused, naming the first
difference.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from spikeforge.core.interrupts import StopSignals
from spikeforge.core.lock import DirectoryBusy, DirectoryLock
from spikeforge.core.provenance import differences, fingerprint
from spikeforge.core.run_support import check_backend, echo, progress_bar, progress_line, refuse_existing, run_seed
from spikeforge.core.spikes import Trains
from spikeforge.errors import DataFileError, ParameterError
from spikeforge.fit import files, optimizers
from spikeforge.fit import network as networks
from spikeforge.fit.cell import CURRENT_MODES, LOSSES, CellData, CellObjective
from spikeforge.fit.data import load_cell
from spikeforge.fit.models import model_named
from spikeforge.fit.search import Bounds, FitResult, correlations, fit, summarise
from spikeforge.fit.simulate import StepProtocol

SAVE_SECONDS = 10.0
RESTARTS = "restarts"  # finished restarts of a fit on Dask, kept until fit.h5 holds them all
MAX_POPULATION = 4096  # candidates per generation; more than any fit needs (and the current search
# simulates 11 amplitudes of each at once)
OUTPUTS = (files.FIT, files.PARAMETERS, "fit.png", "report.csv", "report.png", "report.pdf")


def _check_settings(model, fitted, bounds, fixed, preset, loss, current, optimizer, population, generations,
                    patience, restarts) -> tuple[tuple[str, ...], Bounds, dict]:
    fitted = tuple(fitted) if fitted else model.fitted
    unknown = [name for name in (*fitted, *fixed) if name not in model.names]
    if unknown:
        raise ParameterError(f"{model.name} has no parameter {unknown[0]!r}; its parameters are "
                             f"{', '.join(model.names)}")
    if len(set(fitted)) != len(fitted):
        raise ParameterError(f"--fit {','.join(fitted)} names a parameter twice")
    both = [name for name in fitted if name in fixed]
    if both:
        raise ParameterError(f"{both[0]} is both fitted and set to {fixed[both[0]]}; choose one")
    base = {}
    if preset is not None:
        if not model.presets:
            raise ParameterError(f"{model.name} has no presets; --preset is for izhikevich "
                                 f"({', '.join(model_named('izhikevich').presets)})")
        key = str(preset).upper()
        if key not in model.presets:
            raise ParameterError(f"preset {preset!r} is not one of {', '.join(model.presets)}")
        base = dict(zip(model.names, model.presets[key]))
    for name, value in fixed.items():
        if not np.isfinite(value):
            raise ParameterError(f"--set {name}={value}; expected a finite number")
    if loss not in LOSSES:
        raise ParameterError(f"loss {loss!r} is not one of {', '.join(LOSSES)}")
    if current not in CURRENT_MODES:
        raise ParameterError(f"current {current!r} is not one of {', '.join(CURRENT_MODES)}")
    if optimizer not in optimizers.OPTIMIZERS:
        raise ParameterError(f"optimizer {optimizer!r} is not one of {', '.join(optimizers.OPTIMIZERS)}")
    for name, value, least in (("population", population, 2), ("generations", generations, 1),
                               ("restarts", restarts, 1), ("patience", patience, 0)):
        if int(value) < least:
            raise ParameterError(f"{name} = {value}; expected at least {least}")
    if population > MAX_POPULATION:
        raise ParameterError(f"population = {population}; expected at most {MAX_POPULATION} candidates per generation")
    return fitted, Bounds.build(fitted, model.bounds, bounds), {**base, **fixed}


def cell(data_path: str | Path, directory: str | Path, model: str = "izhikevich", fitted=None, bounds=None,
         fixed=None, preset: str | None = None, loss: str = "spike", window: float = 4.0, current: str = "search",
         scale: float = 1.0, optimizer: str = "cmaes", population: int = 32, generations: int = 100,
         patience: int = 20, restarts: int = 3, seed: int | None = None, protocol: dict | None = None,
         amplitudes=None, unit: str | None = None, trace_dt: float | None = None, threshold: float = 0.0,
         sweeps=None, backend: str = "numba", device: str = "cpu", force: bool = False, verbose: bool = True,
         scheduler: str | None = None, workers: int | None = None):
    """Fit ``model`` to the cell in ``data_path``; results in ``directory`` (see the module docstring).
    ``scheduler``, ``workers``: run each restart as a Dask job (:func:`_fit_on_dask`).
    ``protocol``: the values of :class:`StepProtocol` given (the others from the data file's
    ``protocol`` attribute, as ``fit synthetic cell`` writes it, or the defaults).
    Returns the :class:`~spikeforge.fit.search.FitResult`."""
    directory = Path(directory)
    the_model = model_named(model)
    fitted, the_bounds, fixed = _check_settings(the_model, fitted, bounds or {}, dict(fixed or {}), preset, loss,
                                                current, optimizer, population, generations, patience, restarts)
    protocol = step_protocol(data_path, protocol or {}, verbose)
    check_backend(backend, device)
    recorded_amplitudes, trains = load_cell(data_path, amplitudes, protocol.total, unit, trace_dt, threshold, sweeps)
    data = CellData.build(recorded_amplitudes, trains, protocol)
    objective = CellObjective(the_model, data, fitted, fixed, loss=loss, current=current, scale=scale, window=window,
                              backend=backend, device=device)
    data_trains = Trains.from_list(trains)
    settings = {"model": the_model.name, "fitted": list(fitted), "low": the_bounds.low.tolist(),
                "high": the_bounds.high.tolist(), "fixed": fixed, "loss": loss, "window": float(window),
                "current": current, "scale": float(scale), "reference": objective.reference, "optimizer": optimizer,
                "population": int(population), "generations": int(generations), "patience": int(patience),
                "restarts": int(restarts), "protocol": protocol._asdict()}
    describe = (f"fitting {', '.join(fitted)} of {the_model.name} to {len(trains)} sweep(s) "
                f"({', '.join(str(n) for n in data.counts)} spikes)")
    units = [the_model.units[the_model.names.index(name)] for name in fitted]
    return _fit_run("cell", directory, lambda values: objective.evaluate(values).losses, the_bounds, units, settings,
                    data_trains, recorded_amplitudes, data_path, seed, force, verbose, describe,
                    lambda result: _cell_figure(directory, objective, result, the_bounds), (scheduler, workers))


def _fit_run(kind: str, directory: Path, evaluate, bounds: Bounds, units, settings: dict, data_trains: Trains,
             amplitudes, data_path, seed, force: bool, verbose: bool, describe: str, figure,
             dask: tuple = (None, None)) -> FitResult:
    """The locked, resumable, interruptible fit of ``evaluate`` with ``settings`` into ``directory``; ``dask``:
    (scheduler, workers) to run the restarts on Dask."""
    from spikeforge.core.executor import uses_dask

    dask = dask if uses_dask(*dask) else None  # a bad address or choice is refused before any work
    data_fingerprint = fingerprint({"amplitudes": None if amplitudes is None else np.asarray(amplitudes).tolist(),
                                    "times": data_trains.times.tolist(), "offsets": data_trains.offsets.tolist()})
    if seed is not None:
        run_seed(seed, False)  # refused before anything is written
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return _locked_fit(kind, directory, evaluate, bounds, units, settings, data_trains, amplitudes, data_path,
                           seed, force, verbose, describe, figure, data_fingerprint, dask)
    except DirectoryBusy:
        raise  # another process works there: its directory, not ours to remove
    except BaseException:
        if created and not (directory / files.FIT).exists() and not (directory / RESTARTS).exists():  # nothing saved
            shutil.rmtree(directory, ignore_errors=True)
        raise


def _locked_fit(kind, directory, evaluate, bounds, units, settings, data_trains, amplitudes, data_path, seed, force,
                verbose, describe, figure, data_fingerprint, dask) -> FitResult:
    optimizer, population, generations = settings["optimizer"], settings["population"], settings["generations"]
    restarts, patience = settings["restarts"], settings["patience"]
    with StopSignals() as signals, DirectoryLock(directory, f"spikeforge fit {kind}"):
        previous, seed = _previous(directory, kind, settings, data_fingerprint, seed, force, verbose)
        settings = {**settings, "seed": seed}
        attrs = {"kind": kind, "settings": settings, "data_fingerprint": data_fingerprint,
                 "data_file": str(data_path), "names": list(bounds.names)}
        echo(verbose, f"{describe} with {optimizer}, population {population}, up to {generations} generations x "
                      f"{restarts} restart(s)")
        bar = progress_bar(restarts * generations, "fitting", "generation", verbose)
        bar.update(sum(h.generations for h in previous))
        last_save = [0.0]

        def record(histories):
            if time.monotonic() - last_save[0] >= SAVE_SECONDS or histories[-1].generations == 1:
                files.write_fit(directory / files.FIT, histories, data_trains, amplitudes,
                                {**attrs, "status": "running"})
                last_save[0] = time.monotonic()

        def report(restart, progress):
            bar.update(1)
            progress_line(bar, verbose, f"restart {restart + 1}/{restarts} generation {progress.generation}: best "
                                        f"loss {progress.best:.4g}, median {progress.median:.4g}, spread "
                                        f"{progress.spread:.3f}, {progress.evaluations_per_second:.0f} evaluations/s")

        if dask is not None:
            with signals.deferred("cancelling the restarts in progress, keeping the finished ones"), bar:
                result = _fit_on_dask(directory, evaluate, bounds, {**attrs, "settings": settings}, previous, bar,
                                      verbose, lambda: signals.requested is not None, *dask)
            if result is None:
                signals.raise_if_requested(f"interrupted; the finished restarts are kept in {directory / RESTARTS} "
                                           "and the same command runs the rest")
        else:
            with signals.deferred("finishing this generation, then saving the fit"), bar:
                result = fit(evaluate, bounds, optimizer, population, generations, seed, restarts, patience,
                             previous=previous, should_stop=lambda: signals.requested is not None, report=report,
                             record=record)
        if result is None:  # stopped before the first generation finished
            signals.raise_if_requested("interrupted before the first generation finished; nothing was saved")
        # on Dask, a result means that every restart ran to its end
        status = "interrupted" if signals.requested is not None and dask is None else "finished"
        with signals.deferred("finishing the write of the results"):
            files.write_fit(directory / files.FIT, result.histories, data_trains, amplitudes,
                            {**attrs, "status": status, "stopped": list(result.stopped)})
            table = files.parameters_table(bounds.names, units, bounds.low, bounds.high, result)
            files.write_parameters(directory / files.PARAMETERS, table)
            made = figure(result)
            if status == "finished":
                shutil.rmtree(directory / RESTARTS, ignore_errors=True)  # the Dask jobs' results, now in fit.h5
        _print_table(verbose, table, result, status)
        echo(verbose, f"wrote {directory / files.FIT}, {directory / files.PARAMETERS} and {made}")
        if status == "finished":
            signals.raise_if_requested(f"interrupted after the fit finished; its results are complete in {directory}")
        signals.raise_if_requested(f"interrupted; the {sum(h.generations for h in result.histories)} completed "
                                   f"generations are in {directory / files.FIT}; the same command resumes the fit")
    return result


def _fit_on_dask(directory: Path, evaluate, bounds: Bounds, attrs: dict, previous, bar, verbose: bool, stopped,
                 scheduler: str | None, workers: int | None) -> FitResult | None:
    """The restarts of a fit as Dask jobs (the objective travels to the workers by cloudpickle), each continuing
    its history in ``previous`` if any.  Every finished restart is kept under ``restarts/`` (with the fit's
    settings and data) until fit.h5 holds them all; a stop cancels the restarts in progress and returns None."""
    from spikeforge.core.executor import Cluster, Job, raise_failures, read_result, run_jobs
    from spikeforge.fit.search import History, restart_job

    settings = attrs["settings"]
    shared = {**settings, "data_fingerprint": attrs["data_fingerprint"]}  # a change is refused, naming it
    jobs = [Job(f"restart-{k}", restart_job, (evaluate, bounds, settings["optimizer"], settings["population"],
                                               settings["generations"], settings["seed"], k, settings["patience"],
                                               previous[k] if k < len(previous) else None), {**shared, "restart": k})
            for k in range(settings["restarts"])]

    def report(outcome) -> None:
        if outcome.status == "done":
            losses = read_result(directory / RESTARTS, outcome.key)[0]["losses"]
            k = int(outcome.key.rsplit("-", 1)[1])
            bar.update(losses.shape[0] - (previous[k].generations if k < len(previous) else 0))
            progress_line(bar, verbose, f"{outcome.key}: best loss {float(np.min(losses)):.4g} after "
                                        f"{losses.shape[0]} generations ({outcome.values['stopped']})")

    with Cluster(scheduler, workers) as cluster:
        echo(verbose, f"running {len(jobs)} restart(s) on {cluster.describe()}")
        outcomes = run_jobs(jobs, directory / RESTARTS, cluster, verbose=False, what="restart", on_result=report,
                            should_stop=stopped)
    if not stopped():
        raise_failures(outcomes, "restart", directory / RESTARTS)
    if any(outcome.status != "done" and outcome.status != "kept" for outcome in outcomes):
        return None
    histories = [History(**{name: read_result(directory / RESTARTS, job.key)[0][name] for name in History._fields})
                 for job in jobs]
    bar.update(sum(h.generations for h in histories) - bar.n)
    return summarise(bounds.names, histories, [outcome.values["stopped"] for outcome in outcomes])


def step_protocol(data_path, given: dict, verbose: bool) -> StepProtocol:
    """The protocol of a cell fit: the values ``given``, the others from the data file (an HDF5 file's
    ``protocol`` attribute) or the defaults; printed when any value was not given."""
    from spikeforge.core.store import read_attrs

    stored = {}
    if Path(data_path).suffix.lower() in (".h5", ".hdf5") and Path(data_path).is_file():
        stored = read_attrs(data_path).get("protocol") or {}
        stored = stored if isinstance(stored, dict) else {}
    values = {**StepProtocol()._asdict(), **{k: v for k, v in stored.items() if k in StepProtocol._fields},
              **{k: v for k, v in given.items() if v is not None}}
    try:
        protocol = StepProtocol(**{k: float(v) for k, v in values.items()}).check()
    except (TypeError, ValueError):
        raise ParameterError(f"protocol {values} is not a set of numbers") from None
    from_options = {k for k, v in given.items() if v is not None and k in StepProtocol._fields}
    from_file = {k for k in stored if k in StepProtocol._fields} - from_options
    from_defaults = set(StepProtocol._fields) - from_options - from_file
    if from_file or from_defaults:
        sources = [name for name, used in (("the options", from_options), ("the data file", from_file),
                                           ("the defaults", from_defaults)) if used]
        echo(verbose, f"protocol (from {' and '.join(sources)}): {protocol.delay:g} ms rest, a {protocol.duration:g}-ms "
                      f"step, {protocol.total:g} ms in all, dt = {protocol.dt:g} ms")
    return protocol


def _previous(directory: Path, kind: str, settings: dict, data_fingerprint: str, seed, force: bool, verbose: bool):
    """The histories to continue (empty for a new fit) and the run's seed."""
    path = directory / files.FIT
    if force:
        for name in OUTPUTS:
            (directory / name).unlink(missing_ok=True)
        shutil.rmtree(directory / RESTARTS, ignore_errors=True)
        return [], run_seed(seed, verbose)
    if not path.exists():
        if seed is None and (kept := _seed_of_restarts(directory)) is not None:
            echo(verbose, f"continuing the fit whose finished restarts are in {directory / RESTARTS} (seed {kept})")
            seed = kept
        return [], run_seed(seed, verbose)
    histories, _, _, attrs = files.read_fit(path)
    if attrs["kind"] != kind:
        raise ParameterError(f"{str(path)!r} holds a {attrs['kind']} fit, not a {kind} fit; use another directory, "
                             "or --force to replace it")
    recorded = {**attrs["settings"], "data_fingerprint": attrs.get("data_fingerprint")}
    current = {**settings, "seed": recorded.get("seed") if seed is None else int(seed),
               "data_fingerprint": data_fingerprint}
    changed = differences(recorded, current, list(current))
    finished = attrs.get("status") == "finished"
    if changed:
        name, old, new = changed[0]
        what = "a finished fit" if finished else "an interrupted fit"
        if name == "data_fingerprint":
            name, old, new = "data", f"{attrs.get('data_file')!r}", "these data"
        raise ParameterError(f"{str(path)!r} holds {what} made with {name} = {old}, not {new}; use --force to "
                             "replace it" + ("" if finished else ", or repeat its command to resume it"))
    if finished:
        refuse_existing(path, False, "a finished fit with these settings (see parameters.csv)")
    echo(verbose, f"resuming the fit in {path}: {sum(h.generations for h in histories)} generations saved")
    return histories, int(recorded["seed"])


def _seed_of_restarts(directory: Path) -> int | None:
    """The seed of the restarts a stopped fit on Dask left in ``restarts/`` (None if there are none), so that the
    same command without --seed runs the rest of that fit."""
    from spikeforge.core.executor import read_result

    for path in sorted((directory / RESTARTS).glob("restart-*.h5")):
        seed = read_result(path.parent, path.stem)[2].get("seed")
        if isinstance(seed, int):
            return seed
    return None


def _print_table(verbose: bool, table: str, result, status: str) -> None:
    if not verbose:
        return
    rows = [line.split(",") for line in table.strip().splitlines()]
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    print(f"{status}: best loss {result.loss:.4g} (restarts: {', '.join(f'{x:.4g}' for x in result.restart_loss)})")
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
    names = result.names
    if len(names) > 1:
        best = result.histories[int(np.argmin(result.restart_loss))]
        r = correlations(best.covariance[-1])
        pairs = sorted(((abs(r[i, j]), names[i], names[j], r[i, j]) for i in range(len(names))
                        for j in range(i + 1, len(names))), reverse=True)
        print("the optimizer's final correlations (best restart), strongest first: " +
              ", ".join(f"{a}-{b} {value:+.2f}" for _, a, b, value in pairs[:3]))


def _cell_figure(directory: Path, objective: CellObjective, result, bounds: Bounds) -> Path:
    from spikeforge.fit import plotting

    return plotting.cell_fit(directory / "fit.png", objective, result, bounds)


def load_result(directory: str | Path):
    """(FitResult, attributes of fit.h5, data trains, amplitudes) of a fit directory."""
    path = Path(directory) / files.FIT
    histories, data, amplitudes, attrs = files.read_fit(path)
    if not histories:
        raise DataFileError(f"{str(path)!r} holds no completed generation")
    return summarise(attrs["names"], histories, attrs.get("stopped", [])), attrs, data, amplitudes


def network(data_path: str | Path, directory: str | Path, config: networks.NetworkConfig = networks.NetworkConfig(),
            connectivity_seed: int = 0, loss: str = "count", recorded: str = "all", bounds=None,
            optimizer: str = "cmaes", population: int = 32, generations: int = 100, patience: int = 20,
            restarts: int = 4, seed: int | None = None, force: bool = False, verbose: bool = True,
            scheduler: str | None = None, workers: int | None = None) -> FitResult:
    """Fit (sigma_ee, p_ee, sigma_ei, p_ei) of the E/I network (:mod:`spikeforge.fit.network`) to the
    recorded trains in ``data_path``, with the connectivity of ``connectivity_seed`` frozen; results in
    ``directory``.  (``fit report`` measures the noise floor: the loss of the best parameters under other
    connectivity seeds.)"""
    from spikeforge.fit.data import load_network

    directory = Path(directory)
    config = networks.NetworkConfig(*config).check()
    if not 0 <= int(connectivity_seed) < 2**63:
        raise ParameterError(f"connectivity seed {connectivity_seed} must be in [0, 2**63)")
    _, the_bounds, _ = _check_settings(_NETWORK_MODEL, None, bounds or {}, {}, None, "spike", "search",
                                       optimizer, population, generations, patience, restarts)
    for name, low, high in zip(the_bounds.names, the_bounds.low, the_bounds.high):
        networks.check_within_limits(name, low, high, "--bounds")
    trains, _ = load_network(data_path, config.duration)
    data = Trains.from_list(trains)
    objective = networks.NetworkObjective(data, config, connectivity_seed, loss, recorded)
    settings = {"network": {**config._asdict(), "v_init": list(config.v_init)},
                "connectivity_seed": int(connectivity_seed), "loss": loss, "recorded": recorded,
                "fitted": list(networks.NAMES), "low": the_bounds.low.tolist(), "high": the_bounds.high.tolist(),
                "optimizer": optimizer, "population": int(population), "generations": int(generations),
                "patience": int(patience), "restarts": int(restarts)}
    describe = (f"fitting {', '.join(networks.NAMES)} of a {config.n_e} E + {config.n_i} I network to {len(trains)} "
                f"recorded cells ({data.times.size} spikes in {config.duration:g} ms)")

    def figure(result):
        from spikeforge.fit import plotting

        return plotting.network_fit(directory / "fit.png", objective, result, the_bounds)

    return _fit_run("network", directory, objective.evaluate, the_bounds, list(networks.UNITS), settings, data, None,
                    data_path, seed, force, verbose, describe, figure, (scheduler, workers))


_NETWORK_MODEL = networks.parameter_model()
