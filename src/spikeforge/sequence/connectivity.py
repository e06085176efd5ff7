"""The grid of winner-take-all circuits and its distance-dependent links (sequence.md 2.1).

* A grid of ``shape = (n, m)`` circuits, circuit c at integer position (x, y), numbered row by row
  (x = c // m, y = c % m); circuit sizes K_c drawn uniformly from {k_min .. k_max}; neurons numbered
  circuit after circuit (:class:`Grid`).
* Circuit links, as the original code builds them: draw a distance d ~ Exponential(rate ``lam``) (in
  grid units), take the ordered circuit pairs (i, j) whose distance D_ij satisfies d - 1 < D_ij <=
  d + 1, pick one uniformly, keep it if i != j; repeat until ``n_links`` distinct ordered pairs are
  linked (:func:`circuit_links`).  Every neuron of circuit i then projects to every neuron of circuit
  j (:func:`neuron_mask`); there are no links within a circuit.  (The paper describes neuron-level
  links with probability lam e^(-lam d); the code, followed here, links whole circuits.)
* Every input channel projects to every neuron.

Random draws: circuit sizes from the stream ``("sequence", "circuits")`` and links from
``("sequence", "links")`` of the network's seed (:mod:`spikeforge.core.rng`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikeforge.errors import ParameterError

MAX_CIRCUITS = 4096  # 64 x 64: a 16.8-million-entry distance table
MAX_DRAWS_PER_LINK = 10_000  # a distance distribution that never reaches the pairs would loop forever


class Grid(NamedTuple):
    """The circuits of the network: their grid positions and sizes, and the neurons each circuit holds."""

    shape: tuple[int, int]  # circuits (rows, columns)
    sizes: np.ndarray  # int64 (circuits,) neurons per circuit
    starts: np.ndarray  # int64 (circuits + 1,) circuit c holds neurons starts[c] .. starts[c + 1] - 1
    positions: np.ndarray  # float64 (circuits, 2) grid coordinates (x, y)

    @property
    def n_circuits(self) -> int:
        """The number of circuits: rows x columns of ``shape``."""
        return int(self.sizes.size)

    @property
    def n_neurons(self) -> int:
        """The number of neurons of all circuits together (the sum of ``sizes``)."""
        return int(self.starts[-1])

    @property
    def circuit_of(self) -> np.ndarray:
        """int64 (neurons,) the circuit of each neuron."""
        return np.repeat(np.arange(self.n_circuits), self.sizes)


def build_grid(shape, k_min: int, k_max: int, rng: np.random.Generator) -> Grid:
    """A grid of ``shape`` circuits with sizes uniform in {k_min .. k_max}."""
    try:
        n, m = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ParameterError(f"grid shape {shape!r} is not two whole numbers (rows, columns)") from None
    if n < 1 or m < 1:
        raise ParameterError(f"grid shape {n} x {m} is empty; expected at least 1 x 1 circuits")
    if not 1 <= int(k_min) <= int(k_max):
        raise ParameterError(f"circuit sizes k_min = {k_min}, k_max = {k_max}; expected 1 <= k_min <= k_max")
    sizes = rng.integers(int(k_min), int(k_max) + 1, n * m).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    positions = np.stack([np.arange(n * m) // m, np.arange(n * m) % m], axis=1).astype(np.float64)
    return Grid((n, m), sizes, starts, positions)


def circuit_links(positions: np.ndarray, n_links: int, lam: float, rng: np.random.Generator) -> np.ndarray:
    """bool (circuits, circuits): ``links[i, j]`` when circuit i projects to circuit j (see the module
    docstring); exactly ``n_links`` links, none from a circuit to itself."""
    n = positions.shape[0]
    possible = n * (n - 1)
    if not 0 <= n_links <= possible:
        raise ParameterError(f"n_links = {n_links} on a grid of {n} circuits; expected 0 to {possible} (every "
                             "ordered pair of distinct circuits; the default, 1000, suits the 10 x 5 grid)")
    if n > MAX_CIRCUITS:
        raise ParameterError(f"a grid of {n} circuits; at most {MAX_CIRCUITS} are supported (the link draw keeps a "
                             "table of the distances of every pair of circuits)")
    if not (np.isfinite(lam) and lam > 0):
        raise ParameterError(f"lam = {lam}; expected a positive rate per grid unit")
    distance = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=2).ravel()
    order = np.argsort(distance, kind="stable")
    sorted_distance = distance[order]
    links = np.zeros(n * n, dtype=bool)
    draws = placed = 0
    while placed < n_links:
        draws += 1
        if draws > MAX_DRAWS_PER_LINK * max(n_links, 1):
            raise ParameterError(f"cannot place {n_links} links with lam = {lam} on this grid: the drawn distances "
                                 "rarely reach its circuit pairs")
        d = rng.exponential(1.0 / lam)
        lo = np.searchsorted(sorted_distance, d - 1.0, side="right")  # D > d - 1
        hi = np.searchsorted(sorted_distance, d + 1.0, side="right")  # D <= d + 1
        if hi > lo:
            pair = order[lo + rng.integers(hi - lo)]
            if pair // n != pair % n and not links[pair]:
                links[pair] = True
                placed += 1
    return links.reshape(n, n)


def neuron_mask(grid: Grid, links: np.ndarray) -> np.ndarray:
    """bool (neurons, neurons), post x pre: neuron a (in circuit j) receives from neuron b (in circuit i)
    when circuit i links to circuit j."""
    circuit = grid.circuit_of
    return links[circuit[None, :], circuit[:, None]]
