"""Izhikevich neuron (Izhikevich 2003), stepped as SpikingNeuralNetworks.jl does (spikenetopt.md 3.1).

Equations (time in ms, v in mV, the current I in the model's own units of mV/ms, as in the paper)::

    dv/dt = 0.04 v^2 + 5 v + 140 - recovery + I
    d(recovery)/dt = a (b v - recovery)
    v > v_peak:  v <- c,  recovery <- recovery + d

Per step of ``dt`` ms: v moves by two half steps of forward Euler (the second with the first's v),
then the recovery variable by one step with the new v; a neuron whose new v exceeds ``v_peak``
(30 mV, strict) spikes and is reset.  The initial state is v = -65 mV and recovery = b v, as in
the original.

Named parameter sets (a [1/ms], b [1/ms], c [mV], d [mV/ms]), :data:`PRESETS`: regular spiking RS,
intrinsically bursting IB, chattering CH, fast spiking FS, low-threshold spiking LTS, thalamo-cortical
TC and resonator RZ.

The step exists once per backend: :func:`step` (numba, one neuron) and :func:`step_torch` (tensors,
one entry per neuron or candidate), the same arithmetic in the same order.
"""

from __future__ import annotations

from typing import NamedTuple

import numba


class Parameters(NamedTuple):
    """Izhikevich parameters (the defaults of SpikingNeuralNetworks.jl); scalars or per-candidate arrays."""

    a: float = 0.01  # recovery rate [1/ms]
    b: float = 0.2  # sensitivity of the recovery to v [1/ms]
    c: float = -65.0  # reset voltage [mV]
    d: float = 2.0  # recovery increment at a spike [mV/ms]
    v_peak: float = 30.0  # spike cut-off [mV]
    v_init: float = -65.0  # initial voltage [mV]; the recovery starts at b v_init


PRESETS: dict[str, Parameters] = {
    "RS": Parameters(0.02, 0.2, -65.0, 8.0),
    "IB": Parameters(0.02, 0.2, -55.0, 4.0),
    "CH": Parameters(0.02, 0.2, -50.0, 2.0),
    "FS": Parameters(0.1, 0.2, -65.0, 2.0),
    "LTS": Parameters(0.1, 0.25, -65.0, 2.0),
    "TC": Parameters(0.02, 0.25, -65.0, 0.05),
    "RZ": Parameters(0.1, 0.26, -65.0, 2.0),
}

FITTED = ("a", "b", "c", "d")  # the parameters a fit searches, in this order
BOUNDS = {"a": (0.002, 0.3), "b": (0.02, 0.36), "c": (-75.0, -35.0), "d": (0.005, 16.0)}  # SpikeNetOpt's ranges


@numba.njit(inline="always", cache=True)
def step(v: float, recovery: float, current: float, a: float, b: float, c: float, d: float, v_peak: float,
         dt: float) -> tuple[float, float, bool]:
    """One step of one neuron (numba): (new v [mV], new recovery, spiked)."""
    half = 0.5 * dt
    v = v + half * (0.04 * v * v + 5.0 * v + 140.0 - recovery + current)
    v = v + half * (0.04 * v * v + 5.0 * v + 140.0 - recovery + current)
    recovery = recovery + dt * a * (b * v - recovery)
    fired = v > v_peak
    if fired:
        v = c
        recovery = recovery + d
    return v, recovery, fired


def step_torch(v, recovery, current, p: Parameters, dt: float):
    """One step of every neuron (torch tensors; ``p``'s fields scalars or tensors): (v, recovery, fired)."""
    half = 0.5 * dt
    v = v + half * (0.04 * v * v + 5.0 * v + 140.0 - recovery + current)
    v = v + half * (0.04 * v * v + 5.0 * v + 140.0 - recovery + current)
    recovery = recovery + dt * p.a * (p.b * v - recovery)
    import torch

    fired = v > p.v_peak
    v = torch.where(fired, torch.as_tensor(p.c, dtype=v.dtype, device=v.device), v)
    recovery = recovery + fired * p.d
    return v, recovery, fired
