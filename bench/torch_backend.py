"""The torch backend: seconds per training loop against network size, steps per second, and
the fraction of the device's memory bandwidth the RLS update reaches.

On a CUDA machine (``--device cuda``) it sweeps ``--sizes`` (default 4096 .. 10^6 neurons) with
packed float16 P for the largest; without a GPU it runs the torch backend on the CPU next to
numba on the default model and prints their ratio.

    python bench/torch_backend.py [--device cuda] [--sizes 4096 65536 1000000] [--loops 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spikeforge import rls
from spikeforge.core.backends import get_backend, torch_kernels


def time_rls_bandwidth(model, device: str, repeats: int = 5) -> tuple[float, float]:
    """Best seconds of one RLS update of every neuron, and the bytes of P it streams in and out."""
    p = model.p
    engine = get_backend("torch", device)
    net, in_to_out = model.connectivity()
    args = [engine.put(a) for a in (model.P.copy(), model.plastic.weight.copy(), model.plastic.index,
                                    model.plastic.count, in_to_out, net.plastic_weight.copy(),
                                    np.random.default_rng(0).random(p.n_cells + p.lx) * 0.01,
                                    np.zeros(p.n_cells), np.zeros(p.n_cells))]
    best = np.inf
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        torch_kernels.rls_update(*args, p.p_scale, True, p.p_storage, True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best, 2 * model.P.nbytes


def copy_bandwidth(device: str, n_bytes: int = 2**30, repeats: int = 5) -> float:
    """The device's memory bandwidth roofline [bytes/s]: the best device-to-device copy of
    ``n_bytes`` (read once, written once), measured in this process."""
    source = torch.empty(n_bytes // 4, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    best = np.inf
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        target.copy_(source)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * n_bytes / best


def run(n_cells: int, device: str, loops: int, folder: Path, extra: dict, cuda_graphs: bool = True) -> dict:
    """Seconds per training loop (median of ``loops`` after one warm-up loop) and the RLS update's speed."""
    directory = folder / f"n{n_cells}-{'graphs' if cuda_graphs else 'plain'}"
    rls.new(directory, {"n_cells": n_cells, "seed": 1, **extra})
    model = rls.init(directory, verbose=False)
    options = {"correlation_interval": 10**9, "verbose": False, "backend": "torch", "device": device,
               "cuda_graphs": cuda_graphs}
    torch.cuda.reset_peak_memory_stats()
    rls.train(directory, nloops=2, **options)  # warm-up and capture
    result = rls.train(directory, nloops=loops, **options)
    per_loop = float(np.median(result.elapsed_time))
    update, p_bytes = time_rls_bandwidth(model, device)
    return {"n": n_cells, "s_per_loop": per_loop, "steps_per_s": model.p.steps.n_steps / per_loop,
            "us_per_step": per_loop / model.p.steps.n_steps * 1e6, "rls_update_s": update,
            "rls_gb_per_s": p_bytes / update / 1e9, "peak_gb": torch.cuda.max_memory_allocated() / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--loops", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if args.device.startswith("cuda"):
            roofline = copy_bandwidth(args.device)
            print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
                  f"copy bandwidth {roofline / 1e9:.0f} GB/s")
            print("| neurons | s/loop | steps/s | us/step | us/step without graphs | RLS update s | RLS GB/s | "
                  "RLS / copy bandwidth | peak GB |")
            print("|---|---|---|---|---|---|---|---|---|")
            for n in args.sizes or [4096, 16384, 65536, 262144, 1_000_000]:
                extra = {"p_storage": "packed", "p_precision": "float16", "float_precision": "float32"} \
                    if n > 300_000 else {}
                row = run(n, args.device, args.loops, folder, extra)
                plain = run(n, args.device, args.loops, folder, extra, cuda_graphs=False)["us_per_step"] \
                    if n <= 65536 else float("nan")
                print(f"| {n} | {row['s_per_loop']:.3f} | {row['steps_per_s']:.0f} | {row['us_per_step']:.1f} | "
                      f"{plain:.1f} | {row['rls_update_s']:.4f} | {row['rls_gb_per_s']:.0f} | "
                      f"{row['rls_gb_per_s'] * 1e9 / roofline:.2f} | {row['peak_gb']:.1f} |", flush=True)
        else:
            n = (args.sizes or [4096])[0]
            print(f"no GPU: torch {torch.__version__} on the CPU against numba, {n} neurons")
            directory = folder / "net"
            rls.new(directory, {"n_cells": n, "seed": 1})
            rls.init(directory, verbose=False)
            times = {}
            for backend in ("numba", "torch"):
                rls.train(directory, nloops=1, correlation_interval=10**9, verbose=False, backend=backend)
                result = rls.train(directory, nloops=args.loops, correlation_interval=10**9, verbose=False,
                                   backend=backend)
                times[backend] = float(np.median(result.elapsed_time))
            print("| backend | s/loop | us/step |")
            print("|---|---|---|")
            for backend, seconds in times.items():
                print(f"| {backend} | {seconds:.2f} | {seconds / 20000 * 1e6:.0f} |")
            print(f"torch (cpu) / numba: {times['torch'] / times['numba']:.1f}x")


if __name__ == "__main__":
    main()
