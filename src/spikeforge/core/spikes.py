"""Spike-train statistics shared by the capabilities (times in ms, rates in Hz)."""

from __future__ import annotations

import numpy as np


def psth(spike_times_ms: np.ndarray, edges_ms: np.ndarray, n_trials: int) -> np.ndarray:
    """Peri-stimulus time histogram: spikes per bin per trial divided by the bin width, in Hz.

    Args:
        spike_times_ms: pooled spike times of all trials [ms]; times outside the edges are ignored.
        edges_ms: increasing bin edges [ms]; bins are [e_k, e_{k+1}), the last one closed.
        n_trials: number of trials pooled.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials = {n_trials} must be >= 1")
    counts, _ = np.histogram(spike_times_ms, bins=edges_ms)
    return counts / n_trials / (np.diff(edges_ms) / 1000.0)

