"""Rate-network training: trials and seconds to the original's criterion, one trial per Adam
step (the original) against mini-batches of trials, over several seeds.

Each run trains a fresh network (the same initial weights for every schedule of a seed) with
the stopping rule of spikernn.md 2.6 (evaluation every 100 trials on 100 fresh trials: mean loss
below 7 and more than 95 % correct) and no trial floor, so that the criterion itself is timed.
torch runs on one CPU thread, as ``spikeforge rate train`` does.

    python bench/rate2spike_training.py [--task go-nogo] [--n 200] [--seeds 1 2 3]
        [--schedules 1:0.01 10:0.01 10:0.03]

A schedule is BATCH:LEARNING_RATE.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from spikeforge.core import rng as streams
from spikeforge.rate2spike.rate_model import RateConfig, RateRNN, initial_weights
from spikeforge.rate2spike.tasks import task_named
from spikeforge.rate2spike.training import TrainingConfig, train


def schedule(text: str) -> tuple[int, float]:
    batch, rate = text.split(":")
    return int(batch), float(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="go-nogo")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--decay-taus", type=float, nargs=2, default=(4.0, 10.0))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--schedules", type=schedule, nargs="+", default=[(1, 0.01), (10, 0.01), (10, 0.03)])
    parser.add_argument("--max-trials", type=int, default=12000)
    options = parser.parse_args()
    torch.set_num_threads(1)
    task = task_named(options.task)
    config = RateConfig(n=options.n, n_inputs=task.n_inputs, decay_taus=tuple(options.decay_taus))
    print(f"{task.name}, N = {options.n}, decay_taus {options.decay_taus}, no trial floor, one thread")
    print(f"{'batch':>5} {'lr':>6} {'seed':>4} {'trials':>7} {'steps':>6} {'seconds':>8} {'converged':>9}")
    summary = {}
    for batch, rate in options.schedules:
        for seed in options.seeds:
            model = RateRNN(config, initial_weights(config, streams.stream(seed, "rate", "weights")))
            generator = torch.Generator().manual_seed(seed)
            training = TrainingConfig(max_trials=options.max_trials, batch=batch, learning_rate=rate, min_trials=0)
            log = train(model, task, training, streams.stream(seed, "rate", "trials"), generator)
            summary.setdefault((batch, rate), []).append((log.trials, log.seconds, log.converged))
            print(f"{batch:>5} {rate:>6g} {seed:>4} {log.trials:>7} {len(log.losses):>6} {log.seconds:>8.1f} "
                  f"{str(log.converged):>9}", flush=True)
    print("\nmedian over seeds (converged runs):")
    for (batch, rate), runs in summary.items():
        done = [(trials, seconds) for trials, seconds, converged in runs if converged]
        if done:
            trials, seconds = np.median(np.array(done), axis=0)
            print(f"  batch {batch}, lr {rate:g}: {len(done)}/{len(runs)} converged, {trials:.0f} trials, "
                  f"{seconds:.1f} s")
        else:
            print(f"  batch {batch}, lr {rate:g}: none of {len(runs)} converged within {options.max_trials} trials")


if __name__ == "__main__":
    main()
