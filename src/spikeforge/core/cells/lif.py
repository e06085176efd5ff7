"""Leaky integrate-and-fire neuron in the units of the RLS model.

Membrane equation (time in ms, voltage dimensionless, threshold ``thresh``, reset ``vre``)::

    tau_m dv/dt = -v + X + u

with ``X`` the external drive and ``u`` the synaptic current.  Forward Euler:
``v <- v + dt/tau_m * (X + u - v)``.  A neuron spikes when ``v > thresh`` (strict),
is reset to ``vre`` and its voltage is frozen for the refractory period, which the
network kernel handles.  Initial voltages are drawn from ``N(vre, (thresh - vre)^2)``.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always", cache=True)
def step(v: float, drive: float, dt_over_tau: float) -> float:
    """One Euler step of the membrane potential; ``drive = X + u``; ``dt_over_tau = dt / tau_m``."""
    return v + dt_over_tau * (drive - v)


def initial_voltage(rng: np.random.Generator, vre: float, thresh: np.ndarray) -> np.ndarray:
    """Initial voltages ``v ~ N(vre, (thresh - vre)^2)``, one per neuron (``thresh`` per neuron)."""
    return vre + (thresh - vre) * rng.standard_normal(thresh.shape[0])
