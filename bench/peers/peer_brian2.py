"""Simulate an exported spikeforge network with Brian2 (C++ standalone); write a JSON result.

Run by ``run.py`` in the peers' virtual environment::

    python peer_brian2.py NETWORK.npz --threads 1 --repeats 3 --build-dir DIR --out result.json

The same equations as spikeforge, integrated with ``method='euler'``::

    dv/dt = (-v + x + u) / tau_m  (unless refractory);  du/dt = -u / tau_s

threshold ``v > thresh``, reset ``v = vre``, and one ``Synapses`` object with ``on_pre: u += w /
tau_s``.  The network file has one tau_s for excitatory and inhibitory synapses, so their currents
add up into one, u, as spikeforge's add up into one charge (until 2026-12-04 both kept two currents,
u_e and u_i, and one Synapses object per presynaptic population).

Refractoriness.  spikeforge freezes a neuron that spiked at step s for ``round(refrac/dt)``
steps (one by default) and updates it again at step s + 2.  Brian2 decides at the start of
each step whether ``timestep(t - lastspike) >= timestep(refractory)``, so ``refractory = dt``
freezes no step at all; ``refractory = (round(refrac/dt) + 1) * dt`` freezes the same steps as
spikeforge (NEST's ``t_ref = refrac`` already does).

Synaptic delay.  spikeforge's current takes a spike of step s at step s + 1, before the
voltage update of that step, so the spike first moves the voltage at step s + 1.  Brian2's
schedule per step is state update, threshold, synaptic propagation, reset: with no
synaptic delay a spike of step s is added to u at the end of step s and moves the voltage at
step s + 1, the same thing (spikeforge adds the spike's weight to the target's charge at the end
of step s too, and takes charge / tau_s as the current of step s + 1; Brian2 adds w / tau_s to u and
integrates u at step s + 1: the same numbers up to rounding).  ``--delay-steps 0`` (the default) is
therefore spikeforge's model; ``--delay-steps 1`` (Brian2's ``delay = dt``) is one step later, like NEST's.

The project is generated and compiled once (``compile_s``, code generation and the C++
compiler, OpenMP with ``--threads`` > 1, plain serial code with 1 thread); each repeat runs
the binary (``device.run``).  Wall time of ``Network::run`` is measured inside the binary
with ``std::chrono::steady_clock`` (``sim_s``; Brian2's own ``_last_run_time`` is CPU time
without OpenMP); the rest of the binary's wall time, mostly loading the 27 M synapses at
65,536 neurons and writing results, is ``setup_s``.  Before each repeat the script waits for
the machine to be quiet; ``others_cpu`` is the share of the CPU capacity that other processes
used during the binary's run.

Checked when this script was written (4,096 neurons, serial code): Brian2 with these settings
reproduces spikeforge's init run spike for spike over the whole 2 s (39,354 spikes, every one
at the same step in the same neuron).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

TIMER_FILE = "bench_network_run_wall_s.txt"


def main() -> None:
    parser = common.peer_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--delay-steps", type=int, default=0, help="Brian2 synaptic delay in steps (see above)")
    parser.add_argument("--build-dir", required=True, help="folder of the generated C++ project")
    parser.add_argument("--out", required=True, help="JSON result")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="seconds to wait at most for other processes to go quiet before each timed run")
    parser.add_argument("--counts", default=None, help="also save the last repeat's per-neuron spike counts (.npy)")
    args = parser.parse_args()

    import brian2 as b2
    from brian2 import NeuronGroup, Synapses, defaultclock, device, ms, prefs, set_device

    b2.BrianLogger.log_level_warn()
    net = common.load_network(args.network)
    t_sim = net["t_sim"] if args.t_sim is None else args.t_sim
    build_dir = Path(args.build_dir).resolve()
    if build_dir.exists():
        shutil.rmtree(build_dir)  # compile from scratch, so that compile_s is the real cost
    started = time.perf_counter()
    set_device("cpp_standalone", directory=str(build_dir), build_on_run=False)
    prefs.devices.cpp_standalone.openmp_threads = args.threads if args.threads > 1 else 0
    prefs.codegen.cpp.headers = list(prefs.codegen.cpp.headers) + ["<chrono>"]
    defaultclock.dt = net["dt"] * ms
    n, ne, tau_s_ms = net["n"], net["ne"], net["tau_s"]
    namespace = {"tau_m": net["tau_m"] * ms, "tau_s": tau_s_ms * ms, "thresh": net["thresh"], "vre": net["vre"]}
    refractory_steps = round(net["refrac"] / net["dt"]) + 1  # see "Refractoriness" above
    group = NeuronGroup(
        n,
        """dv/dt = (-v + x + u) / tau_m : 1 (unless refractory)
           du/dt = -u / tau_s : 1
           x : 1 (constant)
           n_spikes : integer""",
        threshold="v > thresh", reset="v = vre\nn_spikes += 1", refractory=refractory_steps * net["dt"] * ms,
        method="euler", namespace=namespace,
    )
    group.x = net["x"]
    group.v = net["v0"]
    pre, post, weight = net["pre"], net["post"], net["weight"]
    delay = args.delay_steps * net["dt"] * ms
    # w is stored divided by tau_s [ms]: the current jumps by w / tau_s, as spikeforge's
    static = Synapses(group, group, "w : 1 (constant)", on_pre="u_post += w", name="static",
                      delay=delay if args.delay_steps else None)
    static.connect(i=pre, j=post)
    static.w = weight / tau_s_ms
    synapses = [static]
    device.insert_code("before_network_run", "auto _bench_t0 = std::chrono::steady_clock::now();")
    device.insert_code("after_network_run", (
        "{ double _bench_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - _bench_t0).count();"
        f' std::ofstream _bench_f(brian::results_dir + "{TIMER_FILE}"); _bench_f.precision(17);'
        " _bench_f << _bench_s << std::endl; }"))
    network = b2.Network(group, *synapses)
    network.run(t_sim * ms)
    device.build(directory=str(build_dir), compile=True, run=False, with_output=False)
    compile_s = time.perf_counter() - started

    def one_run() -> dict:
        common.wait_until_quiet(max_wait_s=args.quiet_wait)
        with common.CpuMeter() as meter:
            device.run(directory=str(build_dir), with_output=False)
        sim_s = float((Path(device.results_dir) / TIMER_FILE).read_text())
        counts = np.asarray(group.n_spikes[:], dtype=np.int64)
        rate_e, rate_i = common.rates(counts, ne, t_sim)
        return {"build_s": compile_s, "setup_s": meter.seconds - sim_s, "sim_s": sim_s, "others_cpu": meter.others,
                "rate_exc_hz": rate_e, "rate_inh_hz": rate_i, "n_synapses": int(pre.size), "counts": counts}

    runs = common.timed_repeats(one_run, args.repeats, args.budget)
    if args.counts:
        np.save(args.counts, runs[-1]["counts"])
    for run in runs:
        del run["counts"]
    delay_note = "no synaptic delay (= spikeforge's one-step)" if not args.delay_steps else f"delay {args.delay_steps} dt"
    common.write_result(args.out, {
        "simulator": "Brian2", "version": b2.__version__, "threads": args.threads,
        "model": f"cpp_standalone, method='euler', refractory {refractory_steps} dt, {delay_note}", "compile_s": compile_s, "runs": runs})


if __name__ == "__main__":
    main()
