"""The current that makes each candidate fire a target number of spikes (spikenetopt.md 5.2).

For every candidate at once: evaluate a grid of ``grid`` amplitudes between the largest amplitude known
to give too few spikes (at first ``low``) and the smallest known to give too many (at first ``high``,
doubled while even it gives too few, up to ``max_doublings`` times); stop at the first amplitude on
the grid that gives exactly the target; otherwise narrow the bracket and repeat, for at most
``max_rounds`` rounds.  A candidate that never hits the target gets the amplitude whose count came
closest (the original compared currents with counts there, a bug not reproduced), the smaller one on
a tie.  Each round is one call of the population kernel over (candidates x grid), and candidates stop
counting once they pass the target.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikeforge.errors import ParameterError
from spikeforge.fit.models import Model
from spikeforge.fit.simulate import StepProtocol, simulate_on


class CurrentSearch(NamedTuple):
    """The result of :func:`search_current` for n candidates."""

    amplitude: np.ndarray  # float64 (n,) the chosen amplitude of each candidate
    count: np.ndarray  # int64 (n,) its spike count
    exact: np.ndarray  # bool (n,) whether the count equals the target
    simulations: int  # candidate simulations run


def search_current(model: Model, rows: np.ndarray, target: int, protocol: StepProtocol, low: float = 0.0,
                   high: float = 20.0, grid: int = 11, max_rounds: int = 100,
                   max_doublings: int = 20, backend: str = "numba", device: str = "cpu") -> CurrentSearch:
    """See the module docstring; ``target`` spikes in the protocol's step."""
    if target < 1:
        raise ParameterError(f"target spike count {target}; the current search needs at least 1 spike")
    if not (np.isfinite([low, high]).all() and high > low):
        raise ParameterError(f"current search range [{low:g}, {high:g}] needs high > low")
    n = rows.shape[0]
    below = np.full(n, float(low))  # largest amplitude known to give fewer spikes
    above = np.full(n, np.nan)  # smallest known to give more
    top = np.full(n, float(high))
    best_amplitude = np.full(n, float(low))
    best_miss = np.full(n, np.iinfo(np.int64).max)
    best_count = np.zeros(n, dtype=np.int64)
    exact = np.zeros(n, dtype=bool)
    doublings = np.zeros(n, dtype=np.int64)
    simulations = 0
    fractions = np.arange(1, grid + 1) / grid
    for _ in range(max_rounds):
        active = np.flatnonzero(~exact & (doublings <= max_doublings))
        if active.size == 0:
            break
        upper = np.where(np.isnan(above[active]), top[active], above[active])
        amplitudes = below[active, None] + (upper - below[active])[:, None] * fractions[None, :]
        counts = simulate_on(backend, device, model, np.repeat(rows[active], grid, axis=0), amplitudes.ravel(),
                             protocol, stop_above=target).counts.reshape(active.size, grid)
        counts = np.minimum(counts, target + 1)  # "too many" is all the search needs to know
        simulations += counts.size
        rows_of = np.arange(active.size)
        miss = np.abs(counts - target)
        closest = np.argmin(miss, axis=1)  # the first (smallest) amplitude among the closest counts
        better = miss[rows_of, closest] < best_miss[active]
        improved = active[better]
        best_miss[improved] = miss[rows_of, closest][better]
        best_amplitude[improved] = amplitudes[rows_of, closest][better]
        best_count[improved] = counts[rows_of, closest][better]
        exact[active] = best_miss[active] == 0
        many = counts > target
        has_many = many.any(axis=1)
        first_many = np.where(has_many, np.argmax(many, axis=1), grid)
        few = (counts < target) & (np.arange(grid)[None, :] < first_many[:, None])
        has_few = few.any(axis=1)
        last_few = grid - 1 - np.argmax(few[:, ::-1], axis=1)
        below[active[has_few]] = amplitudes[rows_of, last_few][has_few]
        above[active[has_many]] = amplitudes[rows_of, np.minimum(first_many, grid - 1)][has_many]
        unbounded = active[~has_many & np.isnan(above[active])]  # even the top gave too few: look higher
        below[unbounded] = top[unbounded]
        top[unbounded] *= 2.0
        doublings[unbounded] += 1
        stuck = ~np.isnan(above) & (above - below <= 1e-12 * np.maximum(np.abs(above), 1.0))
        doublings[stuck & ~exact] = max_doublings + 1  # a jump in the f-I curve: the bracket cannot narrow
    return CurrentSearch(best_amplitude, best_count, exact, simulations)
