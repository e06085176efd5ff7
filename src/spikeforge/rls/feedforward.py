"""Feed-forward Poisson neurons (tsn.md 4.5): ``lx`` neurons that fire after ``stim_off``
with rates following smoothed Ornstein-Uhlenbeck profiles, and project to every neuron
through plastic weights learned by RLS like the recurrent ones.

A feed-forward neuron ``c`` is presynaptic index ``n_cells + c``: its filtered spike train
is ``r[n_cells + c]`` and its weights are the first ``lx`` plastic inputs of every neuron.
"""

from __future__ import annotations

import numpy as np

from spikeforge.rls.params import Params


def spike_probabilities(p: Params, rng: np.random.Generator) -> np.ndarray:
    """Per-step spike probability of each feed-forward neuron, shape ((train_time - stim_off)/dt, lx).

    The rate starts at ``ff_mu`` Hz and follows ``x <- x + ff_b (ff_mu - x) dt + ff_sig sqrt(dt) xi``,
    is smoothed by a centred moving average of +/- ``ff_smooth`` ms (truncated at the edges),
    converted to a probability per step (``rate * dt / 1000``) and clipped at 0.
    """
    n_rows = p.steps.n_steps - p.steps.stim_off_step
    if p.lx == 0:
        return np.zeros((n_rows, 0))
    rate = np.empty((n_rows, p.lx))
    rate[0] = p.ff_mu
    kicks = p.ff_sig * np.sqrt(p.dt) * rng.standard_normal((n_rows - 1, p.lx))
    for row in range(1, n_rows):
        rate[row] = rate[row - 1] + p.ff_b * (p.ff_mu - rate[row - 1]) * p.dt + kicks[row - 1]
    half = round(p.ff_smooth / p.dt)
    cumulative = np.vstack([np.zeros((1, p.lx)), np.cumsum(rate, axis=0)])
    lo = np.clip(np.arange(n_rows) - half, 0, n_rows)
    hi = np.clip(np.arange(n_rows) + half + 1, 0, n_rows)
    smoothed = (cumulative[hi] - cumulative[lo]) / (hi - lo)[:, None]
    return np.clip(smoothed * p.dt / 1000, 0, None)


def initial_weights(p: Params, rng: np.random.Generator) -> np.ndarray:
    """Initial feed-forward weights ``wpx * N(0, 1)``, shape (n_cells, lx)."""
    return p.wpx * rng.standard_normal((p.n_cells, p.lx))
