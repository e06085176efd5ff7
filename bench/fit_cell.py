"""Candidate evaluations per second of a single-cell fit, against brian2modelfitting in the same run.

    python bench/fit_cell.py [--peer-python bench/peers/.venv-fit/bin/python] [--rounds 10]

The problem (issue 13): an Izhikevich RS cell's spikes under a 2-s protocol (200 ms without
current, a step of 10 model units for 1600 ms, 200 ms without), dt = 0.1 ms; a population of 64
candidates (a, b, c, d) per generation, CMA-ES, the coincidence factor Γ (4 ms) as the loss.

Measured here, one after the other on the same machine:

* spikeforge, the given current (what brian2modelfitting does): ``CellObjective.evaluate`` of each
  generation (simulate 64 candidates, Γ and SPIKE-distance of each), with 1 numba thread and with all;
* spikeforge with the spike-count current search of SpikeNetOpt (the default of ``fit cell``), for
  reference: each candidate is simulated ~10-100 times more;
* brian2modelfitting 0.4 (Brian2 2.9, Cython code generation, one thread): ``SpikeFitter.fit`` rounds
  after a warm-up round (the seconds of code generation are printed apart), in its own virtual
  environment (bench/peers/fit-requirements.txt), through ``bench/peers/peer_brian2modelfitting.py``.

Prints the evaluations per second and the ratios; the numbers go into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from spikeforge.core.rng import stream
from spikeforge.fit import models, search
from spikeforge.fit.cell import CellData, CellObjective
from spikeforge.fit.simulate import StepProtocol, simulate

PROTOCOL = StepProtocol(200.0, 1600.0, 2000.0, 0.1)
AMPLITUDE = 10.0
POPULATION = 64
HERE = Path(__file__).resolve().parent


def data():
    model = models.model_named("izhikevich")
    rows = np.array([model.presets["RS"]])
    spikes = simulate(model, rows, AMPLITUDE, PROTOCOL).trains.train(0)
    return model, spikes


def ours(model, spikes, current: str, rounds: int, threads: int) -> float:
    """Evaluations per second of ``rounds`` CMA-ES generations (after one warm-up generation)."""
    objective = CellObjective(model, CellData.build([AMPLITUDE], [spikes], PROTOCOL), model.fitted, loss="gamma",
                              current=current)
    bounds = search.Bounds.build(model.fitted, model.bounds)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        search.run(lambda v: objective.evaluate(v).losses, bounds, "cmaes", POPULATION, 1, stream(0, "bench"))
        started = time.perf_counter()
        search.run(lambda v: objective.evaluate(v).losses, bounds, "cmaes", POPULATION, rounds, stream(1, "bench"))
        return rounds * POPULATION / (time.perf_counter() - started)
    finally:
        numba.set_num_threads(before)


def peer(python: Path, spikes, rounds: int) -> dict:
    on, off, n_steps = PROTOCOL.steps
    current = np.zeros(n_steps)
    current[on:off] = AMPLITUDE
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "data.npz"
        np.savez(path, spikes=spikes, current=current, dt=PROTOCOL.dt, population=POPULATION)
        done = subprocess.run([str(python), str(HERE / "peers" / "peer_brian2modelfitting.py"), str(path), str(rounds)],
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-python", type=Path, default=HERE / "peers" / ".venv-fit" / "bin" / "python")
    parser.add_argument("--rounds", type=int, default=10)
    options = parser.parse_args()
    model, spikes = data()
    print(f"data: {spikes.size} spikes in {PROTOCOL.total:g} ms; population {POPULATION}, {options.rounds} "
          f"generations; {numba.config.NUMBA_NUM_THREADS} cores")
    results = {"given, 1 thread": ours(model, spikes, "given", options.rounds, 1),
               f"given, {numba.config.NUMBA_NUM_THREADS} threads":
                   ours(model, spikes, "given", options.rounds, numba.config.NUMBA_NUM_THREADS),
               "current search, all threads": ours(model, spikes, "search", max(2, options.rounds // 5),
                                                   numba.config.NUMBA_NUM_THREADS)}
    if options.peer_python.exists():
        measured = peer(options.peer_python, spikes, options.rounds)
        results["brian2modelfitting (1 thread)"] = measured["evaluations_per_s"]
        print(f"brian2modelfitting warm-up round (code generation): {measured['warm_up_s']:.1f} s")
    else:
        print(f"no peer environment at {options.peer_python}; see bench/peers/fit-requirements.txt", file=sys.stderr)
    brian = results.get("brian2modelfitting (1 thread)")
    print(f"{'':32} evaluations/s   ratio to brian2modelfitting")
    for name, rate in results.items():
        ratio = f"{rate / brian:.1f}x" if brian else "-"
        print(f"{name:32} {rate:13.0f}   {ratio}")


if __name__ == "__main__":
    main()
