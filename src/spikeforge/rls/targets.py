"""Target currents that RLS trains each neuron's synaptic input to follow.

Targets are sampled at the learning times ``t_j = stim_off + j * learn_every``,
``j = 1 .. learn_nsteps`` (absolute trial time in ms), and stored as an array of shape
(n_tasks, learn_nsteps, n_cells).
"""

from __future__ import annotations

import numpy as np

from spikeforge.rls.params import Params


def learning_times(p: Params) -> np.ndarray:
    """Times of the RLS updates and target samples [ms], shape (learn_nsteps,)."""
    return p.stim_off + p.learn_every * np.arange(1, p.steps.learn_nsteps + 1)


def sinusoids(p: Params, mean_current: np.ndarray, rng: np.random.Generator, task: int = 0) -> np.ndarray:
    """Random-phase sinusoids around each neuron's init-run mean current (tsn.md 4.3).

    ``target[j, i] = target_amp * sin(2 pi (t_j - phase_i) / target_period) + mean_current[i]``
    with ``phase_i ~ U(0, target_period)``.

    Args:
        mean_current: (n_cells,) mean synaptic current of each neuron in the init run.
        rng: the task's own target stream, so different tasks get different phases.
        task: the task's index (unused here; a plugin may use it).

    Returns:
        (learn_nsteps, n_cells) target currents.
    """
    phase = p.target_period * rng.random(p.n_cells)
    t = learning_times(p)[:, None]
    return p.target_amp * np.sin(2 * np.pi * (t - phase[None, :]) / p.target_period) + mean_current[None, :]
