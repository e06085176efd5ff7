"""Exponential synaptic current (and the exponentially filtered spike train of RLS).

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
