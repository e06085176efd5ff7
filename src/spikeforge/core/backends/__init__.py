"""Kernels of the RLS network, one module per backend, behind one small interface.

``numba`` (CPU, the default): :mod:`numba_network` and :mod:`numba_rls`.  ``torch`` (``cpu`` or
``cuda`` tensors): :mod:`torch_kernels`.  Both are pure functions of the arrays of
:mod:`layout`; the host-side driver (:mod:`spikeforge.rls.trial`) draws every random
number and hands the same numbers to either backend, so the backends can be compared
spike for spike.

How the kernels run (threads, propagation strategy, order of sums, fused Triton kernels, CUDA
graphs) is a :class:`KernelOptions` carried by the :class:`Backend` object, which passes it to
every kernel call: no module-level switch, and two backends with different options can live in
one process (the tests compare them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any, Callable, NamedTuple

from spikeforge.errors import ParameterError

BACKENDS = ("numba", "torch")
CHOICES = {"propagation": ("sparse", "dense", "push"), "summation": ("ordered", "batched"),
           "intervals": ("off", "graph", "eager")}


PREFETCH_MAX_THRESHOLD = 2**26  # [bytes] P this large is prefetched whatever the cache
SMALLEST_LAST_LEVEL_CACHE = 2**22  # [bytes] a smaller "last-level" cache is taken for a misreport (or an L2 only)


def cache_size_bytes(text: str) -> int:
    """A cache size as Linux writes it in /sys ("32768K", "2M", "512") in bytes."""
    text = text.strip()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
    return int(text[:-1] if scale > 1 else text) * scale


@functools.cache
def last_level_cache_bytes(cpu_cache_dir: str = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """The size of the highest-level data cache of CPU 0 [bytes] (Linux's /sys), None where none can be read
    (an entry that cannot be read is skipped)."""
    from pathlib import Path

    levels = []
    for index in Path(cpu_cache_dir).glob("index*"):
        try:
            if (index / "type").read_text().strip() in ("Unified", "Data"):
                levels.append((int((index / "level").read_text()), cache_size_bytes((index / "size").read_text())))
        except (OSError, ValueError):
            continue
    return max(levels)[1] if levels else None


def default_prefetch_min_bytes() -> int:
    """:attr:`KernelOptions.rls_prefetch_min_bytes` of this machine: half its last-level cache, at most
    PREFETCH_MAX_THRESHOLD (a larger P competes with the network's synapses for that cache and streams
    partly from memory; the "L3" of a virtual machine can be its host's, shared by many cores, hence the cap).
    A cache that cannot be read, or of less than SMALLEST_LAST_LEVEL_CACHE, gives the cap."""
    cache = last_level_cache_bytes()
    if cache is None or cache < SMALLEST_LAST_LEVEL_CACHE:
        return PREFETCH_MAX_THRESHOLD
    return min(PREFETCH_MAX_THRESHOLD, cache // 2)


@dataclasses.dataclass(frozen=True)
class KernelOptions:
    """How a backend's kernels run.  Only speed depends on them, except where a field says otherwise.

    Attributes:
        parallel_min_neurons: numba: networks of at least this many neurons update their neurons on
            threads; a smaller network's step is too short to share out (init run of the default model on
            2 cores: 8192 neurons 0.135 s serial against 0.113 s threaded, 4096 neurons 0.056 s against
            0.079 s: BENCHMARKS.md).  Results do not depend on it.
        propagation: torch: spike propagation ``sparse`` (gather the out-synapses of the neurons that
            fired), ``dense`` (every synapse, fixed size: no host synchronisation) or ``push`` (the
            Triton kernel, CUDA).
        summation: torch: sums ``ordered`` term after term as numba adds them (bit-identical on the
            CPU) or ``batched`` in one reduction (different rounding).
        fused_neurons: torch: the LIF neuron update as one Triton kernel (CUDA).
        intervals: torch: learning intervals run ``off`` (the plain loop), or replayed from fixed
            buffers, captured as CUDA graphs (``graph``) or not (``eager``; :mod:`torch_graphs`).
        torch_threads: torch on the CPU: threads of torch's operations while the backend's kernels
            run (restored afterwards); a step's tensors are small, and torch's threads would spin
            against numba's in the same process.  None: torch's own setting.
        rls_block_bytes: torch: P is updated in blocks of neurons whose float32/float64 working copy
            takes at most this many bytes, so the update's temporaries stay small next to P [bytes].
        rls_prefetch_min_bytes: numba, packed float32/float64 P of at least this many bytes: while a neuron's P
            is updated, the next neuron's is prefetched [bytes].  Default: half the last-level cache as Linux
            reports it, at most 64 MB (:func:`default_prefetch_min_bytes`).  On an Intel Xeon (480 MB L3
            reported) it took 622 -> 465 ns per neuron at 65,536 neurons (448 MB) and 497 -> 386 at 16,384
            (112 MB), but 351 -> 375 at 4096 (28 MB, which the hardware prefetchers brought from the L3 in
            time); on an AMD EPYC (32 MB L3) 906 -> 671 at 4096, where P no longer fits beside the synapses:
            BENCHMARKS.md.  (A default made per instance: read it from ``KernelOptions()``, not the class.)
        rls_interleave: numba, packed float32/float64 P: training keeps P (a sharded rank: its block)
            interleaved by groups of 16 neurons, one neuron per SIMD lane (:func:`numba_rls.interleave`; not
            where many groups mix numbers of inputs: :func:`numba_rls.worth_interleaving`); checkpoints and
            the model's P after training are packed as always.  The same numbers as packed (for finite input
            rates, NaNs' signs aside); at the default model's 4096 neurons and 58 inputs the update took two
            thirds of the time (BENCHMARKS.md).
        plastic_in_place: numba, training in one process: the step kernel reads the plastic weights in the
            in-layout (each neuron's inputs, (N, Lmax)), where the RLS update writes them
            (:attr:`layout.Connectivity.plastic_source`), instead of from their copy in the out-layout, which every
            update would rewrite.  The same results.  It trades a loop's 100 copies of every weight for one
            scattered read per plastic delivery.  On an AMD EPYC (2 threads, alternated rounds) a loop of 65,536
            neurons took 4.19-5.05 s against 4.61-5.76, one of 16,384 1.07-1.24 against 1.15-1.58; at 4096
            neurons the two are level (medians of 8 rounds: 0.264 against 0.266 s; the RLS update 24 ms shorter,
            the steps 12 ms longer).  On an Intel Xeon at 65,536 neurons the reads had cost 0.98 s per loop
            against 0.89 s saved (BENCHMARKS.md).
    """

    parallel_min_neurons: int = 8192
    propagation: str = "sparse"
    summation: str = "ordered"
    fused_neurons: bool = False
    intervals: str = "off"
    torch_threads: int | None = 1
    rls_block_bytes: int = 2**28
    rls_prefetch_min_bytes: int = dataclasses.field(default_factory=default_prefetch_min_bytes)
    rls_interleave: bool = True
    plastic_in_place: bool = True

    def __post_init__(self):
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ParameterError(f"kernel option {name} = {getattr(self, name)!r} is not one of "
                                     f"{', '.join(map(repr, choices))}")


class Kernels(NamedTuple):
    """The functions a backend implements, with the same arguments on every backend (the numba
    versions' docstrings describe them; the torch ones take the backend's options as keywords)."""

    run_steps: Callable  # advance the network state through a block of steps (numba_network.run_steps)
    rls_update: Callable  # one RLS update of every neuron with its P (numba_rls.rls_update)
    rls_small: Callable  # the memory-light RLS update (numba_rls.rls_small)
    count_p_faults: Callable  # (saturated, non-finite) entries of P (numba_rls.count_p_faults)
    count_nonfinite: Callable  # NaN and infinite entries of an array (numba_rls.count_nonfinite)


def kernels_of(name: str) -> Kernels:
    """The kernels of backend ``name`` ("numba" or "torch"), as their modules hold them now (so a
    test or a benchmark can wrap a module's function before it makes a backend)."""
    if name == "numba":
        from spikeforge.core.backends import numba_network, numba_rls

        return Kernels(numba_network.run_steps, numba_rls.rls_update, numba_rls.rls_small, numba_rls.count_p_faults,
                       numba_rls.count_nonfinite)
    from spikeforge.core.backends import torch_kernels

    return Kernels(torch_kernels.run_steps, torch_kernels.rls_update, torch_kernels.rls_small,
                   torch_kernels.count_p_faults, torch_kernels.count_nonfinite)


@dataclasses.dataclass(frozen=True)
class Backend:
    """A kernel module, its options, and how to move arrays to and from it.

    ``triton`` is the :mod:`triton_step` module where its kernels run on ``device`` (checked
    once, when the backend is made), else None.
    """

    name: str
    device: str
    kernels: Kernels
    options: KernelOptions = KernelOptions()
    triton: Any = None

    def put(self, value: Any) -> Any:
        """numpy arrays (also inside NamedTuples) in the backend's array type."""
        if self.name == "numba":
            return value
        from spikeforge.core.backends.torch_kernels import put

        return put(value, self.device)

    def get(self, value: Any) -> Any:
        """Back to numpy."""
        if self.name == "numba":
            return value
        from spikeforge.core.backends.torch_kernels import get

        return get(value)

    def run_steps(self, state, net, const, rec, x_stim, noise, ff_spikes, first_step: int, last_step: int, kind: int,
                  clock=None, owned: tuple[int, int] | None = None, phase: int = 0) -> None:
        """Steps ``first_step .. last_step`` (see :func:`numba_network.run_steps`) with this backend's
        options; ``clock``: torch's device clock (:mod:`torch_graphs`); ``owned``, ``phase``: the neurons
        this process updates and the phases of each step that run (a sharded network; default: all, both)."""
        if len(net.plastic_source) not in (0, len(net.plastic_post)):  # (numba does not check its indices)
            raise ValueError(f"Connectivity.plastic_source has {len(net.plastic_source)} entries for "
                             f"{len(net.plastic_post)} plastic synapses")
        if self.name == "numba":
            self.kernels.run_steps(state, net, const, rec, x_stim, noise, ff_spikes, first_step, last_step, kind,
                                   self.options, owned, phase)
        else:
            if len(net.plastic_source):
                raise ValueError("only the numba backend reads the plastic weights in the in-layout "
                                 "(Connectivity.plastic_source)")
            self.kernels.run_steps(state, net, const, rec, x_stim, noise, ff_spikes, first_step, last_step, kind,
                                   self.options, self.triton, clock, owned, phase)

    def rls_update(self, *arguments, write_plan=None, interleaved: bool = False) -> None:
        """One RLS update of every neuron (see :func:`numba_rls.rls_update`); ``write_plan`` (numba): the copy
        of the new weights to the out-layout in its order (torch scatters them by ``in_to_out``); ``interleaved``
        (numba): P is in the layout of :func:`numba_rls.interleave` (:meth:`interleaves`)."""
        if self.name == "numba":
            self.kernels.rls_update(*arguments, write_plan=write_plan,
                                    prefetch_min_bytes=self.options.rls_prefetch_min_bytes, interleaved=interleaved)
        elif interleaved:
            raise ValueError("only the numba backend updates an interleaved P")
        else:
            self.kernels.rls_update(*arguments, ordered=self.options.summation == "ordered",
                                    fused=self.triton is not None, block_bytes=self.options.rls_block_bytes)

    def rls_small(self, *arguments, write_plan=None) -> None:
        """The memory-light update (see :func:`numba_rls.rls_small`; ``write_plan``: see :meth:`rls_update`)."""
        if self.name == "numba":
            self.kernels.rls_small(*arguments, write_plan=write_plan)
        else:
            self.kernels.rls_small(*arguments, ordered=self.options.summation == "ordered")

    def interleaves(self, storage: str, dtype) -> bool:
        """Whether a training run on this backend keeps a P of ``storage`` and ``dtype`` interleaved
        (:attr:`KernelOptions.rls_interleave`)."""
        import numpy as np

        return (self.name == "numba" and self.options.rls_interleave and storage == "packed"
                and np.dtype(dtype) in (np.float32, np.float64))

    def count_p_faults(self, P) -> tuple[int, int]:
        """(saturated, non-finite) entries of P (see :func:`numba_rls.count_p_faults`)."""
        if self.name == "numba":
            return self.kernels.count_p_faults(P)
        return self.kernels.count_p_faults(P, block_bytes=self.options.rls_block_bytes)

    def activated(self) -> contextlib.AbstractContextManager:
        """A context for running kernels: on CUDA the backend's device is the current device (Triton
        kernels, streams, graphs and memory pools act on the current device, not on their
        tensors'); on the CPU torch uses ``options.torch_threads`` threads."""
        if self.device.startswith("cuda"):
            import torch

            return torch.cuda.device(self.device)
        if self.name == "torch" and self.options.torch_threads is not None:
            return _torch_threads(self.options.torch_threads)
        return contextlib.nullcontext()

    def interval_replay(self, learner) -> Any:
        """The :class:`torch_graphs.IntervalReplay` that runs ``learner``'s learning intervals
        (created on first use and kept with the learner), or None for the plain loop."""
        if self.options.intervals == "off" or learner.history is not None:  # small mode: host-side bookkeeping
            return None
        if learner.replay is None:
            from spikeforge.core.backends.torch_graphs import IntervalReplay

            learner.replay = IntervalReplay(self)
        return learner.replay


@contextlib.contextmanager
def _torch_threads(threads: int):
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def as_backend(backend: "str | Backend", device: str = "cpu", cuda_graphs: bool = True) -> Backend:
    """``backend`` itself when it is a :class:`Backend`, else :func:`get_backend` of that name."""
    return backend if isinstance(backend, Backend) else get_backend(backend, device, cuda_graphs)


def get_backend(name: str = "numba", device: str = "cpu", cuda_graphs: bool = True, **options: Any) -> Backend:
    """The backend ``name`` ("numba" or "torch") on ``device`` ("cpu", "cuda", "cuda:1", ...).

    ``cuda_graphs``: on CUDA, capture training's learning intervals as CUDA graphs
    (:mod:`torch_graphs`); False runs the plain loop.  ``options``: fields of
    :class:`KernelOptions` to set instead of the device's defaults (e.g. ``propagation="dense"``,
    ``parallel_min_neurons=0``).
    """
    unknown = set(options) - {field.name for field in dataclasses.fields(KernelOptions)}
    if unknown:
        raise ParameterError(f"unknown kernel option {sorted(unknown)[0]!r}; expected one of "
                             f"{', '.join(field.name for field in dataclasses.fields(KernelOptions))}")
    if name == "numba":
        if device != "cpu":
            raise ParameterError(f"the numba backend runs on the cpu, not on {device!r}; use --backend torch")
        return Backend("numba", "cpu", kernels_of("numba"), KernelOptions(**options))
    if name == "torch":
        try:
            import torch
        except ImportError:
            raise ParameterError("the torch backend needs torch: pip install 'spikeforge[gpu]'") from None
        from spikeforge.core.backends import torch_kernels as torch_module

        if not (device == "cpu" or device.startswith("cuda")):
            raise ParameterError(f"device {device!r} is not 'cpu' or 'cuda[:N]'")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ParameterError(f"device {device!r} asked for, but torch sees no CUDA device")
        cuda = device.startswith("cuda")
        wants_triton = cuda or options.get("propagation") == "push" or options.get("fused_neurons", False)
        triton = torch_module.usable_triton_step(torch.device(device)) if wants_triton else None
        defaults = {"propagation": "sparse", "summation": "ordered", "fused_neurons": False, "intervals": "off",
                    "torch_threads": 1}
        if cuda:
            defaults = {"propagation": "push" if triton else "dense", "summation": "batched",
                        "fused_neurons": triton is not None, "intervals": "graph" if cuda_graphs else "off",
                        "torch_threads": None}
        chosen = KernelOptions(**{**defaults, **options})
        if (chosen.propagation == "push" or chosen.fused_neurons) and triton is None:
            raise ParameterError(f"propagation = 'push' and fused_neurons need the Triton kernels, which cannot run "
                                 f"on {device!r}")
        return Backend("torch", device, kernels_of("torch"), chosen, triton)
    raise ParameterError(f"backend {name!r} is not one of {', '.join(BACKENDS)}")
