"""How well a network follows its targets.

The learning-curve metric of the reference (tsn.md 3.8): for every neuron, the Pearson
correlation between its target at the learning times and its synaptic current averaged
over a boxcar of +/- ``wid`` around each learning time (sampled every 1 ms); the
correlation of the network is the mean over neurons whose correlation is defined
(a constant target or current gives NaN and is left out, and counted).
"""

from __future__ import annotations

import numpy as np


def pearson_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``x`` with the same column of ``y``; NaN where
    either column is constant.  Shapes (T, N) -> (N,)."""
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    denominator = np.sqrt((x * x).sum(axis=0) * (y * y).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = (x * y).sum(axis=0) / denominator
    correlation[denominator == 0] = np.nan
    return correlation


def network_correlation(current: np.ndarray, target: np.ndarray) -> tuple[float, int]:
    """Mean per-neuron correlation of ``current`` with ``target`` (both (learn_nsteps, N)),
    and the number of neurons whose correlation is NaN."""
    per_neuron = pearson_columns(current, target)
    n_nan = int(np.isnan(per_neuron).sum())
    mean = float(np.nanmean(per_neuron)) if n_nan < per_neuron.size else float("nan")
    return mean, n_nan
