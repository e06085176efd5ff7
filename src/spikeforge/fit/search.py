"""The generational loop of a fit: ask the optimizer, evaluate, tell, record, until a budget or a stall.

:func:`run` maps the optimizer's unit cube onto the parameters' bounds, evaluates each generation
with the objective, and keeps the whole history (:class:`History`: every candidate in parameter
units, every loss, the best so far).  It stops after ``generations`` generations, when the best loss
has not improved by more than ``tolerance`` for ``patience`` generations (the stall criterion), or
when ``should_stop()`` says so between generations (Ctrl-C: the generations completed so far are
kept).

Resuming: given the history of an interrupted run (same optimizer, seed, bounds and objective),
:func:`run` replays it through a fresh optimizer (ask, compare with the saved candidates, tell the
saved losses), without evaluating anything, and continues from there.  A history that the optimizer
does not reproduce (another seed, other bounds, another version of cma) is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from spikeforge.errors import DataFileError, ParameterError
from spikeforge.fit import optimizers


class Bounds(NamedTuple):
    """The searched parameters and their ranges: ``low`` and ``high`` (dim,) in the parameters' units."""

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def build(cls, names, defaults: dict[str, tuple[float, float]], given: dict | None = None) -> "Bounds":
        """Bounds of the parameters ``names``: ``given[name]`` where given, ``defaults[name]`` otherwise.

        Args:
            names: the fitted parameters, in search order.
            defaults: (low, high) of every name not in ``given`` (e.g. a model's ``bounds``).
            given: (low, high) of some of the names, replacing their defaults.

        Raises:
            ParameterError: ``given`` names a parameter that is not fitted, or a range is not finite with
                low < high.
        """
        given = given or {}
        for name in given:
            if name not in names:
                raise ParameterError(f"bounds given for {name!r}, which is not fitted; fitted: {', '.join(names)}")
        pairs = [tuple(float(v) for v in given.get(name, defaults[name])) for name in names]
        for name, (low, high) in zip(names, pairs):
            if not (np.isfinite(low) and np.isfinite(high) and low < high):
                raise ParameterError(f"bounds of {name} [{low:g}, {high:g}] need low < high")
        return cls(tuple(names), np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))

    def to_parameters(self, unit: np.ndarray) -> np.ndarray:
        """Parameter values of unit-cube coordinates ``unit`` (..., dim): ``low + unit (high - low)``."""
        return self.low + np.asarray(unit) * (self.high - self.low)


class History(NamedTuple):
    """Everything one search (one restart) evaluated, generation by generation; :meth:`append` adds one."""

    candidates: np.ndarray  # (generations, population, dim) in parameter units
    unit: np.ndarray  # (generations, population, dim) the optimizer's coordinates
    losses: np.ndarray  # (generations, population)
    spread: np.ndarray  # (generations, dim) optimizer's spread, in parameter units
    seconds: np.ndarray  # (generations,) wall time of each generation's evaluation
    covariance: np.ndarray  # (generations, dim, dim) the optimizer's covariance, in parameter units

    @classmethod
    def empty(cls, population: int, dim: int) -> "History":
        """A history without generations, for populations of ``population`` candidates of ``dim`` parameters."""
        return cls(np.zeros((0, population, dim)), np.zeros((0, population, dim)), np.zeros((0, population)),
                   np.zeros((0, dim)), np.zeros(0), np.zeros((0, dim, dim)))

    def append(self, candidates, unit, losses, spread, seconds, covariance) -> "History":
        """A new history with one generation more (this one is left unchanged).

        ``candidates`` and ``unit`` are (population, dim), ``losses`` (population,), ``spread`` (dim,),
        ``seconds`` a number and ``covariance`` (dim, dim), with the meanings of the fields."""
        return History(np.concatenate([self.candidates, candidates[None]]), np.concatenate([self.unit, unit[None]]),
                       np.concatenate([self.losses, losses[None]]), np.concatenate([self.spread, spread[None]]),
                       np.append(self.seconds, seconds), np.concatenate([self.covariance, covariance[None]]))

    @property
    def generations(self) -> int:
        """The number of generations recorded."""
        return int(self.losses.shape[0])

    def best(self) -> tuple[np.ndarray, float, int]:
        """(best candidate in parameter units, its loss, its generation)."""
        flat = int(np.argmin(self.losses))
        generation, k = divmod(flat, self.losses.shape[1])
        return self.candidates[generation, k], float(self.losses[generation, k]), generation

    def best_per_generation(self) -> np.ndarray:
        """(generations,) the best loss up to and including each generation (never increasing)."""
        return np.minimum.accumulate(self.losses.min(axis=1))


class Progress(NamedTuple):
    """What :func:`run` reports after each generation.

    ``evaluations_per_second`` is the population size over the generation's evaluation time."""

    generation: int
    best: float  # best loss so far
    median: float  # this generation's median loss
    spread: float  # mean optimizer spread, as a fraction of the bounds
    evaluations_per_second: float


def _stalled(history: History, patience: int, tolerance: float) -> bool:
    if patience <= 0 or history.generations <= patience:
        return False
    best = history.best_per_generation()
    return best[-patience - 1] - best[-1] <= tolerance


def run(objective: Callable[[np.ndarray], np.ndarray], bounds: Bounds, optimizer: str, population: int,
        generations: int, rng: np.random.Generator, history: History | None = None, patience: int = 0,
        tolerance: float = 0.0, should_stop: Callable[[], bool] = lambda: False,
        report: Callable[[Progress], None] | None = None, options: dict | None = None,
        record: Callable[[History], None] | None = None) -> tuple[History, str]:
    """Optimise; return the history and why it stopped ("generations", "stalled", "interrupted").

    ``objective(values)`` takes (population, dim) parameter values and returns their losses.
    ``rng``: the optimizer's stream (the same stream for a resumed run).  ``record(history)`` is
    called after every generation (to save it), ``report`` with its :class:`Progress`."""
    if generations < 1:
        raise ParameterError(f"generations = {generations}; expected at least 1")
    dim = len(bounds.names)
    search = optimizers.make(optimizer, dim, population, rng, **(options or {}))
    history = history if history is not None else History.empty(population, dim)
    if history.generations and history.losses.shape[1] != population:
        raise DataFileError(f"the saved history has populations of {history.losses.shape[1]}, not {population}")
    for g in range(history.generations):  # replay
        unit = search.ask()
        if unit.shape != history.unit[g].shape or not np.allclose(unit, history.unit[g], rtol=0, atol=1e-12):
            raise DataFileError(f"the saved history does not match this optimizer at generation {g}: it was made "
                                "with another seed, bounds or optimizer setting")
        search.tell(unit, history.losses[g])
    scale = bounds.high - bounds.low
    while history.generations < generations:
        if _stalled(history, patience, tolerance):
            return history, "stalled"
        if should_stop():
            return history, "interrupted"
        unit = search.ask()
        values = bounds.to_parameters(unit)
        started = time.perf_counter()
        losses = np.asarray(objective(values), dtype=np.float64)
        seconds = time.perf_counter() - started
        losses = np.where(np.isfinite(losses), losses, np.inf)
        search.tell(unit, losses)
        spread = search.spread() * scale
        history = history.append(values, unit, losses, spread, seconds, search.covariance() * np.outer(scale, scale))
        if record is not None:
            record(history)
        if report is not None:
            finite = losses[np.isfinite(losses)]
            report(Progress(history.generations, history.best()[1],
                            float(np.median(finite)) if finite.size else float("inf"),
                            float(np.mean(spread / scale)), population / max(seconds, 1e-9)))
    return history, "stalled" if _stalled(history, patience, tolerance) else "generations"


class FitResult(NamedTuple):
    """The result of :func:`fit`: the best of independent restarts, and their spread."""

    names: tuple[str, ...]
    best: np.ndarray  # (dim,) best parameters over all restarts
    loss: float
    restart_best: np.ndarray  # (restarts, dim) each restart's best
    restart_loss: np.ndarray  # (restarts,)
    optimizer_spread: np.ndarray  # (restarts, dim) each optimizer's final spread [parameter units]
    histories: tuple  # one History per restart
    stopped: tuple[str, ...]  # why each restart stopped

    def restart_spread(self) -> np.ndarray:
        """Standard deviation of the restarts' best parameters: large where the data do not
        constrain a parameter (several parameter sets fit equally well)."""
        return self.restart_best.std(axis=0)


def fit(evaluate: Callable[[np.ndarray], np.ndarray], bounds: Bounds, optimizer: str = "cmaes",
        population: int = 32, generations: int = 100, seed: int = 0, restarts: int = 1, patience: int = 0,
        previous=(), should_stop: Callable[[], bool] = lambda: False, report=None,
        record=None) -> FitResult | None:
    """Minimise ``evaluate`` (parameter values (population, dim) -> losses) with ``restarts`` independent
    searches (optimizer streams ``("fit", "restart", k)`` of ``seed``); the best of them, and their spread.

    ``previous``: the histories of an interrupted fit (restarts in order, the last one possibly
    incomplete), replayed and continued.  ``report(restart, progress)`` after every generation;
    ``record(histories)`` with every restart's history so far, after every generation.  None if
    ``should_stop`` stopped it before its first generation finished."""
    from spikeforge.core.rng import stream

    if restarts < 1:
        raise ParameterError(f"restarts = {restarts}; expected at least 1")
    if len(previous) > restarts:
        raise ParameterError(f"the saved fit has {len(previous)} restarts, more than restarts = {restarts}")
    histories, stopped = [], []
    for k in range(restarts):
        def record_restart(history, k=k):
            if record is not None:
                record([*histories, history])

        history, why = run(evaluate, bounds, optimizer, population, generations, stream(seed, "fit", "restart", k),
                           history=previous[k] if k < len(previous) else None, patience=patience,
                           should_stop=should_stop, record=record_restart,
                           report=None if report is None else (lambda progress, k=k: report(k, progress)))
        if history.generations:
            histories.append(history)
            stopped.append(why)
        if why == "interrupted":
            break
    if not histories:
        return None
    return summarise(bounds.names, histories, stopped)


def restart_job(evaluate: Callable[[np.ndarray], np.ndarray], bounds: Bounds, optimizer: str, population: int,
                generations: int, seed: int, restart: int, patience: int, previous: History | None = None) -> dict:
    """Restart ``restart`` of :func:`fit` alone, as one Dask job (from the history ``previous`` of an
    interrupted fit, if given): its :class:`History` fields and why it stopped."""
    from spikeforge.core.rng import stream

    history, why = run(evaluate, bounds, optimizer, population, generations, stream(seed, "fit", "restart", restart),
                       history=previous, patience=patience)
    return {**history._asdict(), "stopped": why}


def summarise(names, histories, stopped) -> FitResult:
    """The :class:`FitResult` of finished (or interrupted) restarts' histories."""
    bests = [h.best() for h in histories]
    restart_best = np.array([b[0] for b in bests])
    restart_loss = np.array([b[1] for b in bests])
    winner = int(np.argmin(restart_loss))
    return FitResult(tuple(names), restart_best[winner], float(restart_loss[winner]), restart_best,
                     restart_loss, np.array([h.spread[-1] for h in histories]), tuple(histories), tuple(stopped))


def correlations(covariance: np.ndarray) -> np.ndarray:
    """The correlation matrix of a covariance matrix (0 where a variance is 0): values near +-1 mark
    parameters that trade off against each other (the data constrain a combination, not each)."""
    sd = np.sqrt(np.clip(np.diag(covariance), 0, None))
    outer = np.outer(sd, sd)
    return np.divide(covariance, outer, out=np.zeros_like(covariance), where=outer > 0)
