"""Fitting one neuron model to a recorded cell's spike trains under current steps.

The data (:class:`CellData`): one or more sweeps of the same step protocol, each with its amplitude
(pA as injected) and the recorded spike times (ms from the sweep's start).

The objective (:class:`CellObjective`) of a population of candidates:

1. the current: with ``current="search"`` (SpikeNetOpt's calibration) each candidate gets the model
   amplitude that makes it fire exactly as many spikes as the reference sweep (the first one with
   spikes, unless chosen), and the other sweeps are scaled by the same factor (model amplitude per pA),
   so one scale maps recorded pA onto the model for every sweep; with ``current="given"`` the
   amplitudes are used as they are (times ``scale``);
2. every candidate is simulated on every sweep in one kernel call;
3. the loss, summed over sweeps: ``"spike"``: D_S + |n_model - n_data| (SPIKE-distance over the
   sweep, PySpike's edges); ``"gamma"``: 1 - Γ (coincidence window ``window`` ms) + |Δn| / n_data;
   ``"both"``: their sum weighted by ``weights``.  A candidate whose parameters make it blow up
   (non-finite state) gets an infinite loss.

The simulations run on ``backend`` "numba" (CPU threads) or "torch" (``device`` cpu or cuda).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikeforge.core.spikes import Trains, check_train, gamma_factors, spike_distances
from spikeforge.errors import ParameterError
from spikeforge.fit.current_search import search_current
from spikeforge.fit.models import Model, parameter_rows
from spikeforge.fit.simulate import StepProtocol, simulate_on

LOSSES = ("spike", "gamma", "both")
CURRENT_MODES = ("search", "given")
DEFAULT_HIGH = {"izhikevich": 20.0, "adex": 1000.0, "lif": 500.0}  # first top of the current search


class Sweep(NamedTuple):
    """One sweep of a recording: the step's amplitude and the spike times it evoked."""

    amplitude: float  # injected current during the step [pA]
    spikes: np.ndarray  # recorded spike times [ms from the sweep's start]


class CellData(NamedTuple):
    """A cell's recording: its sweeps, in the order given, all under the same step ``protocol``.

    :meth:`build` makes a checked one."""

    sweeps: tuple[Sweep, ...]
    protocol: StepProtocol

    @classmethod
    def build(cls, amplitudes, spike_trains, protocol: StepProtocol) -> "CellData":
        """Checked data: finite amplitudes, valid trains inside the protocol."""
        protocol = StepProtocol(*protocol).check()
        amplitudes = np.atleast_1d(np.asarray(amplitudes, dtype=np.float64))
        if len(spike_trains) != amplitudes.size or amplitudes.size == 0:
            raise ParameterError(f"{amplitudes.size} amplitudes for {len(spike_trains)} spike trains; expected one "
                                 "amplitude per sweep and at least one sweep")
        if not np.isfinite(amplitudes).all():
            raise ParameterError(f"sweep amplitudes {amplitudes.tolist()} must be finite")
        sweeps = []
        for k, (amplitude, train) in enumerate(zip(amplitudes, spike_trains)):
            train = check_train(train, f"sweep {k}")
            if train.size and train[-1] > protocol.total:
                raise ParameterError(f"sweep {k} has a spike at {train[-1]:g} ms, after the protocol's end "
                                     f"({protocol.total:g} ms)")
            sweeps.append(Sweep(float(amplitude), train))
        if sum(s.spikes.size for s in sweeps) == 0:
            raise ParameterError("no sweep has a spike: there is nothing to fit")
        return cls(tuple(sweeps), protocol)

    @property
    def counts(self) -> np.ndarray:
        """Recorded spike count of each sweep, (sweeps,) int."""
        return np.array([s.spikes.size for s in self.sweeps])


class Evaluation(NamedTuple):
    """What :meth:`CellObjective.evaluate` found for n candidates on every sweep.

    ``amplitudes`` are in the model's current units (pA for AdEx and LIF, model units for Izhikevich).
    ``spike_distance`` is the SPIKE-distance between each model train and the recorded one over the whole
    sweep (0 to ``protocol.total`` ms), ``gamma`` their coincidence factor Γ (window ``CellObjective.window``
    ms); both are computed whatever the loss.  ``simulations`` counts every candidate simulation run, those
    of the current search included."""

    losses: np.ndarray  # (n,) total loss of each candidate
    amplitudes: np.ndarray  # (n, sweeps) model amplitude of each candidate on each sweep
    counts: np.ndarray  # (n, sweeps) model spike counts
    spike_distance: np.ndarray  # (n, sweeps)
    gamma: np.ndarray  # (n, sweeps)
    simulations: int


class CellObjective:
    """Loss of candidates of ``model`` against ``data`` (see the module docstring).

    Args:
        fitted: names of the searched parameters (the columns of the values given to :meth:`evaluate`).
        fixed: values of the other parameters (the model's defaults otherwise).
        reference: index of the sweep whose spike count the current search matches.
    """

    def __init__(self, model: Model, data: CellData, fitted, fixed: dict | None = None, loss: str = "spike",
                 current: str = "search", scale: float = 1.0, reference: int | None = None, window: float = 4.0,
                 weights: tuple[float, float] = (1.0, 1.0), search_high: float | None = None,
                 backend: str = "numba", device: str = "cpu"):
        if loss not in LOSSES:
            raise ParameterError(f"loss {loss!r} is not one of {', '.join(LOSSES)}")
        if current not in CURRENT_MODES:
            raise ParameterError(f"current {current!r} is not one of {', '.join(CURRENT_MODES)}")
        self.model, self.data, self.fitted = model, data, tuple(fitted)
        self.fixed = dict(fixed or {})
        parameter_rows(model, {name: [0.0] for name in self.fitted}, 1, self.fixed)  # unknown names refused
        if not (np.isfinite(window) and window > 0):
            raise ParameterError(f"coincidence window = {window:g} ms; expected a positive number")
        if not (np.isfinite(scale) and scale > 0):
            raise ParameterError(f"scale = {scale:g} (model current per pA); expected a finite, positive number")
        self.loss, self.current, self.scale, self.window = loss, current, float(scale), float(window)
        self.weights = tuple(float(w) for w in weights)
        self.backend, self.device = backend, device
        counts = data.counts
        if reference is None:
            with_spikes = np.flatnonzero((counts > 0) & np.array([s.amplitude != 0 for s in data.sweeps]))
            reference = int(with_spikes[0]) if with_spikes.size else -1
        if current == "search" and not (0 <= reference < len(data.sweeps) and counts[reference] > 0
                                        and data.sweeps[reference].amplitude != 0):
            raise ParameterError("the current search needs a reference sweep with spikes and a non-zero amplitude")
        self.reference = reference
        self.search_high = float(search_high if search_high is not None else DEFAULT_HIGH[model.name])
        self._data_trains = Trains.from_list([s.spikes for s in data.sweeps])

    def rows(self, values: np.ndarray) -> np.ndarray:
        """Full parameter rows of candidates given as (n, len(fitted)) values."""
        values = np.atleast_2d(values)
        return parameter_rows(self.model, {name: values[:, k] for k, name in enumerate(self.fitted)},
                              values.shape[0], self.fixed)

    def amplitudes(self, rows: np.ndarray) -> tuple[np.ndarray, int]:
        """(n, sweeps) model amplitudes, and the simulations the current search ran."""
        recorded = np.array([s.amplitude for s in self.data.sweeps])
        if self.current == "given":
            return np.repeat(self.scale * recorded[None, :], rows.shape[0], axis=0), 0
        found = search_current(self.model, rows, int(self.data.counts[self.reference]), self.data.protocol,
                               high=self.search_high, backend=self.backend, device=self.device)
        per_pa = found.amplitude / recorded[self.reference]
        return per_pa[:, None] * recorded[None, :], found.simulations

    def evaluate(self, values: np.ndarray) -> Evaluation:
        """Simulate candidates on every sweep and score them (see the module docstring).

        Args:
            values: (n, len(fitted)) values of the fitted parameters, in their own units, one row per candidate.

        Returns:
            The :class:`Evaluation` of the n candidates; a candidate whose loss is not finite gets ``inf``.

        Raises:
            ParameterError: a value is not finite, or one kernel call would simulate more than
                ``simulate.MAX_CANDIDATES`` candidates (n x sweeps, or n x grid in the current search).
        """
        rows = self.rows(values)
        n, n_sweeps = rows.shape[0], len(self.data.sweeps)
        amplitudes, simulations = self.amplitudes(rows)
        responses = simulate_on(self.backend, self.device, self.model, np.repeat(rows, n_sweeps, axis=0),
                                amplitudes.ravel(), self.data.protocol)
        counts = responses.counts.reshape(n, n_sweeps)
        data = self._data_trains.tile(n)
        total = self.data.protocol.total
        distance = spike_distances(responses.trains, data, 0.0, total).reshape(n, n_sweeps)
        gamma = gamma_factors(responses.trains, data, self.window, total).reshape(n, n_sweeps)
        miss = np.abs(counts - self.data.counts[None, :])
        spike_loss = (distance + miss).sum(axis=1)
        gamma_loss = (1.0 - gamma + miss / np.maximum(self.data.counts[None, :], 1)).sum(axis=1)
        losses = {"spike": spike_loss, "gamma": gamma_loss,
                  "both": self.weights[0] * spike_loss + self.weights[1] * gamma_loss}[self.loss]
        losses = np.where(np.isfinite(losses), losses, np.inf)
        return Evaluation(losses, amplitudes, counts, distance, gamma, simulations + n * n_sweeps)
