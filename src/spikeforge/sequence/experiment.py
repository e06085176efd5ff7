"""The full-scale experiment of sequence.md 4.1 and its scores: train with STDP on patterns embedded in
noise, then test twice with learning off, and measure what emerged.

Streams of ``seed``: the training inputs ("sequence", "train") and spikes ("sequence", "spiking"); test k
inputs ("sequence", "test", k) and spikes ("sequence", "test-spiking", k).  Tests start from rest
(:meth:`~spikeforge.sequence.model.Network.reset_transients`) with learning off and short-term
plasticity on (the legacy behaviour), and their noise phases last 300-800 ms.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikeforge.core import rng as streams
from spikeforge.sequence import analysis
from spikeforge.sequence.inputs import InputConfig, InputGenerator
from spikeforge.sequence.model import Network, Run


class Scores(NamedTuple):
    selective: float  # fraction of pattern-selective neurons (rates in the evaluation test)
    readout: float  # held-out Pearson r of a ridge readout of "pattern or noise" (trained on test a, scored on b)
    trial_correlation: float  # trial-to-trial r of the selective rate traces over the first presentations
    peak_order: float  # Spearman r of the selective neurons' peak times in two presentations


def test_run(network: Network, generator: InputGenerator, seed: int, k: int, duration_ms: float = 3000.0) -> Run:
    """Test run ``k``: from rest, learning off, rates recorded."""
    network.reset_transients()
    inputs = generator.generate(duration_ms, streams.stream(seed, "sequence", "test", k))
    return network.run(inputs, streams.stream(seed, "sequence", "test-spiking", k), train=False, record_rates=True)


def readout_score(fit_on: Run, score_on: Run) -> float:
    """A ridge readout of "a pattern is shown" from the filtered network state, fitted on one run and
    scored (Pearson r at the 20-ms samples) on another."""
    samples = [analysis.sample_steps(run.spikes.shape[0]) for run in (fit_on, score_on)]
    features = [analysis.filtered_state(run.spikes)[s] for run, s in zip((fit_on, score_on), samples)]
    targets = [(run.inputs.pattern[s] >= 0).astype(float) for run, s in zip((fit_on, score_on), samples)]
    coefficients = analysis.fit_readout(features[0], targets[0])
    return analysis.readout_correlation(coefficients, features[1], targets[1])


def scores(fit_on: Run, score_on: Run) -> Scores:
    in_pattern = score_on.inputs.pattern >= 0
    chosen = analysis.selective(score_on.rates, in_pattern)
    shown = [(p.start, p.length) for p in score_on.inputs.phases
             if p.pattern >= 0 and p.start + p.length <= score_on.spikes.shape[0]]
    reliability = analysis.trial_correlation(score_on.rates, shown) if len(shown) >= 2 else float("nan")
    order = (analysis.peak_order_consistency(score_on.rates, shown[0], shown[1], np.flatnonzero(chosen))
             if len(shown) >= 2 else float("nan"))
    return Scores(float(chosen.mean()), readout_score(fit_on, score_on), reliability, order)


def full_scale(seed: int, training_ms: float = 100_000.0, **network_options) -> tuple[Scores, Scores]:
    """Scores of the untrained and of the trained network (sequence.md 4.1: a 10 x 5 grid, one 300-ms
    pattern at 5 Hz in 5-Hz noise)."""
    network = Network(seed=seed, **network_options)
    test_generator = InputGenerator(InputConfig(t_noise_range=(300.0, 800.0)), seed)
    before = scores(test_run(network, test_generator, seed, 0), test_run(network, test_generator, seed, 1))
    training = InputGenerator(InputConfig(), seed).generate(training_ms, streams.stream(seed, "sequence", "train"))
    network.run(training, streams.stream(seed, "sequence", "spiking"), train=True)
    after = scores(test_run(network, test_generator, seed, 2), test_run(network, test_generator, seed, 3))
    return before, after
