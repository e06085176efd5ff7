"""Leaky integrate-and-fire neuron in the units of the RLS model.

Membrane equation (time in ms, voltage dimensionless, threshold ``thresh``, reset ``vre``)::

    tau_m dv/dt = -v + X + u

with ``X`` the external drive and ``u`` the synaptic current.  Per step of ``dt`` ms:

1. a neuron is *active* unless it spiked in the last ``refrac_steps`` steps: one that spiked at
   step ``s`` updates again at step ``s + refrac_steps + 1``;
2. an active neuron moves by forward Euler, ``v <- v + dt/tau_m * (X + u - v)``; a refractory
   one keeps its voltage, except for voltage noise, which the network adds before this step to
   every neuron (tsn.md 3.3: the reference kicks refractory neurons too);
3. an active neuron whose new voltage is above threshold, ``v > thresh`` (strict), spikes and
   is reset to ``vre``.

Initial voltages are drawn from ``N(vre, (thresh - vre)^2)``.

The step exists once per backend: :func:`step` (numba, one neuron, scalars) and
:func:`step_torch` (every neuron, tensors); the fused Triton kernel
(:mod:`spikeforge.core.backends.triton_step`) inlines it and is tested against :func:`step_torch`.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np


class Parameters(NamedTuple):
    """Per-neuron LIF parameters (arrays of one value per neuron)."""

    dt_over_tau: np.ndarray  # (N,) dt / tau_m [1]
    thresh: np.ndarray  # (N,) spike threshold [voltage]
    vre: float  # reset voltage [voltage]
    refrac_steps: int  # steps a neuron stays frozen after a spike [steps]


# A LIF neuron carries only its voltage and its last spike, which the network kernels keep for every
# model (spikeforge.core.backends.layout.State): it has no State of its own.


def parameters(dt: float, tau_m: np.ndarray, thresh: np.ndarray, vre: float, refrac_steps: int,
               dtype=np.float64) -> Parameters:
    """Parameters for time step ``dt`` [ms], membrane time constants ``tau_m`` [ms] and thresholds."""
    return Parameters(dt_over_tau=(dt / np.asarray(tau_m, dtype=np.float64)).astype(dtype),
                      thresh=np.asarray(thresh, dtype=np.float64).astype(dtype), vre=float(vre),
                      refrac_steps=int(refrac_steps))


def active_since(now, last_spike, refrac_steps):
    """Whether a neuron whose last spike was at step ``last_spike`` updates at step ``now`` (numbers
    or tensors)."""
    return now > last_spike + refrac_steps


is_active = numba.njit(inline="always", cache=True)(active_since)  # the numba version


@numba.njit(inline="always", cache=True)
def step(v: float, drive: float, active: bool, dt_over_tau: float, thresh: float, vre: float) -> tuple[float, bool]:
    """One step of one neuron (numba): the new voltage and whether it spiked.  ``drive = X + u``."""
    stepped = v + dt_over_tau * (drive - v)
    v = stepped if active else v
    fired = active and v > thresh
    return (vre if fired else v), fired


def step_torch(v, drive, active, p: Parameters):
    """One step of every neuron (torch tensors, same arithmetic as :func:`step`): (new v, fired)."""
    stepped = v + p.dt_over_tau * (drive - v)
    v = stepped.where(active, v)
    fired = active & (v > p.thresh)
    return v.masked_fill(fired, p.vre), fired


def initial_voltage(rng: np.random.Generator, vre: float, thresh: np.ndarray) -> np.ndarray:
    """Initial voltages ``v ~ N(vre, (thresh - vre)^2)``, one per neuron (``thresh`` per neuron)."""
    return vre + (thresh - vre) * rng.standard_normal(thresh.shape[0])
