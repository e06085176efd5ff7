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


TEST_NOISE_MS = (300.0, 800.0)  # noise phases of the tests


class Scores(NamedTuple):
    """What a network learned, measured on its test runs (:func:`scores`); NaN where a score cannot be computed."""

    selective: float  # fraction of pattern-selective neurons (rates in the evaluation test)
    readout: float  # held-out Pearson r of a ridge readout of "pattern or noise" (trained on test a, scored on b)
    trial_correlation: float  # trial-to-trial r of the selective rate traces over the first presentations
    peak_order: float  # Spearman r of the selective neurons' peak times in two presentations
    warped_readout: float  # the readout of test a scored on a test whose presentations are stretched by U[0.5, 2]


class Identity(NamedTuple):
    """How often a readout names the pattern shown (:func:`identity_accuracy`), with the chance level."""

    accuracy: float  # held-out fraction of pattern samples whose pattern the readout names
    chance: float  # the fraction of the most frequent pattern among the scored samples


def test_run(network: Network, generator: InputGenerator, seed: int, k: int, duration_ms: float = 3000.0) -> Run:
    """Test run ``k``: from rest, learning off, rates recorded."""
    network.reset_transients()
    inputs = generator.generate(duration_ms, streams.stream(seed, "sequence", "test", k))
    return network.run(inputs, streams.stream(seed, "sequence", "test-spiking", k), train=False, record_rates=True)


def readout_score(fit_on: Run, score_on: Run, ridge: float | None = None) -> float:
    """A ridge readout of "a pattern is shown" from the filtered network state, fitted on one run and
    scored (Pearson r at the 20-ms samples) on another.  ``ridge``: the penalty (None: chosen by
    cross-validation on the fitting run, :func:`~spikeforge.sequence.analysis.fit_readout_cv`)."""
    samples = [analysis.sample_steps(run.spikes.shape[0]) for run in (fit_on, score_on)]
    features = [analysis.filtered_state(run.spikes)[s] for run, s in zip((fit_on, score_on), samples)]
    targets = [(run.inputs.pattern[s] >= 0).astype(float) for run, s in zip((fit_on, score_on), samples)]
    coefficients = (analysis.fit_readout_cv(features[0], targets[0]) if ridge is None
                    else analysis.fit_readout(features[0], targets[0], ridge))
    return analysis.readout_correlation(coefficients, features[1], targets[1])


def identity_accuracy(fit_on: Run, score_on: Run, n_patterns: int) -> Identity:
    """Which pattern is shown: a one-hot ridge readout of the filtered state at the 20-ms samples inside
    patterns, fitted on one run; the fraction of the other run's samples where its largest output names
    the pattern shown."""
    features, labels = [], []
    for run in (fit_on, score_on):
        steps = analysis.sample_steps(run.spikes.shape[0])
        shown = run.inputs.pattern[steps]
        features.append(analysis.filtered_state(run.spikes)[steps][shown >= 0])
        labels.append(shown[shown >= 0])
    coefficients = analysis.fit_readout_cv(features[0], np.eye(n_patterns)[labels[0]])
    output = np.column_stack([features[1], np.ones(len(features[1]))]) @ coefficients
    chance = np.bincount(labels[1], minlength=n_patterns).max() / max(len(labels[1]), 1)
    return Identity(float(np.mean(output.argmax(axis=1) == labels[1])), float(chance))


def scores(fit_on: Run, score_on: Run, warped: Run | None = None) -> Scores:
    """The :class:`Scores` of a network from its test runs, which must have recorded rates.

    The selective fraction, trial-to-trial correlation and peak order come from ``score_on``'s rates (the last
    two over the presentations that end inside the run; NaN with fewer than two).  The readout is fitted on
    ``fit_on`` and scored on ``score_on``, and for ``warped_readout`` on ``warped`` (NaN when it is None).
    """
    in_pattern = score_on.inputs.pattern >= 0
    chosen = analysis.selective(score_on.rates, in_pattern)
    shown = [(p.start, p.length) for p in score_on.inputs.phases
             if p.pattern >= 0 and p.start + p.length <= score_on.spikes.shape[0]]
    reliability = analysis.trial_correlation(score_on.rates, shown) if len(shown) >= 2 else float("nan")
    order = (analysis.peak_order_consistency(score_on.rates, shown[0], shown[1], np.flatnonzero(chosen))
             if len(shown) >= 2 else float("nan"))
    warped_score = readout_score(fit_on, warped) if warped is not None else float("nan")
    return Scores(float(chosen.mean()), readout_score(fit_on, score_on), reliability, order, warped_score)


def full_scale(seed: int, training_ms: float = 100_000.0, **network_options) -> tuple[Scores, Scores]:
    """Scores of the untrained and of the trained network (sequence.md 4.1: a 10 x 5 grid, one 300-ms
    pattern at 5 Hz in 5-Hz noise).  Test 4 (5 before training) stretches every presentation by a
    factor drawn from U[0.5, 2]."""
    network = Network(seed=seed, **network_options)
    test_generator = InputGenerator(InputConfig(t_noise_range=TEST_NOISE_MS), seed)
    warped_generator = InputGenerator(InputConfig(t_noise_range=TEST_NOISE_MS, time_warp=(0.5, 2.0)), seed)
    before = scores(test_run(network, test_generator, seed, 0), test_run(network, test_generator, seed, 1),
                    test_run(network, warped_generator, seed, 5))
    train(network, InputGenerator(InputConfig(), seed), seed, training_ms)
    after = scores(test_run(network, test_generator, seed, 2), test_run(network, test_generator, seed, 3),
                   test_run(network, warped_generator, seed, 4))
    return before, after


def train(network: Network, generator: InputGenerator, seed: int, training_ms: float) -> Run:
    """From rest, ``training_ms`` of STDP on ``generator``'s inputs (streams ("sequence", "train") and ("sequence",
    "spiking"))."""
    network.reset_transients()  # training starts from rest, whatever ran before
    inputs = generator.generate(training_ms, streams.stream(seed, "sequence", "train"))
    return network.run(inputs, streams.stream(seed, "sequence", "spiking"), train=True)


def two_patterns(seed: int, training_ms: float = 100_000.0) -> tuple[Identity, Identity]:
    """Pattern identity before and after training on two 300-ms patterns, each its own sequence
    (``pattern_sequences = [[0], [1]]``, random switching), on the full grid; tests of 6 s alternate the
    patterns."""
    network = Network(seed=seed)
    two = dict(n_patterns=2, t_pattern=(300.0, 300.0), pattern_sequences=((0,), (1,)))
    tests = InputGenerator(InputConfig(t_noise_range=TEST_NOISE_MS, mode="alternating", **two), seed)
    before = identity_accuracy(test_run(network, tests, seed, 0, 6000.0), test_run(network, tests, seed, 1, 6000.0), 2)
    train(network, InputGenerator(InputConfig(**two), seed), seed, training_ms)
    after = identity_accuracy(test_run(network, tests, seed, 2, 6000.0), test_run(network, tests, seed, 3, 6000.0), 2)
    return before, after
