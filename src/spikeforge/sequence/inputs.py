"""Input spike trains for the WTA grid: frozen Poisson patterns embedded in Poisson noise (sequence.md 5).

A run alternates noise phases and pattern sequences.  A *pattern* p is a frozen Poisson spike train on
every input channel, ``t_pattern[p]`` ms long at ``r_input`` Hz, drawn once from the stream
``("sequence", "patterns")``.  A *sequence* is a list of patterns shown back to back
(``pattern_sequences``, e.g. ``[[0], [1]]`` or ``[[0, 1], [2]]``).  The run (per 1-ms step):

* a noise phase of a length drawn uniformly from ``t_noise_range`` [ms]: every channel spikes with
  probability ``1 - exp(-r_noise dt)``;
* then a sequence: each of its patterns stretched by a time-warp factor drawn uniformly from
  ``time_warp`` (1 by default); a channel spikes in a step if one of its pattern spikes falls in that
  step, or (``use_noise``) with probability ``1 - exp(-r_noise_pattern dt)`` (extra noise);
* then noise again, and so on.  Which sequence comes next (``mode``):
  ``"random_switching"`` keeps the previous one and switches to another with probability
  ``p_switch``; ``"random_ind"`` draws each independently (with probabilities ``p_sequences``, uniform by
  default); ``"alternating"`` cycles through them in order; ``"random_iterate"`` goes through all of
  them in a random order, then again in a new order.

Every step is labelled: the pattern shown (-1 in noise) and the sequence shown (-1 in noise).  The run's
own draws (phase lengths, warps, sequence choices, noise) come from the generator passed to
:meth:`InputGenerator.generate`, so a training run and a test run differ while the patterns stay.
Defaults: the full-scale experiment of sequence.md 4.1 (one 300-ms pattern at 5 Hz, 5-Hz noise phases
of 300-500 ms, 2 Hz extra noise during patterns, random switching with probability 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from spikeforge.core import rng as streams
from spikeforge.errors import ParameterError

MODES = ("random_switching", "random_ind", "alternating", "random_iterate")


@dataclass(frozen=True)
class InputConfig:
    """The settings of a run's input spike trains (see the module docstring); the defaults are those of the
    full-scale experiment.  Nothing is checked on construction: :meth:`check` does that."""

    n_inputs: int = 100
    r_noise: float = 5.0  # rate of every channel in noise phases [Hz]
    r_input: float = 5.0  # rate of the frozen patterns [Hz]
    r_noise_pattern: float = 2.0  # extra noise during patterns [Hz]
    use_noise: bool = True  # the extra noise during patterns
    n_patterns: int = 1
    t_pattern: tuple[float, ...] = (300.0,)  # length of each pattern [ms]
    t_noise_range: tuple[float, float] = (300.0, 500.0)  # noise phases are uniform in this range [ms]
    pattern_sequences: tuple[tuple[int, ...], ...] = ((0,), (0,))
    mode: str = "random_switching"
    p_switch: float = 0.5
    p_sequences: tuple[float, ...] | None = None  # for "random_ind" (uniform when None)
    time_warp: tuple[float, float] = (1.0, 1.0)  # each presentation stretched by U[low, high]
    dt: float = 1.0  # [ms]

    def check(self) -> "InputConfig":
        """This configuration, after checking every setting.

        Raises:
            ParameterError: naming the first setting that is out of range or does not fit another (e.g. a
                sequence naming a pattern that does not exist).
        """
        if self.n_inputs < 1:
            raise ParameterError(f"n_inputs = {self.n_inputs}; expected at least 1 input channel")
        for name in ("r_noise", "r_input", "r_noise_pattern"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ParameterError(f"{name} = {value} Hz; expected a rate >= 0")
        if self.n_patterns < 1:
            raise ParameterError(f"n_patterns = {self.n_patterns}; expected at least 1 pattern")
        if len(self.t_pattern) != self.n_patterns:
            raise ParameterError(f"{len(self.t_pattern)} pattern lengths for n_patterns = {self.n_patterns}; "
                                 "expected one length per pattern")
        if not all(np.isfinite(t) and t >= self.dt for t in self.t_pattern):
            raise ParameterError(f"pattern lengths {list(self.t_pattern)} ms; expected at least dt = {self.dt} ms each")
        low, high = self.t_noise_range
        if not (0 <= low <= high and np.isfinite(high)):
            raise ParameterError(f"t_noise_range = {list(self.t_noise_range)} ms; expected 0 <= low <= high")
        if not self.pattern_sequences or any(not sequence for sequence in self.pattern_sequences):
            raise ParameterError("pattern_sequences is empty or holds an empty sequence; expected lists of pattern "
                                 "indices such as [[0], [1]]")
        bad = [p for sequence in self.pattern_sequences for p in sequence if not 0 <= p < self.n_patterns]
        if bad:
            raise ParameterError(f"pattern_sequences name pattern {bad[0]}; the patterns are 0 to "
                                 f"{self.n_patterns - 1}")
        if self.mode not in MODES:
            raise ParameterError(f"switching mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not 0 <= self.p_switch <= 1:
            raise ParameterError(f"p_switch = {self.p_switch}; expected a probability")
        if self.p_sequences is not None and (len(self.p_sequences) != len(self.pattern_sequences)
                                             or min(self.p_sequences) < 0 or not np.isclose(sum(self.p_sequences), 1)):
            raise ParameterError(f"p_sequences = {list(self.p_sequences)}; expected one probability per sequence, "
                                 "summing to 1")
        if not (0 < self.time_warp[0] <= self.time_warp[1] and np.isfinite(self.time_warp[1])):
            raise ParameterError(f"time_warp = {list(self.time_warp)}; expected 0 < low <= high")
        if not self.dt > 0:
            raise ParameterError(f"dt = {self.dt} ms; expected > 0")
        return self


class Phase(NamedTuple):
    """One noise phase, or one presentation of a pattern within a sequence, in steps of ``dt``."""

    start: int  # first step
    length: int  # steps
    pattern: int  # -1 for noise
    sequence: int  # -1 for noise
    warp: float  # time-warp factor of a pattern (1 for noise)


class Inputs(NamedTuple):
    """A run's input spikes and what is shown at every step; ``phases``: the noise phases and pattern
    presentations that start within the run, in order (the last may end after it)."""

    spikes: np.ndarray  # bool (steps, n_inputs)
    pattern: np.ndarray  # int64 (steps,) the pattern shown, -1 in noise
    sequence: np.ndarray  # int64 (steps,) the sequence shown, -1 in noise
    from_pattern: np.ndarray  # bool (steps, n_inputs): the spike belongs to a pattern (not to noise)
    phases: tuple[Phase, ...]


# what each setting must be: "number", "count" (a whole number >= 1), "flag", "text", "pair" (two
# numbers), "numbers" (a list of numbers, or one number for every pattern), "sequences" (lists of whole
# numbers), "optional numbers"
KINDS = {"n_inputs": "count", "r_noise": "number", "r_input": "number", "r_noise_pattern": "number",
         "use_noise": "flag", "n_patterns": "count", "t_pattern": "numbers", "t_noise_range": "pair",
         "pattern_sequences": "sequences", "mode": "text", "p_switch": "number",
         "p_sequences": "optional numbers", "time_warp": "pair", "dt": "number"}
FROM_NETWORK = ("n_inputs", "dt")  # the network's, not a setting of its inputs


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _coerce(name: str, value, where: str):
    """``value`` as setting ``name`` holds it, or a ParameterError naming what was expected."""
    kind = KINDS[name]
    wrong = f"{where}{name} = {value!r}; expected "
    if kind == "number":
        if not _is_number(value):
            raise ParameterError(wrong + "a number")
        return float(value)
    if kind == "count":
        if not _is_whole(value):
            raise ParameterError(wrong + "a whole number")
        return int(value)
    if kind == "flag":
        if not isinstance(value, (bool, np.bool_)):
            raise ParameterError(wrong + "true or false")
        return bool(value)
    if kind == "text":
        if not isinstance(value, str):
            raise ParameterError(wrong + "a text")
        return value
    if kind == "optional numbers" and value is None:
        return None
    if kind == "sequences":
        if not (isinstance(value, (list, tuple)) and all(isinstance(seq, (list, tuple)) for seq in value)
                and all(_is_whole(p) for seq in value for p in seq)):
            raise ParameterError(wrong + "lists of pattern numbers, such as [[0], [1]]")
        return tuple(tuple(int(p) for p in seq) for seq in value)
    if not (isinstance(value, (list, tuple)) and all(_is_number(v) for v in value)):
        if kind == "numbers" and _is_number(value):
            return float(value)  # one length for every pattern
        raise ParameterError(wrong + ("two numbers [low, high]" if kind == "pair" else "a list of numbers"))
    if kind == "pair" and len(value) != 2:
        raise ParameterError(wrong + "two numbers [low, high]")
    return tuple(float(v) for v in value)


def config_from(settings: dict, base: InputConfig = InputConfig(), where: str = "",
                network_given: bool = False) -> InputConfig:
    """``base`` with ``settings`` replaced (lists allowed), each of the right kind, then checked.  A single
    pattern length stands for every pattern.  ``where``: words that place the settings in error messages
    (e.g. "[test] "); ``network_given``: the channels and dt are the network's, not settings."""
    import dataclasses
    import difflib

    public = [name for name in KINDS if not (network_given and name in FROM_NETWORK)]
    values = {}
    for name, value in settings.items():
        if name not in public:
            if name in KINDS:
                what = "its input channels" if name == "n_inputs" else "its time step"
                raise ParameterError(f"{where}{name} is the network's ({what}); it is not a setting of the inputs")
            close = difflib.get_close_matches(name, public, 1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; the settings are {', '.join(public)}"
            raise ParameterError(f"{where}the inputs have no setting {name!r}{hint}")
        values[name] = _coerce(name, value, where)
    n_patterns = values.get("n_patterns", base.n_patterns)
    if isinstance(values.get("t_pattern"), float):
        values["t_pattern"] = (values["t_pattern"],) * n_patterns
    elif "n_patterns" in values and "t_pattern" not in values and len(set(base.t_pattern)) == 1:
        values["t_pattern"] = base.t_pattern[:1] * n_patterns
    try:
        return dataclasses.replace(base, **values).check()
    except ParameterError as error:
        raise ParameterError(f"{where}{error}") from None


class InputGenerator:
    """Frozen patterns (from ``seed``'s stream ``("sequence", "patterns")``) and runs built from them.

    ``InputGenerator(config, seed)`` with an :class:`InputConfig`, or, as in the original,
    ``InputGenerator(network, r_noise=5, r_input=5, r_noise_pattern=2, t_noise_range=[500, 800],
    n_patterns=2, t_pattern=[300] * 2, pattern_sequences=[[0], [1]])``: the channels and the seed are the
    network's, and keywords replace the defaults of :class:`InputConfig`."""

    def __init__(self, config=None, seed: int | None = None, **settings):
        if config is not None and not isinstance(config, InputConfig):
            if not (hasattr(config, "n_inputs") and hasattr(config, "seed")):
                raise ParameterError(f"InputGenerator takes an InputConfig or a Network, not {type(config).__name__}")
            seed = config.seed if seed is None else seed
            network_config = InputConfig(n_inputs=config.n_inputs, dt=config.neuron.dt)
            config = config_from(settings, network_config, network_given=True)
        else:
            config = config_from(settings, config or InputConfig())
        seed = 0 if seed is None else seed
        if not (_is_whole(seed) and 0 <= seed < 2**63):
            raise ParameterError(f"seed = {seed!r}; expected a whole number in [0, 2**63)")
        self.config, self.seed = config, int(seed)
        rng = streams.stream(seed, "sequence", "patterns")
        self.patterns = [[np.sort(rng.uniform(0.0, t, rng.poisson(config.r_input * t / 1000.0)))
                          for _ in range(config.n_inputs)] for t in config.t_pattern]

    def _schedule(self, n_steps: int, rng: np.random.Generator) -> list[Phase]:
        c = self.config
        phases, step, current, order = [], 0, None, []
        n_sequences = len(c.pattern_sequences)
        count = 0
        while step < n_steps:
            noise = int(round(rng.uniform(*c.t_noise_range) / c.dt))
            if noise:
                phases.append(Phase(step, noise, -1, -1, 1.0))
                step += noise
            if c.mode == "random_switching":
                if current is None:
                    current = int(rng.integers(n_sequences))
                elif n_sequences > 1 and rng.random() < c.p_switch:
                    current = int((current + 1 + rng.integers(n_sequences - 1)) % n_sequences)
            elif c.mode == "random_ind":
                current = int(rng.choice(n_sequences, p=c.p_sequences))
            elif c.mode == "alternating":
                current = count % n_sequences
            else:  # random_iterate
                if not order:
                    order = list(rng.permutation(n_sequences))
                current = int(order.pop(0))
            count += 1
            for pattern in c.pattern_sequences[current]:
                warp = float(rng.uniform(*c.time_warp))
                length = max(1, int(round(c.t_pattern[pattern] * warp / c.dt)))
                phases.append(Phase(step, length, pattern, current, warp))
                step += length
        return phases

    def longest_cycle_ms(self) -> float:
        """The longest noise phase plus the longest sequence at the largest time warp [ms]: a run at least
        this long shows every sequence it draws in full."""
        c = self.config
        longest = max(sum(c.t_pattern[p] for p in sequence) for sequence in c.pattern_sequences)
        return float(c.t_noise_range[1] + longest * c.time_warp[1])

    def generate(self, duration_ms: float, rng: np.random.Generator) -> Inputs:
        """The inputs of a run of ``duration_ms`` (noise first), drawn with ``rng``."""
        c = self.config
        if not (np.isfinite(duration_ms) and duration_ms >= c.dt):
            raise ParameterError(f"run duration {duration_ms} ms; expected at least dt = {c.dt} ms")
        n_steps = int(round(duration_ms / c.dt))
        phases = self._schedule(n_steps, rng)
        spikes = np.zeros((n_steps, c.n_inputs), dtype=bool)
        from_pattern = np.zeros_like(spikes)
        pattern_of = np.full(n_steps, -1, dtype=np.int64)
        sequence_of = np.full(n_steps, -1, dtype=np.int64)
        p_noise = 1.0 - np.exp(-c.r_noise * c.dt / 1000.0)
        p_extra = 1.0 - np.exp(-c.r_noise_pattern * c.dt / 1000.0) if c.use_noise else 0.0
        for phase in phases:
            stop = min(phase.start + phase.length, n_steps)
            rows = stop - phase.start
            if rows <= 0:
                break
            chunk = slice(phase.start, stop)
            if phase.pattern < 0:
                spikes[chunk] = rng.random((rows, c.n_inputs)) < p_noise
                continue
            pattern_of[chunk], sequence_of[chunk] = phase.pattern, phase.sequence
            spikes[chunk] = rng.random((rows, c.n_inputs)) < p_extra
            for channel, times in enumerate(self.patterns[phase.pattern]):
                steps = (times * phase.warp / c.dt).astype(np.int64)
                steps = steps[steps < rows]
                from_pattern[phase.start + steps, channel] = True
            spikes[chunk] |= from_pattern[chunk]
        kept = tuple(p for p in phases if p.start < n_steps)
        return Inputs(spikes, pattern_of, sequence_of, from_pattern, kept)


def window(inputs: Inputs, start: int, stop: int) -> Inputs:
    """Steps [start, stop) of ``inputs``; the phases that overlap them, with starts relative to ``start``."""
    phases = tuple(p._replace(start=p.start - start) for p in inputs.phases
                   if p.start < stop and p.start + p.length > start)
    return Inputs(inputs.spikes[start:stop], inputs.pattern[start:stop], inputs.sequence[start:stop],
                  inputs.from_pattern[start:stop], phases)

