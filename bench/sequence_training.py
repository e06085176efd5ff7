"""Simulated seconds per wall second of the full WTA grid in training, against the plain NumPy step in the
same run.

    python bench/sequence_training.py [--seconds 100] [--reference-seconds 10] [--seed 1]

The problem (issue 14, sequence.md 4.1): 10 x 5 circuits of 2-10 neurons (about 300), 100 inputs, 1000
circuit links, one 300-ms pattern in 5-Hz noise, STDP with variance tracking and short-term plasticity,
dt = 1 ms.  Measured, one after the other:

* spikeforge's numba kernel (``Network.run``, uniforms drawn per 10-s chunk included) over ``--seconds``
  of training, with 1 numba thread and with all; the first call (compilation, cached) is timed apart;
* the plain vectorised NumPy step (:mod:`spikeforge.sequence.reference`: dense weight matrix, one
  NumPy expression per quantity and step) on the first ``--reference-seconds`` of the same inputs and
  uniforms, from the same initial state; its spikes are compared with the kernel's (they must be equal).

Prints simulated seconds per wall second, the real-time factor (wall / simulated), and the ratios; the
numbers go into BENCHMARKS.md.  Anchors (the thesis, i7-8565U): the NEST port 0.736 real-time factor on 6
threads, the original Python 2.7 code 41.8.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from spikeforge.core import rng as streams
from spikeforge.sequence import reference
from spikeforge.sequence.inputs import InputGenerator
from spikeforge.sequence.model import Network


def numba_rate(seed: int, inputs, threads: int) -> tuple[float, np.ndarray]:
    """Simulated s per wall s of Network.run over ``inputs`` with ``threads`` numba threads; the spikes."""
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        net = Network(seed=seed)
        started = time.perf_counter()
        run = net.run(inputs, streams.stream(seed, "sequence", "spiking"), train=True)
        wall = time.perf_counter() - started
    finally:
        numba.set_num_threads(before)
    return inputs.spikes.shape[0] / 1000.0 / wall, run.spikes


def reference_rate(seed: int, inputs, n_steps: int) -> tuple[float, np.ndarray]:
    """Simulated s per wall s of the plain NumPy step over the first ``n_steps``; its spikes."""
    net = Network(seed=seed)
    n, n_inputs = net.n_neurons, net.n_inputs
    width = n_inputs + n
    rows = np.repeat(np.arange(n), np.diff(net.synapses.offsets))
    mask = np.zeros((n, width), dtype=bool)
    mask[rows, net.synapses.pre] = True
    uniforms = streams.stream(seed, "sequence", "spiking").random((n_steps, n))  # the kernel's first draws
    state = [np.zeros(n), np.zeros(width), np.zeros(width), net.stp_parameters[0].copy(), np.ones(n),
             np.full(n, -1), np.zeros(n)]
    started = time.perf_counter()
    spikes, _ = reference.run(mask, net.grid.starts, *net.stp_parameters, np.zeros((n, width)), np.zeros((n, width)),
                              np.ones((n, width)), *state, 0, inputs.spikes[:n_steps], uniforms, net.options)
    return n_steps / 1000.0 / (time.perf_counter() - started), spikes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=100.0, help="simulated seconds for the numba kernel")
    parser.add_argument("--reference-seconds", type=float, default=10.0, help="simulated seconds for plain NumPy")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    seed = args.seed
    inputs = InputGenerator(seed=seed).generate(args.seconds * 1000.0, streams.stream(seed, "sequence", "train"))
    started = time.perf_counter()
    short = InputGenerator(seed=seed).generate(100.0, streams.stream(seed, "sequence", "warm-up"))
    Network(seed=seed).run(short, np.random.default_rng(0), train=True)
    print(f"first call (compilation or cache load): {time.perf_counter() - started:.2f} s")
    n = Network(seed=seed).n_neurons
    print(f"10 x 5 grid, {n} neurons, {args.seconds:g} s of training")
    all_threads = numba.config.NUMBA_NUM_THREADS
    results = {}
    for threads in sorted({1, all_threads}):
        rate, spikes = numba_rate(seed, inputs, threads)
        results[threads] = rate
        print(f"numba, {threads} thread(s): {rate:.1f} simulated s per s (real-time factor {1 / rate:.3f}; "
              f"{args.seconds / rate:.1f} s for {args.seconds:g} s)")
    n_reference = int(round(args.reference_seconds * 1000.0))
    plain, plain_spikes = reference_rate(seed, inputs, n_reference)
    same = np.array_equal(plain_spikes, spikes[:n_reference])
    print(f"plain NumPy: {plain:.2f} simulated s per s (real-time factor {1 / plain:.3f}); spikes equal to the "
          f"kernel's: {same}")
    for threads, rate in results.items():
        print(f"ratio numba ({threads} thread(s)) / plain NumPy: {rate / plain:.1f}x; vs the NEST port's 0.736 "
              f"real-time factor: {0.736 * rate:.1f}x; vs the original's 41.8: {41.8 * rate:.0f}x")


if __name__ == "__main__":
    main()
