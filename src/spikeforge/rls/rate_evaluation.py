"""How well a tested network reproduces target firing rates, measured in rate space.

When the targets came from rates (a spike file's PSTHs or a rate file), ``test`` turns the
recorded neurons' spikes into PSTHs the way the targets were made (:func:`spikeforge.core.recordings.psth`:
1-ms bins after ``stim_off``, averaged over the test trials, Gaussian smoothing of
``smoothing_ms``, read at the learning times) and compares them with the target rates, neuron
by neuron, over the learning times of every task:

* ``correlation``: Pearson correlation of the PSTH with the target rate (NaN where either is flat);
* ``rms_error_hz``: root-mean-square difference [Hz];
* ``mean_ratio``: the PSTH's mean over the target's mean (1 = the right mean rate);
* ``poisson_correlation``: the same correlation for an inhomogeneous Poisson process of the target
  rates with as many trials and the same smoothing: the ceiling that finite trials allow.

Hidden neurons (no recorded unit, NaN target rate) are not evaluated.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikeforge.core import recordings
from spikeforge.core import rng as streams
from spikeforge.rls.evaluation import pearson_columns
from spikeforge.rls.params import Params


class RateScores(NamedTuple):
    """Per-neuron scores (NaN for neurons without a target rate) and the PSTHs they came from."""

    psth: np.ndarray  # (tasks, learn_nsteps, n) [Hz] of the tested network
    correlation: np.ndarray  # (n,)
    rms_error_hz: np.ndarray  # (n,) [Hz]
    mean_ratio: np.ndarray  # (n,)
    poisson_correlation: np.ndarray  # (n,)

    def summary(self, ntrials: int) -> str:
        """One paragraph: medians over the evaluated neurons."""
        evaluated = np.isfinite(self.mean_ratio)
        if not evaluated.any():
            return "rate space: no recorded neuron among those tested"

        def median(values):
            finite = values[evaluated & np.isfinite(values)]
            return f"{np.median(finite):.3f}" if finite.size else "nan"

        return (f"rate space ({int(evaluated.sum())} recorded neurons, {ntrials} trials): median PSTH correlation "
                f"{median(self.correlation)} (Poisson ceiling {median(self.poisson_correlation)}), median mean-rate "
                f"ratio {median(self.mean_ratio)}, median RMS error {median(self.rms_error_hz)} Hz")


def model_psth(p: Params, spike_step: np.ndarray, spike_task: np.ndarray, spike_trial: np.ndarray,
               spike_column: np.ndarray, n_columns: int, ntrials: int, n_tasks: int, smoothing_ms: float) -> np.ndarray:
    """(tasks, learn_nsteps, n_columns) PSTHs [Hz] of recorded spikes (steps, 1-based; ``spike_column``:
    the position of each spike's neuron among the recorded ones), at the learning times."""
    time_ms = spike_step * p.dt - p.dt / 2 - p.stim_off  # mid-step, after stim_off
    after = time_ms >= 0
    sample = p.learn_every * np.arange(1, p.steps.learn_nsteps + 1)
    out = np.zeros((n_tasks, sample.size, n_columns))
    for task in range(n_tasks):
        mine = after & (spike_task == task)
        spikes = recordings.from_arrays(spike_trial[mine], spike_column[mine], time_ms[mine], (0.0, p.train_duration),
                                        n_trials=ntrials, unit_ids=np.arange(n_columns).astype(str))
        out[task] = recordings.psth(spikes, np.minimum(sample, p.train_duration), smoothing_ms)
    return out


def trial_psth_correlation(p: Params, spike_steps: np.ndarray, spike_count: np.ndarray, target_rates: np.ndarray,
                           smoothing_ms: float) -> float:
    """Median over the neurons with a target rate of the correlation between their PSTH in one
    trial and their (learn_nsteps, N) ``target_rates`` (NaN: hidden); from the recorded
    ``spike_steps`` (N, max_times) and ``spike_count`` (N,) of a training trial."""
    recorded = np.flatnonzero(np.all(np.isfinite(target_rates), axis=0))
    counts = np.minimum(spike_count[recorded], spike_steps.shape[1])
    stored = np.arange(spike_steps.shape[1])[None, :] < counts[:, None]
    column, _ = np.nonzero(stored)
    steps = spike_steps[recorded][stored]
    zeros = np.zeros(steps.size, dtype=np.int64)
    psth = model_psth(p, steps, zeros, zeros, column, recorded.size, 1, 1, smoothing_ms)[0]
    correlation = pearson_columns(psth, target_rates[:, recorded])
    return float(np.nanmedian(correlation)) if np.isfinite(correlation).any() else float("nan")


def poisson_psth(p: Params, target_rates: np.ndarray, ntrials: int, smoothing_ms: float,
                 rng: np.random.Generator) -> np.ndarray:
    """PSTHs of ``ntrials`` inhomogeneous Poisson trains of (tasks, learn_nsteps, n) ``target_rates``
    (linear between the learning times, constant before the first), made as :func:`model_psth` makes them."""
    sample = p.learn_every * np.arange(1, p.steps.learn_nsteps + 1)
    centres = np.arange(int(np.ceil(p.train_duration / recordings.BIN_MS))) * recordings.BIN_MS + recordings.BIN_MS / 2
    out = np.empty_like(target_rates)
    for task in range(target_rates.shape[0]):
        rates_1ms = np.stack([np.interp(centres, sample, column) for column in target_rates[task].T], axis=0)
        counts = rng.poisson(np.maximum(rates_1ms, 0) * ntrials * recordings.BIN_MS / 1000.0)  # summed over trials
        out[task] = recordings.binned_psth(counts, ntrials, 0.0, np.minimum(sample, p.train_duration), smoothing_ms)
    return out


def scores(p: Params, psth: np.ndarray, target_rates: np.ndarray, ntrials: int, smoothing_ms: float) -> RateScores:
    """Compare (tasks, learn_nsteps, n) PSTHs with the target rates (NaN columns: hidden neurons)."""
    evaluated = np.all(np.isfinite(target_rates), axis=(0, 1))
    targets = np.where(evaluated, target_rates, 0.0)
    poisson = poisson_psth(p, targets, ntrials, smoothing_ms, streams.stream(p.seed, "poisson_ceiling"))
    n = psth.shape[2]
    model, target = psth.reshape(-1, n), targets.reshape(-1, n)  # (tasks * time, n): one column per neuron
    nan = np.full(n, np.nan)
    correlation = np.where(evaluated, pearson_columns(model, target), nan)
    rms = np.where(evaluated, np.sqrt(np.mean((model - target) ** 2, axis=0)), nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(evaluated, model.mean(axis=0) / target.mean(axis=0), nan)
    ceiling = np.where(evaluated, pearson_columns(poisson.reshape(-1, n), target), nan)
    return RateScores(psth, correlation, rms, ratio, ceiling)
