"""Adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005), in its published form.

Equations (time in ms, v in mV, currents in pA, capacitance in pF, conductances in nS)::

    C dv/dt = -g_L (v - E_L) + g_L delta_T exp((v - V_T) / delta_T) - w + I
    tau_w dw/dt = a (v - E_L) - w
    v >= v_peak:  v <- v_reset,  w <- w + b

Per step of ``dt`` ms, forward Euler on both variables from the state at the step's start; a neuron
whose new v reaches ``v_peak`` spikes and is reset.  The exponent is capped at 30 (e^30 mV/ms is far
beyond any v_peak), so a large ``dt`` cannot overflow.  The initial state is v = E_L, w = 0.

SpikeNetOpt's AdEx (spikenetopt.md 3.5) differed: dt applied twice to w, v_thresh used both as the
exponential's V_T and as the spike threshold, and nA mixed with nS; none of that is reproduced.

Defaults: Brette & Gerstner's values (C 281 pF, g_L 30 nS, E_L -70.6 mV, V_T -50.4 mV, delta_T 2 mV,
tau_w 144 ms, a 4 nS, b 80.5 pA, v_reset = E_L), with v_peak 0 mV.

The step exists once per backend: :func:`step` (numba, one neuron) and :func:`step_torch` (tensors),
the same arithmetic in the same order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba

MAX_EXPONENT = 30.0


class Parameters(NamedTuple):
    """AdEx parameters; scalars or per-candidate arrays."""

    C: float = 281.0  # membrane capacitance [pF]
    g_L: float = 30.0  # leak conductance [nS]
    E_L: float = -70.6  # leak reversal [mV]
    V_T: float = -50.4  # threshold of the exponential [mV]
    delta_T: float = 2.0  # slope factor [mV]
    tau_w: float = 144.0  # adaptation time constant [ms]
    a: float = 4.0  # subthreshold adaptation [nS]
    b: float = 80.5  # spike-triggered adaptation [pA]
    v_reset: float = -70.6  # reset voltage [mV]
    v_peak: float = 0.0  # spike cut-off [mV]


FITTED = ("tau_w", "a", "b", "v_reset")  # what a fit searches unless told otherwise
BOUNDS = {"C": (50.0, 500.0), "g_L": (2.0, 60.0), "E_L": (-85.0, -55.0), "V_T": (-60.0, -35.0),
          "delta_T": (0.5, 6.0), "tau_w": (10.0, 500.0), "a": (0.0, 20.0), "b": (0.0, 200.0),
          "v_reset": (-80.0, -40.0), "v_peak": (-30.0, 30.0)}


@numba.njit(inline="always", cache=True)
def step(v: float, w: float, current: float, C: float, g_L: float, E_L: float, V_T: float, delta_T: float,
         tau_w: float, a: float, b: float, v_reset: float, v_peak: float, dt: float) -> tuple[float, float, bool]:
    """One step of one neuron (numba): (new v [mV], new w [pA], spiked)."""
    exponent = min((v - V_T) / delta_T, MAX_EXPONENT)
    dv = (-g_L * (v - E_L) + g_L * delta_T * math.exp(exponent) - w + current) / C
    dw = (a * (v - E_L) - w) / tau_w
    v = v + dt * dv
    w = w + dt * dw
    fired = v >= v_peak
    if fired:
        v = v_reset
        w = w + b
    return v, w, fired


def step_torch(v, w, current, p: Parameters, dt: float):
    """One step of every neuron (torch tensors; ``p``'s fields scalars or tensors): (v, w, fired)."""
    import torch

    exponent = torch.clamp((v - p.V_T) / p.delta_T, max=MAX_EXPONENT)
    dv = (-p.g_L * (v - p.E_L) + p.g_L * p.delta_T * torch.exp(exponent) - w + current) / p.C
    dw = (p.a * (v - p.E_L) - w) / p.tau_w
    v = v + dt * dv
    w = w + dt * dw
    fired = v >= p.v_peak
    v = torch.where(fired, torch.as_tensor(p.v_reset, dtype=v.dtype, device=v.device), v)
    w = w + fired * p.b
    return v, w, fired
