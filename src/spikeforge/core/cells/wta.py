"""Stochastic exponential-escape neuron in a winner-take-all circuit (Klampfl & Maass 2013; Nessler et
al. 2013), as the original's legacy simulator steps it (sequence.md 2.2-2.3).

Time in ms, rates in Hz; the membrane potential u is dimensionless (a sum of log weights times EPSPs).

* Membrane potential of neuron k: ``u_k = w_k0 + sum_i w_ki y_i``, over its inputs and recurrent
  presynaptic neurons i, with y_i the EPSP trace of i (below) and w the log weights.
* Rate, a softmax within k's circuit g(k): ``r_k = r_max exp(u_k) / sum_{j in g(k)} exp(u_j)`` (the
  circuit fires at r_max in total whatever its input: lateral inhibition).
* Spike in a step of ``dt`` with probability ``1 - exp(-r_k dt)`` (``escape = "exponential"``, the
  legacy code) or ``r_k dt`` (``"linear"``, the NEST port); the neurons of a circuit draw
  independently.
* EPSP trace of a presynaptic neuron: two traces stepped by forward Euler, ``decay <- decay (1 -
  dt/tau_decay) + A s`` and ``rise <- rise (1 - dt/tau_rise) + A s``, ``y = decay - rise``, with s the
  neuron's spike in this step and A its amplitude (the short-term plasticity factor; 1 without).  At
  dt = 1 ms the factors are 0.95 and 0.5 (exact exponentials would be 0.951 and 0.607); the original
  and its NEST port both use the Euler factors, so a spike adds ``0.95^(n-1) - 0.5^(n-1)`` to the y
  seen n >= 1 steps later.

Defaults: dt 1 ms, tau_decay 20 ms, tau_rise 2 ms, r_max 100 Hz.

Steps (numba, ``inline="always"``, called inside the network kernel): :func:`epsp_step` for one
presynaptic neuron's traces, :func:`circuit_rates` for the softmax of one circuit, and
:func:`spike_probability`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba

ESCAPES = ("exponential", "linear")


class Parameters(NamedTuple):
    """Parameters of the WTA neurons and their EPSP traces, in ms and Hz (defaults of the module docstring)."""

    dt: float = 1.0  # time step [ms]
    tau_decay: float = 20.0  # EPSP decay time constant [ms]
    tau_rise: float = 2.0  # EPSP rise time constant [ms]
    r_max: float = 100.0  # total rate of a circuit [Hz]
    escape: str = "exponential"  # spike probability per step: "exponential" 1 - exp(-r dt), "linear" r dt

    @property
    def decay_factor(self) -> float:
        """``1 - dt/tau_decay``: the forward-Euler factor of the decay trace per step (0.95 by default)."""
        return 1.0 - self.dt / self.tau_decay

    @property
    def rise_factor(self) -> float:
        """``1 - dt/tau_rise``: the forward-Euler factor of the rise trace per step (0.5 by default)."""
        return 1.0 - self.dt / self.tau_rise


def check(p: Parameters) -> None:
    """Raise ValueError naming the first impossible parameter."""
    for name in ("dt", "tau_decay", "tau_rise", "r_max"):
        if not getattr(p, name) > 0:
            raise ValueError(f"{name} = {getattr(p, name)} must be > 0")
    if not (p.dt <= p.tau_rise < p.tau_decay):
        raise ValueError(f"expected dt <= tau_rise < tau_decay, got dt = {p.dt}, tau_rise = {p.tau_rise}, "
                         f"tau_decay = {p.tau_decay} ms (forward Euler needs dt <= tau)")
    if p.escape not in ESCAPES:
        raise ValueError(f"escape {p.escape!r} is not one of {', '.join(ESCAPES)}")
    if p.r_max * p.dt / 1000.0 > 1 and p.escape == "linear":
        raise ValueError(f"r_max dt = {p.r_max * p.dt / 1000:g} > 1: not a probability")


@numba.njit(inline="always", cache=True)
def epsp_step(decay: float, rise: float, amplitude: float, decay_factor: float,
              rise_factor: float) -> tuple[float, float]:
    """One step of a presynaptic neuron's EPSP traces; ``amplitude`` is A s (0 without a spike)."""
    return decay * decay_factor + amplitude, rise * rise_factor + amplitude


@numba.njit(inline="always", cache=True)
def circuit_rates(u, start: int, stop: int, r_max: float, rates) -> None:
    """Write the rates [Hz] of neurons ``start .. stop - 1`` (one circuit) into ``rates``: r_max times
    the softmax of their potentials ``u`` (computed from u - max u, so no exponential overflows)."""
    top = u[start]
    for k in range(start + 1, stop):
        top = max(top, u[k])
    total = 0.0
    for k in range(start, stop):
        rates[k] = math.exp(u[k] - top)
        total += rates[k]
    for k in range(start, stop):
        rates[k] = r_max * rates[k] / total


@numba.njit(inline="always", cache=True)
def spike_probability(rate_hz: float, dt_ms: float, linear: bool) -> float:
    """Probability of a spike within one step at ``rate_hz``."""
    if linear:
        return rate_hz * dt_ms / 1000.0
    return 1.0 - math.exp(-rate_hz * dt_ms / 1000.0)
