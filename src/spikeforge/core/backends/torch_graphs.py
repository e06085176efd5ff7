"""Learning intervals of training trials captured once as CUDA graphs and replayed.

After ``stim_off`` a training trial is a row of identical learning intervals: one RLS
update, then ``learn_step`` network steps.  On a GPU each of those steps is a few dozen
small kernels, so launching them from Python would cost more than running them.
:class:`IntervalReplay` captures the work of one interval as a CUDA graph and replays it
for every later interval of every trial with the same shape, after copying the interval's
inputs into the graph's fixed buffers:

* the network state, the recording buffers and the learner (P, weights) are the same
  tensors across trials (:meth:`IntervalReplay.adopt` copies a trial's fresh state in);
* the time is a device ``clock`` that the steps advance (:func:`torch_kernels.run_steps`);
* the interval's target row, noise and feed-forward spikes go into fixed buffers.

An interval's shape is its length, its kind (with or without recording), whether it has
noise or feed-forward inputs, and the remainder of its first step modulo
``steps_per_ms`` (the rolling-average sampling steps are fixed in the graph).  The first interval of a shape runs eagerly (warm-up: Triton compilation,
allocator), the second is captured and replayed.

``mode = "eager"`` runs the same buffers and clock without capturing, which is how the CPU
tests check this data flow against the plain loop; a capture that fails falls back to it
with a warning, since graphs are an optimisation and must never stop a training run.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import torch


MODES = ("graph", "eager")


class _Interval:
    """The fixed input buffers of one interval shape and its captured graph."""

    def __init__(self, work: Callable[[], None], clock: torch.Tensor, target: torch.Tensor, noise: torch.Tensor,
                 ff_spikes: torch.Tensor):
        self.work, self.clock, self.target, self.noise, self.ff_spikes = work, clock, target, noise, ff_spikes
        self.runs = 0
        self.graph: Any = None


class IntervalReplay:
    """Runs the learning intervals of training trials on ``backend`` from fixed buffers, replaying
    CUDA graphs when its ``options.intervals`` is "graph" (see the module docstring).  Spike
    propagation is the backend's, or "dense" where that is "sparse" (which waits for the host)."""

    def __init__(self, backend):
        mode = backend.options.intervals
        if mode not in MODES:
            raise ValueError(f"interval replay mode {mode!r} is not one of {MODES}")
        self.mode = mode
        sparse = backend.options.propagation == "sparse"
        self.backend = dataclasses.replace(backend, options=dataclasses.replace(
            backend.options, propagation="dense" if sparse else backend.options.propagation))
        self.state = None
        self.recordings: dict[int, Any] = {}
        self.intervals: dict[tuple, _Interval] = {}
        self.pool: Any = None  # one memory pool for every graph's temporaries (see capture_cuda_graph)

    def adopt(self, state, rec, kind: int):
        """The persistent (state, recording) tensors, holding the values of a trial's fresh
        ``state`` and ``rec`` (the first call keeps the given tensors as the persistent ones)."""
        if self.state is None:
            self.state = state
        else:
            for mine, fresh in zip(self.state, state):
                mine.copy_(fresh)
        if kind not in self.recordings:
            self.recordings[kind] = rec
        else:
            for mine, fresh in zip(self.recordings[kind], rec):
                mine.copy_(fresh)
        return self.state, self.recordings[kind]

    def run_interval(self, learner, net, const, target_row, noise, ff_spikes, first_step: int, last_step: int,
                     kind: int) -> None:
        """The RLS update with ``target_row`` and then steps ``first_step .. last_step`` of ``kind``
        with this interval's ``noise`` and ``ff_spikes`` rows, on the adopted state."""
        period = const.timeline.steps_per_ms
        key = (last_step - first_step + 1, first_step % period, kind, noise.shape[0] > 0, ff_spikes.shape[1] > 0)
        interval = self.intervals.get(key)
        if interval is None:
            interval = self._build(learner, net, const, target_row, noise, ff_spikes, first_step, last_step, kind)
            self.intervals[key] = interval
        interval.clock.fill_(first_step - 1)
        interval.target.copy_(target_row)
        interval.noise.copy_(noise)
        interval.ff_spikes.copy_(ff_spikes)
        if interval.graph is not None:
            interval.graph.replay()
        elif self.mode == "graph" and interval.runs >= 1:
            self._capture_and_replay(interval)
        elif self.mode == "graph":
            warm_up(interval.work)
        else:
            interval.work()
        interval.runs += 1

    def _build(self, learner, net, const, target_row, noise, ff_spikes, first_step, last_step, kind) -> _Interval:
        device = target_row.device
        clock = torch.zeros((), dtype=torch.int64, device=device)
        target, noise, ff_spikes = target_row.clone(), noise.clone(), ff_spikes.clone()
        no_stimulus = torch.zeros((0, target.shape[0]), dtype=target.dtype, device=device)
        state, rec, backend = self.state, self.recordings[kind], self.backend

        def work() -> None:
            learner.update(backend, state.r, state.u_bal, target)
            backend.run_steps(state, net, const, rec, no_stimulus, noise, ff_spikes, first_step, last_step, kind,
                              clock=clock)

        return _Interval(work, clock, target, noise, ff_spikes)

    def _capture_and_replay(self, interval: _Interval) -> None:
        try:
            if self.pool is None:
                self.pool = torch.cuda.graph_pool_handle()
            graph = capture_cuda_graph(interval.work, self.pool)
        except Exception as error:  # noqa: BLE001 - any capture failure: run without graphs
            warnings.warn(f"capturing a learning interval as a CUDA graph failed ({error}); training goes on "
                          "without CUDA graphs", RuntimeWarning, stacklevel=3)
            self.mode = "eager"
            interval.work()
            return
        interval.graph = graph
        graph.replay()


def capture_cuda_graph(work: Callable[[], None], pool: Any) -> Any:
    """The CUDA graph of ``work`` (recorded, not run; ``.replay()`` runs it).

    All graphs of an :class:`IntervalReplay` share the memory ``pool``: that is safe here in any
    replay order because a graph writes its results only into tensors allocated outside the
    pool (state, recording, learner) and its temporaries are dead when it ends, so one graph
    cannot overwrite another's outputs."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        work()
    return graph


def warm_up(work: Callable[[], None]) -> None:
    """Run ``work`` once on a side stream, as CUDA graph capture asks of the first run."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        work()
    torch.cuda.current_stream().wait_stream(stream)
