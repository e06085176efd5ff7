"""Synaptic filters: the exponential current (and filtered spike train) of RLS, and the double
exponential of the rate-to-spike LIF network.

A spike of charge ``q`` arriving at a synapse with time constant ``tau`` [ms] adds ``q / tau`` to
its current, which then decays: ``tau du/dt = -u + sum_k q_k delta(t - t_k)``, so that the
integral of the current of one spike is ``q``.  Forward Euler, with the charge that arrived in
the previous step (the one-step synaptic delay)::

    u <- u (1 - dt/tau) + q / tau  =  u * decay + q * kick

One function serves both backends: :func:`step` is the numba version (scalars, inlined into the
network kernel) of :func:`filtered`, which the torch backend applies to whole tensors.
"""

from __future__ import annotations

import numba


def filtered(u, q, decay, kick):
    """The filtered value after one step: ``u * decay + q * kick`` (``decay = 1 - dt/tau``,
    ``kick = 1/tau`` [1/ms]); numbers or tensors."""
    return u * decay + q * kick


step = numba.njit(inline="always", cache=True)(filtered)


def double_exponential(current, rise, inflow, decay, rise_decay, dt_s, kick):
    """One step of the double-exponential filter of the rate-to-spike LIF network (spikernn.md 5.3):

        current <- current * exp(-dt/tau_d) + dt * rise
        rise    <- rise * exp(-dt/tau_r) + inflow / (tau_r tau_d)

    (``rise`` enters ``current`` before its own update: a one-step latency).  Times in seconds,
    so that one spike's current integrates to its weight and a filtered spike train is in Hz:
    ``decay = exp(-dt/tau_d)``, ``rise_decay = exp(-dt/tau_r)``, ``dt_s = dt`` [s],
    ``kick = 1/(tau_r tau_d)`` [1/s^2].  Returns (current, rise); numbers or tensors."""
    return current * decay + dt_s * rise, rise * rise_decay + inflow * kick


double_exponential_step = numba.njit(inline="always", cache=True)(double_exponential)
