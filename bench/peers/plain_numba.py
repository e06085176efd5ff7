"""A plain single-threaded numba loop of the static network: the yardstick the issue quotes.

Reads the same network file as the peers and simulates it with the smallest loop that
follows spikeforge's semantics (forward Euler, strict threshold, one frozen step after a
spike, currents that take the previous step's spikes, spikes propagated in neuron order),
so it reproduces spikeforge's spike counts exactly.  It shows what a bare loop costs on
this machine; it is not part of spikeforge.

    python bench/peers/plain_numba.py NETWORK.npz [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


@numba.njit(cache=True)
def simulate(n_steps, ptr, post, weight, v0, x, thresh, dt_over_tau, decay, kick, vre, refrac_steps):
    """Spike count of every neuron after ``n_steps`` steps from voltages ``v0``.

    The synaptic current is kept as charge (current * tau_s), as spikeforge keeps it: E and I synapses
    share tau_s, so one charge per neuron, to which a spike adds its weight."""
    n = v0.shape[0]
    v = v0.copy()
    charge = np.zeros(n)
    last = np.full(n, -(2**40), dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    spikes = np.empty(n, dtype=np.int64)
    n_spikes = 0
    for ti in range(1, n_steps + 1):
        for s in range(n_spikes):  # the previous step's spikes, in neuron order
            j = spikes[s]
            for k in range(ptr[j], ptr[j + 1]):
                charge[post[k]] += weight[k]
        n_spikes = 0
        for i in range(n):
            u = charge[i] * kick
            charge[i] = charge[i] * decay
            if ti > last[i] + refrac_steps:
                vi = v[i] + dt_over_tau * (x[i] + u - v[i])
                if vi > thresh:
                    vi = vre
                    last[i] = ti
                    count[i] += 1
                    spikes[n_spikes] = i
                    n_spikes += 1
                v[i] = vi
    return count


def run(net: dict, repeats: int, quiet_wait_s: float = 120.0, budget_s: float = 60.0) -> dict:
    """Timed runs (``common.timed_repeats``, after one untimed call that loads the kernel) and the counts."""
    n = net["n"]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(net["pre"], minlength=n), out=ptr[1:])
    order = np.argsort(net["pre"], kind="stable")
    post, weight = net["post"][order], net["weight"][order]
    args = (round(net["t_sim"] / net["dt"]), ptr, post, weight, net["v0"], net["x"], float(net["thresh"]),
            net["dt"] / net["tau_m"], 1 - net["dt"] / net["tau_s"], 1 / net["tau_s"], float(net["vre"]),
            round(net["refrac"] / net["dt"]))
    simulate(10, *args[1:])
    def one_run() -> dict:
        common.wait_until_quiet(max_wait_s=quiet_wait_s)
        with common.CpuMeter() as meter:
            counts = simulate(*args)
        return {"sim_s": meter.seconds, "others_cpu": meter.others, "counts": counts}

    runs = common.timed_repeats(one_run, repeats, budget_s)
    counts = runs[-1]["counts"]
    for r in runs:
        del r["counts"]
    rate_e, rate_i = common.rates(counts, net["ne"], net["t_sim"])
    return {"runs": runs, "counts": counts, "rate_exc_hz": rate_e, "rate_inh_hz": rate_i}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = run(common.load_network(args.network), args.repeats)
    print(f"best {common.best(result['runs'])['sim_s']:.3f} s; rates E {result['rate_exc_hz']:.3f} Hz, "
          f"I {result['rate_inh_hz']:.3f} Hz")


if __name__ == "__main__":
    main()
