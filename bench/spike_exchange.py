"""What exchanging spikes every step would cost a sharded network's dynamics (issue 15): an all-gather of
a bitmask of the neurons against an all-gather of the spiking neurons' ids, on gloo between 2 ranks.

    python bench/spike_exchange.py [--ranks 2] [--steps 2000] [--rate 5]

Starts itself under ``torchrun --standalone``.  For networks of 4096, 65,536 and 10^6 neurons firing at
``--rate`` Hz with 0.1-ms steps, each rank owns N / ranks neurons and draws which of them spike each step;
per step it all-gathers its packed bitmask (N / ranks / 8 bytes); or its spike count and then its ids
padded to the largest count (two collectives, 4 bytes per spike); or its ids in a buffer of fixed capacity
(8 times the mean count + 16, one collective; a real kernel would fall back to the bitmask on overflow).  Prints microseconds
per step for each, measured over ``--steps`` steps after 200 warm-up steps; rank 0 prints.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

SIZES = (4096, 65_536, 1_048_576)
DT_S = 1e-4


def measure(steps: int, rate_hz: float) -> None:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(rank)
    if rank == 0:
        print(f"{world} ranks (gloo, one host), {rate_hz:g} Hz, 0.1-ms steps; microseconds per step")
        print(f"{'neurons':>9} {'spikes/step':>11} {'bitmask':>9} {'ids':>9} {'ids, fixed':>11}")
    for n in SIZES:
        own = n // world
        spiking = rng.random((steps + 200, own)) < rate_hz * DT_S
        masks = np.packbits(spiking, axis=1)
        out_masks = [torch.empty(masks.shape[1], dtype=torch.uint8) for _ in range(world)]
        counts_out = [torch.empty(1, dtype=torch.int64) for _ in range(world)]
        seconds = {}
        capacity = int(8 * own * rate_hz * DT_S) + 16
        fixed_out = [torch.empty(capacity, dtype=torch.int32) for _ in range(world)]
        for method in ("bitmask", "ids", "ids, fixed"):
            dist.barrier()
            for step in range(steps + 200):
                if step == 200:
                    dist.barrier()
                    started = time.perf_counter()
                if method == "bitmask":
                    dist.all_gather(out_masks, torch.from_numpy(masks[step]))
                elif method == "ids, fixed":
                    ids = np.flatnonzero(spiking[step]).astype(np.int32)[:capacity - 1]
                    buffer = np.full(capacity, -1, dtype=np.int32)
                    buffer[0], buffer[1:ids.size + 1] = ids.size, ids
                    dist.all_gather(fixed_out, torch.from_numpy(buffer))
                else:
                    ids = np.flatnonzero(spiking[step]).astype(np.int32)
                    dist.all_gather(counts_out, torch.tensor([ids.size], dtype=torch.int64))
                    width = int(max(int(c.item()) for c in counts_out))
                    padded = np.zeros(max(width, 1), dtype=np.int32)
                    padded[:ids.size] = ids
                    gathered = [torch.empty(max(width, 1), dtype=torch.int32) for _ in range(world)]
                    dist.all_gather(gathered, torch.from_numpy(padded))
            seconds[method] = (time.perf_counter() - started) / steps
        if rank == 0:
            print(f"{n:>9} {n * rate_hz * DT_S:>11.1f} {1e6 * seconds['bitmask']:>9.1f} {1e6 * seconds['ids']:>9.1f} "
                  f"{1e6 * seconds['ids, fixed']:>11.1f}")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=5.0)
    args = parser.parse_args()
    if "RANK" in os.environ:
        measure(args.steps, args.rate)
        return
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.ranks}",
                    __file__, "--steps", str(args.steps), "--rate", str(args.rate)], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})


if __name__ == "__main__":
    main()
