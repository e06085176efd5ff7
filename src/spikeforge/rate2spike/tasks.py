"""Cognitive tasks of Kim, Li & Sejnowski (2019): Go-NoGo, context-dependent integration (Mante) and
temporal XOR (spikernn.md section 3).

Time is counted in rate-model steps of ``dt = 5`` ms.  A task makes batches of trials:

* ``u``: inputs, shape ``(batch, n_inputs, n_steps)``;
* ``z``: the target output, shape ``(batch, n_steps)``;
* ``label``: one integer per trial (Go 1 / NoGo 0; Mante +1 / -1; XOR +1 same / -1 different).

The rate network produces ``n_steps - 1`` outputs (output ``o[t]`` follows input column ``t``);
:meth:`Task.rate_correct` scores those, :meth:`Task.lif_correct` scores the LIF network's output,
sampled every ``lif_dt`` ms, with the original's criteria and windows (they differ: the
original's NoGo test is ``max |o| < 0.3`` for the rate network and ``max o < 0.3`` for LIF).

To define a task of your own, subclass :class:`Task`: set ``name``, ``n_inputs``, ``n_steps``,
and write ``trials`` and the two scoring methods (the windows in steps of the rate model, so the
LIF criteria follow from them).
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import numpy as np

STEP_MS = 5.0  # one rate-model step [ms]


class Trials(NamedTuple):
    """A batch of trials: inputs ``u`` (batch, n_inputs, n_steps), targets ``z`` (batch, n_steps),
    labels (batch,)."""

    u: np.ndarray
    z: np.ndarray
    label: np.ndarray


class Task:
    """A task: makes trials and scores outputs.  Subclasses set the class attributes below."""

    name: ClassVar[str] = ""
    n_inputs: ClassVar[int] = 0
    n_steps: ClassVar[int] = 0  # trial length [rate steps of 5 ms]
    min_trials: ClassVar[int] = 0  # training never stops before this many trials
    threshold: ClassVar[float] = 0.7  # |output| a "respond" trial must exceed
    quiet: ClassVar[float] = 0.3  # |output| a "withhold" trial must stay under

    def trials(self, rng: np.random.Generator, batch: int) -> Trials:
        """``batch`` fresh random trials drawn from ``rng`` (subclasses implement it)."""
        raise NotImplementedError

    def rate_correct(self, o: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Whether each rate-network trial is correct; ``o`` is (batch, n_steps - 1)."""
        raise NotImplementedError

    def lif_correct(self, out: np.ndarray, label: np.ndarray, lif_dt_ms: float) -> np.ndarray:
        """Whether each LIF trial is correct; ``out`` is (batch, n_lif_steps), sampled every
        ``lif_dt_ms``, sample ``i`` at time ``(i + 1) lif_dt_ms``."""
        raise NotImplementedError

    @property
    def duration_ms(self) -> float:
        """Trial length [ms] as the LIF network simulates it: ``n_steps * 5`` ms (see :meth:`lif_input`)."""
        return self.n_steps * STEP_MS

    @staticmethod
    def lif_input(u: np.ndarray) -> np.ndarray:
        """The inputs the LIF network gets for trials ``u`` (batch, n_inputs, n_steps): one column more,
        a copy of the last, as the original's grid search builds them (1 x 201 for Go-NoGo, 4 x 501
        for Mante with the context held, 2 x 301 for XOR), so a trial lasts ``n_steps * 5`` ms."""
        return np.concatenate([u, u[:, :, -1:]], axis=2)

    def _lif_window(self, out: np.ndarray, start_ms: float, lif_dt_ms: float) -> np.ndarray:
        """Samples at or after ``start_ms`` (the original's ``out(k:end)`` with 1-based ``k``)."""
        first = int(round(start_ms / lif_dt_ms)) - 1
        return out[:, first:]


def _coins(rng: np.random.Generator, batch: int) -> np.ndarray:
    return rng.random(batch) < 0.5


class GoNoGo(Task):
    """Go-NoGo: a 125-ms pulse (steps 50-74) on Go trials, nothing on NoGo; respond (output 1) from
    step 75 on Go trials, stay at 0 otherwise.  1 s per trial."""

    name = "go-nogo"
    n_inputs = 1
    n_steps = 200
    min_trials = 1500  # in the released code, not in the paper (spikernn.md 9.1)
    stim = (50, 75)  # [steps)

    def trials(self, rng, batch):
        """Go or NoGo with probability 1/2 each (label 1 or 0); see the class docstring."""
        go = _coins(rng, batch)
        u = np.zeros((batch, 1, self.n_steps))
        u[go, 0, self.stim[0]:self.stim[1]] = 1.0
        z = np.zeros((batch, self.n_steps))
        z[go, self.stim[1]:] = 1.0
        return Trials(u, z, go.astype(np.int64))

    def rate_correct(self, o, label):
        """From output 75 on (``o[:, 75:]``): Go needs max o > ``threshold``, NoGo max |o| < ``quiet``."""
        after = o[:, self.stim[1]:]
        go = label == 1
        return np.where(go, after.max(axis=1) > self.threshold, np.abs(after).max(axis=1) < self.quiet)

    def lif_correct(self, out, label, lif_dt_ms):
        """From 500 ms on: Go needs max out > ``threshold``, NoGo max out < ``quiet`` (signed, not |out|)."""
        after = self._lif_window(out, 500.0, lif_dt_ms)  # out(10000:end) at 0.05 ms: t >= 0.5 s
        return np.where(label == 1, after.max(axis=1) > self.threshold, after.max(axis=1) < self.quiet)


class Mante(Task):
    """Context-dependent integration: two noisy sensory channels (steps 50-249, mean +-0.5, unit
    variance per step) and a context cue (channel 2 or 3, the whole trial); report the sign of the
    cued channel's mean (+-1) from step 250 on.  2.5 s per trial."""

    name = "mante"
    n_inputs = 4
    n_steps = 500
    stim = (50, 250)
    offset = 0.5  # evidence strength: the sensory mean [1]

    def trials(self, rng, batch):
        """The signs of the two sensory means and the context, each drawn with probability 1/2; the label is the
        sign of the cued channel (+1 or -1)."""
        signs = np.where(rng.random((batch, 2)) < 0.5, 1.0, -1.0)
        context = (rng.random(batch) < 0.5).astype(np.int64)  # 0: attend channel 0, 1: channel 1
        u = np.zeros((batch, self.n_inputs, self.n_steps))
        span = self.stim[1] - self.stim[0]
        u[:, 0:2, self.stim[0]:self.stim[1]] = (rng.standard_normal((batch, 2, span))
                                                 + self.offset * signs[:, :, None])
        u[np.arange(batch), 2 + context, :] = 1.0
        label = signs[np.arange(batch), context].astype(np.int64)
        z = np.zeros((batch, self.n_steps))
        z[:, self.stim[1]:] = label[:, None]
        return Trials(u, z, label)

    def rate_correct(self, o, label):
        """Over the last 200 outputs: label +1 needs max o > ``threshold``, label -1 needs min o < -``threshold``."""
        last = o[:, -200:]
        return np.where(label == 1, last.max(axis=1) > self.threshold, last.min(axis=1) < -self.threshold)

    def lif_correct(self, out, label, lif_dt_ms):
        """From 1300 ms on, the criteria of :meth:`rate_correct`."""
        after = self._lif_window(out, 1300.0, lif_dt_ms)  # out(26000:end): t >= 1.3 s
        return np.where(label == 1, after.max(axis=1) > self.threshold, after.min(axis=1) < -self.threshold)


class XOR(Task):
    """Temporal XOR: two +-1 pulses (steps 50-99 and 110-159); output +1 if their signs agree, -1 if
    not, on steps 170-269.  1.5 s per trial."""

    name = "xor"
    n_inputs = 2
    n_steps = 300
    first = (50, 100)
    second = (110, 160)
    respond = (170, 270)

    def trials(self, rng, batch):
        """The two pulses' signs, each +1 or -1 with probability 1/2; the label is their product (+1 same)."""
        signs = np.where(rng.random((batch, 2)) < 0.5, 1.0, -1.0)
        u = np.zeros((batch, 2, self.n_steps))
        u[:, 0, self.first[0]:self.first[1]] = signs[:, :1]
        u[:, 1, self.second[0]:self.second[1]] = signs[:, 1:]
        label = (signs[:, 0] * signs[:, 1]).astype(np.int64)
        z = np.zeros((batch, self.n_steps))
        z[:, self.respond[0]:self.respond[1]] = label[:, None]
        return Trials(u, z, label)

    def rate_correct(self, o, label):
        """From output 200 on (``o[:, 200:]``): label +1 needs max o > ``threshold``, -1 min o < -``threshold``."""
        after = o[:, 200:]
        return np.where(label == 1, after.max(axis=1) > self.threshold, after.min(axis=1) < -self.threshold)

    def lif_correct(self, out, label, lif_dt_ms):
        """From 1000 ms on, the criteria of :meth:`rate_correct`."""
        after = self._lif_window(out, 1000.0, lif_dt_ms)  # out(20000:end): t >= 1.0 s
        return np.where(label == 1, after.max(axis=1) > self.threshold, after.min(axis=1) < -self.threshold)


TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (GoNoGo, Mante, XOR)}


def task_named(name: str) -> Task:
    """The task called ``name`` (go-nogo, mante, xor); ValueError naming the choices otherwise."""
    key = name.strip().lower()
    if key not in TASKS:
        raise ValueError(f"task {name!r} is not one of {', '.join(TASKS)}")
    return TASKS[key]()
