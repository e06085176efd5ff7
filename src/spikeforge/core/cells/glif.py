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
"""

from __future__ import annotations

import numba
import numpy as np

# which mechanisms each model has: (after-spike currents, spike threshold, voltage threshold, reset rule)
MODELS = {
    "glif1": (False, False, False, False),
    "glif2": (False, True, False, True),
    "glif3": (True, False, False, False),
    "glif4": (True, True, False, True),
    "glif5": (True, True, True, True),
}


@numba.njit(inline="always", cache=True)
def step(i, v, drive, active, thresh, vre, dt, dt_over_c, inv_r, e_l, b_s, delta_thresh_s, f_v, delta_v, a_v, b_v,
         reset_rule, asc_decay, asc_f, asc_delta, thresh_s, thresh_v, asc):
    """Advance neuron ``i`` by one step; returns (new v, fired).  Updates ``thresh_s[i]``,
    ``thresh_v[i]`` and ``asc[i, :]`` in place.  ``active`` is False while refractory."""
    if not active:
        return v, False
    asc_sum = 0.0
    for j in range(asc.shape[1]):
        current = asc[i, j] * asc_decay[j]
        asc[i, j] = current
        asc_sum += current
    v = v + dt_over_c[i] * (drive + asc_sum - (v - e_l[i]) * inv_r[i])
    theta_s = thresh_s[i] * (1.0 - dt * b_s)
    theta_v = thresh_v[i] + dt * (a_v * (v - e_l[i]) - b_v * thresh_v[i])
    fired = v > thresh + theta_s + theta_v
    if fired:
        for j in range(asc.shape[1]):
            asc[i, j] = asc_f[j] * asc[i, j] + asc_delta[j]
        v = e_l[i] + f_v * (v - e_l[i]) - delta_v if reset_rule else vre
        theta_s += delta_thresh_s
    thresh_s[i] = theta_s
    thresh_v[i] = theta_v
    return v, fired


def initial_voltage(rng: np.random.Generator, model: str, vre: float, thresh: np.ndarray,
                    e_l: np.ndarray) -> np.ndarray:
    """Initial voltages of ``model`` (see the module docstring)."""
    centre = e_l if MODELS[model][3] else np.full_like(thresh, vre)
    return centre + (thresh - centre) * rng.standard_normal(thresh.shape[0])
