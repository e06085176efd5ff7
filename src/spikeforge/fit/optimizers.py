"""Population optimizers behind one ask/tell interface, searching the unit cube [0, 1]^dim.

A fit maps each coordinate onto its parameter's bounds (``low + u (high - low)``), so every optimizer
sees a box of the same shape whatever the parameters' units.  The interface:

* ``ask() -> (population, dim)`` candidates inside the cube;
* ``tell(candidates, losses)`` with the losses of exactly those candidates (lower is better);
* ``spread() -> (dim,)``: the optimizer's own estimate of its uncertainty per coordinate (for CMA-ES
  sigma times the square root of the covariance's diagonal; for the GA the population's standard
  deviation), and ``covariance() -> (dim, dim)``, the whole matrix (CMA-ES: sigma^2 C; the GA: the
  population's covariance).

Both are deterministic given their seed, so a saved history can be replayed through them to resume a
fit (:mod:`spikeforge.fit.search`): the same ``ask`` must give the saved candidates again.

* :class:`CMAES` (the default): the ``cma`` package's CMA-ES (Hansen), started from a point drawn from
  the seed's stream with step size ``sigma0``.
* :class:`GeneticAlgorithm`: SpikeNetOpt's genetic algorithm (Evolutionary.jl's GA, spikenetopt.md 5.3
  and 6.6): ``elite`` best candidates survive; the others are children of parents chosen by linear
  ranking with selective pressure ``pressure`` (in [1, 2]), crossed over with probability
  ``crossover_rate`` by intermediate recombination (child = p1 + alpha (p2 - p1), alpha ~ U(-d, 1 + d) per
  coordinate), and mutated with probability ``mutation_rate`` by a uniform perturbation of radius
  ``radius`` (a fraction of each parameter's range); children are clipped to the cube.  The original
  drew its first population on an integer grid (every gene 0 or 1 for [0, 1] bounds); here it is
  uniform in the cube.

Other optimizers (nevergrad, pymoo) fit behind the same three methods through an adapter.
"""

from __future__ import annotations

import numpy as np

from spikeforge.errors import ParameterError

OPTIMIZERS = ("cmaes", "ga")


class CMAES:
    """CMA-ES on the unit cube (see the module docstring)."""

    name = "cmaes"

    def __init__(self, dim: int, population: int, rng: np.random.Generator, sigma0: float = 0.3):
        try:
            import cma
        except ImportError:
            raise ParameterError("the CMA-ES optimizer needs the package cma: pip install 'spikeforge[fit]' "
                                 "(or choose --optimizer ga)") from None
        if not 0 < sigma0 <= 1:
            raise ParameterError(f"sigma0 = {sigma0} must be in (0, 1] (a fraction of each parameter's range)")
        start = rng.uniform(0.2, 0.8, dim)
        options = {"bounds": [0.0, 1.0], "popsize": int(population), "verbose": -9,
                   "seed": int(rng.integers(1, 2**31 - 1)), "tolfun": 0.0, "tolflatfitness": 10**9,
                   "tolfunhist": 0.0, "tolx": 0.0, "tolstagnation": 10**9, "CMA_diagonal": False}
        self._es = cma.CMAEvolutionStrategy(start, sigma0, options)
        self.population = int(population)

    def ask(self) -> np.ndarray:
        """The next generation from ``cma``: (population, dim) candidates in the unit cube."""
        return np.asarray(self._es.ask(), dtype=np.float64)

    def tell(self, candidates: np.ndarray, losses: np.ndarray) -> None:
        """Pass the losses of the candidates of the last :meth:`ask` on to ``cma``, which updates its mean, step size
        and covariance."""
        self._es.tell(list(candidates), [float(loss) for loss in losses])

    def spread(self) -> np.ndarray:
        """sigma sqrt(diag C), shape (dim,), in unit-cube coordinates."""
        return float(self._es.sigma) * np.sqrt(np.diag(np.asarray(self._es.C)))

    def covariance(self) -> np.ndarray:
        """sigma^2 C, in unit-cube coordinates."""
        return float(self._es.sigma) ** 2 * np.asarray(self._es.C)


class GeneticAlgorithm:
    """SpikeNetOpt's genetic algorithm on the unit cube (see the module docstring)."""

    name = "ga"

    def __init__(self, dim: int, population: int, rng: np.random.Generator, elite: int | None = None,
                 pressure: float = 1.5, crossover_rate: float = 0.8, crossover_d: float = 0.5,
                 mutation_rate: float = 0.5, radius: float = 0.1):
        elite = max(1, int(round(0.125 * population))) if elite is None else int(elite)
        if population < 2:
            raise ParameterError(f"population = {population}; the genetic algorithm needs at least 2")
        if not 0 <= elite < population:
            raise ParameterError(f"elite = {elite} must be in [0, population = {population})")
        if not 1 <= pressure <= 2:
            raise ParameterError(f"selective pressure = {pressure} must be in [1, 2]")
        for name, value in (("crossover_rate", crossover_rate), ("mutation_rate", mutation_rate)):
            if not 0 <= value <= 1:
                raise ParameterError(f"{name} = {value} must be in [0, 1]")
        if not (crossover_d >= 0 and 0 < radius <= 1):
            raise ParameterError(f"crossover d = {crossover_d} must be >= 0 and radius = {radius} in (0, 1]")
        self.dim, self.population, self.elite = int(dim), int(population), elite
        self.pressure, self.crossover_rate, self.crossover_d = pressure, crossover_rate, crossover_d
        self.mutation_rate, self.radius = mutation_rate, radius
        self._rng = rng
        self._next = rng.uniform(0.0, 1.0, (self.population, self.dim))

    def ask(self) -> np.ndarray:
        """The current population, (population, dim): the uniform first draw, or the children made by the last
        :meth:`tell`.  A copy, so asking again before :meth:`tell` gives the same candidates."""
        return self._next.copy()

    def tell(self, candidates: np.ndarray, losses: np.ndarray) -> None:
        """Rank ``candidates`` by ``losses`` and breed the next population from them (see the module docstring).

        Non-finite losses rank last; ties keep the candidates' order.  The ``elite`` best survive unchanged."""
        rng, n = self._rng, self.population
        losses = np.where(np.isfinite(losses), losses, np.inf)
        order = np.argsort(losses, kind="stable")  # best first
        ranked = candidates[order]
        # linear ranking: the best has weight pressure, the worst 2 - pressure
        weights = (self.pressure - (2 * self.pressure - 2) * np.arange(n) / (n - 1)) / n
        children = np.empty_like(candidates)
        children[:self.elite] = ranked[:self.elite]
        for k in range(self.elite, n):
            first, second = ranked[rng.choice(n, size=2, p=weights / weights.sum())]
            child = first.copy()
            if rng.random() < self.crossover_rate:
                alpha = rng.uniform(-self.crossover_d, 1 + self.crossover_d, self.dim)
                child = first + alpha * (second - first)
            if rng.random() < self.mutation_rate:
                child = child + rng.uniform(-self.radius, self.radius, self.dim)
            children[k] = np.clip(child, 0.0, 1.0)
        self._next = children

    def spread(self) -> np.ndarray:
        """Standard deviation of each coordinate over the next population (the one :meth:`ask` returns), (dim,)."""
        return self._next.std(axis=0)

    def covariance(self) -> np.ndarray:
        """Covariance of the next population, (dim, dim), normalised by the population size (ddof = 0)."""
        return np.atleast_2d(np.cov(self._next, rowvar=False, ddof=0))


def make(name: str, dim: int, population: int, rng: np.random.Generator, **options):
    """The optimizer ``name`` ("cmaes" or "ga")."""
    if dim < 1:
        raise ParameterError("nothing to fit: choose at least one parameter")
    if population < 2:
        raise ParameterError(f"population = {population}; expected at least 2 candidates per generation")
    if name == "cmaes":
        return CMAES(dim, population, rng, **options)
    if name == "ga":
        return GeneticAlgorithm(dim, population, rng, **options)
    raise ParameterError(f"optimizer {name!r} is not one of {', '.join(OPTIMIZERS)}")
