"""brian2modelfitting's SpikeFitter on the single-cell problem of bench/fit_cell.py; run in the peers'
own virtual environment (bench/peers/fit-requirements.txt), never the project's.

    python peer_brian2modelfitting.py DATA.npz ROUNDS

DATA.npz (written by bench/fit_cell.py): ``spikes`` [ms], ``current`` (the step, in the Izhikevich
model's units, one value per dt), ``dt`` [ms], ``population``.  The model: the Izhikevich equations
with (a, b, c, d) fitted in SpikeNetOpt's ranges, one Brian2 group of ``population`` candidates per
round, CMA (nevergrad) and the Gamma factor (4 ms).  Prints one JSON line: the seconds of a warm-up
round (code generation and compilation included) and of ROUNDS further rounds, and the candidate
evaluations per second of the latter.
"""

import json
import sys
import time

import numpy as np


def main() -> None:
    # nevergrad 0.3.0, the version brian2modelfitting 0.4 installs, still uses np.float (removed in
    # numpy 1.24), and brian2modelfitting itself np.NaN (removed in numpy 2): numpy 1.26 plus this alias
    np.float = float
    from brian2 import ms, prefs
    from brian2modelfitting import GammaFactor, NevergradOptimizer, SpikeFitter

    prefs.codegen.target = "cython"
    data = np.load(sys.argv[1])
    rounds = int(sys.argv[2])
    population = int(data["population"])
    dt = float(data["dt"])
    duration = data["current"].size * dt
    model = """
    dv/dt = (0.04*v**2 + 5*v + 140 - u + I)/ms : 1
    du/dt = a*(b*v - u)/ms : 1
    a : 1 (constant)
    b : 1 (constant)
    c : 1 (constant)
    d : 1 (constant)
    """

    def fitter():
        return SpikeFitter(model=model, input=data["current"][None, :], input_var="I", output=[data["spikes"] * ms],
                           dt=dt * ms, threshold="v > 30", reset="v = c; u += d", n_samples=population,
                           method="euler", param_init={"v": -65, "u": -13}, use_units=False)

    metric = GammaFactor(delta=4 * ms, time=duration * ms)
    bounds = {"a": [0.002, 0.3], "b": [0.02, 0.36], "c": [-75, -35], "d": [0.005, 16]}
    started = time.perf_counter()
    fitter().fit(n_rounds=1, optimizer=NevergradOptimizer("CMA"), metric=metric, callback=None, **bounds)
    warm_up = time.perf_counter() - started
    fit = fitter()
    started = time.perf_counter()
    fit.fit(n_rounds=rounds, optimizer=NevergradOptimizer("CMA"), metric=metric, callback=None, **bounds)
    seconds = time.perf_counter() - started
    print(json.dumps({"warm_up_s": warm_up, "seconds": seconds, "rounds": rounds,
                      "evaluations_per_s": rounds * population / seconds}))


if __name__ == "__main__":
    main()
