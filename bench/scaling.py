"""Scaling out (issue 15): sharded RLS training on 1 vs 2 ranks, and the Dask executor's overhead per job.

    python bench/scaling.py [--cells 4096] [--loops 3] [--jobs 40]

1. The default model (``--cells`` neurons, every other parameter at its default, P float32 packed),
   after one warm-up loop: ``spikeforge train`` in one process (1 numba thread, then all) against
   ``torchrun --nproc-per-node 2 ... --distributed`` (one thread per rank), with and without
   ``--shard-network``, the same loops from the same checkpoint; s/loop from the learning curves, and the
   share of rank 0's time spent in collective
   operations (as ``train --distributed`` prints it).
2. The executor: the seconds to start a LocalCluster of one worker per core, and the wall time per job of
   ``--jobs`` jobs that return at once, i.e. what Dask adds to every job of a sweep.

Prints the numbers that go into BENCHMARKS.md ("Scaling out").
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np


def seconds_per_loop(directory: Path, loops: int) -> float:
    with h5py.File(directory / "learning-curve.h5") as handle:
        return float(np.mean(handle["elapsed_time"][()][-loops:]))


def spikeforge(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "spikeforge", *args], capture_output=True, text=True, check=True)
    return done.stdout


def instant(x: int) -> dict:
    return {"x": x}


def sharded(cells: int, loops: int) -> None:
    from spikeforge import rls

    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "base"
        rls.new(base, {"n_cells": cells, "seed": 1})
        rls.init(base, verbose=False)
        rls.train(base, nloops=1, verbose=False)  # compiles and caches the kernels
        rows = []
        for threads in (1, os.cpu_count() or 1):
            one = Path(scratch) / f"one-{threads}"
            shutil.copytree(base, one)
            spikeforge("--threads", str(threads), "train", str(one), "--nloops", str(loops))
            rows.append((f"1 process, {threads} numba thread(s)", seconds_per_loop(one, loops), None))
        for name, extra in (("2 ranks (torchrun, gloo), 1 thread each", ()),
                            ("2 ranks, --shard-network (spikes exchanged every step)", ("--shard-network",))):
            two = Path(scratch) / f"two{len(extra)}"
            shutil.copytree(base, two)
            done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                                   "-m", "spikeforge", "train", str(two), "--nloops", str(loops), "--distributed",
                                   *extra], capture_output=True, text=True, check=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
            share = re.search(r"\((\d+) %\)", done.stdout)
            rows.append((name, seconds_per_loop(two, loops), int(share.group(1)) if share else None))
    print(f"default model, {cells} neurons, mean of {loops} loops after a warm-up loop:")
    for name, value, communication in rows:
        extra = f"; rank 0 in collectives: {communication} %" if communication is not None else ""
        print(f"  {name}: {value:.3f} s/loop{extra}")


def dask_overhead(n_jobs: int) -> None:
    import cloudpickle

    from spikeforge.core.executor import Cluster, Job, run_jobs

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, Cluster() as cluster:
        up = time.perf_counter() - started
        started = time.perf_counter()
        run_jobs([Job(f"job-{k}", instant, (k,), {"k": k}) for k in range(n_jobs)], scratch, cluster, verbose=False)
        wall = time.perf_counter() - started
    print(f"Dask: a LocalCluster of {cluster.workers} workers starts in {up:.2f} s; {n_jobs} jobs that return at once "
          f"take {wall:.2f} s: {1000 * wall / n_jobs:.1f} ms per job (submission, scheduling, the result file written "
          "atomically)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=4096)
    parser.add_argument("--loops", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()
    sharded(args.cells, args.loops)
    dask_overhead(args.jobs)


if __name__ == "__main__":
    main()
