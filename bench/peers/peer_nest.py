"""Simulate an exported spikeforge network with NEST; print nothing, write a JSON result.

Run by ``run.py`` in the peers' virtual environment::

    python peer_nest.py NETWORK.npz --threads 1 --repeats 3 --out result.json

Mapping: ``iaf_psc_exp`` with E_L = V_reset = 0, V_th = thresh, C_m = tau_m (so that
``I/C_m`` is the dimensionless drive per ms), tau_syn_ex = tau_syn_in = tau_s,
t_ref = refrac, I_e = x, V_m(0) = v0; each synapse a ``static_synapse`` of weight
``w / tau_s`` (the current jumps by w / tau_s, as spikeforge's) and delay dt, the shortest
NEST allows.  NEST integrates the subthreshold dynamics exactly, spikeforge with forward
Euler; and in NEST a spike at step s reaches the membrane at step s + 2 (delay one step,
then the current enters at the end of the step), one step later than spikeforge, whose
current takes a spike at the next step.  ``run.py`` checks the rates against spikeforge's.

Every repeat builds the network anew (``ResetKernel``; NEST cannot rewind a network) and
times separately: node creation and connection (``build_s``), ``Prepare`` (the kernel's
connection infrastructure, ``setup_s``) and ``Run`` of the simulated time (``sim_s``, after
waiting for the machine to be quiet; ``others_cpu`` is the share of the CPU capacity that
other processes used meanwhile).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def simulate(net: dict, threads: int, t_sim: float, quiet_wait_s: float) -> dict:
    import nest

    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": net["dt"], "local_num_threads": threads, "print_time": False})
    started = time.perf_counter()
    n = net["n"]
    neurons = nest.Create("iaf_psc_exp", n, params={
        "E_L": 0.0, "V_reset": net["vre"], "V_th": net["thresh"], "C_m": net["tau_m"], "tau_m": net["tau_m"],
        "tau_syn_ex": net["tau_s"], "tau_syn_in": net["tau_s"], "t_ref": net["refrac"],
    })
    neurons.set({"I_e": net["x"].tolist(), "V_m": net["v0"].tolist()})
    first = neurons[0].global_id
    pre = (net["pre"] + first).astype(np.uint64)
    post = (net["post"] + first).astype(np.uint64)
    nest.Connect(pre, post, "one_to_one", syn_spec={"synapse_model": "static_synapse", "weight": net["weight"] / net["tau_s"],
                                                    "delay": np.full(pre.size, net["dt"])})
    recorder = nest.Create("spike_recorder")
    nest.Connect(neurons, recorder)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    nest.Prepare()
    setup_s = time.perf_counter() - started
    common.wait_until_quiet(max_wait_s=quiet_wait_s)
    with common.CpuMeter() as meter:
        nest.Run(t_sim)
    nest.Cleanup()
    senders = np.asarray(recorder.get("events")["senders"], dtype=np.int64)
    counts = np.bincount(senders - first, minlength=n)
    rate_e, rate_i = common.rates(counts, net["ne"], t_sim)
    return {"build_s": build_s, "setup_s": setup_s, "sim_s": meter.seconds, "others_cpu": meter.others,
            "rate_exc_hz": rate_e, "rate_inh_hz": rate_i,
            "n_synapses": int(nest.GetKernelStatus("num_connections")) - n, "counts": counts}


def main() -> None:
    parser = common.peer_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON result")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="seconds to wait at most for other processes to go quiet before each timed run")
    parser.add_argument("--counts", default=None, help="also save the last repeat's per-neuron spike counts (.npy)")
    args = parser.parse_args()
    import nest

    nest.verbosity = nest.VerbosityLevel.ERROR
    net = common.load_network(args.network)
    t_sim = net["t_sim"] if args.t_sim is None else args.t_sim
    runs = common.timed_repeats(lambda: simulate(net, args.threads, t_sim, args.quiet_wait), args.repeats,
                                args.budget)
    if args.counts:
        np.save(args.counts, runs[-1]["counts"])
    for run in runs:
        del run["counts"]
    common.write_result(args.out, {"simulator": "NEST", "version": nest.__version__, "threads": args.threads,
                                         "model": "iaf_psc_exp (exact integration), delay = dt", "runs": runs})


if __name__ == "__main__":
    main()
