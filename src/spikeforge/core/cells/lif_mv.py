"""Leaky integrate-and-fire neuron in millivolts, as in the rate-to-spike mapping (Kim, Li &
Sejnowski 2019, SI Table S1).

Membrane equation (time in ms, voltage in mV)::

    tau_m dv/dt = -v + I,    I = bias + IPSC + w_in u(t)

with ``bias`` at the threshold (rheobase), so that firing is driven by the membrane noise.  Per
step of ``dt`` ms (spikernn.md 5.3):

1. a neuron is *active* unless it spiked within the last ``tau_ref`` ms (``t > t_last + tau_ref``;
   the network starts every neuron with ``t_last = 0``, so nobody integrates in the first
   ``tau_ref`` ms);
2. ``v <- v + active * dt/tau_m * (I - v) + noise``: the voltage noise (``N(0, 0.1^2)`` mV per
   step, not scaled with ``dt``) kicks every neuron, refractory or not;
3. every neuron with ``v >= v_th`` (not strict, and whether active or not: initial voltages above
   threshold fire at the first step) spikes and is reset to ``v_reset``.

Defaults (Table S1): ``dt`` 0.05 ms, ``tau_m`` 10 ms, ``tau_ref`` 2 ms, ``v_th`` -40 mV,
``v_reset`` -65 mV, ``bias`` -40 mV, noise 0.1 mV per step; initial voltages ``U(-65, 30)`` mV.

The synaptic current ``IPSC`` and the filtered spike trains of the readout use the double
exponential of :func:`spikeforge.core.cells.synapse.double_exponential`.

The step exists once per backend: :func:`step` (numba, one neuron) and :func:`step_torch` (tensors).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np


class Parameters(NamedTuple):
    """LIF parameters in mV and ms (Table S1 defaults)."""

    dt: float = 0.05  # time step [ms]
    tau_m: float = 10.0  # membrane time constant [ms]
    tau_ref: float = 2.0  # absolute refractory period [ms]
    v_th: float = -40.0  # spike threshold [mV]
    v_reset: float = -65.0  # reset voltage [mV]
    bias: float = -40.0  # constant input, at the threshold [mV]
    noise_std: float = 0.1  # voltage noise added every step [mV] (not scaled with dt)
    v_init_low: float = -65.0  # initial voltages are uniform in [v_init_low, v_init_high) [mV]
    v_init_high: float = 30.0

    @property
    def dt_over_tau(self) -> float:
        """``dt / tau_m``: the fraction of ``I - v`` an active neuron's voltage moves by in one step."""
        return self.dt / self.tau_m

    @property
    def refrac_steps(self) -> int:
        """Steps a neuron stays frozen after a spike: it updates again once ``t > t_last + tau_ref``."""
        return int(round(self.tau_ref / self.dt))


def check(p: Parameters) -> None:
    """Raise ValueError naming the first impossible parameter."""
    for name in ("dt", "tau_m"):
        if not getattr(p, name) > 0:
            raise ValueError(f"{name} = {getattr(p, name)} must be > 0 ms")
    if not p.tau_ref >= 0:
        raise ValueError(f"tau_ref = {p.tau_ref} must be >= 0 ms")
    if not p.noise_std >= 0:
        raise ValueError(f"noise_std = {p.noise_std} must be >= 0 mV")
    if not p.v_reset < p.v_th:
        raise ValueError(f"v_reset = {p.v_reset} must be below v_th = {p.v_th} mV")


@numba.njit(inline="always", cache=True)
def step(v: float, drive: float, active: bool, noise: float, dt_over_tau: float, v_th: float,
         v_reset: float) -> tuple[float, bool]:
    """One step of one neuron (numba): the new voltage [mV] and whether it spiked.

    ``drive`` is the total input I [mV], ``noise`` this step's voltage kick [mV]."""
    leak = dt_over_tau * (drive - v) if active else 0.0
    v = v + leak + noise
    fired = v >= v_th
    return (v_reset if fired else v), fired


def step_torch(v, drive, active, noise, p: Parameters):
    """One step of every neuron (torch tensors, the arithmetic of :func:`step`): (new v, fired).
    ``p``'s fields may be tensors of one value per neuron (a fit's candidates)."""
    import torch

    v = v + (p.dt_over_tau * (drive - v)) * active + noise
    fired = v >= p.v_th
    return torch.where(fired, torch.as_tensor(p.v_reset, dtype=v.dtype, device=v.device), v), fired


def initial_voltage(rng: np.random.Generator, shape, p: Parameters) -> np.ndarray:
    """Initial voltages, uniform in ``[v_init_low, v_init_high)`` mV (about 74 % start above threshold
    and fire at the first step, as in the original)."""
    return rng.uniform(p.v_init_low, p.v_init_high, size=shape)
