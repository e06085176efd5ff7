"""The torch backend against the numba backend, on the CPU, with the same random streams."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch backend needs torch (pip install 'spikeforge[gpu]')")

from spikeforge import rls  # noqa: E402
from spikeforge.core.backends import get_backend, numba_rls, torch_kernels  # noqa: E402
from spikeforge.core.store import read_h5  # noqa: E402
from spikeforge.errors import ParameterError  # noqa: E402

from conftest import SMALL  # noqa: E402

FLOAT64 = {"p_precision": "float64", "float_precision": "float64"}


def _run(directory, backend, overrides, n_tasks=1, nloops=2):
    rls.new(directory, {**SMALL, **FLOAT64, **overrides})
    rls.init(directory, n_tasks=n_tasks, verbose=False)
    result = rls.train(directory, nloops=nloops, verbose=False, backend=backend)
    rls.test(directory, ntrials=1, neurons=range(SMALL["n_cells"]), plot=False, verbose=False, backend=backend)
    return (read_h5(directory / f"ckpt-{nloops}.h5")[0], read_h5(directory / "test.h5")[0], result)


@pytest.mark.parametrize("case, overrides, n_tasks", [
    ("lif", {}, 1),
    ("glif4", {"cell_model": "glif4"}, 1),
    ("two-tasks", {}, 2),
    ("feed-forward", {"lx": 5, "wpx": 0.3}, 1),
    ("noise-full-p", {"sig": 0.3, "noise_model": "current", "p_storage": "full"}, 1),
    # E and I static synapses with their own time constants: two charges (one when they are equal)
    ("two-static-charges", {"tau_bali": 5.0}, 1),
    ("per-neuron-tau-plas-and-sig", {"tau_plas": 70.0, "tau_plas_max": 150.0, "sig": 0.1, "sig_max": 0.4,
                                     "lx": 3, "wpx": 0.3}, 1),
    ("glif2", {"cell_model": "glif2"}, 1),
    ("glif3", {"cell_model": "glif3"}, 1),
    ("glif5", {"cell_model": "glif5"}, 1),
    ("small-mode", {"p_compute": "small"}, 1),
    ("int16-full-p", {"p_precision": "int16", "p_storage": "full"}, 1),
    # a 16-bit P is updated in float32, where the packed layout's product k = P a adds in another
    # order on each backend (numba adds each row's part right of the diagonal in SIMD lanes, torch adds
    # the rows then the mirrored upper part): the spikes stay identical, weights and P agree to rounding
    ("float16-packed-p", {"p_precision": "float16", "p_storage": "packed"}, 1),
])
def test_torch_on_cpu_equals_numba_spike_for_spike(tmp_path, case, overrides, n_tasks):
    numba_ckpt, numba_test, numba_train = _run(tmp_path / "numba", "numba", overrides, n_tasks)
    torch_ckpt, torch_test, torch_train = _run(tmp_path / "torch", "torch", overrides, n_tasks)
    for name in ("spike_step", "spike_neuron", "spike_trial", "spike_task"):
        np.testing.assert_array_equal(numba_test[name], torch_test[name])
    assert numba_test["spike_step"].size > 100
    rtol = 1e-3 if case == "float16-packed-p" else 1e-9
    np.testing.assert_allclose(torch_ckpt["plastic/weight"], numba_ckpt["plastic/weight"], rtol=rtol, atol=1e-12)
    # float16 P: a few rounding steps of float16 (2^-10 relative) on the larger entries, and 5e-4 (1e-5 of P's
    # largest entry, 1/penlambda = 50) on the small ones that cancel: each backend adds k = P a in its own order
    p_rtol, p_atol = (4 * 2.0**-10, 5e-4) if case == "float16-packed-p" else (1e-9, 1e-12)
    np.testing.assert_allclose(torch_ckpt["P"].astype(float), numba_ckpt["P"].astype(float), rtol=p_rtol, atol=p_atol)
    np.testing.assert_allclose(torch_test["u_total"], numba_test["u_total"], rtol=rtol)
    assert torch_train.firing_rate == numba_train.firing_rate


def _random_rls_problem(storage, n=40, lmax=9, n_pre=60, seed=0, min_count=None):
    rng = np.random.default_rng(seed)
    count = rng.integers(lmax - 3 if min_count is None else min_count, lmax + 1, size=n).astype(np.int32)
    index = rng.integers(0, n_pre, size=(n, lmax)).astype(np.int32)
    m = rng.normal(size=(n, lmax, lmax))
    dense = np.einsum("nij,nkj->nik", m, m) / lmax + np.eye(lmax)
    valid = np.arange(lmax)[None, :] < count[:, None]
    dense *= valid[:, :, None] & valid[:, None, :]
    from spikeforge.rls import p_matrix

    P = p_matrix.to_memory_layout(p_matrix.to_file_layout(dense, storage, "float64"), storage)
    weights = rng.normal(size=(n, lmax)) * valid
    in_to_out = np.arange(n * lmax).reshape(n, lmax)
    return [P, weights, index, count, in_to_out, np.zeros(n * lmax), rng.random(n_pre) * 0.02, rng.normal(size=n),
            rng.normal(size=n)]


def test_in_place_plastic_weights_are_refused_by_torch_and_a_wrong_index_by_both_backends():
    """Connectivity.plastic_source (numba training's in-layout reads) has no torch counterpart: the torch step would
    read the in-layout as if it were the out-layout."""
    from spikeforge.core.backends.layout import TRAIN, Connectivity

    ptr, one = np.zeros(2, dtype=np.int64), np.zeros(1, dtype=np.int32)  # one neuron, one plastic synapse onto it
    net = Connectivity(ptr, one[:0], np.zeros(0), np.array([0, 1]), one, np.zeros(1), plastic_source=one)
    with pytest.raises(ValueError, match="only the numba backend reads the plastic weights in the in-layout"):
        get_backend("torch").run_steps(None, net, None, None, None, None, None, 1, 1, TRAIN)
    for backend in ("numba", "torch"):  # an index that does not match the synapses is refused by either
        with pytest.raises(ValueError, match="plastic_source has 2 entries for 1 plastic synapses"):
            get_backend(backend).run_steps(None, net._replace(plastic_source=np.zeros(2, dtype=np.int32)), None,
                                           None, None, None, None, 1, 1, TRAIN)


@pytest.mark.parametrize("storage", ["full", "symmetric", "packed"])
def test_batched_torch_rls_equals_numba_for_every_storage(storage):
    problem = _random_rls_problem(storage)
    on_numba = [a.copy() for a in problem]
    on_torch = [torch.from_numpy(a.copy()) for a in problem]
    numba_rls.rls_update(*on_numba, 1.0, True, storage, True)
    torch_kernels.rls_update(*on_torch, 1.0, True, storage, True)
    for a, b in zip(on_numba, on_torch):
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lmax", [5, 16, 37, 64])
def test_packed_torch_rls_takes_numbas_order_of_additions(dtype, lmax):
    """numba's packed kernel sums k = P a in SIMD lanes (a tree of halves) and, on the last rows of each
    neuron's block, term after term; the ordered torch path follows it, so the default storage trains bit for
    bit alike on both (lmax 5: only rows done term after term; 16: one chunk per row; 37: both kinds; 64:
    several whole chunks; neurons with any number of inputs, none included, and inputs at rate 0)."""
    problem = _random_rls_problem("packed", n=24, lmax=lmax, seed=lmax, min_count=0)
    problem = [a.astype(dtype) if a.dtype == np.float64 else a for a in problem]
    problem[6][::7] = 0.0  # r: some inputs silent (products of 0 and a negative P are -0)
    on_numba = [a.copy() for a in problem]
    on_torch = [torch.from_numpy(a.copy()) for a in problem]
    numba_rls.rls_update(*on_numba, 1.0, True, "packed", True)
    torch_kernels.rls_update(*on_torch, 1.0, True, "packed", True)
    assert not np.array_equal(on_numba[0], problem[0])  # P was updated
    for a, b in zip(on_numba, on_torch):
        np.testing.assert_array_equal(b.numpy(), a)


def test_small_mode_torch_equals_numba():
    P, weights, index, count, in_to_out, out, r, u_bal, target = _random_rls_problem("full")
    history = np.random.default_rng(1).random((4, r.size)) * 0.02
    args = [history, 3, weights, index, count, in_to_out, out, r, u_bal, target, 0.8, 0.01, 1.0, 2, True, True]
    on_numba = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    on_torch = [torch.from_numpy(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
    numba_rls.rls_small(*on_numba)
    torch_kernels.rls_small(*on_torch)
    np.testing.assert_allclose(on_torch[2].numpy(), on_numba[2], rtol=1e-10)


def test_dense_and_sparse_spike_propagation_agree(tmp_path):
    """The CUDA-graph-friendly dense propagation, run on the CPU, gives the sparse one's spikes."""
    rls.new(tmp_path / "net", {**SMALL, **FLOAT64, "lx": 3})
    rls.init(tmp_path / "net", verbose=False)
    spikes = {}
    for strategy in ("sparse", "dense"):
        backend = get_backend("torch", propagation=strategy)
        rls.train(tmp_path / "net", nloops=1, verbose=False, backend=backend, restore_from_checkpoint="init",
                  discard_later=True)
        spikes[strategy] = read_h5(tmp_path / "net" / "ckpt-1.h5")[0]["plastic/weight"]
    np.testing.assert_allclose(spikes["dense"], spikes["sparse"], rtol=1e-9, atol=1e-12)


def test_backend_choices_are_checked():
    with pytest.raises(ParameterError, match="numba backend runs on the cpu"):
        get_backend("numba", "cuda")
    with pytest.raises(ParameterError, match="backend 'jax' is not one of numba, torch"):
        get_backend("jax")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="torch sees no CUDA device"):
            get_backend("torch", "cuda")
    with pytest.raises(ParameterError, match="unknown kernel option 'propagate'"):
        get_backend("torch", propagate="dense")
    with pytest.raises(ParameterError, match="kernel option summation = 'random' is not one of 'ordered', 'batched'"):
        get_backend("torch", summation="random")


def test_backends_carry_their_options_and_leave_the_process_alone():
    numba_threads = get_backend("numba", parallel_min_neurons=0)
    assert numba_threads.options.parallel_min_neurons == 0 and get_backend().options.parallel_min_neurons == 8192
    cpu = get_backend("torch", "cpu")
    assert (cpu.options.propagation, cpu.options.summation, cpu.options.intervals) == ("sparse", "ordered", "off")
    dense = get_backend("torch", "cpu", propagation="dense")
    assert dense.options.propagation == "dense" and cpu.options.propagation == "sparse"
    before = torch.get_num_threads()
    with cpu.activated():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


TRITON_CHECK = """
import os, sys
os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, {tests!r})
import numpy as np, torch
from test_torch_backend import _random_rls_problem
from spikeforge.core.backends import torch_kernels
from spikeforge.core.backends.triton_rls import fused_packed_rls
for gain, apply in ((True, True), (False, True), (True, False)):
    problem = _random_rls_problem("packed", seed=int(gain) + 2 * int(apply))
    fallback = [torch.from_numpy(x.copy()) for x in problem]
    fused = [torch.from_numpy(x.copy()) for x in problem]
    torch_kernels.rls_packed_torch(*fallback, 2.0, gain, apply)
    fused_packed_rls(*fused, 2.0, gain, apply)
    for x, y in zip(fallback, fused):
        np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=1e-12, atol=1e-14)
print("equal")
"""


def test_triton_packed_kernel_equals_the_torch_fallback_in_the_interpreter():
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("triton", reason="Triton is not installed")
    script = TRITON_CHECK.format(tests=str(Path(__file__).parent))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "equal" in result.stdout, result.stderr[-2000:]


def test_trials_spread_over_several_devices_give_the_results_of_one(tmp_path):
    """The multi-GPU path of `test`, run with two CPU "devices"."""
    rls.new(tmp_path / "net", {**SMALL, **FLOAT64})
    rls.init(tmp_path / "net", n_tasks=2, verbose=False)
    rls.train(tmp_path / "net", nloops=1, verbose=False)
    results = []
    for devices in (["cpu"], ["cpu", "cpu"]):
        rls.test(tmp_path / "net", ntrials=3, neurons=range(100), plot=False, verbose=False, backend="torch",
                 devices=devices)
        results.append(read_h5(tmp_path / "net" / "test.h5")[0])
    for name in ("spike_step", "spike_trial", "spike_task", "spike_neuron", "u_total"):
        np.testing.assert_array_equal(results[0][name], results[1][name])


@pytest.mark.parametrize("storage", ["full", "symmetric", "packed"])
def test_batched_summation_for_cuda_equals_the_ordered_one(storage):
    """On CUDA the RLS sums are one batched reduction each instead of numba's term-by-term order."""
    problem = _random_rls_problem(storage, seed=5)
    results = {}
    for order in ("ordered", "batched"):
        arrays = [torch.from_numpy(a.copy()) for a in problem]
        torch_kernels.rls_update(*arrays, 1.0, True, storage, True, ordered=order == "ordered")
        results[order] = arrays
    for ordered, batched in zip(results["ordered"], results["batched"]):
        np.testing.assert_allclose(batched.numpy(), ordered.numpy(), rtol=1e-12, atol=1e-14)


def _meta_interval(tmp_path, overrides, kind, propagation="dense"):
    """Run one learning interval (RLS update and steps) on the meta device, whose tensors hold
    no data: any operation that needs a value on the host (``.item()``, ``bool(tensor)``,
    boolean indexing, ``nonzero``, an output size read from data) raises."""
    from spikeforge.rls import network_parameters as parameters, trial
    from spikeforge.rls.model import Model
    from spikeforge.rls.files import RunDir
    from spikeforge.rls.training import learner_for

    rls.new(tmp_path / "net", {**SMALL, **overrides})
    rls.init(tmp_path / "net", verbose=False)
    model = Model.load(RunDir(tmp_path / "net"))
    p = model.p
    net, in_to_out = model.connectivity()
    net = torch_kernels.put(net, "meta")
    learner = learner_for(model, net.plastic_weight, in_to_out)
    for name in ("P", "weights_in", "plastic_index", "plastic_count", "in_to_out"):
        setattr(learner, name, torch_kernels.put(getattr(learner, name), "meta"))
    const = torch_kernels.put(parameters.network_parameters(p, model.cells), "meta")
    state = torch_kernels.put(trial.new_state(p, np.zeros(p.n_cells), None, const.glif.asc_decay.shape[1]), "meta")
    rec = torch_kernels.put(trial.new_recording(p, kind), "meta")
    first = p.steps.stim_off_step + p.steps.learn_step
    rows = p.steps.learn_step
    noise = torch.zeros((rows if p.sig > 0 else 0, p.n_cells), dtype=state.v.dtype, device="meta")
    ff_spikes = torch.zeros((rows if p.lx else 0, p.lx), dtype=torch.uint8, device="meta")
    clock = torch.zeros((), dtype=torch.int64, device="meta")
    backend = get_backend("torch", "cpu", propagation=propagation)
    learner.update(backend, state.r, state.u_bal, torch.zeros(p.n_cells, dtype=state.v.dtype, device="meta"))
    backend.run_steps(state, net, const, rec, torch.zeros((0, p.n_cells), device="meta"), noise, ff_spikes,
                      first, first + rows - 1, kind, clock=clock)


@pytest.mark.parametrize("case, overrides", [
    ("lif-symmetric", {}),
    ("glif5-full-float32-noise", {"cell_model": "glif5", "p_storage": "full", "p_precision": "float32",
                                  "float_precision": "float32", "sig": 0.2}),
    ("packed-float16-feed-forward", {"p_storage": "packed", "p_precision": "float16", "lx": 4, "wpx": 0.3}),
    ("full-int16-voltage-noise", {"p_storage": "full", "p_precision": "int16", "sig": 0.2,
                                  "noise_model": "voltage"}),
])
@pytest.mark.parametrize("kind", ["train", "train_record"])
def test_a_learning_interval_never_waits_for_the_device(tmp_path, case, overrides, kind):
    """What a CUDA graph captures must not synchronise with the host; run on the meta device it
    would raise if it did, and the sparse propagation (which does) is the proof that it raises."""
    from spikeforge.core.backends.layout import TRAIN, TRAIN_RECORD

    overrides = {**overrides, "learn_every": 1.0, "wid": 2.0}  # 10 steps an interval
    kind = TRAIN if kind == "train" else TRAIN_RECORD
    _meta_interval(tmp_path / "dense", overrides, kind)
    with pytest.raises(NotImplementedError, match="nonzero"):
        _meta_interval(tmp_path / "sparse", overrides, kind, propagation="sparse")


class _RecordedWork:
    """Stands in for a CUDA graph on the CPU: capturing records the work, replaying runs it."""

    captured: list = []

    def __init__(self, work, pool):
        self.work, self.pool, self.replays = work, pool, 0
        _RecordedWork.captured.append(self)

    def replay(self):
        self.replays += 1
        self.work()


@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_replayed_learning_intervals_equal_the_plain_loop(tmp_path, monkeypatch, mode):
    """The CUDA-graph data flow (persistent state, fixed input buffers, a device clock, dense
    propagation; in "graph" mode warm-up, capture and replay with a recorded stand-in for the
    graph) run on the CPU gives numba's weights, with and without recording."""
    from spikeforge.core.backends import torch_graphs

    overrides = {**FLOAT64, "lx": 5, "wpx": 0.3, "sig": 0.3, "noise_model": "current", "p_storage": "full",
                 "train_duration": 100.0}  # 10 learning steps a loop: enough intervals of every shape
    monkeypatch.setattr(torch_graphs, "capture_cuda_graph", _RecordedWork)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: "shared pool")
    monkeypatch.setattr(torch_graphs, "warm_up", lambda work: work())
    monkeypatch.setattr(_RecordedWork, "captured", [])
    results = {}
    for backend in ("numba", get_backend("torch", intervals=mode, propagation="dense")):
        directory = tmp_path / getattr(backend, "name", backend)
        rls.new(directory, {**SMALL, **overrides})
        rls.init(directory, verbose=False)
        trained = rls.train(directory, nloops=4, correlation_interval=2, verbose=False, backend=backend)
        results[getattr(backend, "name", backend)] = (read_h5(directory / "ckpt-4.h5")[0], trained)
    (numba_ckpt, numba_train), (torch_ckpt, torch_train) = results["numba"], results["torch"]
    np.testing.assert_allclose(torch_ckpt["plastic/weight"], numba_ckpt["plastic/weight"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(torch_ckpt["P"], numba_ckpt["P"], rtol=1e-9, atol=1e-12)
    assert torch_train.firing_rate == numba_train.firing_rate
    assert torch_train.correlation[1] == pytest.approx(numba_train.correlation[1], rel=1e-12)
    assert torch_train.correlation[3] == pytest.approx(numba_train.correlation[3], rel=1e-12)
    assert np.isnan(torch_train.correlation[0]) and np.isnan(torch_train.correlation[2])
    if mode == "graph":
        # shapes: 100-step intervals and the 1-step tail, each with and without recording; each
        # shape's first run is the warm-up, its second is captured, and every run after replays
        learn_nsteps = rls.Params({**SMALL, **overrides}).steps.learn_nsteps
        assert len(_RecordedWork.captured) == 4
        assert {graph.pool for graph in _RecordedWork.captured} == {"shared pool"}
        runs_per_kind = 2 * (learn_nsteps - 1) + 2
        assert sum(graph.replays for graph in _RecordedWork.captured) == 2 * (runs_per_kind - 2)


def test_a_failed_capture_falls_back_to_running_without_graphs(tmp_path, monkeypatch):
    from spikeforge.core.backends import torch_graphs

    def failing_capture(work, pool):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(torch_graphs, "capture_cuda_graph", failing_capture)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: "shared pool")
    monkeypatch.setattr(torch_graphs, "warm_up", lambda work: work())
    weights = {}
    for mode in ("off", "graph"):
        backend = get_backend("torch", intervals=mode, propagation="dense")
        rls.new(tmp_path / mode, {**SMALL, **FLOAT64})
        rls.init(tmp_path / mode, verbose=False)
        if mode == "graph":
            with pytest.warns(RuntimeWarning, match="training goes on without CUDA graphs"):  # in the first loop
                rls.train(tmp_path / mode, nloops=1, verbose=False, backend=backend)
        else:
            rls.train(tmp_path / mode, nloops=1, verbose=False, backend=backend)
        weights[mode] = read_h5(tmp_path / mode / "ckpt-1.h5")[0]["plastic/weight"]
    np.testing.assert_array_equal(weights["graph"], weights["off"])


def test_rls_in_blocks_of_neurons_equals_one_block():
    """Large models update P block by block to bound the temporaries; the blocks change nothing."""
    problem = _random_rls_problem("symmetric", n=40)
    whole = [torch.from_numpy(a.copy()) for a in problem]
    torch_kernels.rls_update(*whole, 1.0, True, "symmetric", True)
    seven = problem[0][0].nbytes * 7
    assert torch_kernels.block_neurons(torch.from_numpy(problem[0]), seven) == 7
    blocked = [torch.from_numpy(a.copy()) for a in problem]
    get_backend("torch", rls_block_bytes=seven).rls_update(*blocked, 1.0, True, "symmetric", True)
    for a, b in zip(whole, blocked):
        np.testing.assert_array_equal(b.numpy(), a.numpy())


TRITON_STEP_CHECK = """
import os, sys
os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, {tests!r})
import numpy as np, torch
from test_torch_backend import compare_fused_step_with_torch
compare_fused_step_with_torch({directory!r})
from spikeforge.core.backends import triton_step
triton_step.smoke_test(torch.device("cpu"))  # the start-up check raises on wrong results: not here
print("equal")
"""


def compare_fused_step_with_torch(directory, device="cpu"):
    """Run 60 steps from the same mid-trial state with the torch code (sparse propagation) and
    with the Triton neuron kernel and push propagation, for several kinds and inputs; assert
    that spikes and state agree.  On the CPU it runs in a subprocess with TRITON_INTERPRET=1
    and agrees to rounding; on CUDA the atomic adds' order may differ, so only to 1e-9."""
    from pathlib import Path

    from spikeforge.core.backends.layout import INIT, TEST, TRAIN, TRAIN_RECORD
    from spikeforge.rls import network_parameters as parameters, trial
    from spikeforge.rls.files import RunDir
    from spikeforge.rls.model import Model

    cases = [("init", INIT, {}, 400), ("train-stimulus-current-noise", TRAIN,
                                       {"sig": 0.3, "noise_model": "current"}, 520),
             ("record-feed-forward-voltage-noise", TRAIN_RECORD, {"lx": 5, "wpx": 0.3, "sig": 0.3}, 1000),
             ("test", TEST, {}, 700),
             ("two-static-charges", TRAIN, {"tau_bali": 5.0}, 520)]  # E and I synapses with their own charge
    for name, kind, overrides, start in cases:
        directory_of_case = Path(directory) / name
        rls.new(directory_of_case, {**SMALL, **FLOAT64, **overrides})
        rls.init(directory_of_case, verbose=False)
        model = Model.load(RunDir(directory_of_case))
        p = model.p
        rng = np.random.default_rng(3)
        net = torch_kernels.put(model.connectivity()[0], device)
        const = torch_kernels.put(parameters.network_parameters(p, model.cells), device)
        x_stim = torch.from_numpy(model.stimulus[0]).to(device)
        last = start + 60
        noise = torch.from_numpy(rng.standard_normal((last, p.n_cells)) if p.sig else np.zeros((0, p.n_cells))).to(device)
        ff = torch.from_numpy((rng.random((last, p.lx)) < 0.2).astype(np.uint8)).to(device)
        state = torch_kernels.put(trial.new_state(p, parameters.initial_voltage(p, rng), None, 0), device)
        rec = torch_kernels.put(trial.new_recording(p, kind), device)
        torch_kernels.run_steps(state, net, const, rec, x_stim, noise, ff, 1, start, kind)
        runs = {}
        for fused in (False, True):
            backend = get_backend("torch", device, fused_neurons=fused, propagation="push" if fused else "sparse")
            mine = (type(state)(*(t.clone() for t in state)), type(rec)(*(t.clone() for t in rec)))
            backend.run_steps(*mine[:1], net, const, mine[1], x_stim, noise[start:], ff[start:], start + 1, last, kind)
            runs[fused] = mine
        new_spikes = int(runs[True][0].spike_count.sum() - state.spike_count.sum())
        assert new_spikes > 5, name
        for plain, fused in zip(runs[False][0] + runs[False][1], runs[True][0] + runs[True][1]):
            tolerance = 1e-12 if device == "cpu" else 1e-9
            np.testing.assert_allclose(fused.cpu().numpy(), plain.cpu().numpy(), rtol=tolerance, atol=tolerance * 1e-3,
                                       err_msg=name)


def test_triton_step_kernels_equal_the_torch_step_in_the_interpreter(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("triton", reason="Triton is not installed")
    script = TRITON_STEP_CHECK.format(tests=str(Path(__file__).parent), directory=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 and "equal" in result.stdout, result.stderr[-3000:]


def test_step_kernels_that_cannot_run_fall_back_to_torch_operations(monkeypatch):
    from spikeforge.core.backends import triton_step

    def broken(device):
        raise RuntimeError("PTX .version 8.7 does not support .target sm_50")

    monkeypatch.setattr(triton_step, "smoke_test", broken)
    with pytest.warns(RuntimeWarning, match="cannot run on cpu .*sm_50.*using torch operations instead"):
        assert torch_kernels.usable_triton_step(torch.device("cpu")) is None
    monkeypatch.setattr(torch_kernels, "usable_triton_step", lambda device: None)
    with pytest.raises(ParameterError, match="need the Triton kernels, which cannot run on 'cpu'"):
        get_backend("torch", "cpu", propagation="push")


def _compile_for_h100(kernel, pointer_types: dict, scalar_types: dict, constexprs: dict) -> str:
    """PTX of a Triton kernel compiled ahead of time for sm_90 (no GPU needed); arguments not
    in ``pointer_types``, ``scalar_types`` or ``constexprs`` are pointers of the type under "float"."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {name: "constexpr" if name in constexprs else scalar_types.get(name)
                 or pointer_types.get(name, pointer_types["float"]) for name in kernel.arg_names}
    return triton.compile(ASTSource(kernel, signature, constexprs=constexprs), target=GPUTarget("cuda", 90, 32),
                          options={"enable_fp_fusion": False}).asm["ptx"]


@pytest.mark.parametrize("float_type", ["*fp32", "*fp64"])
def test_triton_kernels_compile_for_an_h100(float_type):
    """The interpreter does not catch everything the GPU compiler refuses; compile every Triton
    kernel and variant to PTX for sm_90 ahead of time."""
    pytest.importorskip("triton", reason="Triton is not installed")
    from spikeforge.core.backends import triton_rls, triton_step

    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
    except ImportError:
        pytest.skip("this Triton cannot compile ahead of time")
    integers = {"LAST": "*i64", "COUNT": "*i64", "SPIKED": "*u8", "CLOCK": "*i64", "float": float_type}
    for noise_mode in (0, 1, 2):
        for plastic, learning in ((False, False), (True, False), (True, True)):
            ptx = _compile_for_h100(triton_step._lif_neurons, integers, {"n": "i32", "refrac": "i32"}, {
                "PLASTIC": plastic, "LEARNING": learning, "NOISE_MODE": noise_mode, "WITH_STIM": noise_mode == 1,
                "ONE_CHARGE": noise_mode != 2, "BLOCK": triton_step.BLOCK_NEURONS})
            assert ".entry _lif_neurons" in ptx
    synapses = {"SPIKED": "*u8", "S_PTR": "*i64", "P_PTR": "*i64", "S_POST": "*i32", "P_POST": "*i32",
                "float": float_type}
    for split_sign in (True, False):
        ptx = _compile_for_h100(triton_step._push_spikes, synapses, {"first_pre": "i32", "n_pre": "i32"},
                                {"STATIC": True, "PLASTIC": True, "SPLIT_SIGN": split_sign,
                                 "NEURONS": triton_step.PRESYNAPTIC_PER_PROGRAM, "BLOCK": triton_step.BLOCK_SYNAPSES})
        assert f".add.f{float_type[-2:]}" in ptx  # the atomic adds, in the float type of the weights
    rls_types = {"IDX": "*i32", "COUNT": "*i32", "IN2OUT": "*i64", "float": float_type}
    ptx = _compile_for_h100(triton_rls._packed_rls, {**rls_types, "P": "*fp32" if float_type == "*fp32" else "*fp64"},
                            {"lmax": "i32", "n_packed": "i32", "p_scale": "fp32", "inv_p_scale": "fp32"},
                            {"GAIN_WITH_DEN": True, "APPLY": True, "BLOCK": 128})
    assert ".entry _packed_rls" in ptx


def test_init_run_on_torch_from_the_command_line_equals_numba(tmp_path):
    """`spikeforge init --backend torch` writes the init.h5 of the numba init run, dataset for dataset."""
    from click.testing import CliRunner

    from spikeforge.cli import cli

    for backend in ("numba", "torch"):
        rls.new(tmp_path / backend, {**SMALL, **FLOAT64, "sig": 0.2})
        result = CliRunner().invoke(cli, ["init", str(tmp_path / backend), "--backend", backend])
        assert result.exit_code == 0, result.output
    numba_init, torch_init = (read_h5(tmp_path / backend / "init.h5")[0] for backend in ("numba", "torch"))
    assert sorted(numba_init) == sorted(torch_init)
    for name in numba_init:
        np.testing.assert_array_equal(torch_init[name], numba_init[name], err_msg=name)


@pytest.mark.parametrize("replay, cell_model", [("off", "lif"), ("eager", "lif"), ("off", "glif5")])
def test_float32_training_on_torch_equals_numba(tmp_path, replay, cell_model):
    """In float32 both backends compute every operation of the step in float32 (the filters' and
    GLIF's scalar constants are float32 numbers, not Python floats that numba would promote to
    float64), and the RLS error in float64: the weights are bit for bit the same."""
    float32 = {"float_precision": "float32", "p_precision": "float32", "cell_model": cell_model}
    runs = {}
    torch_backend = get_backend("torch", intervals=replay, propagation="dense" if replay == "eager" else "sparse")
    for backend in ("numba", "torch"):
        rls.new(tmp_path / backend, {**SMALL, **float32})
        rls.init(tmp_path / backend, verbose=False)
        trained = rls.train(tmp_path / backend, nloops=2, verbose=False,
                            backend=torch_backend if backend == "torch" else backend)
        runs[backend] = read_h5(tmp_path / backend / "ckpt-2.h5")[0]["plastic/weight"], trained
    (numba_weights, numba_train), (torch_weights, torch_train) = runs["numba"], runs["torch"]
    assert torch_weights.dtype == np.float32
    assert torch_train.firing_rate == numba_train.firing_rate
    np.testing.assert_array_equal(torch_weights, numba_weights)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
def test_on_cuda_the_fused_step_kernels_agree_with_the_torch_step(tmp_path):
    compare_fused_step_with_torch(tmp_path, device="cuda")


@needs_cuda
@pytest.mark.parametrize("cuda_graphs", [True, False])
def test_on_cuda_training_agrees_with_numba(tmp_path, monkeypatch, cuda_graphs):
    """CUDA (fused kernels, push propagation, batched sums, with and without graphs) against
    numba: atomic adds and batched sums round differently, so agreement to rounding, not bits."""
    from spikeforge.core.backends import torch_graphs

    captures = []
    capture = torch_graphs.capture_cuda_graph
    monkeypatch.setattr(torch_graphs, "capture_cuda_graph", lambda work, pool: captures.append(1) or capture(work, pool))
    runs = {}
    for backend, device in (("numba", "cpu"), ("torch", "cuda")):
        rls.new(tmp_path / backend, {**SMALL, **FLOAT64})
        rls.init(tmp_path / backend, verbose=False)
        trained = rls.train(tmp_path / backend, nloops=3, correlation_interval=2, verbose=False, backend=backend,
                            device=device, cuda_graphs=cuda_graphs)
        runs[backend] = read_h5(tmp_path / backend / "ckpt-3.h5")[0]["plastic/weight"], trained
    (numba_weights, numba_train), (cuda_weights, cuda_train) = runs["numba"], runs["torch"]
    assert (len(captures) > 0) == cuda_graphs
    np.testing.assert_allclose(cuda_train.firing_rate, numba_train.firing_rate, rtol=0.02)
    assert np.corrcoef(cuda_weights, numba_weights)[0, 1] > 0.999
