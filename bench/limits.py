"""The physical limits of a network step and of an RLS update on this machine, and each measured time
as a ratio to its limit, all measured in one run.

    python bench/limits.py [--loops 3] [--threads 1 2]

The machine: the bandwidth of an in-place pass (read and write every element once) over an array of
the size of the data a step or an update touches, and the peak rate of fused multiply-adds (many
independent accumulators, vectorised), for each thread count.

The work, per neuron and step of the default model (4096 neurons, K = 205, 58 plastic inputs, dt
0.1 ms, float64 state, float32 P), counted in bytes that must cross the memory hierarchy:

* static step (the init run): the state that carries over from step to step, voltage and the
  synaptic current (held as charge; one for E and I synapses, which share a time constant by default,
  two otherwise), read and written (2 x 16 B), a refractory marker read and a
  spike flag written (2 B), and for the spikes (rate x dt per neuron-step) their 2K out-synapses (4 B
  target + 8 B weight) and the read-modify-write of each target's charge (8 B): the *must-move* bytes.
  The kernel moves more: the step of the last spike (8 B), the serial scan of the spike flags (1 B)
  and the init statistics (2 x 16 B on the steps after u0_skip_time, half of them): the *kernel*
  bytes.  (Until 2026-12-04 it kept two currents and also read and cleared two charge accumulators,
  48 B more.)
* training step: also the plastic charge and the filtered spike train (2 x 16 B), the stored static
  current for RLS (8 B) and the spikes' plastic out-synapses.
* RLS update of one neuron with L plastic inputs: P read and written once, L (L + 1) / 2 floats with
  its symmetry exploited in storage (the *must* bytes: the default packed storage stores exactly
  these; symmetric and full store an L x 64 padded block), and 3 L^2 flops (k = P a, 2 L^2, and the
  rank-1 update of the triangle, L (L + 1)).

A limit is the larger of bytes / bandwidth and flops / peak; the table gives each measured time as a
ratio to it (1.0 would be the limit).  Paste the tables into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from spikeforge import rls

K = 205  # the default model's static in-degree per population (2K out-synapses per neuron)


@numba.njit(parallel=True, cache=True)
def _fma_rate(out: np.ndarray, coefficients: np.ndarray, repeats: int) -> None:
    """``repeats`` rounds of 64 independent multiply-adds per thread, in registers (no memory traffic);
    ``out`` has one element per thread, ``coefficients`` (2,) the type of the arithmetic."""
    for t in numba.prange(out.shape[0]):
        accumulators = np.empty(64, dtype=out.dtype)
        for j in range(64):
            accumulators[j] = coefficients[1] * (j + t)
        for _ in range(repeats):
            for j in range(64):
                accumulators[j] = accumulators[j] * coefficients[0] + coefficients[1]
        out[t] = accumulators.sum()


def bandwidth(n_bytes: int) -> float:
    """Best bytes per second (read + write) of an in-place pass over ``n_bytes`` of float64 (the pass of
    ``rls_loop.py``'s roofline)."""
    from rls_loop import roofline_seconds

    values = np.ones((max(n_bytes // 4096, 1), 512))  # rows of 4 kB: the pass shares rows out between threads
    return 2 * values.nbytes / roofline_seconds(values, repeats=30)


def peak_flops(dtype, repeats: int = 2_000_000) -> float:
    """Best flops per second of the multiply-add loop on every thread (2 flops per multiply-add)."""
    out = np.zeros(numba.get_num_threads(), dtype=dtype)
    coefficients = np.array([0.999999, 1e-7], dtype=dtype)
    _fma_rate(out, coefficients, 10)
    best = np.inf
    for _ in range(3):
        started = time.perf_counter()
        _fma_rate(out, coefficients, repeats)
        best = min(best, time.perf_counter() - started)
    return 2 * 64 * repeats * out.size / best


def step_bytes(rate_hz: float, dt_ms: float, training: bool, n_plastic: int, static_charges: int = 1
               ) -> tuple[float, float]:
    """(must-move, kernel) bytes per neuron-step of a static (init) or training step (module docstring);
    ``static_charges``: 1 when E and I static synapses share one time constant (the default), else 2."""
    spikes = rate_hz * dt_ms / 1000.0  # spikes per neuron-step
    synapses = spikes * 2 * K * (4 + 8 + 8)
    must = (1 + static_charges) * 16 + 2 + synapses
    kernel = must + 8 + 1 + (16 if not training else 0)
    if training:
        plastic = spikes * n_plastic * (4 + 8 + 8)
        must += 2 * 16 + plastic
        kernel += 2 * 16 + 8 + plastic
    return must, kernel


def init_run_seconds(directory: Path):
    """``rls.init`` of ``directory`` (returns its model) and a function that times its init run again on a
    number of threads (the call ``rls.init`` made, with a fresh copy of its random generator)."""
    import copy

    from spikeforge.core.backends.layout import INIT
    from spikeforge.rls import initialize

    original, captured = initialize.run_trial, {}

    def capture(*args, **kwargs):
        if "args" not in captured and len(args) > 3 and args[3] == INIT:
            captured["args"], captured["kwargs"] = args, kwargs
        return original(*args, **kwargs)

    initialize.run_trial = capture
    try:
        model = rls.init(directory, verbose=False)
    finally:
        initialize.run_trial = original

    def seconds(threads: int) -> float:
        numba.set_num_threads(threads)
        args = [copy.deepcopy(a) if isinstance(a, np.random.Generator) else a for a in captured["args"]]
        started = time.perf_counter()
        original(*args, **captured["kwargs"])
        return time.perf_counter() - started

    seconds(1)  # loads the kernel
    return model, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=3, help="timed training loops per thread count")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, numba.config.NUMBA_NUM_THREADS])
    args = parser.parse_args()
    from rls_loop import TimedKernels

    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder) / "net"
        rls.new(directory, {"n_cells": 4096, "seed": 1})
        model, init_seconds = init_run_seconds(directory)
        p, P = model.p, model.P
        rate = float(np.mean(model.init_stats["spike_count"])) / (p.train_time / 1000.0)
        n, steps, L = p.n_cells, p.steps.n_steps, p.steps.n_plastic
        rls.train(directory, nloops=1, correlation_interval=10**9, verbose=False)  # compile and warm up
        print(f"machine: {platform.processor() or platform.machine()}, {numba.config.NUMBA_NUM_THREADS} cores, "
              f"numba {numba.__version__}; model: {n} neurons, {L} plastic inputs, rate {rate:.2f} Hz, P {P.dtype} "
              f"{P.nbytes / 1e6:.1f} MB")
        rows = []
        for threads in args.threads:
            numba.set_num_threads(threads)
            with TimedKernels() as kernels:
                rls.train(directory, nloops=args.loops, correlation_interval=10**9, verbose=False)
            train_step_s = kernels.seconds["run_steps"] / args.loops
            rls_s = kernels.seconds["rls_update"] / args.loops
            static_s = min(init_seconds(threads) for _ in range(3))
            must_static, kernel_static = step_bytes(rate, p.dt, False, L)
            must_train, kernel_train = step_bytes(rate, p.dt, True, L)
            bw_state = bandwidth(int(n * kernel_train))
            bw_p = bandwidth(P.nbytes)
            flops64, flops32 = peak_flops(np.float64), peak_flops(np.float32)
            rls_must = 2 * n * L * (L + 1) / 2 * P.itemsize
            rls_flops = 3 * L * L * n
            updates = p.steps.learn_nsteps
            rls_limit = max(rls_must / bw_p, rls_flops / flops32) * updates
            static_limit = n * steps * must_static / bw_state
            train_limit = n * steps * must_train / bw_state
            rows.append((threads, bw_state, bw_p, flops64, flops32, [
                ("static step (init run, 2 s)", static_s, n * steps * kernel_static / bw_state, static_limit),
                ("training steps of a loop", train_step_s, n * steps * kernel_train / bw_state, train_limit),
                ("RLS updates of a loop (100)", rls_s, 2 * P.nbytes * updates / bw_p, rls_limit)]))
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    print("\n| threads | bandwidth, step's data [GB/s] | bandwidth, P [GB/s] | peak float64 [GFlop/s] | "
          "peak float32 [GFlop/s] |\n|---|---|---|---|---|")
    for threads, bw_state, bw_p, f64, f32, _ in rows:
        print(f"| {threads} | {bw_state / 1e9:.0f} | {bw_p / 1e9:.0f} | {f64 / 1e9:.0f} | {f32 / 1e9:.0f} |")
    print("\n| threads | what | measured [s] | the kernel's own bytes at that bandwidth [s] | limit [s] | "
          "measured / limit |\n|---|---|---|---|---|---|")
    for threads, *_, lines in rows:
        for what, measured, own, limit in lines:
            print(f"| {threads} | {what} | {measured:.3f} | {own:.3f} | {limit:.3f} | {measured / limit:.1f} |")
    must_static, kernel_static = step_bytes(rate, p.dt, False, L)
    must_train, kernel_train = step_bytes(rate, p.dt, True, L)
    print(f"\nbytes per neuron-step: static {must_static:.0f} must move, {kernel_static:.0f} the kernel moves; "
          f"training {must_train:.0f} and {kernel_train:.0f}. RLS per neuron: {2 * L * (L + 1) / 2 * P.itemsize:.0f} B "
          f"must move ({2 * P.nbytes / n:.0f} B in {p.p_storage} storage), {3 * L * L} flops")


if __name__ == "__main__":
    main()
