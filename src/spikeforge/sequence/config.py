"""The configuration of ``spikeforge sequence run``: one TOML file, checked completely before any
simulation.

Top level: ``seed`` (optional: a fresh one is drawn, printed and saved), ``training_s`` (simulated
seconds of STDP training), ``test_s`` (length of each test) and ``tests`` (test runs before and after
training: the readouts are fitted on the first and scored on the second), ``snapshot_every_s`` (how often
the weights are saved during training).  Tables: ``[network]`` (the keywords of
:class:`~spikeforge.sequence.model.Network`), ``[inputs]`` (the training inputs: the fields of
:class:`~spikeforge.sequence.inputs.InputConfig`, or the original's names such as ``r_input``) and
``[test]`` (what differs in the tests' inputs; by default noise phases of 300-800 ms).
``spikeforge sequence new`` writes the full-scale experiment's file with every value spelled out.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from spikeforge.core.store import require_file
from spikeforge.errors import DataFileError, ParameterError

NETWORK_KEYS = ("grid_shape", "k_min", "k_max", "n_inputs", "n_links", "lam", "use_stp", "use_variance_tracking",
                "eta0", "paper_stdp", "stdp_c", "random_initial_weights", "use_intrinsic_plasticity")
WHOLE_NUMBERS = ("k_min", "k_max", "n_inputs", "n_links")
TOP_KEYS = ("seed", "training_s", "test_s", "tests", "snapshot_every_s", "network", "inputs", "test")
TEST_DEFAULTS = {"t_noise_range": [300.0, 800.0]}

TEMPLATE = """\
# spikeforge sequence run: a grid of winner-take-all circuits learns patterns embedded in noise with
# STDP (Klampfl & Maass 2013).  These are the values of the full-scale experiment (the paper's Fig. 4A
# as the thesis replicated it: 10 x 5 circuits, one 300-ms pattern in noise, 100 s of training).
{seed_line}
training_s = {training_s:<10}# simulated seconds of training (STDP, variance tracking, STP)
test_s = {test_s:<14}# length of each test run [s]; learning off, from rest
tests = {tests:<15}# test runs before and after training (readouts: fitted on the first, scored on the second)
snapshot_every_s = {snapshot_every_s:<4}# the weights are saved every this many simulated seconds of training

[network]
grid_shape = [10, 5]      # circuits (rows, columns)
k_min = 2                 # neurons per circuit: uniform in k_min..k_max
k_max = 10
n_inputs = 100            # input channels (each projects to every neuron)
n_links = 1000            # linked circuit pairs (distance ~ Exponential(lam))
lam = 0.088               # [1/grid unit]
use_stp = true            # short-term plasticity on recurrent synapses
use_variance_tracking = true   # adaptive learning rates (else eta0 / t)
eta0 = 0.05
paper_stdp = false        # the paper's rule c e^-w y - 1 instead of the code's
random_initial_weights = false
use_intrinsic_plasticity = false   # the legacy bias rule (off in every published run)

[inputs]
r_noise = 5.0             # [Hz] every channel in noise phases
r_input = 5.0             # [Hz] the frozen patterns
r_noise_pattern = 2.0     # [Hz] extra noise during patterns
use_noise = true
n_patterns = 1
t_pattern = [300.0]       # [ms] one length per pattern
t_noise_range = [300.0, 500.0]   # [ms] noise phases are uniform in this range
pattern_sequences = [[0], [0]]   # patterns shown back to back; which sequence comes next: mode
mode = "random_switching" # random_switching, random_ind, alternating, random_iterate
p_switch = 0.5
time_warp = [1.0, 1.0]    # each presentation stretched by U[low, high]

[test]                    # what differs in the tests' inputs
t_noise_range = [300.0, 800.0]
"""


@dataclass(frozen=True)
class RunConfig:
    """The configuration of one sequence run, as :func:`parse` reads it from the TOML file (the defaults are
    those of a file that sets nothing).

    Attributes:
        seed: the seed of every random stream; None when the file sets none (the run draws one).
        training_s: simulated training time [s].
        test_s: length of each test run [s].
        tests: test runs before training, and as many after it (at least 2: the readouts are fitted on the
            first and scored on the second).
        snapshot_every_s: simulated training time between weight snapshots [s].
        network: the ``[network]`` table as written: the keywords of :class:`~spikeforge.sequence.model.Network`.
        inputs: the ``[inputs]`` table as written: the settings of the training inputs.
        test: the ``[test]`` table as written: what differs in the tests' inputs.

    :func:`parse` has checked the tables' names and kinds; :meth:`build` checks their values.
    """

    seed: int | None = None
    training_s: float = 100.0
    test_s: float = 3.0
    tests: int = 2
    snapshot_every_s: float = 10.0
    network: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Every value that shapes a run (what run.h5 records and a resumed run must match)."""
        return {"training_s": self.training_s, "test_s": self.test_s, "tests": self.tests,
                "snapshot_every_s": self.snapshot_every_s, "network": self.network, "inputs": self.inputs,
                "test": self.test}

    def build(self):
        """(network, training input generator, test input generator), every value checked (seed 0 when the
        configuration sets none)."""
        from spikeforge.sequence.inputs import InputConfig, InputGenerator, config_from
        from spikeforge.sequence.model import Network

        seed = 0 if self.seed is None else self.seed
        check_memory(self)  # before anything large is built
        try:
            network = Network(**self.network, seed=seed)
        except TypeError as error:
            raise ParameterError(f"[network] holds a value of the wrong kind ({error})") from None
        base = InputConfig(n_inputs=network.n_inputs, dt=network.neuron.dt)
        training_config = config_from(self.inputs, base, "[inputs] ", network_given=True)
        test_config = config_from({**TEST_DEFAULTS, **self.test}, training_config, "[test] ", network_given=True)
        training, testing = InputGenerator(training_config, seed), InputGenerator(test_config, seed)
        for name, run_ms, generator in (("test_s", self.test_s * 1000.0, testing),
                                        ("training_s", self.training_s * 1000.0, training)):
            if name == "training_s" and run_ms == 0:
                continue
            if run_ms < generator.longest_cycle_ms():
                raise ParameterError(
                    f"{name} = {run_ms / 1000.0:g} s is shorter than a noise phase and a pattern sequence "
                    f"({generator.longest_cycle_ms():g} ms at most); expected {name} >= "
                    f"{math.ceil(generator.longest_cycle_ms()) / 1000.0:g} s, or shorter patterns")
        return network, training, testing


def _unknown(name: str, known, where: str) -> ParameterError:
    close = difflib.get_close_matches(name, list(known), 1)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; expected one of {', '.join(known)}"
    return ParameterError(f"{where} has no setting {name!r}{hint}")


def _number(values: dict, name: str, low: float, integer: bool = False, allow_zero: bool = True):
    value = values[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ParameterError(f"{name} = {value!r}; expected {'a whole number' if integer else 'a number'}")
    if not math.isfinite(value) or value < low or (not allow_zero and value == 0):
        bound = f"> {low:g}" if not allow_zero else f">= {low:g}"
        raise ParameterError(f"{name} = {value}; expected a finite number {bound}")
    return value


def parse(values: dict) -> RunConfig:
    """A RunConfig from the TOML's values (names and kinds checked; the models check the values)."""
    for name in values:
        if name not in TOP_KEYS:
            raise _unknown(name, TOP_KEYS, "the configuration")
    for table in ("network", "inputs", "test"):
        if not isinstance(values.get(table, {}), dict):
            raise ParameterError(f"{table} must be a table ([{table}]), not {values[table]!r}")
    for name, value in values.get("network", {}).items():
        if name not in NETWORK_KEYS:
            raise _unknown(name, NETWORK_KEYS, "[network]")
        flag = name.startswith("use_") or name in ("paper_stdp", "random_initial_weights")
        if flag and not isinstance(value, bool):
            raise ParameterError(f"[network] {name} = {value!r}; expected true or false")
        if name == "grid_shape":
            if not (isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)):
                raise ParameterError(f"[network] grid_shape = {value!r}; expected two whole numbers [rows, columns]")
        elif name in WHOLE_NUMBERS and type(value) is not int:
            raise ParameterError(f"[network] {name} = {value!r}; expected a whole number")
        elif not flag and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ParameterError(f"[network] {name} = {value!r}; expected a number")
    settings = {**RunConfig().as_dict(), **{k: v for k, v in values.items() if k != "seed"}}
    _number(settings, "training_s", 0.0)
    _number(settings, "test_s", 0.0, allow_zero=False)
    _number(settings, "tests", 2, integer=True)
    _number(settings, "snapshot_every_s", 0.0, allow_zero=False)
    seed = values.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise ParameterError(f"seed = {seed!r}; expected a whole number in [0, 2**63)")
    return RunConfig(seed=seed, training_s=float(settings["training_s"]), test_s=float(settings["test_s"]),
                     tests=int(settings["tests"]), snapshot_every_s=float(settings["snapshot_every_s"]),
                     network=dict(settings["network"]), inputs=dict(settings["inputs"]), test=dict(settings["test"]))


def load(path) -> RunConfig:
    """The configuration in TOML file ``path``, parsed and checked (see :meth:`RunConfig.build`)."""
    path = Path(path)
    require_file(path, "configuration")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise DataFileError(f"configuration {str(path)!r} is not valid TOML ({error})") from None
    config = parse(values)
    config.build()
    return config


def template(training_s: float = 100.0, test_s: float = 3.0, tests: int = 2, snapshot_every_s: float = 10.0,
               seed: int | None = None) -> str:
    """The text of a configuration file with every value of the full-scale experiment."""
    seed_line = "# seed = 1" if seed is None else f"seed = {int(seed)}"
    seed_line += " " * max(1, 26 - len(seed_line)) + "# every random stream (unset: a fresh seed, printed and saved)"
    return TEMPLATE.format(seed_line=seed_line, training_s=f"{training_s:g}", test_s=f"{test_s:g}", tests=tests,
                           snapshot_every_s=f"{snapshot_every_s:g}")


def check_memory(config: RunConfig) -> None:
    """ParameterError, naming the sizes, when a run would need more memory than this machine has, from the
    configuration's values alone (checked before the network is built): the synapses (32 bytes each:
    index, weight, two variance-tracking moments), the training inputs (two bytes per channel and 1-ms
    step) and the tests' spikes, rates and inputs (all tests kept)."""
    from spikeforge.core.resources import human_bytes
    from spikeforge.rls.estimate import available_memory

    values = {"grid_shape": [10, 5], "k_min": 2, "k_max": 10, "n_inputs": 100, "n_links": 1000, **config.network}
    rows, columns = values["grid_shape"]
    circuits = max(rows * columns, 1)
    mean_size = (values["k_min"] + values["k_max"]) / 2.0
    neurons = circuits * mean_size
    synapses = neurons * (values["n_inputs"] + mean_size * values["n_links"] / circuits)
    test_steps = 2 * config.tests * config.test_s * 1000.0
    need = 32 * synapses + 2 * config.training_s * 1000.0 * values["n_inputs"] + test_steps * (
        5 * neurons + 2 * values["n_inputs"])
    free = available_memory()
    if free is not None and need > free:
        raise ParameterError(f"this run needs about {human_bytes(need)} of memory (about {neurons:.0f} neurons, "
                             f"{values['n_inputs']} inputs, training_s = {config.training_s:g}, test_s = "
                             f"{config.test_s:g}), but this machine has {human_bytes(free)} available")
