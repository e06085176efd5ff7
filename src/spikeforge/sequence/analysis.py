"""What a trained WTA grid has learned (sequence.md 9): neurons ordered by their mean activation time in
a pattern, pattern-selective neurons, a linear readout of the pattern from the network state, the
trial-to-trial reliability of the rate traces, and the consistency of the neurons' peak-time order.

Arrays are per 1-ms step: ``rates`` (steps x neurons) [Hz], ``spikes`` (steps x neurons, bool); a
presentation is (first step, length in steps).
"""

from __future__ import annotations

import numpy as np


def activation_times(rates: np.ndarray, start: int, length: int) -> np.ndarray:
    """Mean activation time [steps] of every neuron in the window [start, start + length): the circular
    mean of t under the weights r(t), z = sum r(t) e^(2 pi i t / L) / sum r(t), t = arg z L / (2 pi) in
    [0, L) (a neuron active at both ends of the window lands at one end, not in the middle).  NaN for a
    neuron silent in the window."""
    window = np.asarray(rates[start:start + length], dtype=np.float64)
    phase = np.exp(2j * np.pi * np.arange(window.shape[0]) / length)
    total = window.sum(axis=0)
    z = (phase[:, None] * window).sum(axis=0) / np.where(total > 0, total, 1.0)
    times = np.mod(np.angle(z), 2 * np.pi) * length / (2 * np.pi)
    return np.where(total > 0, times, np.nan)


def activation_order(rates: np.ndarray, start: int, length: int) -> np.ndarray:
    """Neurons sorted by :func:`activation_times` (silent ones last): the row order of a raster in which
    assemblies show as diagonals."""
    times = activation_times(rates, start, length)
    return np.argsort(np.where(np.isnan(times), np.inf, times), kind="stable")


def selective(activity: np.ndarray, in_pattern: np.ndarray, factor: float = 2.0, margin_hz: float = 5.0,
              dt_ms: float = 1.0) -> np.ndarray:
    """bool (neurons,): the mean rate during patterns exceeds ``factor`` times the rate during noise plus
    ``margin_hz``.  ``activity``: rates [Hz] or spikes (converted with ``dt_ms``); ``in_pattern``: bool
    per step."""
    activity = np.asarray(activity)
    scale = 1000.0 / dt_ms if activity.dtype == bool else 1.0
    in_pattern = np.asarray(in_pattern, dtype=bool)
    if not in_pattern.any() or in_pattern.all():
        raise ValueError("selectivity needs steps both inside and outside patterns")
    during = activity[in_pattern].mean(axis=0) * scale
    outside = activity[~in_pattern].mean(axis=0) * scale
    return during > factor * outside + margin_hz


def filtered_state(spikes: np.ndarray, tau_ms: float = 20.0, dt_ms: float = 1.0) -> np.ndarray:
    """The spike trains low-pass filtered as the readouts see them: x <- x + z - x dt / tau per step."""
    decay = 1.0 - dt_ms / tau_ms
    state = np.empty(spikes.shape)
    current = np.zeros(spikes.shape[1])
    for t, row in enumerate(np.asarray(spikes, dtype=np.float64)):  # per step, vectorised over neurons
        current = current * decay + row
        state[t] = current
    return state


def sample_steps(n_steps: int, every: int = 20) -> np.ndarray:
    """The readout's sample steps: every ``every`` steps, from ``every - 1`` (t = 19, 39, ... ms)."""
    return np.arange(every - 1, n_steps, every)


def fit_readout(features: np.ndarray, target: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Ridge regression (with a bias column) of ``target`` on ``features`` (samples x features)."""
    design = np.column_stack([features, np.ones(features.shape[0])])
    gram = design.T @ design + ridge * np.eye(design.shape[1])
    return np.linalg.solve(gram, design.T @ np.asarray(target, dtype=np.float64))


RIDGES = (0.1, 1.0, 10.0, 100.0, 1000.0)


def fit_readout_cv(features: np.ndarray, target: np.ndarray, ridges=RIDGES, folds: int = 5) -> np.ndarray:
    """:func:`fit_readout` with the ridge penalty among ``ridges`` whose readouts, fitted on all but one of
    ``folds`` contiguous blocks of samples and tested on that block, err least (mean squared error).  Only
    the fitting run is used: the held-out run stays unseen."""
    n = features.shape[0]
    block = np.arange(n) * folds // n
    target = np.asarray(target, dtype=np.float64)
    errors = []
    for ridge in ridges:
        error = 0.0
        for fold in range(folds):
            held = block == fold
            coefficients = fit_readout(features[~held], target[~held], ridge)
            output = np.column_stack([features[held], np.ones(held.sum())]) @ coefficients
            error += float(np.sum((output - target[held]) ** 2))
        errors.append(error)
    return fit_readout(features, target, ridges[int(np.argmin(errors))])


def readout_correlation(coefficients: np.ndarray, features: np.ndarray, target: np.ndarray) -> float:
    """Pearson correlation of the readout's output with ``target`` (0 when either is constant)."""
    output = np.column_stack([features, np.ones(features.shape[0])]) @ coefficients
    if np.std(output) == 0 or np.std(target) == 0:
        return 0.0
    return float(np.corrcoef(output, target)[0, 1])


def trial_correlation(rates: np.ndarray, presentations, threshold_hz: float = 90.0) -> float:
    """Trial-to-trial reliability (the original's ``spike_correlation``): over the first three
    presentations (equal lengths), the mean over neurons whose peak rate exceeds ``threshold_hz`` in both
    of the correlation of their rate traces in presentation 1 and 2, and in 1 and 3.  NaN if no neuron
    qualifies."""
    if len(presentations) < 2:
        raise ValueError("trial-to-trial correlation needs at least two presentations")
    length = min(length for _, length in presentations[:3])
    traces = [np.asarray(rates[start:start + length], dtype=np.float64) for start, _ in presentations[:3]]
    values = []
    first = traces[0]
    for other in traces[1:]:
        usable = (first.max(axis=0) > threshold_hz) & (other.max(axis=0) > threshold_hz) & (
            first.std(axis=0) > 0) & (other.std(axis=0) > 0)
        a = (first[:, usable] - first[:, usable].mean(axis=0)) / first[:, usable].std(axis=0)
        b = (other[:, usable] - other[:, usable].mean(axis=0)) / other[:, usable].std(axis=0)
        values.append((a * b).mean(axis=0))  # the Pearson correlation of each usable neuron
    values = np.concatenate(values)
    return float(values.mean()) if values.size else float("nan")


def peak_order_consistency(rates: np.ndarray, first, second, neurons: np.ndarray) -> float:
    """Spearman correlation of the ``neurons``' peak times [steps] in two presentations (start, length)."""
    from scipy.stats import spearmanr

    peaks = [np.argmax(np.asarray(rates[start:start + length])[:, neurons], axis=0) for start, length in (first,
                                                                                                       second)]
    if len(neurons) < 3:
        return float("nan")
    return float(spearmanr(peaks[0], peaks[1]).statistic)
