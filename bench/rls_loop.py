"""Seconds per training loop of the default RLS model, split into simulation and RLS,
and the RLS update's ratio to the memory-bandwidth roofline measured in the same run.

The roofline of one RLS update is the time to stream every neuron's P block in and out
of memory once (a parallel numba pass that reads and writes each element of an array of
P's size and type); a loop has ``learn_nsteps`` updates.

    python bench/rls_loop.py [--n-cells 4096] [--k 205] [--loops 5] [--threads 1 2] [--p-storage packed]
                             [--layouts interleaved packed] [--weights in-place copied] [--rounds 1]

``--weights``: in-place, copied or both (alternated), to compare where the step kernel reads the plastic weights.
``--layouts``: numba keeps packed P interleaved while it trains (``KernelOptions.rls_interleave``); give both to
compare, in alternated rounds of ``--loops`` loops each.  Prints a table; paste it into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from spikeforge import rls
from spikeforge.core.aligned import aligned_copy
from spikeforge.rls.params import SCHEMA
from spikeforge.core.backends import get_backend, numba_network, numba_rls


class TimedKernels:
    """The numba kernels, with the wall time of each accumulated (patched into their modules for
    one run: backends made inside the ``with`` block use the timed versions)."""

    MODULES = {"run_steps": numba_network, "rls_update": numba_rls}

    def __init__(self):
        self.seconds = {name: 0.0 for name in self.MODULES}
        self.original = {name: getattr(module, name) for name, module in self.MODULES.items()}

    def __enter__(self):
        for name, function in self.original.items():
            setattr(self.MODULES[name], name, self._timed(name, function))
        return self

    def __exit__(self, *exc):
        for name, function in self.original.items():
            setattr(self.MODULES[name], name, function)

    def _timed(self, name, function):
        def timed(*args, **options):
            started = time.perf_counter()
            function(*args, **options)
            self.seconds[name] += time.perf_counter() - started
        return timed


@numba.njit(parallel=True, cache=True)
def _stream_once(P: np.ndarray, factor: float) -> None:
    """Read and write every element of P once (the memory traffic floor of an RLS update)."""
    flat = P.reshape(P.shape[0], -1)
    for i in numba.prange(flat.shape[0]):
        row = flat[i]
        for j in range(row.shape[0]):
            row[j] = row[j] * factor


def roofline_seconds(P: np.ndarray, repeats: int = 20) -> float:
    """Best time of one in-place pass over an array like ``P``."""
    scratch = aligned_copy(P)  # on a cache line, as the kernels' P
    _stream_once(scratch, 1.0)
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        _stream_once(scratch, 1.0)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-cells", type=int, default=4096)
    parser.add_argument("--loops", type=int, default=5, help="timed loops per thread count (after one warm-up)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, numba.config.NUMBA_NUM_THREADS])
    storage = SCHEMA.params["p_storage"]
    parser.add_argument("--p-storage", default=storage.default, choices=storage.choices,
                        help=f"layout of P (default: the model's, {storage.default})")
    parser.add_argument("--k", type=int, default=None,
                        help="static in-degree per population (default: derived, round(ne * pree)); the peers "
                             "table's larger networks keep the default model's 205")
    parser.add_argument("--layouts", nargs="+", default=["interleaved"], choices=("interleaved", "packed"),
                        help="P's layout during training (packed storage): interleaved (numba's default) or packed")
    parser.add_argument("--weights", nargs="+", default=["default"], choices=("default", "in-place", "copied"),
                        help="where the step kernel reads the plastic weights while training: the backend's "
                             "default (KernelOptions.plastic_in_place), the in-layout the RLS update writes "
                             "(in-place) or their copy in the out-layout (copied)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every layout and weights, alternated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder) / "net"
        rls.new(directory, {"n_cells": args.n_cells, "seed": 1, "p_storage": args.p_storage}
                | ({} if args.k is None else {"k": args.k}))
        started = time.perf_counter()
        model = rls.init(directory, verbose=False)
        init_seconds = time.perf_counter() - started
        P = model.P
        updates = model.p.steps.learn_nsteps
        print(f"model: {args.n_cells} neurons, {model.p.steps.n_plastic} plastic inputs, P {P.dtype} "
              f"{args.p_storage}, {P.nbytes / 1e6:.1f} MB; init {init_seconds:.2f} s")
        rls.train(directory, nloops=1, correlation_interval=10**9, verbose=False)  # compile and warm up
        print(f"machine: {platform.machine()}, {numba.config.NUMBA_NUM_THREADS} cores, numba {numba.__version__} "
              f"({numba.threading_layer()} threads), numpy {np.__version__}")
        print("| threads | P layout | plastic weights read | s/loop | simulation s | RLS s | "
              "roofline s (P in+out x updates) | RLS / roofline | P bandwidth GB/s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for threads in args.threads:
            numba.set_num_threads(threads)
            for _, layout, weights in itertools.product(range(args.rounds), args.layouts, args.weights):
                options = {} if weights == "default" else {"plastic_in_place": weights == "in-place"}
                with TimedKernels() as kernels:  # (a backend holds the kernels of its making: made inside)
                    backend = get_backend("numba", rls_interleave=layout == "interleaved", **options)
                    result = rls.train(directory, nloops=args.loops, correlation_interval=10**9, verbose=False,
                                       backend=backend)
                per_loop = np.median(result.elapsed_time)
                sim = kernels.seconds["run_steps"] / args.loops
                rls_time = kernels.seconds["rls_update"] / args.loops
                roof = roofline_seconds(P) * updates
                bandwidth = 2 * P.nbytes * updates / roof / 1e9
                shown = layout if backend.interleaves(args.p_storage, P.dtype) else args.p_storage
                read = "in place" if backend.options.plastic_in_place else "copied"
                print(f"| {threads} | {shown} | {read} | {per_loop:.3f} | {sim:.3f} | {rls_time:.3f} | "
                      f"{roof:.3f} | {rls_time / roof:.2f} | {bandwidth:.1f} |")
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


if __name__ == "__main__":
    main()
