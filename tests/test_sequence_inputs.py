"""Input generation of the WTA grid: rates, frozen patterns, strict alternation, switching modes, time
warp, labels, and bad settings."""

import numpy as np
import pytest

from spikeforge.errors import ParameterError
from spikeforge.sequence.inputs import InputConfig, InputGenerator


def run(config=InputConfig(), seed=0, duration=20_000.0, run_seed=1):
    generator = InputGenerator(config, seed)
    return generator, generator.generate(duration, np.random.default_rng(run_seed))


def test_rates_labels_and_strict_alternation():
    generator, inputs = run()
    noise = inputs.pattern < 0
    rate_noise = inputs.spikes[noise].mean() * 1000.0
    assert rate_noise == pytest.approx(5.0, rel=0.05)
    pattern_steps = ~noise
    assert inputs.from_pattern[pattern_steps].mean() * 1000 == pytest.approx(5.0, rel=0.15)
    extra = inputs.spikes[pattern_steps] & ~inputs.from_pattern[pattern_steps]
    assert extra.mean() * 1000 == pytest.approx(2.0, rel=0.2)
    assert not inputs.from_pattern[noise].any()
    kinds = [phase.pattern >= 0 for phase in inputs.phases]
    assert all(a != b for a, b in zip(kinds, kinds[1:]))  # noise and patterns strictly alternate
    for phase in inputs.phases[:-1]:
        if phase.pattern < 0:
            assert 300 <= phase.length <= 500
        else:
            assert phase.length == 300
            assert (inputs.pattern[phase.start:phase.start + phase.length] == 0).all()


def test_patterns_are_frozen_across_presentations_and_runs():
    generator, inputs = run()
    shown = [p for p in inputs.phases[:-1] if p.pattern == 0]
    first = inputs.from_pattern[shown[0].start:shown[0].start + 300]
    assert first.sum() > 50
    for phase in shown[1:]:
        assert np.array_equal(inputs.from_pattern[phase.start:phase.start + 300], first)
    other_run = generator.generate(5_000.0, np.random.default_rng(9))
    phase = next(p for p in other_run.phases if p.pattern == 0)
    assert np.array_equal(other_run.from_pattern[phase.start:phase.start + 300], first)
    assert not np.array_equal(other_run.spikes[:200], inputs.spikes[:200])  # but the noise is new


@pytest.mark.parametrize("mode", ["alternating", "random_iterate", "random_ind", "random_switching"])
def test_switching_modes(mode):
    config = InputConfig(n_patterns=3, t_pattern=(100.0, 150.0, 200.0), pattern_sequences=((0,), (1, 2)),
                         mode=mode, p_switch=0.0 if mode == "random_switching" else 0.5,
                         p_sequences=(0.8, 0.2) if mode == "random_ind" else None, t_noise_range=(50.0, 60.0))
    _, inputs = run(config, duration=60_000.0)
    shown = [p.sequence for p in inputs.phases[:-2] if p.pattern >= 0 and p.pattern != 2]
    if mode == "alternating":
        assert shown[:6] == [0, 1, 0, 1, 0, 1]
    elif mode == "random_iterate":
        assert all(sorted(shown[k:k + 2]) == [0, 1] for k in range(0, len(shown) - 1, 2))
    elif mode == "random_ind":
        assert np.mean(np.array(shown) == 0) == pytest.approx(0.8, abs=0.05)
    else:
        assert len(set(shown)) == 1  # never switches
    for phase in inputs.phases[:-1]:  # a sequence's patterns come back to back
        if phase.pattern == 1:
            following = next(p for p in inputs.phases if p.start == phase.start + phase.length)
            assert following.pattern == 2


def test_time_warp_stretches_the_pattern():
    config = InputConfig(time_warp=(0.5, 2.0))
    generator, inputs = run(config)
    reference = generator.patterns[0]
    warps = [p.warp for p in inputs.phases if p.pattern == 0]
    assert min(warps) >= 0.5 and max(warps) <= 2.0 and max(warps) - min(warps) > 0.5
    for phase in inputs.phases[:-1]:
        if phase.pattern == 0:
            assert phase.length == int(round(300 * phase.warp))
            channel = int(np.argmax([t.size for t in reference]))
            steps = np.flatnonzero(inputs.from_pattern[phase.start:phase.start + phase.length, channel])
            assert np.array_equal(steps, np.unique((reference[channel] * phase.warp).astype(int)))


@pytest.mark.parametrize("changes, words", [
    ({"r_noise": -1.0}, "r_noise = -1.0 Hz"),
    ({"mode": "shuffle"}, "switching mode 'shuffle' is not one of"),
    ({"pattern_sequences": ((0,), (3,))}, "name pattern 3"),
    ({"pattern_sequences": ()}, "pattern_sequences is empty"),
    ({"t_noise_range": (500.0, 300.0)}, "t_noise_range"),
    ({"time_warp": (0.0, 2.0)}, "time_warp"),
    ({"n_patterns": 2}, "1 pattern lengths for n_patterns = 2"),
])
def test_bad_input_settings(changes, words):
    with pytest.raises(ParameterError) as error:
        InputConfig(**changes).check()
    assert words in str(error.value)
