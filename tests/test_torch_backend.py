"""The torch backend against the numba backend, on the CPU, with the same random streams."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch backend needs torch (pip install 'spikeforge[gpu]')")

from spikeforge import rls  # noqa: E402
from spikeforge.core.backends import get_backend, numba_kernels, torch_kernels  # noqa: E402
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
])
def test_torch_on_cpu_equals_numba_spike_for_spike(tmp_path, case, overrides, n_tasks):
    numba_ckpt, numba_test, numba_train = _run(tmp_path / "numba", "numba", overrides, n_tasks)
    torch_ckpt, torch_test, torch_train = _run(tmp_path / "torch", "torch", overrides, n_tasks)
    for name in ("spike_step", "spike_neuron", "spike_trial", "spike_task"):
        np.testing.assert_array_equal(numba_test[name], torch_test[name])
    assert numba_test["spike_step"].size > 100
    np.testing.assert_allclose(torch_ckpt["plastic/weight"], numba_ckpt["plastic/weight"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(torch_ckpt["P"], numba_ckpt["P"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(torch_test["u_total"], numba_test["u_total"], rtol=1e-9)
    assert torch_train.firing_rate == numba_train.firing_rate


def _random_rls_problem(storage, n=40, lmax=9, n_pre=60, seed=0):
    rng = np.random.default_rng(seed)
    count = rng.integers(lmax - 3, lmax + 1, size=n).astype(np.int32)
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


@pytest.mark.parametrize("storage", ["full", "symmetric", "packed"])
def test_batched_torch_rls_equals_numba_for_every_storage(storage):
    problem = _random_rls_problem(storage)
    on_numba = [a.copy() for a in problem]
    on_torch = [torch.from_numpy(a.copy()) for a in problem]
    numba_kernels.rls_update(*on_numba, 1.0, True, storage, True)
    torch_kernels.rls_update(*on_torch, 1.0, True, storage, True)
    for a, b in zip(on_numba, on_torch):
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-12, atol=1e-14)


def test_small_mode_torch_equals_numba():
    P, weights, index, count, in_to_out, out, r, u_bal, target = _random_rls_problem("full")
    history = np.random.default_rng(1).random((4, r.size)) * 0.02
    args = [history, 3, weights, index, count, in_to_out, out, r, u_bal, target, 0.8, 0.01, 1.0, 2, True, True]
    on_numba = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    on_torch = [torch.from_numpy(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
    numba_kernels.rls_small(*on_numba)
    torch_kernels.rls_small(*on_torch)
    np.testing.assert_allclose(on_torch[2].numpy(), on_numba[2], rtol=1e-10)


def test_dense_and_sparse_spike_propagation_agree(tmp_path):
    """The CUDA-graph-friendly dense propagation, run on the CPU, gives the sparse one's spikes."""
    rls.new(tmp_path / "net", {**SMALL, **FLOAT64, "lx": 3})
    rls.init(tmp_path / "net", verbose=False)
    spikes = {}
    for strategy in ("sparse", "dense"):
        torch_kernels.PROPAGATION["cpu"] = strategy
        try:
            rls.train(tmp_path / "net", nloops=1, verbose=False, backend="torch")
            spikes[strategy] = read_h5(tmp_path / "net" / "ckpt-1.h5")[0]["plastic/weight"]
        finally:
            torch_kernels.PROPAGATION["cpu"] = "sparse"
    np.testing.assert_allclose(spikes["dense"], spikes["sparse"], rtol=1e-9, atol=1e-12)


def test_backend_choices_are_checked():
    with pytest.raises(ParameterError, match="numba backend runs on the cpu"):
        get_backend("numba", "cuda")
    with pytest.raises(ParameterError, match="backend 'jax' is not one of numba, torch"):
        get_backend("jax")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="torch sees no CUDA device"):
            get_backend("torch", "cuda")


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
