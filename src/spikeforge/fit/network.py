"""The E/I Izhikevich network of SpikeNetOpt (spikenetopt.md 6.1), a population of candidates at once,
with frozen connectivity.

``n_e`` regular-spiking (RS) excitatory and ``n_i`` fast-spiking (FS) inhibitory Izhikevich cells; a
constant current into every E cell (none into I cells), no noise.  Synapses are voltage jumps: the
weight from j to i in block XY (pre X, post Y) is

    W_ij = sigma_XY * [R_ij < p_XY] * U_ij

with R and U uniform in [0, 1), drawn once from the connectivity seed's streams and shared by every
candidate ("frozen connectivity", common random numbers): the loss of a parameter set is then a
deterministic function of it, the truth's loss is exactly 0, and raising p_XY only adds synapses.
(The original drew a new connectivity at every evaluation, so even the truth had a positive, noisy
loss; :func:`noise_floor` measures that noise.)  The fitted parameters are (sigma_ee, p_ee, sigma_ei,
p_ei); IE and II have sigma = -1, p = 0.5.

Two changes from the original network, both measured (docs/fitting.md): each E cell's drive is
11.5 (1 + 0.2 x), x ~ U(-1, 1), and initial voltages are U(-75, -65) mV, both frozen with the
connectivity (the original: 11.5 and -65 mV for every cell, set ``drive_spread = 0`` and ``v_init =
(-65, -65)``).  Identical cells fire in lockstep bursts in which every I cell fires once whatever its
inputs, so the E-to-I parameters barely change any spike count.  And the data are every cell's
trains, I cells included (the original used the E cells only), because the E-to-I parameters act on
the I cells.

Per step of ``dt`` ms (SpikingNeuralNetworks.jl's order): every cell takes its Izhikevich step
(:func:`spikeforge.core.cells.izhikevich.step`), then every spike of this step adds its column of W to
the voltages of its targets (after their reset), so a spike acts from the next step on.  A spike in
step s is at time (s + 1) dt.

Losses (:class:`NetworkObjective`): ``"count"`` (the default), the per-cell spike-count error; ``"spike"``,
the original's summed SPIKE-distance (a cell silent in one network and not the other counts 1; the
original counted 0); ``"both"``.  The network is chaotic: any change of a parameter, however small,
decorrelates the spike times, so the SPIKE-distance is flat away from the exact truth and guides no
optimizer, while the spike counts change smoothly.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from spikeforge.core import rng as streams
from spikeforge.core.cells import izhikevich
from spikeforge.core.spikes import Trains, spike_distances
from spikeforge.errors import ParameterError
from spikeforge.fit.simulate import trains_of

NAMES = ("sigma_ee", "p_ee", "sigma_ei", "p_ei")
UNITS = ("mV", "1", "mV", "1")  # sigma scales the voltage jump sigma U of a spike [mV]; p is a probability
LIMITS = {"sigma_ee": (0.0, np.inf), "p_ee": (0.0, 1.0), "sigma_ei": (0.0, np.inf), "p_ei": (0.0, 1.0)}


def check_within_limits(name: str, low: float, high: float, what: str) -> None:
    """Refuse values ``low .. high`` of parameter ``name`` that it cannot take: a probability outside
    [0, 1], or a negative scale of the (excitatory) voltage jumps."""
    least, most = LIMITS[name]
    if not (least <= low and high <= most):
        kind = "a connection probability" if name.startswith("p_") else "an excitatory weight scale [mV]"
        raise ParameterError(f"{what} {name} = {low:g}" + (f":{high:g}" if high != low else "")
                             + f"; expected values in [{least:g}, {most:g}] ({name} is {kind})")
TRUTH = (0.5, 0.8, 0.5, 0.8)  # the original's ground truth
BOUNDS = {name: (0.0, 1.0) for name in NAMES}
NETWORK_LOSSES = ("count", "spike", "both")
RECORDED = ("all", "excitatory")


class NetworkConfig(NamedTuple):
    """Everything about the network except the four fitted parameters (see the module docstring).

    ``n_e`` excitatory and ``n_i`` inhibitory cells.  ``sigma_ie``, ``p_ie``, ``sigma_ii`` and ``p_ii``
    are the fixed I-to-E and I-to-I blocks: the scale of a synapse's voltage jump [mV] (the jump is
    sigma U, U ~ U(0, 1)) and the connection probability."""

    n_e: int = 200
    n_i: int = 50
    drive: float = 11.5  # current into every E cell [Izhikevich units]
    drive_spread: float = 0.2  # each E cell's drive is drive (1 + drive_spread x), x ~ U(-1, 1) (frozen)
    v_init: tuple[float, float] = (-75.0, -65.0)  # initial voltages ~ U(low, high) [mV] (frozen)
    duration: float = 1000.0  # [ms]
    dt: float = 1.0  # [ms] (the original's)
    sigma_ie: float = -1.0
    p_ie: float = 0.5
    sigma_ii: float = -1.0
    p_ii: float = 0.5

    def check(self) -> "NetworkConfig":
        """Return the configuration itself if it is valid.

        Raises:
            ParameterError: n_e < 1 or n_i < 0; not duration >= dt > 0; drive_spread outside [0, 1]; v_init not
                finite or low > high; p_ie or p_ii outside [0, 1].
        """
        if self.n_e < 1 or self.n_i < 0:
            raise ParameterError(f"network of {self.n_e} E and {self.n_i} I cells; expected n_e >= 1, n_i >= 0")
        if not (self.dt > 0 and self.duration >= self.dt):
            raise ParameterError(f"duration {self.duration:g} ms and dt {self.dt:g} ms need duration >= dt > 0")
        if not 0 <= self.drive_spread <= 1:
            raise ParameterError(f"drive_spread = {self.drive_spread}; expected a fraction in [0, 1]")
        if not (np.isfinite(self.v_init).all() and self.v_init[0] <= self.v_init[1]):
            raise ParameterError(f"v_init = {self.v_init[0]:g},{self.v_init[1]:g} mV; expected LOW,HIGH with LOW <= HIGH")
        for name in ("p_ie", "p_ii"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParameterError(f"{name} = {getattr(self, name)} must be in [0, 1]")
        return self


class Connectivity(NamedTuple):
    """The frozen uniform draws of every block: (R, U), post x pre."""

    r: np.ndarray  # (n, n) mask draws; block XY is rows of Y, columns of X
    u: np.ndarray  # (n, n) weight draws
    drive: np.ndarray  # (n_e,) each E cell's constant current
    v_init: np.ndarray  # (n,) initial voltages [mV]


def connectivity(config: NetworkConfig, seed: int) -> Connectivity:
    """The frozen draws of connectivity seed ``seed`` (streams "network", "mask" / "weights" / "drive" /
    "v_init"), with the drives and initial voltages they make."""
    n = config.n_e + config.n_i
    spread = streams.stream(seed, "network", "drive").uniform(-1.0, 1.0, config.n_e)
    low, high = config.v_init
    v_init = streams.stream(seed, "network", "v_init").uniform(0.0, 1.0, n) * (high - low) + low
    return Connectivity(streams.stream(seed, "network", "mask").random((n, n)),
                        streams.stream(seed, "network", "weights").random((n, n)),
                        config.drive * (1.0 + config.drive_spread * spread), v_init)


@numba.njit(parallel=True, cache=True)
def _run(params, r, u, n_e, n_i, e_cell, i_cell, drive, v_init, dt, n_steps, sigma_ie, p_ie, sigma_ii, p_ii,
         max_spikes):
    n_candidates = params.shape[0]
    n = n_e + n_i
    counts = np.zeros((n_candidates, n), dtype=np.int64)
    times = np.zeros((n_candidates, n, max_spikes))
    for c in numba.prange(n_candidates):
        sigma_ee, p_ee, sigma_ei, p_ei = params[c, 0], params[c, 1], params[c, 2], params[c, 3]
        v = v_init.copy()
        recovery = np.empty(n)
        recovery[:n_e] = e_cell[1] * v[:n_e]
        recovery[n_e:] = i_cell[1] * v[n_e:]
        fired = np.zeros(n, dtype=np.bool_)
        for s in range(n_steps):
            for i in range(n):
                if i < n_e:
                    v[i], recovery[i], fired[i] = izhikevich.step(v[i], recovery[i], drive[i], e_cell[0], e_cell[1],
                                                                  e_cell[2], e_cell[3], e_cell[4], dt)
                else:
                    v[i], recovery[i], fired[i] = izhikevich.step(v[i], recovery[i], 0.0, i_cell[0], i_cell[1],
                                                                  i_cell[2], i_cell[3], i_cell[4], dt)
            for j in range(n):
                if not fired[j]:
                    continue
                k = counts[c, j]
                if k < max_spikes:
                    times[c, j, k] = (s + 1) * dt
                counts[c, j] = k + 1
                if j < n_e:  # the block parameters of j's outgoing synapses: to E cells, to I cells
                    sigma_e, p_e, sigma_i, p_i = sigma_ee, p_ee, sigma_ei, p_ei
                else:
                    sigma_e, p_e, sigma_i, p_i = sigma_ie, p_ie, sigma_ii, p_ii
                for i in range(n):
                    if i < n_e:
                        if r[i, j] < p_e:
                            v[i] += sigma_e * u[i, j]
                    elif r[i, j] < p_i:
                        v[i] += sigma_i * u[i, j]
    return counts, times


class NetworkResponses(NamedTuple):
    """Spike counts and trains of every cell of every candidate network, from :func:`simulate_network`."""

    counts: np.ndarray  # (candidates, n) spikes of every cell, E cells first
    trains: Trains  # candidate c's cell i is train c * n + i


def simulate_network(values: np.ndarray, config: NetworkConfig, wiring: Connectivity) -> NetworkResponses:
    """Spike trains of every cell of every candidate, ``values`` (candidates, 4) in the order of :data:`NAMES`."""
    config.check()
    values = np.ascontiguousarray(np.atleast_2d(values), dtype=np.float64)
    if values.shape[1] != len(NAMES) or not np.isfinite(values).all():
        raise ParameterError(f"network parameters of shape {values.shape}; expected finite (candidates, 4) values of "
                             f"{', '.join(NAMES)}")
    n_steps = int(round(config.duration / config.dt))
    max_spikes = max(1, int(config.duration / max(config.dt, 1.0)) + 1)
    e_cell, i_cell = (np.array(izhikevich.PRESETS[name], dtype=np.float64) for name in ("RS", "FS"))
    counts, times = _run(values, wiring.r, wiring.u, config.n_e, config.n_i, e_cell, i_cell, wiring.drive,
                         wiring.v_init, config.dt, n_steps, config.sigma_ie, config.p_ie, config.sigma_ii,
                         config.p_ii, max_spikes)
    return NetworkResponses(counts, trains_of(counts.ravel(), times.reshape(-1, max_spikes)))


def recorded_cells(config: NetworkConfig, recorded: str) -> np.ndarray:
    """Indices of the cells a recording holds: "all" (E then I) or "excitatory"."""
    if recorded not in RECORDED:
        raise ParameterError(f"recorded {recorded!r} is not one of {', '.join(RECORDED)}")
    return np.arange(config.n_e + (config.n_i if recorded == "all" else 0))


def select(trains: Trains, n: int, cells: np.ndarray) -> Trains:
    """The trains of ``cells`` of every network in ``trains`` (n cells each)."""
    n_networks = len(trains) // n
    index = (np.arange(n_networks)[:, None] * n + cells[None, :]).ravel()
    counts = trains.counts[index]
    offsets = np.zeros(index.size + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(counts)
    pieces = [trains.times[trains.offsets[k]:trains.offsets[k + 1]] for k in index] if index.size else []
    return Trains(np.concatenate(pieces) if pieces else np.zeros(0), offsets)


def spike_loss(model: Trains, data: Trains, duration: float) -> np.ndarray:
    """Per network: the summed SPIKE-distance of its cells' trains to the data's (``model`` holds networks x
    cells trains in order, ``data`` one network's); a cell silent in one and not the other counts 1."""
    n_cells = len(data)
    n_networks = len(model) // n_cells
    distance = spike_distances(model, data.tile(n_networks), 0.0, duration).reshape(n_networks, n_cells)
    model_silent = (model.counts == 0).reshape(n_networks, n_cells)
    data_silent = np.broadcast_to(data.counts == 0, model_silent.shape)
    distance = np.where(model_silent != data_silent, 1.0, np.where(model_silent & data_silent, 0.0, distance))
    return distance.sum(axis=1)


def count_loss(model_counts: np.ndarray, data_counts: np.ndarray) -> np.ndarray:
    """Per network: sum over cells of |n_model - n_data|, in units of the data's mean count per cell."""
    return np.abs(model_counts - data_counts[None, :]).sum(axis=1) / max(float(data_counts.mean()), 1e-12)


class NetworkObjective:
    """Loss of candidates (sigma_ee, p_ee, sigma_ei, p_ei) against recorded trains ``data`` of the cells
    ``recorded`` ("all": E then I; "excitatory"), simulated with connectivity seed ``connectivity_seed``.
    ``loss``: "count" (:func:`count_loss`), "spike" (:func:`spike_loss`) or "both" (their sum)."""

    def __init__(self, data: Trains, config: NetworkConfig, connectivity_seed: int, loss: str = "count",
                 recorded: str = "all"):
        config.check()
        if loss not in NETWORK_LOSSES:
            raise ParameterError(f"network loss {loss!r} is not one of {', '.join(NETWORK_LOSSES)}")
        self.cells = recorded_cells(config, recorded)
        if len(data) != self.cells.size:
            raise ParameterError(f"the data have {len(data)} spike trains; recording {recorded} cells of this network "
                                 f"gives {self.cells.size} ({config.n_e} E, {config.n_i} I)")
        if data.times.size and data.times.max() > config.duration:
            raise ParameterError(f"the data have a spike at {data.times.max():g} ms, after the simulated "
                                 f"{config.duration:g} ms")
        self.data, self.config, self.connectivity_seed = data, config, int(connectivity_seed)
        self.loss, self.recorded = loss, recorded
        self.wiring = connectivity(config, self.connectivity_seed)

    def simulate(self, values: np.ndarray) -> tuple[np.ndarray, Trains]:
        """(counts, trains) of the recorded cells of every candidate."""
        responses = simulate_network(values, self.config, self.wiring)
        n = self.config.n_e + self.config.n_i
        return responses.counts[:, self.cells], select(responses.trains, n, self.cells)

    def evaluate(self, values: np.ndarray) -> np.ndarray:
        """Loss of each candidate, shape (candidates,).

        ``values`` (candidates, 4) are (sigma_ee, p_ee, sigma_ei, p_ei) per candidate; the loss is the one chosen
        by ``loss`` (count loss in units of the data's mean spike count per cell).

        Raises:
            ParameterError: ``values`` is not a finite (candidates, 4) array.
        """
        counts, trains = self.simulate(values)
        total = np.zeros(counts.shape[0])
        if self.loss in ("count", "both"):
            total += count_loss(counts, self.data.counts)
        if self.loss in ("spike", "both"):
            total += spike_loss(trains, self.data, self.config.duration)
        return total


def noise_floor(values, data: Trains, config: NetworkConfig, seeds, loss: str = "count",
                recorded: str = "all") -> np.ndarray:
    """The loss of the parameters ``values`` against ``data`` under each connectivity seed in ``seeds``:
    at the truth, the spread that a fit drawing a new connectivity per evaluation (the original) could
    not get below."""
    return np.array([NetworkObjective(data, config, seed, loss, recorded).evaluate(np.atleast_2d(values))[0]
                     for seed in seeds])


def parameter_model():
    """The four fitted parameters described as a :class:`spikeforge.fit.models.Model` (for the checks
    and tables that single-cell models share)."""
    from spikeforge.fit.models import Model

    return Model("network", -1, NAMES, UNITS, TRUTH, BOUNDS, NAMES, {}, "")
