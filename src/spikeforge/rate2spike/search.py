"""The scaling-factor search (spikernn.md 5.5) and the held-out evaluation the original lacks.

For each scaling factor ``sf = 1/lambda`` of the grid (the original's 20, 25, ..., 75), the LIF
network runs ``trials`` fresh random trials and scores them with the task's LIF criteria; the
chosen factor is the grid's best (ties to the smallest, as the original).  The best grid accuracy
is optimistic (it is the maximum of 12 noisy estimates on the trials that chose it), so the
chosen factor is then evaluated on fresh held-out trials, and both numbers are reported.

Every factor draws its trials, initial voltages and noise from its own named stream
(``seed, "rate", "search", "sf=<value>"``; the held-out trials from ``"held-out"``), so a
factor's accuracy does not depend on the other grid values or on the order they run in: an
interrupted search resumed later gives the numbers an uninterrupted one would have.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikeforge.core import rng as streams
from spikeforge.core.cells import lif_mv
from spikeforge.rate2spike.lif_network import Mapped, simulate
from spikeforge.rate2spike.tasks import Task

DEFAULT_GRID = tuple(range(20, 80, 5))  # 20:5:75


class SearchResult(NamedTuple):
    """The outcome of the scaling-factor search (:func:`search`, :func:`conclude`).

    ``held_out_accuracy`` is NaN when ``held_out_trials`` is 0."""

    scaling_factors: np.ndarray  # (n_sf,)
    accuracy: np.ndarray  # (n_sf,) fraction correct on the grid trials
    best: float  # chosen sf (first maximum)
    best_accuracy: float  # its grid accuracy (optimistic)
    held_out_accuracy: float  # its accuracy on fresh trials
    held_out_trials: int


def accuracy(mapped: Mapped, task: Task, scaling_factors, trials: int, rng: np.random.Generator,
             cell: lif_mv.Parameters = lif_mv.Parameters(), backend: str = "numba", device: str = "cpu") -> np.ndarray:
    """Fraction of ``trials`` fresh trials the LIF network gets right, per scaling factor (each
    factor gets its own trials, drawn from ``rng``)."""
    factors = np.asarray(scaling_factors, dtype=np.float64).reshape(-1)
    scores = np.empty(factors.size)
    for k, factor in enumerate(factors):
        data = task.trials(rng, trials)
        batch = simulate(mapped, task.lif_input(data.u), factor, rng, cell, backend=backend, device=device)
        scores[k] = np.mean(task.lif_correct(batch.out, data.label, cell.dt))
    return scores


def factor_stream(seed: int, factor: float) -> np.random.Generator:
    """The random stream of the grid trials at scaling factor ``factor``."""
    return streams.stream(seed, "rate", "search", f"sf={float(factor):g}")


def held_out_stream(seed: int) -> np.random.Generator:
    """The random stream of the held-out trials (the same whichever factor is chosen)."""
    return streams.stream(seed, "rate", "search", "held-out")


def grid_accuracy(mapped: Mapped, task: Task, seed: int, scaling_factors, trials: int,
                  cell: lif_mv.Parameters = lif_mv.Parameters(), backend: str = "numba", device: str = "cpu",
                  known: np.ndarray | None = None, progress=None, should_stop=None) -> np.ndarray:
    """The grid's accuracies, factor by factor; NaN for the factors not run.

    ``known`` holds accuracies already measured (NaN where not: those are run);
    ``progress(factor, accuracy)`` is called after each factor; ``should_stop()`` is asked after each
    factor, and a true answer ends the search with the rest left NaN."""
    factors = np.asarray(scaling_factors, dtype=np.float64).reshape(-1)
    scores = np.full(factors.size, np.nan) if known is None else np.array(known, dtype=np.float64)
    for k, factor in enumerate(factors):
        if not np.isnan(scores[k]):
            continue
        scores[k] = accuracy(mapped, task, [factor], trials, factor_stream(seed, factor), cell, backend, device)[0]
        if progress is not None:
            progress(float(factor), float(scores[k]))
        if should_stop is not None and should_stop():
            break
    return scores


def search(mapped: Mapped, task: Task, seed: int, scaling_factors=DEFAULT_GRID, trials: int = 100,
           held_out_trials: int = 100, cell: lif_mv.Parameters = lif_mv.Parameters(), backend: str = "numba",
           device: str = "cpu") -> SearchResult:
    """The grid search, then the chosen factor on ``held_out_trials`` fresh trials."""
    factors = np.asarray(scaling_factors, dtype=np.float64).reshape(-1)
    if factors.size == 0 or not np.all(factors > 0):
        raise ValueError(f"scaling factors {factors.tolist()} must be a non-empty list of values > 0")
    if trials < 1 or held_out_trials < 0:
        raise ValueError(f"trials = {trials} must be >= 1 and held_out_trials = {held_out_trials} >= 0")
    grid = grid_accuracy(mapped, task, seed, factors, trials, cell, backend, device)
    return conclude(mapped, task, seed, factors, grid, held_out_trials, cell, backend, device)


def conclude(mapped: Mapped, task: Task, seed: int, factors: np.ndarray, grid: np.ndarray, held_out_trials: int,
             cell: lif_mv.Parameters = lif_mv.Parameters(), backend: str = "numba",
             device: str = "cpu") -> SearchResult:
    """Choose the first best factor of a finished grid and score it on held-out trials."""
    best = int(np.argmax(grid))  # the first maximum, as the original
    held_out = (float(accuracy(mapped, task, factors[best:best + 1], held_out_trials, held_out_stream(seed), cell,
                               backend, device)[0])
                if held_out_trials else float("nan"))
    return SearchResult(factors, grid, float(factors[best]), float(grid[best]), held_out, held_out_trials)
