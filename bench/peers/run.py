"""spikeforge against Brian2 and NEST on the default RLS model's static network, same machine, same run.

    python bench/peers/run.py                       # everything: 4096, 16384, 65536 neurons; 1 and 2 threads
    python bench/peers/run.py --quick               # 4096 neurons, one repeat, prints only (a smoke test, about 2 minutes)
    python bench/peers/run.py --sizes 4096 16384 --threads 1 --repeats 5

For every size the network is built by spikeforge (``rls.new`` + ``rls.init``, seed 1), and
its static synapses, drives and the init run's initial voltages are exported to a numpy file
that each peer simulates for the same 2 s at dt = 0.1 ms:

* spikeforge (numba): ``spikeforge.rls.trial.run_trial`` of kind INIT, which is the
  init run itself (it also accumulates the current statistics the init run keeps);
* Brian2 2.9 (C++ standalone, ``method='euler'``): the same equations (``peer_brian2.py``);
* NEST 3.10 (``iaf_psc_exp``, C_m = tau_m, weight w / tau_s, delay dt): ``peer_nest.py``.

The peers live in their own virtual environment, ``bench/peers/.venv`` (created on the
first run from ``requirements.txt``), and run in subprocesses.  Before any ratio is
reported, each peer's mean E and I rates must be within 3 % of spikeforge's on the same
connectivity, in every repeat; otherwise the comparison is void and the table says so
(exit status 1).  Times are wall seconds of the simulation alone, the minimum over
``--repeats`` repeats; building and connecting are reported separately.

Sizes: the network keeps the reference's structure at every size (half excitatory; every
neuron projects to 2K others) with K = 205 fixed, as the reference's scaling runs keep K
fixed (K = 512, pree = 1024/N there): pree = 2K/N.  So the weights and drives, which
spikeforge derives from K, are the default model's at every size, and the synapse count
grows linearly (410 N; 26.9 M at 65,536 neurons).

The plastic column is spikeforge alone (the peers have no RLS): the same network with the
plastic synapses active and every RLS update computed but not applied (``benchmark = true``,
the reference's benchmark mode), one training loop of ``rls.train``.

Writes ``bench/peers/RESULTS.md`` (tables, machine, versions, command), the plot
``bench/peers/seconds_vs_size.png`` and the raw numbers ``bench/peers/results.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV = HERE / ".venv"
WORK = HERE / ".work"
sys.path.insert(0, str(HERE))
import common  # noqa: E402

K = 205  # static in-degree per population at every size (the default model's)
SEED = 1
TOLERANCE = 0.03  # relative difference of the mean E and I rates that a peer may show
PEERS = {"brian2": "Brian2", "nest": "NEST"}
TARGETS = {"brian2": 1.5, "nest": 5.0}  # the speed-up over each peer the issues ask for (issue 17: 1.5x Brian2)


# ---------------------------------------------------------------------------------------- peers' venv

def peer_python() -> Path:
    return VENV / "bin" / "python"


def peers_installed() -> bool:
    python = peer_python()
    if not python.exists():
        return False
    check = subprocess.run([str(python), "-c", "import brian2, nest"], capture_output=True)
    return check.returncode == 0


def ensure_venv() -> None:
    """Create bench/peers/.venv with the pinned peers unless it already works."""
    if peers_installed():
        return
    print(f"installing the peers into {VENV} (requirements.txt) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(peer_python()), "-m", "pip", "install", "--quiet", "-r", str(HERE / "requirements.txt")],
                   check=True)
    if not peers_installed():
        sys.exit(f"error: {VENV} was created but cannot import brian2 and nest")


def peer_versions() -> dict:
    code = "import brian2, nest, numpy, sys; print(brian2.__version__, nest.__version__, numpy.__version__)"
    out = subprocess.run([str(peer_python()), "-c", code], capture_output=True, text=True, check=True).stdout
    brian2, nest, numpy_version = out.strip().splitlines()[-1].split()
    return {"Brian2": brian2, "NEST": nest, "numpy (peers)": numpy_version}


def run_peer(peer: str, network: Path, threads: int, repeats: int, budget_s: float, work: Path, timeout: float,
             quiet_wait_s: float) -> dict | None:
    """Run one peer in its venv; its JSON result, or None (with the log's tail printed) on failure."""
    stem = f"{peer}-t{threads}"
    out, counts, log = work / f"{stem}.json", work / f"{stem}-counts.npy", work / f"{stem}.log"
    command = [str(peer_python()), str(HERE / f"peer_{peer}.py"), str(network), "--threads", str(threads),
               "--repeats", str(repeats), "--budget", str(budget_s), "--out", str(out), "--counts", str(counts),
               "--quiet-wait", str(quiet_wait_s)]
    if peer == "brian2":
        command += ["--build-dir", str(work / f"brian2-build-t{threads}")]
    out.unlink(missing_ok=True)
    with open(log, "w") as handle:
        try:
            status = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            status = "timeout"
    if status != 0 or not out.exists():
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        print(f"  {PEERS[peer]} failed ({status}); log {log}:\n{tail}", flush=True)
        return None
    result = json.loads(out.read_text())
    result["counts_file"] = str(counts)
    return result


# ---------------------------------------------------------------------------------------- spikeforge

class InitRunTimer:
    """Stands in for ``run_trial`` inside ``spikeforge.rls.initialize`` during one ``rls.init``.

    On the init run's call it first times the very same call (same arguments, a fresh copy
    of its random generator) ``repeats`` times per thread count, then makes the real call and
    returns its result, so ``init`` goes on untouched.  What is timed is therefore exactly
    spikeforge's init run, whatever the driver passes to it; its arguments (initial voltages)
    are kept for the export.  With ``torch_device`` it also times the same call on spikeforge's
    torch backend (``backend=``, with the connectivity, constants and stimulus moved to the
    backend first, outside the timing), under the key ``"torch"``.  With ``float32`` it also times,
    per thread count, the same call with the state in float32 (``float_precision = "float32"``: the
    network's weights, constants and stimulus cast, the same voltages and generator), under the key
    ``("float32", threads)``; its spikes differ, so its rates are checked instead.
    """

    def __init__(self, original, threads: list[int], repeats: int, budget_s: float, quiet_wait_s: float,
                 warm_up: bool, torch_device: str | None, float32: bool = True):
        self.original, self.threads, self.repeats, self.budget_s = original, threads, repeats, budget_s
        self.float32 = float32
        self.quiet_wait_s, self.warm_up, self.torch_device = quiet_wait_s, warm_up, torch_device
        self.timings: dict[int | str, list] = {}
        self.v0 = None
        self.spent_s = 0.0  # wall time of the timing runs (not part of init)

    def __call__(self, *args, **kwargs):
        import copy

        import numba

        from spikeforge.core.backends.layout import INIT

        if self.v0 is not None or (len(args) > 3 and args[3] != INIT):
            return self.original(*args, **kwargs)
        started = time.perf_counter()
        self.v0 = np.array(args[4], dtype=np.float64)
        generators = [i for i, a in enumerate(args) if isinstance(a, np.random.Generator)]
        default_threads = numba.get_num_threads()

        def copied(arguments):  # the init run's generator, copied: init itself must start from it
            return [copy.deepcopy(a) if i in generators else a for i, a in enumerate(arguments)]

        def time_runs(arguments, call_kwargs) -> list:
            def one_run() -> dict:
                common.wait_until_quiet(max_wait_s=self.quiet_wait_s)
                with common.CpuMeter() as meter:
                    result = self.original(*copied(arguments), **call_kwargs)
                return {"sim_s": meter.seconds, "others_cpu": meter.others, "spike_count": result.spike_count.copy()}

            return common.timed_repeats(one_run, self.repeats, self.budget_s)

        variants = [(None, args)] + ([("float32", float32_arguments(args))] if self.float32 else [])
        for variant, arguments in variants:
            if self.warm_up or variant:  # the first call of a kernel loads (or compiles) it: not timed
                self.original(*copied(arguments), **kwargs)
            for threads in self.threads:
                numba.set_num_threads(threads)
                self.timings[(variant, threads) if variant else threads] = time_runs(arguments, kwargs)
        numba.set_num_threads(default_threads)
        if self.torch_device:  # (init passes its numba backend as ``backend=``: replaced by torch's)
            from spikeforge.core.backends import get_backend

            engine = get_backend("torch", self.torch_device)
            on_backend = [engine.put(a) if i in (1, 2, 5) else a for i, a in enumerate(args)]  # net, const, x_stim
            self.timings["torch"] = time_runs(on_backend, {**kwargs, "backend": engine})
        self.spent_s = time.perf_counter() - started
        return self.original(*args, **kwargs)


def float32_arguments(args: tuple) -> list:
    """The init run's ``run_trial`` arguments (p, net, constants, kind, v0, stimulus, generator) with the
    state in float32: ``float_precision = "float32"``, the constants made for it, the weights and the
    stimulus cast; the same initial voltages and generator."""
    from spikeforge.rls.network_parameters import network_parameters
    from spikeforge.rls.params import Params

    p, net, _, kind, v0, x_stim, *rest = args
    p32 = Params({**p.user, "float_precision": "float32"})
    net32 = net._replace(static_weight=net.static_weight.astype(np.float32),
                         plastic_weight=net.plastic_weight.astype(np.float32))
    return [p32, net32, network_parameters(p32, None), kind, v0, x_stim.astype(np.float32), *rest]


def population_rates(p, counts: np.ndarray) -> tuple[float, float]:
    """Mean E and I rates [Hz] of the init run's spike counts."""
    rates = counts / (p.train_time / 1000)
    return float(rates[:p.ne].mean()), float(rates[p.ne:].mean())


_kernel_warm = False


def build_and_time_static(n: int, work: Path, threads: list[int], repeats: int, budget_s: float,
                          quiet_wait_s: float, torch_device: str | None, float32: bool = True) -> dict:
    """Build spikeforge's network of n neurons (rls.new + rls.init, timing its init run on the
    way, see InitRunTimer) and export it for the peers."""
    global _kernel_warm
    from spikeforge import rls
    from spikeforge.rls import connectivity, initialize

    directory = work / "spikeforge"
    if directory.exists():
        shutil.rmtree(directory)
    rls.new(directory, {"n_cells": n, "seed": SEED, "pree": 2 * K / n, "benchmark": True})
    timer = InitRunTimer(initialize.run_trial, threads, repeats, budget_s, quiet_wait_s, not _kernel_warm,
                         torch_device, float32)
    original_static_weights = connectivity.static_weights
    connect = {}

    def timed_static_weights(*args, **kwargs):
        started = time.perf_counter()
        value = original_static_weights(*args, **kwargs)
        connect["s"] = time.perf_counter() - started
        return value

    initialize.run_trial, connectivity.static_weights = timer, timed_static_weights
    try:
        started = time.perf_counter()
        model = rls.init(directory, verbose=False)
        init_s = time.perf_counter() - started - timer.spent_s
    finally:
        initialize.run_trial, connectivity.static_weights = timer.original, original_static_weights
    _kernel_warm = True
    p = model.p
    if p.k != K:
        raise RuntimeError(f"k = {p.k}, expected {K}")
    if timer.v0 is None:
        raise RuntimeError("rls.init did not call run_trial for its init run: the benchmark needs updating")
    if not (p.tau_meme == p.tau_memi and p.tau_bale == p.tau_bali and p.threshe == p.threshi):
        raise RuntimeError("the network file assumes one tau_m, tau_s and threshold for E and I")
    init_counts = np.asarray(model.init_stats["spike_count"])
    static, torch_timing, float32 = {}, None, {}
    init_rates = (float(model.init_stats["rate_exc_hz"]), float(model.init_stats["rate_inh_hz"]))
    for k, runs in timer.timings.items():
        counts = [run.pop("spike_count") for run in runs]
        identical = [float(np.mean(c == init_counts)) for c in counts]
        best = common.best(runs)
        timing = {"sim_s": best["sim_s"], "others_cpu": best["others_cpu"], "runs": runs,
                  "identical_counts": min(identical)}
        if isinstance(k, tuple):  # float32 state: other spikes; its rates must be within the peers' tolerance
            rates = [population_rates(p, c) for c in counts]
            worst = max(abs(r / ref - 1) for pair in rates for r, ref in zip(pair, init_rates))
            float32[k[1]] = timing | {"rates": rates[0], "max_deviation": worst, "ok": worst <= TOLERANCE}
        elif k == "torch":
            torch_timing = timing | {"device": torch_device}
        elif min(identical) < 1:
            raise RuntimeError(f"a timed run ({k} threads) differs from the init run")
        else:
            static[k] = timing
    ptr, post, weight = model.static.ptr, model.static.post, model.static.weight
    network = work / "network.npz"
    common.save_network(network, n=n, ne=p.ne, dt=p.dt, t_sim=p.train_time, tau_m=p.tau_meme, tau_s=p.tau_bale,
                        thresh=p.threshe, vre=p.vre, refrac=p.refrac,
                        pre=np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr)), post=post.astype(np.int64),
                        weight=weight.astype(np.float64), v0=timer.v0,
                        x=np.where(np.arange(n) < p.ne, p.x_bale, p.x_bali))
    return {"p": p, "directory": directory, "network": network, "n_synapses": int(post.size), "init_s": init_s,
            "connect_s": connect.get("s"), "init_counts": init_counts, "static": static, "torch": torch_timing,
            "float32": float32, "init_rates": init_rates}


_train_warm = False


def time_plastic(net: dict, threads: int, repeats: int, budget_s: float, quiet_wait_s: float) -> dict:
    """Seconds of one training loop in benchmark mode (RLS computed, not applied), best of repeats."""
    import numba

    from spikeforge import rls

    global _train_warm
    numba.set_num_threads(threads)
    if not _train_warm:  # the first loop in a process loads (or compiles) the RLS kernel: not timed
        rls.train(net["directory"], nloops=1, correlation_interval=10**9, verbose=False)
        _train_warm = True

    def one_run() -> dict:
        common.wait_until_quiet(max_wait_s=quiet_wait_s)
        with common.CpuMeter() as meter:
            result = rls.train(net["directory"], nloops=repeats, correlation_interval=10**9, verbose=False)
        return {"sim_s": min(result.elapsed_time), "all_s": list(result.elapsed_time), "others_cpu": meter.others,
                "rate_hz": float(np.mean(result.firing_rate))}

    runs = common.timed_repeats(one_run, 1, budget_s)
    return common.best(runs) | {"calls": len(runs)}


# ---------------------------------------------------------------------------------------- checks and tables

def rate_check(peer_result: dict, reference: tuple[float, float]) -> dict:
    """Largest relative deviation of a peer's E and I rates from spikeforge's over its repeats."""
    deviations = []
    for run in peer_result["runs"]:
        for rate, ref in zip((run["rate_exc_hz"], run["rate_inh_hz"]), reference):
            deviations.append(abs(rate / ref - 1))
    worst = max(deviations)
    return {"max_deviation": worst, "ok": worst <= TOLERANCE}


def fmt_s(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def tables(results: list[dict], peers: list[str]) -> dict[str, str]:
    names = [PEERS[p] for p in peers]
    with_torch = any(size.get("torch") for size in results)
    with_float32 = any(size.get("float32") for size in results)
    rate_rows, time_rows, setup_rows = [], [], []
    for size in results:
        ref = size["spikeforge_rates"]
        row = [f"{size['n']:,}", f"{ref[0]:.3f} / {ref[1]:.3f}"]
        if with_float32:
            in_float32 = list(size.get("float32", {}).values())
            row.append(f"{in_float32[0]['rates'][0]:.3f} / {in_float32[0]['rates'][1]:.3f}, "
                       f"{100 * max(t['max_deviation'] for t in in_float32):.2f} %" if in_float32 else "—")
        if with_torch:
            row.append(f"{100 * size['torch']['identical_counts']:.0f} %" if size.get("torch") else "—")
        for peer in peers:
            runs = [r for r in size["peers"].get(peer, {}).values() if r is not None]
            if not runs:
                row += ["failed", "—"]
                continue
            first = runs[0]["runs"][0]
            worst = max(r["check"]["max_deviation"] for r in runs)
            ok = all(r["check"]["ok"] for r in runs)
            same = min(r["identical_counts"] for r in runs)
            row += [f"{first['rate_exc_hz']:.3f} / {first['rate_inh_hz']:.3f}",
                    f"{100 * worst:.2f} % {'ok' if ok else 'VOID'} ({100 * same:.0f} % same counts)"]
        plastic = [v["rate_hz"] for v in size["plastic"].values()]
        row.append(f"{np.mean(plastic):.3f}" if plastic else "—")
        rate_rows.append(row)
        for threads, sf in size["static"].items():
            peer_s, ratios, others = [], [], [sf["others_cpu"]]
            for peer in peers:
                result = size["peers"].get(peer, {}).get(threads)
                if result is None:
                    peer_s.append("failed")
                    ratios.append("—")
                    continue
                best = common.best(result["runs"])
                seconds = best["sim_s"]
                others.append(best["others_cpu"])
                peer_s.append(fmt_s(seconds))
                ratios.append(f"{seconds / sf['sim_s']:.2f}" if result["check"]["ok"] else "void (rates differ)")
            plastic = size["plastic"].get(threads)
            if plastic:
                others.append(plastic["others_cpu"])
            plain = size.get("plain") if threads == 1 else None
            if plain:
                others.append(plain["others_cpu"])
            in_float32 = size.get("float32", {}).get(threads)
            float32_cells = []
            if with_float32:
                float32_cells.append(fmt_s(in_float32["sim_s"]) if in_float32 else "—")
                for peer in peers:
                    result = size["peers"].get(peer, {}).get(threads)
                    float32_cells.append(
                        f"{common.best(result['runs'])['sim_s'] / in_float32['sim_s']:.2f}"
                        if in_float32 and in_float32["ok"] and result and result["check"]["ok"] else "—")
                if in_float32:
                    others.append(in_float32["others_cpu"])
            torch_row = size.get("torch") if threads == 1 else None
            if torch_row:
                others.append(torch_row["others_cpu"])
            busiest = max((o for o in others if o == o), default=float("nan"))
            time_rows.append([f"{size['n']:,}", f"{size['n_synapses'] / 1e6:.1f} M", str(threads), fmt_s(sf["sim_s"])]
                             + ([fmt_s(torch_row["sim_s"]) if torch_row else "—"] if with_torch else [])
                             + peer_s + ratios + float32_cells
                             + ([fmt_s(plastic["sim_s"]), f"{plastic['sim_s'] / sf['sim_s']:.1f}"] if plastic else
                                ["—", "—"])
                             + [fmt_s(plain["sim_s"]) if plain else "—", f"{100 * busiest:.0f} %"])
            setup = [f"{size['n']:,}", str(threads), fmt_s(size["connect_s"]), fmt_s(size["init_s"])]
            brian2 = size["peers"].get("brian2", {}).get(threads) if "brian2" in peers else None
            nest = size["peers"].get("nest", {}).get(threads) if "nest" in peers else None
            if "brian2" in peers:
                setup += ([fmt_s(brian2["compile_s"]), fmt_s(min(r["setup_s"] for r in brian2["runs"]))] if brian2
                          else ["failed", "—"])
            if "nest" in peers:
                setup += ([fmt_s(min(r["build_s"] for r in nest["runs"])), fmt_s(min(r["setup_s"] for r in nest["runs"]))]
                          if nest else ["failed", "—"])
            setup_rows.append(setup)
    rate_header = (["neurons", "spikeforge E / I [Hz]"]
                   + (["spikeforge float32 state: E / I [Hz], worst deviation"] if with_float32 else [])
                   + (["spikeforge torch: same counts as numba"] if with_torch else []))
    for name in names:
        rate_header += [f"{name} E / I [Hz]", f"{name}: worst deviation, verdict"]
    rate_header.append("spikeforge plastic (benchmark mode) mean rate [Hz]")
    torch_label = next((f"spikeforge torch ({s['torch']['device']}, 1 thread) [s]" for s in results if s.get("torch")), "")
    time_header = (["neurons", "static synapses", "threads", "spikeforge [s]"] + ([torch_label] if with_torch else [])
                   + [f"{name} [s]" for name in names]
                   + [f"{name} / spikeforge" for name in names]
                   + (["spikeforge float32 state [s]"] + [f"{name} / spikeforge float32" for name in names]
                      if with_float32 else [])
                   + ["spikeforge plastic [s]", "plastic / static", "plain numba loop, serial [s]",
                      "others' CPU share (worst)"])
    setup_header = ["neurons", "threads", "spikeforge connectivity [s]", "spikeforge rls.init, all of it [s]"]
    if "brian2" in peers:
        setup_header += ["Brian2 code generation + compile [s]", "Brian2 binary set-up (load synapses, write results) [s]"]
    if "nest" in peers:
        setup_header += ["NEST create + connect [s]", "NEST Prepare [s]"]
    return {"rates": markdown_table(rate_header, rate_rows), "times": markdown_table(time_header, time_rows),
            "setup": markdown_table(setup_header, setup_rows)}


def plot(results: list[dict], peers: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.6, 4.8))
    sizes = [size["n"] for size in results]
    thread_counts = sorted({t for size in results for t in size["static"]})
    styles = {1: "-", 2: "--"}
    colours = {"spikeforge": "C0", "plastic": "C3", "brian2": "C1", "nest": "C2", "plain": "0.5", "torch": "C4"}
    for threads in thread_counts:
        style = styles.get(threads, ":")
        series = [("spikeforge", "spikeforge static (numba)", [s["static"].get(threads, {}).get("sim_s") for s in results]),
                  ("plastic", "spikeforge plastic, RLS computed (numba)",
                   [s["plastic"].get(threads, {}).get("sim_s") for s in results])]
        for peer in peers:
            values = []
            for s in results:
                result = s["peers"].get(peer, {}).get(threads)
                values.append(common.best(result["runs"])["sim_s"] if result else None)
            series.append((peer, f"{PEERS[peer]} static", values))
        if threads == 1:
            series.append(("plain", "plain numba loop (not spikeforge)",
                           [s["plain"]["sim_s"] if "plain" in s else None for s in results]))
            series.append(("torch", "spikeforge static (torch backend)",
                           [s["torch"]["sim_s"] if s.get("torch") else None for s in results]))
        for key, label, values in series:
            points = [(n, v) for n, v in zip(sizes, values) if v is not None]
            if points:
                ax.plot(*zip(*points), style, marker="o", color=colours[key],
                        label=f"{label}, {threads} thread{'s' if threads > 1 else ''}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{n:,}" for n in sizes])
    ax.set_xlabel("neurons (out-degree 410)")
    ax.set_ylabel("wall seconds for 2 s of network time")
    ax.set_title("Static RLS network, dt = 0.1 ms: simulation alone")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def source_state() -> str:
    """The repository's commit and whether src/ has uncommitted changes (what was measured)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes in src/" if dirty else "")


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "os": platform.platform(),
            "python": platform.python_version()}


# ---------------------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 65536], help="numbers of neurons")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (every simulator)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs wanted per measurement; the fastest run without contention is reported")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="wall seconds per measurement after which fewer than --repeats runs do (at least one)")
    parser.add_argument("--plastic-repeats", type=int, default=2, help="timed training loops per thread count")
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--no-plastic", action="store_true", help="skip the plastic (benchmark-mode) column")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain numba loop (the yardstick column)")
    parser.add_argument("--no-float32", action="store_true",
                        help="skip the spikeforge column with float32 state (float_precision = \"float32\")")
    parser.add_argument("--torch-device", default="cpu",
                        help="device of spikeforge's torch backend column: cpu (default), cuda, or none to skip it")
    parser.add_argument("--quick", action="store_true",
                        help="4096 neurons, one repeat, nothing written (a smoke test)")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="before each timed run, wait at most this many seconds for other processes to use "
                             "less than 10 %% of the CPU")
    parser.add_argument("--peer-timeout", type=float, default=1800, help="seconds one peer subprocess may take")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep each size's spikeforge data directory, network file and Brian2 projects in "
                             "bench/peers/.work (several GB at 65,536 neurons); logs and peer results are always kept")
    parser.add_argument("--no-write", action="store_true", help="print only; do not rewrite RESULTS.md, the plot, results.json")
    args = parser.parse_args()
    if args.quick:  # a smoke test: it does not replace the recorded results of a full run
        args.sizes, args.repeats, args.plastic_repeats, args.no_write = [4096], 1, 1, True
    command = "python bench/peers/run.py" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])

    import numba

    import spikeforge

    if max(args.threads) > numba.config.NUMBA_NUM_THREADS:
        sys.exit(f"error: --threads {max(args.threads)} exceeds numba's {numba.config.NUMBA_NUM_THREADS} threads")
    started_all = time.perf_counter()
    ensure_venv()
    versions = {"spikeforge": f"{spikeforge.__version__} ({source_state()})", "numba": numba.__version__,
                "numpy": np.__version__}
    versions |= peer_versions()
    host = machine()
    print(f"{host['cpu']}, {host['cores']} cores, {host['memory']}; " + ", ".join(f"{k} {v}" for k, v in versions.items()),
          flush=True)

    results = []
    for n in args.sizes:
        work = WORK / f"n{n}"
        work.mkdir(parents=True, exist_ok=True)
        print(f"\n{n} neurons: building the network (rls.init, timing its init run) ...", flush=True)
        net = build_and_time_static(n, work, args.threads, args.repeats, args.budget, args.quiet_wait,
                                    None if args.torch_device == "none" else args.torch_device, not args.no_float32)
        size = {"n": n, "n_synapses": net["n_synapses"], "init_s": net["init_s"], "connect_s": net["connect_s"],
                "spikeforge_rates": list(net["init_rates"]), "static": net["static"], "torch": net["torch"],
                "float32": net["float32"], "plastic": {}, "peers": {}}
        print(f"  rls.init {net['init_s']:.1f} s (without the timing runs); init rates "
              f"E {net['init_rates'][0]:.3f} Hz, I {net['init_rates'][1]:.3f} Hz", flush=True)
        for threads, timing in size["static"].items():
            print(f"  spikeforge, {threads} thread(s): {timing['sim_s']:.3f} s "
                  f"(others used {100 * timing['others_cpu']:.0f} % of the CPU meanwhile)", flush=True)
        for threads, timing in size["float32"].items():
            print(f"  spikeforge, float32 state, {threads} thread(s): {timing['sim_s']:.3f} s; rates "
                  f"E {timing['rates'][0]:.3f}, I {timing['rates'][1]:.3f} Hz (worst deviation "
                  f"{100 * timing['max_deviation']:.2f} %{'' if timing['ok'] else ', OVER THE 3 % TOLERANCE'})",
                  flush=True)
        if size["torch"]:
            print(f"  spikeforge torch backend ({size['torch']['device']}): {size['torch']['sim_s']:.3f} s; "
                  f"{100 * size['torch']['identical_counts']:.0f} % of neurons with numba's spike count", flush=True)
        if not args.no_plain:
            import plain_numba

            plain = plain_numba.run(common.load_network(net["network"]), args.repeats, args.quiet_wait, args.budget)
            best = common.best(plain["runs"])
            size["plain"] = {"sim_s": best["sim_s"], "others_cpu": best["others_cpu"], "runs": plain["runs"],
                             "identical_counts": float(np.mean(plain["counts"] == net["init_counts"]))}
            print(f"  plain numba loop (serial, not spikeforge): {best['sim_s']:.3f} s; "
                  f"{100 * size['plain']['identical_counts']:.0f} % of neurons with spikeforge's spike count",
                  flush=True)
        for peer in args.peers:
            size["peers"][peer] = {}
            for threads in args.threads:
                result = run_peer(peer, net["network"], threads, args.repeats, args.budget, work,
                                  args.peer_timeout, args.quiet_wait)
                if result is not None:
                    result["check"] = rate_check(result, net["init_rates"])
                    counts = np.load(result.pop("counts_file"))
                    result["identical_counts"] = float(np.mean(counts == net["init_counts"]))
                    best = common.best(result["runs"])
                    run0 = result["runs"][0]
                    print(f"  {PEERS[peer]}, {threads} thread(s): {best['sim_s']:.3f} s (others "
                          f"{100 * best['others_cpu']:.0f} %); rates E {run0['rate_exc_hz']:.3f}, "
                          f"I {run0['rate_inh_hz']:.3f} Hz (worst deviation "
                          f"{100 * result['check']['max_deviation']:.2f} %"
                          f"{'' if result['check']['ok'] else ', OVER THE 3 % TOLERANCE'})", flush=True)
                size["peers"][peer][threads] = result
        if not args.no_plastic:
            for threads in args.threads:
                size["plastic"][threads] = time_plastic(net, threads, args.plastic_repeats, args.budget,
                                                        args.quiet_wait)
                print(f"  spikeforge plastic (benchmark mode), {threads} thread(s): "
                      f"{size['plastic'][threads]['sim_s']:.3f} s per loop", flush=True)
        results.append(size)
        if not args.keep_work:  # the big files: init.h5 and checkpoints, the network file, Brian2's projects
            shutil.rmtree(net["directory"], ignore_errors=True)
            net["network"].unlink(missing_ok=True)
            for build in work.glob("brian2-build-t*"):
                shutil.rmtree(build, ignore_errors=True)
        del net

    out = tables(results, args.peers)
    void = [(s["n"], PEERS[p], t) for s in results for p in args.peers for t, r in s["peers"][p].items()
            if r is None or not r["check"]["ok"]]
    summary = []
    for peer in args.peers:
        ratios = [common.best(s["peers"][peer][t]["runs"])["sim_s"] / s["static"][t]["sim_s"]
                  for s in results for t in s["static"] if s["peers"][peer].get(t) and s["peers"][peer][t]["check"]["ok"]]
        if ratios:
            summary.append(f"spikeforge is {min(ratios):.2f}x to {max(ratios):.2f}x as fast as {PEERS[peer]} "
                           f"(target: at least {TARGETS[peer]:g}x at every size and thread count: "
                           f"{'met' if min(ratios) >= TARGETS[peer] else 'NOT met'})")
        ratios32 = [common.best(s["peers"][peer][t]["runs"])["sim_s"] / s["float32"][t]["sim_s"]
                    for s in results for t in s.get("float32", {})
                    if s["float32"][t]["ok"] and s["peers"][peer].get(t) and s["peers"][peer][t]["check"]["ok"]]
        complete = all(s["float32"].get(t, {}).get("ok") for s in results for t in s["static"])
        if ratios32:
            summary.append(f"with float32 state, spikeforge is {min(ratios32):.2f}x to {max(ratios32):.2f}x as fast "
                           f"as {PEERS[peer]} (rates within {100 * TOLERANCE:g} % of float64's: "
                           f"{'every row' if complete else 'NOT every row'}; target at least {TARGETS[peer]:g}x: "
                           f"{'met' if complete and min(ratios32) >= TARGETS[peer] else 'NOT met'})")
    total_s = time.perf_counter() - started_all
    print("\nRates (the comparison holds only where every peer is within 3 % of spikeforge's E and I rates):\n")
    print(out["rates"])
    print(f"\nWall seconds of the simulation alone (2 s of network time), fastest clean run of up to {args.repeats}; "
          "ratio = peer seconds / spikeforge seconds:\n")
    print(out["times"])
    print("\nBuild and set-up, reported separately (not in the ratios):\n")
    print(out["setup"])
    print()
    for line in summary:
        print(line)
    if void:
        print("VOID comparisons (rates differ by more than 3 % or the peer failed): " +
              ", ".join(f"{name} at {n} neurons, {t} thread(s)" for n, name, t in void))
    print(f"\ntotal {total_s / 60:.1f} min")

    if not args.no_write:
        plot(results, args.peers, HERE / "seconds_vs_size.png")
        date = datetime.date.today().isoformat()
        (HERE / "results.json").write_text(json.dumps(
            {"date": date, "command": command, "machine": host, "versions": versions, "k": K, "seed": SEED,
             "tolerance": TOLERANCE, "results": results}, indent=1, default=float))
        (HERE / "RESULTS.md").write_text(results_markdown(out, summary, void, host, versions, command, date, args,
                                                          total_s))
        print(f"wrote {HERE / 'RESULTS.md'}, {HERE / 'seconds_vs_size.png'}, {HERE / 'results.json'}")
    return 1 if void else 0


def results_markdown(out: dict, summary: list[str], void: list, host: dict, versions: dict, command: str, date: str,
                     args, total_s: float) -> str:
    version_text = ", ".join(f"{k} {v}" for k, v in versions.items())
    void_text = ("**Void comparisons** (rates differ by more than 3 % or the peer failed): "
                 + ", ".join(f"{name} at {n:,} neurons, {t} thread(s)" for n, name, t in void) + ".\n\n") if void else ""
    return f"""## Peers: spikeforge, Brian2 and NEST on the static RLS network

Measured {date} with

```bash
{command}
```

(total {total_s / 60:.0f} min). Machine: {host['cpu']}, {host['cores']} cores, {host['memory']} memory, {host['os']},
Python {host['python']}. Versions: {version_text}. Other work may share the cores: each run
starts once other processes use under 10 % of the CPU (waiting up to {args.quiet_wait:.0f} s), runs
during which they took 10 % or more do not count as clean, and every time reported is the
fastest clean run of up to {args.repeats} (fewer when a measurement has taken {args.budget:.0f} s; at most
{args.repeats + 2} runs). The last column of the seconds table is the largest share other processes
took during the reported runs.

**Model.** The default RLS model's static network (half excitatory, every neuron projects to
2K = 410 others, the reference's weights and drives, constant drive, no noise), 2 s at
dt = 0.1 ms from the init run's initial voltages, seed {SEED}. Sizes keep K = {K} (pree = 2K/N), as the
reference's scaling runs keep K fixed, so weights, drives and rates stay the default model's
and synapses grow as 410 N. spikeforge builds the network; its synapses, drives and initial
voltages are exported to the peers and the plain loop:

- **spikeforge** (numba): the init run of `rls.init` (`run_trial` of kind INIT), the very call
  `rls.init` makes, repeated with a fresh copy of its random generator.
- **Brian2** C++ standalone, `method='euler'`, the same equations. spikeforge's one-step
  synaptic delay is Brian2 with *no* `delay` (Brian2 propagates spikes after the state update
  of the same step, so they reach the voltage at the next step), and spikeforge's one frozen
  step after a spike is Brian2's `refractory = 2 dt` (with `refractory = dt` Brian2 freezes no
  step). With these two settings Brian2 reproduces spikeforge spike for spike over the whole
  2 s at 4,096 neurons in serial code (39,354 spikes); the rate table gives the share of
  neurons with identical spike counts.
- **NEST** `iaf_psc_exp`: C_m = tau_m = 10, E_L = V_reset = 0, V_th = 1, t_ref = 0.1,
  tau_syn = 3, I_e = X, weight w / tau_s, delay dt (NEST's minimum). NEST integrates
  exactly (spikeforge: forward Euler) and a spike reaches the membrane one step later than in
  spikeforge (NEST's current jumps at the end of the step after the spike), so NEST cannot be
  identical; the rate table shows how close it comes.
- **spikeforge torch backend** (`--torch-device`, default cpu): the same init-run call with
  `backend=` spikeforge's torch backend, connectivity and constants moved to it beforehand
  (outside the timing); on the CPU it runs one torch thread (spikeforge's choice), so it
  appears on the 1-thread rows. Its spike counts are compared with numba's.
- **spikeforge, float32 state** (`float_precision = "float32"`; default float64): the same call
  with the voltages, currents, weights and constants in float32 (half the bytes a step moves). Its
  rounding differs, so its spikes do; its rates must be within the peers' 3 % of float64's (rate
  table), and its ratios count only then.
- **plain numba loop** (`bench/peers/plain_numba.py`, not spikeforge): the bare serial loop of
  the same model, the yardstick the issue quotes; it reproduces spikeforge's spike counts
  exactly.

**Rates** (mean E / I; deviation = largest relative difference of E or I over every repeat
and thread count; the comparison is void beyond 3 %):

{out['rates']}

{void_text}**Seconds** of the simulation alone (see above for the repeats); ratio = peer seconds / spikeforge
seconds at the same thread count (above 1: spikeforge is faster). *spikeforge plastic* is the
same network with the plastic synapses active and RLS computed every 10 ms but not applied
(`benchmark = true`, the reference's benchmark mode; spikeforge only), seconds of one
training loop (`rls.train`, the faster of {args.plastic_repeats} loops). The plain numba loop is serial, so it
appears on the 1-thread rows, as does the torch backend:

{out['times']}

{chr(10).join('- ' + line for line in summary)}

**Build and set-up**, not in the ratios: spikeforge's static connectivity (`static_weights`)
and its whole `rls.init` (connectivity, the init run, plastic inputs, targets, P, writing
init.h5, without the timing runs); Brian2's code generation and C++ compilation from scratch
(once per size and thread count) and
the binary's own set-up (reading the synapse arrays, creating synapses, writing results);
NEST's node creation and `Connect`, and `Prepare`:

{out['setup']}

![seconds vs network size](bench/peers/seconds_vs_size.png)

Raw numbers: `bench/peers/results.json`. How it works: `bench/peers/README.md`.
"""


if __name__ == "__main__":
    sys.exit(main())
