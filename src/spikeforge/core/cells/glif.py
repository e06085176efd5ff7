"""Generalized leaky integrate-and-fire neurons GLIF1-5 (Teeter et al. 2017, Nat. Commun. 9:709).

One update covers the five models; each model is a choice of which mechanisms are on.
With input ``I = X + u`` (drive plus synaptic current), per step of ``dt`` ms while the
neuron is not refractory:

1. after-spike currents decay:      ``I_j <- I_j (1 - dt k_j)``                 (GLIF3, 4, 5)
2. membrane:                        ``v <- v + dt/C (I + sum_j I_j - (v - E_L)/R)``
3. spike-induced threshold decays:  ``theta_s <- theta_s (1 - dt b_s)``          (GLIF2, 4, 5)
4. voltage-induced threshold:       ``theta_v <- theta_v + dt (a_v (v - E_L) - b_v theta_v)``  (GLIF5)
5. spike when ``v > thresh + theta_s + theta_v``; then
   ``I_j <- f_j I_j + delta_I_j``, ``theta_s <- theta_s + delta_theta_s`` and
   ``v <- vre`` (GLIF1, 3) or ``v <- E_L + f_v (v - E_L) - delta_v`` (GLIF2, 4, 5).

Initial voltages: ``N(vre, (thresh - vre)^2)`` for GLIF1/3, ``N(E_L, (thresh - E_L)^2)``
for GLIF2/4/5; ``theta_s``, ``theta_v`` and ``I_j`` start at 0 and, unless
``cell_state_persists``, are reset to 0 at the start of every trial.

Deliberate differences from TrainSpikingNet's GLIF plugins (tsn.md 6), which follow the paper:
the GLIF2/4/5 voltage reset is ``E_L + f_v (v - E_L) - delta_v`` (TSN: ``f_v v - delta_v``);
the GLIF5 threshold update is ``dt (a_v (v - E_L) - b_v theta_v)`` (TSN: ``a_v v - dt b_v theta_v``);
``theta_v`` is frozen during refractoriness on every backend; the adaptation state does not
leak from one trial into the next unless asked to.  All agree with TSN when ``E_L = 0``
except the GLIF5 threshold, whose ``a_v`` now has units of 1/ms.

With ``C = tau_m``, ``R = 1``, ``E_L = 0`` GLIF1 computes exactly the LIF update.

Refractoriness is LIF's (:func:`spikeforge.core.cells.lif.is_active`, with the network's
``refrac_steps``): nothing of a refractory neuron moves but the voltage noise, which the network
adds to every neuron before the step.  The step exists once per backend: :func:`step` (numba, one neuron) and
:func:`step_torch` (every neuron, tensors).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

import numba
import numpy as np

# which mechanisms each model has: (after-spike currents, spike threshold, voltage threshold, reset rule)
MODELS = MappingProxyType({
    "glif1": (False, False, False, False),
    "glif2": (False, True, False, True),
    "glif3": (True, False, False, False),
    "glif4": (True, True, False, True),
    "glif5": (True, True, True, True),
})


class Parameters(NamedTuple):
    """Per-neuron GLIF parameters; a mechanism a neuron's model lacks has its parameters at 0 (and
    no after-spike increment)."""

    thresh: np.ndarray  # (N,) baseline spike threshold [voltage]
    vre: float  # reset voltage of GLIF1/3 [voltage]
    dt: float  # time step [ms], in the state's floating type (so float32 arithmetic stays float32)
    dt_over_c: np.ndarray  # (N,) dt / C [ms / capacitance]
    inv_r: np.ndarray  # (N,) 1 / R [1 / resistance]
    e_l: np.ndarray  # (N,) resting potential [voltage]
    b_s: np.ndarray  # (N,) decay rate of the spike-induced threshold [1/ms]
    thresh_s_decay: np.ndarray  # (N,) 1 - dt b_s, the spike-induced threshold's decay per step [1]
    delta_thresh_s: np.ndarray  # (N,) threshold increment per spike [voltage]
    f_v: np.ndarray  # (N,) voltage reset factor [1]
    delta_v: np.ndarray  # (N,) voltage reset offset [voltage]
    a_v: np.ndarray  # (N,) coupling of the voltage-induced threshold to v - E_L [1/ms]
    b_v: np.ndarray  # (N,) decay rate of the voltage-induced threshold [1/ms]
    reset_rule: np.ndarray  # uint8 (N,) 1: v <- E_L + f_v (v - E_L) - delta_v; 0: v <- vre
    asc_decay: np.ndarray  # (N, n_asc) 1 - dt k_j of the after-spike currents [1]
    asc_f: np.ndarray  # (N, n_asc) after-spike current reset factor [1]
    asc_delta: np.ndarray  # (N, n_asc) after-spike current increment per spike [voltage] (currents in voltage units)


class State(NamedTuple):
    """The adaptation state of GLIF neurons (besides v and the last spike, as LIF's)."""

    thresh_s: np.ndarray  # (N,) spike-induced threshold [voltage]
    thresh_v: np.ndarray  # (N,) voltage-induced threshold [voltage]
    asc: np.ndarray  # (N, n_asc) after-spike currents [voltage] (currents in voltage units)


@numba.njit(inline="always", cache=True)
def step(i, v, drive, active, p, thresh_s, thresh_v, asc):
    """Advance neuron ``i`` by one step (numba); returns (new v, fired).  ``p``: the
    :class:`Parameters`; updates ``thresh_s[i]``, ``thresh_v[i]`` and ``asc[i, :]`` in place (the
    arrays of the :class:`State`; numba drops writes through tuple attributes in parallel loops).
    ``active`` is False while refractory."""
    if not active:
        return v, False
    charging = drive  # the after-spike currents are added to it one by one, in the state's type
    for j in range(asc.shape[1]):
        current = asc[i, j] * p.asc_decay[i, j]
        asc[i, j] = current
        charging += current
    e_l = p.e_l[i]
    v = v + p.dt_over_c[i] * (charging - (v - e_l) * p.inv_r[i])
    theta_s = thresh_s[i] * p.thresh_s_decay[i]
    theta_v = thresh_v[i] + p.dt * (p.a_v[i] * (v - e_l) - p.b_v[i] * thresh_v[i])
    fired = v > p.thresh[i] + theta_s + theta_v
    if fired:
        for j in range(asc.shape[1]):
            asc[i, j] = p.asc_f[i, j] * asc[i, j] + p.asc_delta[i, j]
        v = e_l + p.f_v[i] * (v - e_l) - p.delta_v[i] if p.reset_rule[i] else p.vre
        theta_s += p.delta_thresh_s[i]
    thresh_s[i] = theta_s
    thresh_v[i] = theta_v
    return v, fired


def step_torch(v, drive, active, p: Parameters, state: State):
    """One step of every neuron (torch tensors, the arithmetic of :func:`step`); returns (new v,
    fired) and updates ``state``'s tensors in place."""
    asc_new = state.asc * p.asc_decay
    charging = drive
    for j in range(state.asc.shape[1]):
        charging = charging + asc_new[:, j]
    v_new = v + p.dt_over_c * (charging - (v - p.e_l) * p.inv_r)
    theta_s = state.thresh_s * p.thresh_s_decay
    theta_v = state.thresh_v + p.dt * (p.a_v * (v_new - p.e_l) - p.b_v * state.thresh_v)
    fired = active & (v_new > p.thresh + theta_s + theta_v)
    asc_after = (p.asc_f * asc_new + p.asc_delta).where(fired[:, None], asc_new)
    reset = (p.e_l + p.f_v * (v_new - p.e_l) - p.delta_v).where(p.reset_rule.bool(), v_new.new_full(v_new.shape, p.vre))
    v_out = reset.where(fired, v_new)
    theta_s = (theta_s + p.delta_thresh_s).where(fired, theta_s)
    state.asc.copy_(asc_after.where(active[:, None], state.asc))
    state.thresh_s.copy_(theta_s.where(active, state.thresh_s))
    state.thresh_v.copy_(theta_v.where(active, state.thresh_v))
    return v_out.where(active, v), fired


def initial_voltage(rng: np.random.Generator, reset_rule: np.ndarray, vre: float, thresh: np.ndarray,
                    e_l: np.ndarray) -> np.ndarray:
    """Initial voltages: N(E_L, (thresh - E_L)^2) for neurons with the reset rule (GLIF2/4/5),
    N(vre, (thresh - vre)^2) for the others (see the module docstring)."""
    centre = np.where(reset_rule.astype(bool), e_l, vre)
    return centre + (thresh - centre) * rng.standard_normal(thresh.shape[0])


def per_neuron_parameters(models: np.ndarray, values: dict, n_asc: int, dt: float) -> dict:
    """Per-neuron parameter arrays for GLIF ``models`` (one name per neuron), with the mechanisms a
    neuron's model lacks switched off.

    Args:
        values: "r", "el", "b_s", "delta_thresh_s", "f_v", "delta_v", "a_v", "b_v" (scalars or (N,)
            arrays) and "asc_k", "asc_f", "asc_delta" ((n_asc,) or (N, n_asc)).
    Returns:
        Arrays named as the per-neuron fields of :class:`Parameters`, except ``thresh`` and
        ``dt_over_c`` (which needs the capacitance).
    """
    n = models.shape[0]
    flags = np.array([MODELS[name] for name in models], dtype=bool).reshape(n, 4)
    has_asc, has_theta_s, has_theta_v, reset_rule = flags.T

    def column(name):
        return np.broadcast_to(np.asarray(values[name], dtype=np.float64), (n,)).copy()

    def table(name):
        return np.broadcast_to(np.asarray(values[name], dtype=np.float64)[..., :n_asc], (n, n_asc)).copy()

    return {
        "inv_r": 1.0 / column("r"), "e_l": column("el"),
        "b_s": np.where(has_theta_s, column("b_s"), 0.0),
        "thresh_s_decay": 1.0 - dt * np.where(has_theta_s, column("b_s"), 0.0),
        "delta_thresh_s": np.where(has_theta_s, column("delta_thresh_s"), 0.0),
        "f_v": column("f_v"), "delta_v": column("delta_v"),
        "a_v": np.where(has_theta_v, column("a_v"), 0.0), "b_v": np.where(has_theta_v, column("b_v"), 0.0),
        "reset_rule": reset_rule.astype(np.uint8),
        "asc_decay": np.where(has_asc[:, None], 1.0 - dt * table("asc_k"), 1.0),
        "asc_f": np.where(has_asc[:, None], table("asc_f"), 0.0),
        "asc_delta": np.where(has_asc[:, None], table("asc_delta"), 0.0),
    }
