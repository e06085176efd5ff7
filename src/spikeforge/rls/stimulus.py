"""External stimulus that cues the learned pattern (tsn.md 4.4).

An independent Ornstein-Uhlenbeck process per neuron over the stimulus window,
``x_1 = 0``, ``x_{n+1} = x_n + stim_b (stim_mu - x_n) dt + stim_sig sqrt(dt) xi_n``,
added to the constant drive on steps ``stim_on < t < stim_off``.
"""

from __future__ import annotations

import numpy as np

from spikeforge.rls.params import Params


def ornstein_uhlenbeck(p: Params, rng: np.random.Generator, task: int = 0) -> np.ndarray:
    """Stimulus of one task, shape ((stim_off - stim_on) / dt, n_cells) (the default plugin;
    ``rng`` is already the task's own stream)."""
    n_rows = p.steps.stim_off_step - p.steps.stim_on_step
    x = np.zeros((n_rows, p.n_cells), dtype=np.float64)
    kicks = p.stim_sig * np.sqrt(p.dt) * rng.standard_normal((max(n_rows - 1, 0), p.n_cells))
    for row in range(1, n_rows):
        previous = x[row - 1]
        x[row] = previous + p.stim_b * (p.stim_mu - previous) * p.dt + kicks[row - 1]
    return x
