"""Kernels of the RLS network, one module per backend, behind one small interface.

``numba`` (CPU, the default): :mod:`numba_network` and :mod:`numba_rls`.  ``torch`` (``cpu`` or
``cuda`` tensors): :mod:`torch_kernels`.  Both are pure functions of the arrays of
:mod:`layout`; the host-side driver (:mod:`spikeforge.rls.simulation`) draws every random
number and hands the same numbers to either backend, so the backends can be compared
spike for spike.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from spikeforge.errors import ParameterError

BACKENDS = ("numba", "torch")


@dataclasses.dataclass(frozen=True)
class Backend:
    """A kernel module and how to move arrays to and from it."""

    name: str
    device: str
    kernels: Any  # module with run_steps, rls_update, rls_small
    intervals: str = "off"  # learning intervals: "off" (plain loop), or replayed ("graph", "eager"; torch_graphs)

    def put(self, value: Any) -> Any:
        """numpy arrays (also inside NamedTuples) in the backend's array type."""
        return value if self.name == "numba" else self.kernels.put(value, self.device)

    def get(self, value: Any) -> Any:
        """Back to numpy."""
        return value if self.name == "numba" else self.kernels.get(value)

    def activated(self) -> contextlib.AbstractContextManager:
        """A context in which the backend's device is the current CUDA device: Triton kernels,
        CUDA streams, graphs and memory pools act on the current device, not on their tensors'."""
        if self.device.startswith("cuda"):
            import torch

            return torch.cuda.device(self.device)
        return contextlib.nullcontext()

    def interval_replay(self, learner) -> Any:
        """The :class:`torch_graphs.IntervalReplay` that runs ``learner``'s learning intervals
        (created on first use and kept with the learner), or None for the plain loop."""
        if self.intervals == "off" or learner.history is not None:  # small mode keeps host-side bookkeeping
            return None
        if learner.replay is None:
            from spikeforge.core.backends.torch_graphs import IntervalReplay

            learner.replay = IntervalReplay(self.intervals)
        return learner.replay


def get_backend(name: str = "numba", device: str = "cpu", cuda_graphs: bool = True) -> Backend:
    """The backend ``name`` ("numba" or "torch") on ``device`` ("cpu", "cuda", "cuda:1", ...).

    ``cuda_graphs``: on CUDA, capture training's learning intervals as CUDA graphs
    (:mod:`torch_graphs`); False runs the plain loop (for debugging or comparison).
    """
    if name == "numba":
        if device != "cpu":
            raise ParameterError(f"the numba backend runs on the cpu, not on {device!r}; use --backend torch")
        from spikeforge.core.backends import numba_kernels

        return Backend("numba", "cpu", numba_kernels)
    if name == "torch":
        try:
            import torch
        except ImportError:
            raise ParameterError("the torch backend needs torch: pip install 'spikeforge[gpu]'") from None
        from spikeforge.core.backends import torch_graphs, torch_kernels

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ParameterError(f"device {device!r} asked for, but torch sees no CUDA device")
        if not (device == "cpu" or device.startswith("cuda")):
            raise ParameterError(f"device {device!r} is not 'cpu' or 'cuda[:N]'")
        if device == "cpu":
            # a step's tensors are small: one thread is fastest, and torch's OpenMP threads would
            # otherwise spin against numba's in the same process
            torch.set_num_threads(1)
        intervals = torch_graphs.DEFAULT_MODE["cuda" if device.startswith("cuda") else "cpu"]
        return Backend("torch", device, torch_kernels, intervals if cuda_graphs else "off")
    raise ParameterError(f"backend {name!r} is not one of {', '.join(BACKENDS)}")
