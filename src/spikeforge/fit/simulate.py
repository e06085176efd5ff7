"""A population of single neurons under a current step, every candidate at once.

The protocol (:class:`StepProtocol`, times in ms): no current for ``delay``, then the candidate's
amplitude for ``duration``, then none until ``total``; forward steps of ``dt``.  Row i of the
parameter matrix (:func:`spikeforge.fit.models.parameter_rows`) is candidate i's model, simulated
with current amplitude ``amplitude[i]`` (pA, or the Izhikevich model's units).  A spike in step s
(counting from 0) is recorded at time (s + 1) dt: the end of the step in which v crossed.

Backends: :func:`simulate` runs a numba kernel, parallel over candidates (each candidate's loop over
time is its own, so the result does not depend on the thread count); :func:`simulate_torch` steps
every candidate as one tensor on the CPU or a GPU.  Both call the cell modules' steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from spikeforge.core.cells import adex, izhikevich, lif_mv
from spikeforge.core.spikes import Trains
from spikeforge.errors import ParameterError
from spikeforge.fit.models import ADEX, IZHIKEVICH, Model

MAX_SPIKES = 2000  # spike times kept per candidate; more are counted, not stored
MAX_DT = 1.0  # [ms] the coarsest step a fit may use (SpikeNetOpt's; spike times are then whole ms)
MAX_CANDIDATES = 100_000  # rows of one kernel call: more would need gigabytes for the spike times


class StepProtocol(NamedTuple):
    """A current step [ms]: off for ``delay``, on for ``duration``, off until ``total``."""

    delay: float = 1000.0
    duration: float = 2000.0
    total: float = 3400.0
    dt: float = 0.1

    def check(self) -> "StepProtocol":
        """Return the protocol itself if it is valid.

        Raises:
            ParameterError: a value is not finite; delay < 0 or duration <= 0; dt outside (0, MAX_DT];
                total < delay + duration; or the protocol has more than 1e8 steps.
        """
        for name, value in self._asdict().items():
            if not np.isfinite(value):
                raise ParameterError(f"protocol {name} = {value}; expected a finite number of ms")
        if not (self.delay >= 0 and self.duration > 0):
            raise ParameterError(f"protocol delay = {self.delay:g} ms and duration = {self.duration:g} ms; expected "
                                 "delay >= 0 and duration > 0")
        if not 0 < self.dt <= MAX_DT:
            raise ParameterError(f"time step dt = {self.dt:g} ms; expected 0 < dt <= {MAX_DT:g} ms (the models "
                                 "need steps far shorter than a spike)")
        if self.total < self.delay + self.duration:
            raise ParameterError(f"protocol total = {self.total:g} ms is shorter than delay + duration = "
                                 f"{self.delay + self.duration:g} ms")
        if self.total / self.dt > 1e8:
            raise ParameterError(f"protocol of {self.total:g} ms at dt = {self.dt:g} ms has more than 1e8 steps")
        return self

    @property
    def steps(self) -> tuple[int, int, int]:
        """(first step with current, first step without it again, number of steps)."""
        return (int(round(self.delay / self.dt)), int(round((self.delay + self.duration) / self.dt)),
                int(round(self.total / self.dt)))


class Responses(NamedTuple):
    """What a population did: spike counts (all spikes) and the stored spike times [ms]."""

    counts: np.ndarray  # int64 (n,)
    trains: Trains  # the first MAX_SPIKES spikes of each candidate (stop_above: fewer)


@numba.njit(parallel=True, cache=True)
def _run(model, rows, amplitude, dt, on, off, n_steps, max_spikes, stop_above):
    n = rows.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    times = np.zeros((n, max_spikes))
    for i in numba.prange(n):
        p = rows[i]
        if model == IZHIKEVICH:
            v = p[5]
            x = p[1] * p[5]
        elif model == ADEX:
            v = p[2]
            x = 0.0
        else:
            v = p[1]
            x = 0.0  # steps of refractoriness left
        refractory_steps = int(round(p[5] / dt)) if model != IZHIKEVICH and model != ADEX else 0
        dt_over_tau = dt / p[0]
        for s in range(n_steps):
            current = amplitude[i] if on <= s < off else 0.0
            if model == IZHIKEVICH:
                v, x, fired = izhikevich.step(v, x, current, p[0], p[1], p[2], p[3], p[4], dt)
            elif model == ADEX:
                v, x, fired = adex.step(v, x, current, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
                                        p[9], dt)
            else:
                active = x <= 0.0
                x = x - 1.0
                v, fired = lif_mv.step(v, p[1] + p[2] * current * 1e-3, active, 0.0, dt_over_tau, p[3], p[4])
                if fired:
                    x = refractory_steps
            if fired:
                if counts[i] < max_spikes:
                    times[i, counts[i]] = (s + 1) * dt
                counts[i] += 1
                if counts[i] > stop_above:
                    break
    return counts, times


def _check(model: Model, rows: np.ndarray, amplitude: np.ndarray, protocol: StepProtocol):
    protocol.check()
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    amplitude = np.array(np.broadcast_to(np.asarray(amplitude, dtype=np.float64), rows.shape[:1]))
    if rows.ndim != 2 or rows.shape[1] != len(model.names):
        raise ParameterError(f"parameter rows of shape {rows.shape}; expected (candidates, {len(model.names)}) "
                             f"for {model.name}")
    if rows.shape[0] > MAX_CANDIDATES:
        raise ParameterError(f"{rows.shape[0]} simulations in one call; at most {MAX_CANDIDATES} (use a smaller "
                             "population)")
    if not (np.isfinite(rows).all() and np.isfinite(amplitude).all()):
        raise ParameterError("a candidate's parameters or current amplitude are not finite")
    return rows, amplitude


def trains_of(counts: np.ndarray, times: np.ndarray) -> Trains:
    """Trains from spike counts (n,) and a (n, max spikes) array of times, of which each row's first
    min(count, max spikes) are kept."""
    kept = np.minimum(counts, times.shape[1])
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(kept)
    mask = np.arange(times.shape[1])[None, :] < kept[:, None]
    return Trains(times[mask], offsets)


def simulate(model: Model, rows: np.ndarray, amplitude, protocol: StepProtocol,
             stop_above: int | None = None) -> Responses:
    """Simulate every candidate (numba).  ``stop_above``: stop a candidate once it has more spikes
    than this (its count is then stop_above + 1; for searches that only compare counts)."""
    rows, amplitude = _check(model, rows, amplitude, protocol)
    on, off, n_steps = protocol.steps
    limit = np.iinfo(np.int64).max if stop_above is None else int(stop_above)
    counts, times = _run(model.code, rows, amplitude, float(protocol.dt), on, off, n_steps,
                         max(1, min(MAX_SPIKES, n_steps)), limit)
    return Responses(counts, trains_of(counts, times))


def simulate_torch(model: Model, rows: np.ndarray, amplitude, protocol: StepProtocol, device: str = "cpu",
                   dtype=None) -> Responses:
    """Simulate every candidate as one tensor per state variable (torch, ``device``)."""
    import torch

    rows, amplitude = _check(model, rows, amplitude, protocol)
    dtype = dtype or torch.float64
    p = torch.as_tensor(rows, dtype=dtype, device=device)
    drive = torch.as_tensor(amplitude, dtype=dtype, device=device)
    dt = float(protocol.dt)
    on, off, n_steps = protocol.steps
    columns = {name: p[:, k] for k, name in enumerate(model.names)}
    if model.code == IZHIKEVICH:
        params = izhikevich.Parameters(**columns)
        v, x = params.v_init.clone(), params.b * params.v_init
    elif model.code == ADEX:
        params = adex.Parameters(**columns)
        v, x = params.E_L.clone(), torch.zeros_like(params.E_L)
    else:
        v = columns["E_L"].clone()
        x = torch.zeros_like(v)
        refractory_steps = torch.round(columns["tau_ref"] / dt)
        cell = lif_mv.Parameters(dt=dt, tau_m=columns["tau_m"], v_th=columns["v_th"], v_reset=columns["v_reset"])
    fired_steps = []
    zero = torch.zeros_like(v)
    for s in range(n_steps):
        current = drive if on <= s < off else zero
        if model.code == IZHIKEVICH:
            v, x, fired = izhikevich.step_torch(v, x, current, params, dt)
        elif model.code == ADEX:
            v, x, fired = adex.step_torch(v, x, current, params, dt)
        else:
            active = x <= 0.0
            x = x - 1.0
            v, fired = lif_mv.step_torch(v, columns["E_L"] + columns["R"] * current * 1e-3, active, 0.0, cell)
            x = torch.where(fired, refractory_steps, x)
        fired_steps.append(fired)
    spiked = torch.stack(fired_steps, dim=1).cpu().numpy()  # (n, steps)
    counts = spiked.sum(axis=1).astype(np.int64)
    times = np.zeros((rows.shape[0], max(int(counts.max(initial=0)), 1)))
    candidate, step = np.nonzero(spiked)
    rank = np.arange(candidate.size) - np.repeat(np.cumsum(counts) - counts, counts)
    times[candidate, rank] = (step + 1) * dt
    return Responses(counts, trains_of(counts, times))


def simulate_on(backend: str, device: str, model: Model, rows: np.ndarray, amplitude, protocol: StepProtocol,
                stop_above: int | None = None) -> Responses:
    """:func:`simulate` (``backend = "numba"``) or :func:`simulate_torch` on ``device`` (which runs every
    candidate to the end: ``stop_above`` only saves time, the counts it changes are all above it)."""
    if backend == "numba":
        return simulate(model, rows, amplitude, protocol, stop_above)
    if backend == "torch":
        return simulate_torch(model, rows, amplitude, protocol, device)
    raise ParameterError(f"backend {backend!r} is not one of numba, torch")
