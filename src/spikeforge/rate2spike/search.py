"""The scaling-factor search (spikernn.md 5.5) and the held-out evaluation the original lacks.

For each scaling factor ``sf = 1/lambda`` of the grid (the original's 20, 25, ..., 75), the LIF
network runs ``trials`` fresh random trials and scores them with the task's LIF criteria; the
chosen factor is the grid's best (ties to the smallest, as the original).  The best grid accuracy
is optimistic (it is the maximum of 12 noisy estimates on the trials that chose it), so the
chosen factor is then evaluated on fresh held-out trials, and both numbers are reported.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikeforge.core.cells import lif_mv
from spikeforge.rate2spike.lif_network import Mapped, simulate
from spikeforge.rate2spike.tasks import Task

DEFAULT_GRID = tuple(range(20, 80, 5))  # 20:5:75


class SearchResult(NamedTuple):
    scaling_factors: np.ndarray  # (n_sf,)
    accuracy: np.ndarray  # (n_sf,) fraction correct on the grid trials
    best: float  # chosen sf (first maximum)
    best_accuracy: float  # its grid accuracy (optimistic)
    held_out_accuracy: float  # its accuracy on fresh trials
    held_out_trials: int


def accuracy(mapped: Mapped, task: Task, scaling_factors, trials: int, rng: np.random.Generator,
             cell: lif_mv.Parameters = lif_mv.Parameters(), chunk: int = 400, backend: str = "numba",
             device: str = "cpu") -> np.ndarray:
    """Fraction of ``trials`` fresh trials the LIF network gets right, per scaling factor (each
    factor gets its own trials), simulated in batches of at most ``chunk`` trials."""
    factors = np.asarray(scaling_factors, dtype=np.float64).reshape(-1)
    sf = np.repeat(factors, trials)
    data = task.trials(rng, sf.size)
    correct = np.empty(sf.size, dtype=bool)
    for start in range(0, sf.size, chunk):
        part = slice(start, start + chunk)
        batch = simulate(mapped, task.lif_input(data.u[part]), sf[part], rng, cell, backend=backend, device=device)
        correct[part] = task.lif_correct(batch.out, data.label[part], cell.dt)
    return correct.reshape(factors.size, trials).mean(axis=1)


def search(mapped: Mapped, task: Task, rng: np.random.Generator, scaling_factors=DEFAULT_GRID,
           trials: int = 100, held_out_trials: int = 100, cell: lif_mv.Parameters = lif_mv.Parameters(),
           backend: str = "numba", device: str = "cpu") -> SearchResult:
    """The grid search, then the chosen factor on ``held_out_trials`` fresh trials."""
    factors = np.asarray(scaling_factors, dtype=np.float64).reshape(-1)
    if factors.size == 0 or not np.all(factors > 0):
        raise ValueError(f"scaling factors {factors.tolist()} must be a non-empty list of values > 0")
    if trials < 1 or held_out_trials < 0:
        raise ValueError(f"trials = {trials} must be >= 1 and held_out_trials = {held_out_trials} >= 0")
    grid = accuracy(mapped, task, factors, trials, rng, cell, backend=backend, device=device)
    best = int(np.argmax(grid))  # the first maximum, as the original
    held_out = (float(accuracy(mapped, task, factors[best:best + 1], held_out_trials, rng, cell, backend=backend,
                               device=device)[0])
                if held_out_trials else float("nan"))
    return SearchResult(factors, grid, float(factors[best]), float(grid[best]), held_out, held_out_trials)
