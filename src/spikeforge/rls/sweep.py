"""``spikeforge sweep DIR --set NAME=V1,V2,... --nloops N``: one RLS network per point of a parameter
grid, each point an independent Dask job (:mod:`spikeforge.core.executor`).

Point ``n_cells=512,pree=0.1`` lives in ``DIR/points/n_cells=512,pree=0.1/``: an ordinary data directory
(``new``, ``init``, ``train --nloops N``, ``test``), so every command works on it afterwards.  Its result
(final correlation, firing rate, wall time) goes to ``DIR/results/<point>.h5`` as soon as it finishes;
a re-run of the sweep skips finished points and retries failed ones, and a point whose directory was
left half-done by a crash is started again from scratch.  A point that finished but whose result never
reached ``results/`` gives its recorded result again; a point directory the sweep did not make (or made
with other settings) is never deleted without ``--force``: that point fails, saying so.  Every point has the same seed (``--fix seed=S``; default
:data:`DEFAULT_SEED`), so that the grid shows the effect of the swept values, not of the seeds.  A point that fails (an invalid value, a
network that cannot be built, a crash) is reported with its error in the summary; the others go on.

Summary (rewritten after every sweep run): ``summary.csv`` (one row per point: the swept values,
status, final correlation, firing rate, seconds, error), ``summary.h5`` (the same columns as datasets),
and ``summary.png`` (the final correlation over the grid: a heat map for two swept parameters, a line
for one, bars otherwise).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.core.executor import Cluster, Job, run_jobs, scheduler_address
from spikeforge.core.interrupts import Interrupted, StopSignals, signal_name
from spikeforge.core.lock import DirectoryBusy, DirectoryLock
from spikeforge.core.params import parse_assignment
from spikeforge.core.run_support import echo
from spikeforge.core.store import atomic_write_text, read_h5, save_figure, write_h5
from spikeforge.errors import DataFileError, ParameterError

SUMMARY_COLUMNS = ("status", "correlation", "firing_rate_hz", "seconds", "error")
DEFAULT_SEED = 1  # the seed of every point unless the sweep fixes or sweeps one
POINT_MARK = ".spikeforge-sweep-point"  # in a point directory: its job's state, inputs and result (JSON)


def split_values(text: str) -> list[str]:
    """``"a,b,[1,2]"`` -> ["a", "b", "[1,2]"]: commas outside brackets, braces and quotes separate values."""
    parts, depth, quote, current = [], 0, None, []
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def parse_grid(assignments) -> dict[str, list[Any]]:
    """``["n_cells=256,512", "pree=0.1"]`` -> {"n_cells": [256, 512], "pree": [0.1]} (names checked)."""
    from spikeforge.rls.params import SCHEMA

    grid: dict[str, list[Any]] = {}
    for text in assignments:
        name, _ = parse_assignment(text)
        raw = text.split("=", 1)[1]
        values = [parse_assignment(f"{name}={part}")[1] for part in split_values(raw)]
        if any(part == "" for part in split_values(raw)):
            raise ParameterError(f"--set {text!r} has an empty value; expected NAME=V1,V2,...")
        if name in grid:
            raise ParameterError(f"--set names {name!r} twice; give all its values at once: {name}=V1,V2")
        if len(set(map(repr, values))) != len(values):
            raise ParameterError(f"--set {text!r} repeats a value")
        grid[name] = values
    if not grid:
        raise ParameterError("a sweep needs at least one --set NAME=V1,V2,...")
    SCHEMA.check_names(grid)
    return grid


def point_key(point: dict[str, Any]) -> str:
    """The point's directory and result name: ``n_cells=512,pree=0.1``."""
    def text(value):
        return format(value, "g") if isinstance(value, float) else str(value).replace(" ", "")

    key = ",".join(f"{name}={text(value)}" for name, value in point.items())
    return "".join(char if char.isalnum() or char in "=_.,+-" else "_" for char in key)


def point_inputs(overrides: dict, nloops: int, ntrials: int) -> dict:
    """What a grid point's result depends on: its parameters as set, a fingerprint of every parameter's value
    once the defaults are applied (so that a point computed by a version with other defaults, e.g. another
    ``p_storage``, is not taken for this one), and the loops and trials."""
    from spikeforge.core.provenance import fingerprint
    from spikeforge.rls.params import SCHEMA, Params

    try:
        model = Params(overrides)
        resolved = fingerprint({name: model[name] for name in SCHEMA.params})
    except ParameterError:  # a point the parameters refuse: its job fails with the error, the others go on
        resolved = None
    return {"parameters": overrides, "resolved_parameters_fingerprint": resolved, "nloops": nloops, "ntrials": ntrials}


def run_point(directory: str, overrides: dict, nloops: int, ntrials: int, replace: bool = False) -> dict:
    """One grid point, from scratch: new, init, train ``nloops``, test ``ntrials`` (a Dask job).

    The point directory records its job in :data:`POINT_MARK` (JSON: the state, the inputs and, once done,
    the result), so a point that finished but whose result never reached the sweep (a stop, a lost client,
    a deleted result file) gives that result again without being recomputed.  An existing directory is
    removed only if its job was cut short (or ``replace``); one made by hand, or by other inputs, is refused."""
    from spikeforge import rls

    started = time.monotonic()
    path, inputs = Path(directory), point_inputs(overrides, nloops, ntrials)
    if path.exists() and not replace:
        mark = _point_mark(path)
        if mark.get("state") == "done" and mark.get("inputs") == inputs:
            return {**mark["result"], "learning_curve": np.asarray(mark["result"]["learning_curve"], dtype=float)}
        if mark.get("state") != "running":
            raise DataFileError(f"{str(path)!r} exists and was not left half-done by this sweep (a directory made "
                                "by hand, or by a sweep of other settings); move it away, or use --force to replace "
                                "it")
    if path.exists():
        shutil.rmtree(path)  # a crash left it half-done: its result was never recorded
    path.mkdir(parents=True)
    atomic_write_text(path / POINT_MARK, json.dumps({"state": "running", "inputs": inputs}))
    rls.new(path, overrides)
    rls.init(path, verbose=False)
    result = rls.train(path, nloops=nloops, verbose=False)
    rls.test(path, ntrials=ntrials, verbose=False, plot=False)
    correlation = [c for c in result.correlation if not math.isnan(c)]
    values = {"correlation": correlation[-1] if correlation else float("nan"),
              "firing_rate_hz": float(result.firing_rate[-1]), "seconds": time.monotonic() - started,
              "learning_curve": [float(c) for c in result.correlation]}
    atomic_write_text(path / POINT_MARK, json.dumps({"state": "done", "inputs": inputs, "result": values}))
    return {**values, "learning_curve": np.asarray(values["learning_curve"], dtype=np.float64)}


def _point_mark(path: Path) -> dict:
    """The job record of a point directory ({} if it has none or it is unreadable)."""
    try:
        mark = json.loads((path / POINT_MARK).read_text())
    except (OSError, ValueError):
        return {}
    return mark if isinstance(mark, dict) else {}


def sweep(directory: str | Path, grid: dict[str, list[Any]], nloops: int, ntrials: int = 1,
          fixed: dict[str, Any] | None = None, scheduler: str | None = None, workers: int | None = None,
          force: bool = False, verbose: bool = True) -> list[dict]:
    """Run every point of ``grid`` (values per name; ``fixed``: values every point shares) and write the
    summary (see the module docstring).  Returns the summary rows."""
    from spikeforge.rls.params import SCHEMA

    for name, value in (("nloops", nloops), ("ntrials", ntrials)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"{name} = {value!r}; expected a whole number >= 1")
    fixed = dict(fixed or {})
    SCHEMA.check_names(fixed)
    if "seed" not in fixed and "seed" not in grid:
        fixed["seed"] = DEFAULT_SEED
        echo(verbose, f"every point has seed {DEFAULT_SEED} (--fix seed=S for another)")
    both = sorted(set(fixed) & set(grid))
    if both:
        raise ParameterError(f"{both[0]!r} is both swept and fixed; choose one")
    scheduler_address(scheduler, workers)  # a bad address or choice is refused before any work
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise DataFileError(f"{str(directory)!r} is a file; expected a directory for the sweep")
    names = list(grid)
    points = [dict(zip(names, values)) for values in itertools.product(*(grid[name] for name in names))]
    earlier = summarised_points(directory)
    if earlier is not None and not force:
        earlier_names, earlier_keys = earlier
        missing = sorted(set(earlier_keys) - {point_key(point) for point in points})
        if earlier_names != names or missing:
            raise ParameterError(
                f"{str(directory / 'summary.csv')!r} summarises a sweep over {', '.join(earlier_names)} with points "
                f"this grid lacks (e.g. {missing[0] if missing else earlier_keys[0]}); its summary would be replaced: "
                "extend that grid (every earlier point and new ones), use another directory, or --force")
    jobs = [Job(point_key(point), run_point, (str(directory / "points" / point_key(point)), {**fixed, **point},
                                              nloops, ntrials, force),
                point_inputs({**fixed, **point}, nloops, ntrials)) for point in points]
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        rows = _locked_sweep(directory, names, points, jobs, scheduler, workers, force, verbose, nloops)
    except DirectoryBusy:
        raise
    except BaseException:
        if created and not any((directory / "results").glob("*")):  # nothing was computed: leave nothing
            shutil.rmtree(directory, ignore_errors=True)
        raise
    failed = [row for row in rows if row["status"] == "failed"]
    echo(verbose, f"{len(rows) - len(failed)} point(s) done, {len(failed)} failed; wrote {directory / 'summary.csv'}, "
                  f"summary.h5 and summary.png")
    return rows


def _locked_sweep(directory: Path, names, points, jobs, scheduler, workers, force, verbose, nloops) -> list[dict]:
    with StopSignals() as signals, DirectoryLock(directory, "spikeforge sweep"):
        echo(verbose, f"sweep of {len(points)} point(s) over {', '.join(names)}; {nloops} loop(s) each")
        try:
            with Cluster(scheduler, workers) as cluster:
                outcomes = run_jobs(jobs, directory / "results", cluster, force=force, verbose=verbose,
                                    what="point")
        except Interrupted as stop:
            done = len(list((directory / "results").glob("*.h5")))
            kept = (f"the {done} finished point(s) are kept in {directory / 'results'}" if done
                    else "no point had finished")
            raise Interrupted(stop.signum, f"interrupted by {signal_name(stop.signum)}; {kept}; the same command "
                                           "runs the rest") from None
        signals.raise_if_requested()
        rows = [{**point, "status": outcome.status if outcome.status != "kept" else "done",
                 "correlation": outcome.values.get("correlation", float("nan")),
                 "firing_rate_hz": outcome.values.get("firing_rate_hz", float("nan")),
                 "seconds": outcome.values.get("seconds", float("nan")), "error": outcome.error or ""}
                for point, outcome in zip(points, outcomes)]
        write_summary(directory, names, rows)
    return rows


def summarised_points(directory: Path) -> tuple[list[str], list[str]] | None:
    """The swept names and the point keys of the summary in ``directory`` (None: there is none)."""
    path = Path(directory) / "summary.h5"
    if not path.is_file():
        return None
    arrays, attrs = read_h5(path, what="sweep summary")
    names = [str(name) for name in attrs["swept"]]
    columns = [[value.decode() if isinstance(value, bytes) else float(value) for value in arrays[name]]
               for name in names]
    return names, [point_key(dict(zip(names, values))) for values in zip(*columns)]


def write_summary(directory: Path, names: list[str], rows: list[dict]) -> None:
    """Write (or replace) the sweep's ``summary.csv``, ``summary.h5`` and ``summary.png`` in ``directory``.

    In summary.h5 a column whose values are all numbers is a float64 dataset, any other column byte strings;
    its attribute ``swept`` lists ``names``.

    Args:
        directory: the sweep's directory.
        names: the swept parameters, in the order of the grid (they are the first columns).
        rows: one dict per point, in the order of the grid (the first name varying slowest): the swept values
            and the :data:`SUMMARY_COLUMNS` (status, correlation, firing_rate_hz [Hz], seconds [s], error).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*names, *SUMMARY_COLUMNS])
    for row in rows:
        writer.writerow([row[name] for name in names] + [
            row["status"], f"{row['correlation']:.6g}", f"{row['firing_rate_hz']:.6g}", f"{row['seconds']:.3g}",
            row["error"]])
    atomic_write_text(directory / "summary.csv", buffer.getvalue())
    arrays = {}
    for column in (*names, *SUMMARY_COLUMNS):
        values = [row[column] for row in rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            arrays[column] = np.asarray(values, dtype=np.float64)
        else:
            arrays[column] = np.asarray([str(v) for v in values], dtype=object).astype("S")
    write_h5(directory / "summary.h5", arrays, {"swept": names})
    _plot(directory / "summary.png", names, rows)


def _plot(path: Path, names: list[str], rows: list[dict]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.subplots()
    correlation = np.array([row["correlation"] for row in rows], dtype=np.float64)
    if len(names) == 2:
        first = list(dict.fromkeys(row[names[0]] for row in rows))
        second = list(dict.fromkeys(row[names[1]] for row in rows))
        table = correlation.reshape(len(first), len(second))
        image = ax.imshow(table, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1)
        for (i, j), value in np.ndenumerate(table):
            ax.text(j, i, "failed" if np.isnan(value) else f"{value:.3f}", ha="center", va="center",
                    color="w" if np.isnan(value) or value < 0.6 else "k", fontsize=8)
        ax.set(xticks=range(len(second)), xticklabels=[str(v) for v in second], yticks=range(len(first)),
               yticklabels=[str(v) for v in first], xlabel=names[1], ylabel=names[0])
        fig.colorbar(image, ax=ax, label="final correlation")
    elif len(names) == 1:
        labels = [str(row[names[0]]) for row in rows]
        ax.plot(range(len(rows)), correlation, "o-")
        ax.set(xticks=range(len(rows)), xticklabels=labels, xlabel=names[0], ylabel="final correlation")
    else:
        ax.bar(range(len(rows)), np.nan_to_num(correlation))
        ax.set(xticks=range(len(rows)), ylabel="final correlation")
        ax.set_xticklabels([point_key({n: row[n] for n in names}) for row in rows], rotation=60, ha="right",
                           fontsize=6)
    ax.set_title(f"final correlation of {len(rows)} point(s)")
    fig.tight_layout()
    save_figure(fig, path)
