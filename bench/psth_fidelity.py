"""How well RLS-trained networks reproduce recorded PSTHs, by configuration (issue 11's study).

For each configuration: a synthetic recording of ``--units`` units with the response types of
:mod:`spikeforge.rls.example_recordings` (``--recorded-trials`` Poisson trials) is saved as a
spike file; ``spikeforge init --spikes`` turns its smoothed PSTHs into targets; the network
trains ``--loops`` loops and is tested on ``--trials`` trials; the scores are those of
:mod:`spikeforge.rls.rate_evaluation` (median over the recorded units).

    python bench/psth_fidelity.py --n-cells 4096 --loops 200 --config default paper-fig2

Prints one table row per configuration (paste into BENCHMARKS.md) and writes every number to
``--out`` (JSON).  A configuration is a name from CONFIGS or NAME:key=value,key=value (on top of
the defaults).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from spikeforge import rls
from spikeforge.core.store import read_h5
from spikeforge.rls import example_recordings
from spikeforge.rls.presets import PRESETS

CONFIGS = {
    "default": {},
    # TrainSpikingNet's figure-2 data fit: no static synapses, noise-driven, 64 + 64 plastic inputs
    "paper-fig2": {"k": 0, "sig": 0.65, "l": 64, "penlambda": 0.04, "penmu": 0.0, "learn_every": 20.0, "wid": 60.0},
    **{name: dict(values) for name, values in PRESETS.items()},  # e.g. recordings:lx=200
}


def parse_config(text: str) -> tuple[str, dict]:
    name, _, assignments = text.partition(":")
    values = dict(CONFIGS.get(name, {})) if name in CONFIGS else {}
    if name not in CONFIGS and not assignments:
        raise SystemExit(f"unknown configuration {name!r}; expected one of {', '.join(CONFIGS)} or NAME:key=value,...")
    for item in filter(None, assignments.split(",")):
        key, _, value = item.partition("=")
        values[key] = _number_or_text(value)
    return text, values


def _number_or_text(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def run_one(name: str, overrides: dict, args, folder: Path) -> dict:
    units = args.units or args.n_cells
    duration = args.duration
    rates, types = example_recordings.psth_set(units, duration, seed=args.seed)
    trial, unit, spike_time = example_recordings.poisson_trials(rates, 1.0, args.recorded_trials, seed=args.seed + 1)
    spikes = folder / f"{name.replace(':', '_').replace(',', '_')}-recording.npz"
    np.savez(spikes, trial=trial, unit=unit, time=spike_time, window=[0.0, duration])
    directory = folder / f"{name.replace(':', '_').replace(',', '_')}-net"
    settings = {"n_cells": args.n_cells, "seed": args.seed, "train_duration": duration, **overrides}
    rls.new(directory, settings)
    started = time.perf_counter()
    rls.init(directory, spikes_file=spikes, smoothing_ms=args.smoothing, verbose=False)
    init_s = time.perf_counter() - started
    started = time.perf_counter()
    curve = rls.train(directory, nloops=args.loops, correlation_interval=max(1, args.loops // 10), verbose=False)
    train_s = time.perf_counter() - started
    rls.test(directory, ntrials=args.trials, neurons=range(units), plot=False, verbose=False)
    arrays, _ = read_h5(directory / "test.h5")
    correlation, ceiling = arrays["rate/correlation"], arrays["rate/poisson_correlation"]
    ratio = arrays["rate/mean_ratio"]
    by_type = {kind: float(np.nanmedian(correlation[types == kind])) for kind in example_recordings.TYPES}
    measured = [c for c in curve.correlation if np.isfinite(c)]
    return {
        "config": name, "overrides": overrides, "n_cells": args.n_cells, "units": units, "loops": args.loops,
        "trials": args.trials, "median_psth_correlation": float(np.nanmedian(correlation)),
        "median_poisson_ceiling": float(np.nanmedian(ceiling)), "median_mean_ratio": float(np.nanmedian(ratio)),
        "mean_rate_ratio_of_means": float(np.nanmean(arrays["rate/psth"]) / np.nanmean(arrays["target_rate"])),
        "median_rms_error_hz": float(np.nanmedian(arrays["rate/rms_error_hz"])),
        "current_correlation_last": measured[-1] if measured else float("nan"), "by_type": by_type,
        "init_s": init_s, "train_s_per_loop": train_s / args.loops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-cells", type=int, default=4096)
    parser.add_argument("--units", type=int, default=None, help="recorded units (default: n_cells)")
    parser.add_argument("--loops", type=int, default=200)
    parser.add_argument("--trials", type=int, default=20, help="test trials")
    parser.add_argument("--recorded-trials", type=int, default=50, help="trials of the synthetic recording")
    parser.add_argument("--duration", type=float, default=2000.0, help="recording window = train_duration [ms]")
    parser.add_argument("--smoothing", type=float, default=25.0, help="PSTH smoothing [ms]")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--config", nargs="+", default=["default", "paper-fig2"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the recordings and networks in this folder")
    args = parser.parse_args()
    results = []
    print("| configuration | neurons | units | loops | median PSTH corr. | Poisson ceiling | median rate ratio | "
          "RMS error Hz | current corr. | transient / ramp / suppr. / osc. / biph. | s/loop |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for text in args.config:
            name, overrides = parse_config(text)
            r = run_one(name, overrides, args, Path(folder))
            results.append(r)
            types = " / ".join(f"{r['by_type'][k]:.2f}" for k in example_recordings.TYPES[:5])
            print(f"| {name} | {r['n_cells']} | {r['units']} | {r['loops']} | {r['median_psth_correlation']:.3f} | "
                  f"{r['median_poisson_ceiling']:.3f} | {r['median_mean_ratio']:.3f} | {r['median_rms_error_hz']:.2f} | "
                  f"{r['current_correlation_last']:.3f} | {types} | {r['train_s_per_loop']:.2f} |", flush=True)
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
