"""The original's API: ``InputGenerator(network, r_input=..., ...)`` and ``Recorder.run_network``, with
snapshots that match the network's state and runs that do not depend on how they are cut."""

import numpy as np
import pytest

from spikeforge.errors import ParameterError
from spikeforge.sequence import experiment
from spikeforge.sequence.inputs import InputConfig, InputGenerator, window
from spikeforge.sequence.model import Network
from spikeforge.sequence.recorder import Recorder


def small(seed=3, **options):
    return Network(grid_shape=(3, 2), k_min=2, k_max=4, n_inputs=20, n_links=10, seed=seed, **options)


def test_input_generator_takes_the_readme_call():
    grid = small()
    generator = InputGenerator(grid, r_noise=5, r_input=5, r_noise_pattern=2, use_noise=True,
                               t_noise_range=[500.0, 800.0], n_patterns=2, t_pattern=[300.0] * 2,
                               pattern_sequences=[[0], [1]])
    c = generator.config
    assert (c.n_inputs, c.r_input, c.t_noise_range, c.pattern_sequences) == (20, 5.0, (500.0, 800.0), ((0,), (1,)))
    assert generator.seed == grid.seed
    # same as the explicit form: the patterns are the network seed's
    explicit = InputGenerator(InputConfig(n_inputs=20, r_noise_pattern=2.0, t_noise_range=(500.0, 800.0), n_patterns=2,
                                          t_pattern=(300.0, 300.0), pattern_sequences=((0,), (1,))), grid.seed)
    for ours, theirs in zip(generator.patterns, explicit.patterns):
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    assert InputGenerator(grid, n_patterns=3).config.t_pattern == (300.0,) * 3


@pytest.mark.parametrize("settings, message", [
    ({"r_imput": 5}, "did you mean 'r_input'"),
    ({"r_noise": -1}, "r_noise = -1"),
    ({"mode": "shuffle"}, "switching mode 'shuffle'"),
    ({"pattern_sequences": [[0], [2]]}, "name pattern 2"),
    ({"t_pattern": "long"}, "t_pattern = 'long'; expected a list of numbers"),
    ({"r_noise": [5.0]}, r"r_noise = \[5.0\]; expected a number"),
    ({"time_warp": 1.0}, "time_warp = 1.0; expected two numbers"),
    ({"t_noise_range": [300, 400, 500]}, "expected two numbers"),
    ({"pattern_sequences": [[0.5], [0]]}, "expected lists of pattern numbers"),
    ({"n_patterns": 0}, "n_patterns = 0; expected at least 1 pattern"),
    ({"n_patterns": 2.5}, "n_patterns = 2.5; expected a whole number"),
    ({"use_noise": 1}, "use_noise = 1; expected true or false"),
    ({"dt": 0.5}, "dt is the network's"),
    ({"n_inputs": 7}, "n_inputs is the network's"),
    ({"r_pattern": 7.0}, "no setting 'r_pattern'"),
])
def test_input_generator_names_the_bad_setting(settings, message):
    with pytest.raises(ParameterError, match=message):
        InputGenerator(small(), **settings)


def test_longest_cycle_covers_noise_and_the_longest_warped_sequence():
    generator = InputGenerator(InputConfig(n_patterns=2, t_pattern=(300.0, 200.0), pattern_sequences=((0, 1), (1,)),
                                           t_noise_range=(100.0, 400.0), time_warp=(0.5, 2.0)))
    assert generator.longest_cycle_ms() == 400.0 + 500.0 * 2.0


def test_window_keeps_overlapping_phases_relative_to_its_start():
    inputs = InputGenerator().generate(3000.0, np.random.default_rng(0))
    part = window(inputs, 1000, 2000)
    assert part.spikes.shape[0] == 1000 and np.array_equal(part.pattern, inputs.pattern[1000:2000])
    for phase in part.phases:
        assert phase.start < 1000 and phase.start + phase.length > 0
        assert np.all(part.pattern[max(phase.start, 0):phase.start + phase.length] == phase.pattern)


def test_snapshots_match_the_state_and_cutting_the_run_changes_nothing():
    generator = InputGenerator(small(), t_noise_range=[100, 200])
    recorded, plain = small(), small()
    recording = Recorder(recorded).run_network(generator, t_sim=1000.0, dt_rec=250.0, train=True)
    assert np.array_equal(recording.snapshot_ms, [0.0, 250.0, 500.0, 750.0, 1000.0])
    # the same inputs and spiking stream in one piece give the same spikes and weights
    from spikeforge.core import rng as streams

    run = plain.run(recording.inputs, streams.stream(plain.seed, "sequence", "recorder", 0, "spiking"), train=True,
                    record_rates=True)
    assert np.array_equal(run.spikes, recording.spikes) and np.array_equal(run.rates, recording.rates)
    assert np.array_equal(recording.weights[-1], recorded.state.weight.astype(np.float32))
    assert np.array_equal(recording.epsps[-1], (recorded.state.decay - recorded.state.rise).astype(np.float32))
    assert np.all(recording.weights[0] == 0) and np.any(recording.weights[-1] != 0)  # STDP moved them
    # the recorded synapses are each neuron's row: all inputs, then its circuit links
    first = recording.synapse_pre[recording.synapse_post == 0]
    assert np.array_equal(first[:20], np.arange(20))


def test_a_test_run_learns_nothing_and_rate_fractions_sum_to_one_per_circuit():
    grid = small()
    recorder = Recorder(grid, neurons=[0, 5])
    generator = InputGenerator(grid, t_noise_range=[100, 200])
    recorder.run_network(generator, t_sim=500.0, train=True)
    test = recorder.run_network(generator, t_sim=500.0, dt_rec=100.0, train=False)
    assert np.all(test.weights == test.weights[0])  # learning off
    assert test.epsps[0].max() == 0.0  # a test starts from rest
    fractions = test.rate_fractions(grid.neuron.r_max).astype(np.float64)
    sums = np.add.reduceat(fractions, grid.grid.starts[:-1], axis=1)
    assert np.allclose(sums, 1.0, atol=1e-5)
    assert set(np.unique(test.synapse_post)) == {0, 5}


def test_recorder_runs_differ_and_repeat():
    runs = [Recorder(small()).run_network(InputGenerator(small(), t_noise_range=[100, 200]), 600.0, train=False)
            for _ in range(2)]
    assert np.array_equal(runs[0].spikes, runs[1].spikes)  # the same script, the same result
    recorder = Recorder(small())
    first = recorder.run_network(InputGenerator(small()), 600.0, train=False)
    second = recorder.run_network(InputGenerator(small()), 600.0, train=False)
    assert not np.array_equal(first.inputs.spikes, second.inputs.spikes)  # run k has its own streams


def test_bad_recorder_settings():
    grid = small()
    with pytest.raises(ParameterError, match="expected ids in 0"):
        Recorder(grid, neurons=[grid.n_neurons])
    for neurons, message in (([0.5], "whole-number neuron ids"), (np.ones(3, bool), "boolean mask"),
                             ([1, 1], "names a neuron twice"), ([], "neurons is empty")):
        with pytest.raises(ParameterError, match=message):
            Recorder(grid, neurons=neurons)
    with pytest.raises(ParameterError, match="seed = -1"):
        small(seed=-1)
    with pytest.raises(ParameterError, match="k_min = 2.5; expected a whole number"):
        Network(grid_shape=(2, 2), k_min=2.5, n_links=2)
    with pytest.raises(ParameterError, match="the default, 1000, suits the 10 x 5 grid"):
        Network(grid_shape=(3, 3))
    with pytest.raises(ParameterError, match="expected an InputGenerator"):
        Recorder(grid).run_network(None, 100.0)
    with pytest.raises(ParameterError, match="t_sim = '100'; expected a duration in ms"):
        Recorder(grid).run_network(InputGenerator(grid), "100")
    with pytest.raises(ParameterError, match="dt_rec = 0.5 ms"):
        Recorder(grid).run_network(InputGenerator(grid), 100.0, dt_rec=0.5)
    with pytest.raises(ParameterError, match="has 100 channels; the network has 20"):
        Recorder(grid).run_network(InputGenerator(), 100.0)


def test_identity_accuracy_on_constructed_runs():
    """Neuron 0 fires in pattern 0, neuron 1 in pattern 1: the readout names every pattern sample."""
    from spikeforge.sequence.model import Run

    generator = InputGenerator(InputConfig(n_inputs=2, n_patterns=2, t_pattern=(300.0, 300.0),
                                           pattern_sequences=((0,), (1,)), mode="alternating"))
    runs = []
    for seed in (0, 1):
        inputs = generator.generate(4000.0, np.random.default_rng(seed))
        spikes = np.zeros((4000, 3), dtype=bool)
        spikes[:, 0] = (inputs.pattern == 0) & (np.arange(4000) % 5 == 0)
        spikes[:, 1] = (inputs.pattern == 1) & (np.arange(4000) % 5 == 0)
        runs.append(Run(spikes, None, inputs))
    score = experiment.identity_accuracy(runs[0], runs[1], 2)
    assert score.accuracy > 0.95 and 0.4 <= score.chance <= 0.6
    silent = Run(np.zeros((4000, 3), dtype=bool), None, runs[1].inputs)
    assert experiment.identity_accuracy(runs[0], silent, 2).accuracy <= 0.6
