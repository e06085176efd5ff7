"""The plasticity of the WTA grid (sequence.md 3): STDP on log weights, variance-tracking learning rates,
and Markram-type short-term plasticity.  Pure scalar functions (numba, ``inline="always"``), called by
the network kernel per synapse or per presynaptic neuron.

**STDP**, applied when the postsynaptic neuron k spikes, to each of its synapses i (inputs and
recurrent alike), with y_i the presynaptic EPSP trace at that step:

* as the original code implements it (:func:`stdp_step`): ``dw = eta (y - e^w) / max(e^w, eta)``,
  whose fixed point is ``e^w = E[y | k spikes]`` (the denominator is bounded below by eta for stability);
* the paper's form (:func:`stdp_paper_step`): ``dw = c e^(-w) y - 1`` (c = 1 is the code's rule
  without the learning rate; the thesis' window figure used c = 0.05 e^5).

**Variance tracking** (Nessler et al. 2013, eq. 71): per synapse, running estimates S of E[w] and Q of
E[w^2] (start S = 0, Q = 1) set the learning rate ``eta = eta0 (Q - S^2) / (e^(-S) + 1)`` (0.025 at
the start with eta0 = 0.05); after each weight change, with the same eta, ``S <- S + eta (w - S)`` and
``Q <- Q + eta (w^2 - Q)`` (:func:`tracked_rate`, :func:`track`).  Without it the rate is eta0 / t
(t in steps), which in practice freezes the weights.

**Short-term plasticity** of a recurrent presynaptic neuron (Markram et al. 1998 as the original codes
it): parameters U, D [ms], F [ms]; state u (starts at U) and R (starts at 1).  A spike delivers the
amplitude ``u R`` of the current state; then the state is advanced with Delta, the interval since the
neuron's *previous* spike minus one step (the legacy code's ``isi`` counter; the NEST port's
``t_spike - t_last - 1 ms``)::

    R <- 1 + (R - R u - 1) exp(-Delta / D)
    u <- U + u (1 - U) exp(-Delta / F)

so the next spike's amplitude reflects the interval before this one, and R uses the old u (Markram's
form would advance over the interval preceding each spike and use the new u; sequence.md 3.4).  For a
regular train both readings give the same amplitudes, whose steady state is
:func:`stp_steady_amplitude`.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(inline="always", cache=True)
def stdp_step(w: float, y: float, eta: float) -> float:
    """The original's STDP change of log weight ``w`` at a postsynaptic spike, EPSP ``y``, rate ``eta``."""
    strength = math.exp(w)
    return eta * (y - strength) / max(strength, eta)


@numba.njit(inline="always", cache=True)
def stdp_paper_step(w: float, y: float, c: float) -> float:
    """The paper's STDP change ``c e^(-w) y - 1`` (times a learning rate by the caller)."""
    return c * math.exp(-w) * y - 1.0


@numba.njit(inline="always", cache=True)
def tracked_rate(s: float, q: float, eta0: float) -> float:
    """Variance-tracking learning rate from the running moments ``s`` ~ E[w], ``q`` ~ E[w^2]."""
    return eta0 * (q - s * s) / (math.exp(-s) + 1.0)


@numba.njit(inline="always", cache=True)
def track(s: float, q: float, w: float, eta: float) -> tuple[float, float]:
    """The moments after a weight change to ``w`` (the rate ``eta`` that made the change)."""
    return s + eta * (w - s), q + eta * (w * w - q)


@numba.njit(inline="always", cache=True)
def stp_advance(u: float, r: float, U: float, D: float, F: float, delta: float) -> tuple[float, float]:
    """(u, R) after a spike that delivered u R, ``delta`` ms being the interval since the previous spike
    minus one step."""
    r_next = 1.0 + (r - r * u - 1.0) * math.exp(-delta / D)
    u_next = U + u * (1.0 - U) * math.exp(-delta / F)
    return u_next, r_next


def stp_steady_amplitude(U: float, D: float, F: float, interval: float, dt: float = 1.0) -> float:
    """The amplitude u R that a regular train of spikes ``interval`` ms apart settles to (the closed form
    of :func:`stp_advance`'s fixed point, with Delta = interval - dt)."""
    delta = interval - dt
    u = U / (1.0 - (1.0 - U) * np.exp(-delta / F))
    r = (1.0 - np.exp(-delta / D)) / (1.0 - (1.0 - u) * np.exp(-delta / D))
    return float(u * r)
