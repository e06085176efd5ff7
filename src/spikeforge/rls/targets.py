"""Target currents that RLS trains each neuron's synaptic input to follow.

Targets are sampled at the learning times ``t_j = stim_off + j * learn_every``,
``j = 1 .. learn_nsteps`` (absolute trial time in ms), and stored as an array of shape
(n_tasks, learn_nsteps, n_cells).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from spikeforge.rls.params import Params


def learning_times(p: Params) -> np.ndarray:
    """Times of the RLS updates and target samples [ms], shape (learn_nsteps,)."""
    return p.stim_off + p.learn_every * np.arange(1, p.steps.learn_nsteps + 1)


def sinusoids(p: Params, mean_current: np.ndarray, rng: np.random.Generator, task: int = 0) -> np.ndarray:
    """Random-phase sinusoids around each neuron's init-run mean current (tsn.md 4.3).

    ``target[j, i] = target_amp * sin(2 pi (t_j - phase_i) / target_period) + mean_current[i] + bias_j``
    with ``phase_i ~ U(0, target_period)`` and ``bias_j`` 0, or with ``target_bias = "ou"`` the
    :func:`ou_bias` at ``t_j`` (drawn after the phases, so the phases do not depend on it).

    Args:
        mean_current: (n_cells,) mean synaptic current of each neuron in the init run.
        rng: the task's own target stream, so different tasks get different phases.
        task: the task's index (unused here; a plugin may use it).

    Returns:
        (learn_nsteps, n_cells) target currents.
    """
    phase = p.target_period * rng.random(p.n_cells)
    t = learning_times(p)[:, None]
    bias = ou_bias(p, rng) if p.target_bias == "ou" else np.zeros(t.shape[0])
    return (p.target_amp * np.sin(2 * np.pi * (t - phase[None, :]) / p.target_period) + mean_current[None, :]
            + bias[:, None])


def ou_bias(p: Params, rng: np.random.Generator) -> np.ndarray:
    """The OU target bias at the learning times, shape (learn_nsteps,).

    Forward Euler on the trial's steps ``ti = 1 .. n_steps`` (time ``ti dt``), from
    ``bias_1 = 0``::

        bias_{ti+1} = bias_ti + target_bias_b (target_bias_mu - bias_ti) dt + target_bias_sig sqrt(dt) xi_ti

    with ``n_steps - 1`` standard normals ``xi`` from ``rng``; sampled at the steps of the
    learning times ``t_j / dt`` (as the reference's ``biasType = :ou``).
    """
    s = p.steps
    kicks = p.target_bias_b * p.target_bias_mu * p.dt + p.target_bias_sig * np.sqrt(p.dt) * rng.standard_normal(
        s.n_steps - 1)
    bias = np.concatenate([[0.0], lfilter([1.0], [1.0, -(1.0 - p.target_bias_b * p.dt)], kicks)])
    steps = s.stim_off_step + s.learn_step * np.arange(1, s.learn_nsteps + 1)  # 1-based steps of t_j
    return bias[steps - 1]
