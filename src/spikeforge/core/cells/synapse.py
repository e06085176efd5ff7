"""Synaptic filters: the exponential current (and filtered spike train) of RLS, and the double
exponential of the rate-to-spike LIF network.

A spike of charge ``q`` arriving at a synapse with time constant ``tau`` [ms] adds ``q / tau`` to
its current, which then decays: ``tau du/dt = -u + sum_k q_k delta(t - t_k)``, so that the
integral of the current of one spike is ``q``.  Forward Euler, with the charge that arrived in
the previous step (the one-step synaptic delay)::

    u <- u (1 - dt/tau) + q / tau  =  u * decay + q * kick

The RLS network keeps its synaptic currents as *charge* ``c = u / kick`` (in the units of the
weights), which evolves as ``c <- c * decay + q``: a spike then adds its weight to the charge
of its targets directly, and no separate accumulator of arriving charge has to be read and
cleared by every neuron at every step (32 of the 111 bytes a static step moved per neuron).
Per step, :func:`current_and_carry` turns the charge a neuron holds (everything that arrived
until now, on top of its decayed past) into the step's current ``c * kick`` and the charge it
carries into the next step, ``c * decay``, to which the spikes of this step then add.  The
current is the same as ``u * decay + q * kick``, rounded differently.

One function serves both backends: :func:`step` is the numba version (scalars, inlined into the
network kernel) of :func:`filtered`, which the torch backend applies to whole tensors; likewise
:func:`charge_step` of :func:`current_and_carry`.
"""

from __future__ import annotations

import numba


def filtered(u, q, decay, kick):
    """The filtered value after one step: ``u * decay + q * kick`` (``decay = 1 - dt/tau``,
    ``kick = 1/tau`` [1/ms]); numbers or tensors."""
    return u * decay + q * kick


step = numba.njit(inline="always", cache=True)(filtered)


def current_and_carry(charge, decay, kick):
    """The current of this step, ``charge * kick``, and the charge carried to the next step,
    ``charge * decay`` (see the module docstring; numbers or tensors)."""
    return charge * kick, charge * decay


charge_step = numba.njit(inline="always", cache=True)(current_and_carry)


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
