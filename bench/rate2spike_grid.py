"""The scaling-factor search of rate-to-spike: seconds for the whole grid, and the LIF kernel
against a plain vectorised NumPy version of the same network run in this process.

The NumPy peer is written here from spikernn.md 5.3 alone (it shares no code with spikeforge):
the (trials x neurons) state advances one 0.05-ms step at a time, the spikes' weights are one
matrix product per step.  This is how the reference's own check simulated the network (about
0.16 s per Go-NoGo trial there), the way a Python user without a kernel would write it.

Before timing, both run the same trials without voltage noise from the same initial voltages;
their outputs must agree (they are the same arithmetic), which the script checks and prints.

    python bench/rate2spike_grid.py [--model DIR] [--trials 100] [--peer-trials 100]

Without ``--model`` it trains the Go-NoGo network of the acceptance test (N = 200, seed 15,
about a minute) in a temporary directory.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from spikeforge.core.cells import lif_mv
from spikeforge.rate2spike import runs
from spikeforge.rate2spike.lif_network import RISE_MS, from_arrays, lif_steps, simulate
from spikeforge.rate2spike.search import DEFAULT_GRID, accuracy
from spikeforge.rate2spike.tasks import task_named


def numpy_peer(mapped, u, scaling_factor, v0, noise_std, rng):
    """The LIF network of spikernn.md 5.3 in plain NumPy for a batch of trials; returns the readout
    (batch, n_t)."""
    cell = lif_mv.Parameters()
    batch, n = v0.shape
    per_column, n_t = lif_steps(u.shape[2], cell)
    dt = cell.dt / 1000.0  # s
    tau_d = mapped.tau_d / 1000.0
    decay, rise_decay = np.exp(-dt / tau_d), math.exp(-cell.dt / RISE_MS)
    kick = 1.0 / (RISE_MS / 1000.0 * tau_d)
    ext = np.einsum("ni,bic->bcn", mapped.w_in, u)
    scale = (1.0 / np.broadcast_to(scaling_factor, (batch,)))[:, None]
    w_t = mapped.w.T.copy()
    v = v0.copy()
    t_last = np.zeros((batch, n))
    ipsc, h, r, h_r = (np.zeros((batch, n)) for _ in range(4))
    out = np.empty((batch, n_t))
    for i in range(1, n_t + 1):
        current = ipsc + cell.bias + ext[:, int(math.floor(i / per_column + 0.5))]
        active = i - t_last > cell.refrac_steps
        v = v + active * (cell.dt / cell.tau_m) * (current - v) + noise_std * rng.standard_normal((batch, n))
        fired = v >= cell.v_th
        t_last[fired] = i
        spikes = fired.astype(np.float64)
        ipsc, h = ipsc * decay + dt * h, h * rise_decay + (spikes @ w_t) * scale * kick
        r, h_r = r * decay + dt * h_r, h_r * rise_decay + spikes * kick
        v[fired] = cell.v_reset
        out[:, i - 1] = (r @ mapped.w_out) * scale[:, 0]
    return out


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="a model directory (default: train one)")
    parser.add_argument("--trials", type=int, default=100, help="trials per scaling factor (default 100)")
    parser.add_argument("--peer-trials", type=int, default=100, help="trials of the NumPy peer (default 100)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = options.model
        if directory is None:
            directory = Path(scratch) / "go-nogo"
            _, seconds = timed(runs.train, directory, "go-nogo", {"n": 200, "decay_taus": (4.0, 10.0)},
                               {"max_trials": 6000}, seed=15, verbose=False)
            print(f"trained the Go-NoGo network (N = 200, seed 15) in {seconds:.1f} s")
        model = runs.load(directory)
        mapped, task = from_arrays(model), task_named(model.task)
        n = mapped.w.shape[0]
        print(f"{model.task}, N = {n}, {numba.get_num_threads()} numba threads")

        # the same arithmetic: no noise, the same initial voltages
        rng = np.random.default_rng(1)
        trials = task.trials(rng, 8)
        u = task.lif_input(trials.u)
        silent = lif_mv.Parameters(noise_std=0.0)
        v0 = lif_mv.initial_voltage(np.random.default_rng(2), (8, n), silent)
        ours = simulate(mapped, u, 30.0, np.random.default_rng(2), silent).out
        peer = numpy_peer(mapped, u, 30.0, v0, 0.0, rng)
        print(f"agreement without noise, 8 trials: max |out difference| = {np.max(np.abs(ours - peer)):.2e} "
              f"(outputs up to {np.max(np.abs(peer)):.2f}; float32 readout)")

        simulate(mapped, u[:2], 30.0, rng)  # compile
        _, n_t = lif_steps(u.shape[2], silent)
        grid = np.asarray(DEFAULT_GRID, dtype=np.float64)
        scores, grid_s = timed(accuracy, mapped, task, grid, options.trials, np.random.default_rng(3))
        trial_steps = grid.size * options.trials * n_t
        print(f"spikeforge grid: {grid.size} factors x {options.trials} trials of {n_t} steps in {grid_s:.1f} s "
              f"({grid_s / trial_steps * 1e9 / n:.2f} ns per neuron-step); best 1/lambda "
              f"{grid[int(np.argmax(scores))]:g} at {scores.max():.0%}")
        trials = task.trials(rng, options.peer_trials)
        u = task.lif_input(trials.u)
        v0 = lif_mv.initial_voltage(rng, (options.peer_trials, n), lif_mv.Parameters())
        _, ours_s = timed(simulate, mapped, u, 30.0, rng)
        _, peer_s = timed(numpy_peer, mapped, u, 30.0, v0, 0.1, rng)
        print(f"{options.peer_trials} trials at 1/lambda = 30: spikeforge {ours_s:.2f} s, NumPy {peer_s:.2f} s "
              f"({peer_s / options.peer_trials:.3f} s per trial): spikeforge is {peer_s / ours_s:.1f}x as fast; "
              f"the NumPy grid would take {peer_s / options.peer_trials * grid.size * options.trials:.0f} s")


if __name__ == "__main__":
    main()
