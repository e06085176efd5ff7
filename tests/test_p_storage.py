"""Storage and precision of P: layouts agree, low precision still learns."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge import rls
from spikeforge.core.store import read_h5
from spikeforge.rls import p_matrix
from spikeforge.rls.params import Params

from conftest import SMALL


def test_pack_and_unpack_round_trip():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(3, 5, 5))
    symmetric = m + np.swapaxes(m, 1, 2)
    packed = p_matrix.pack(symmetric)
    assert packed.shape == (3, 15)
    np.testing.assert_array_equal(p_matrix.unpack(packed, 5), symmetric)


def test_int16_scale_keeps_the_initial_p_in_range():
    assert Params({"p_precision": "int16"}).p_scale == 2.0**14  # as the reference suggests
    assert Params({"p_precision": "int16", "penlambda": 0.02}).p_scale == 2.0**9
    assert Params({"p_precision": "float32"}).p_scale == 1.0
    assert p_matrix.nbytes(4096, 58, "packed", "float16") == 4096 * 58 * 59 // 2 * 2


def test_full_symmetric_and_packed_p_give_the_same_weights(tmp_path):
    """... and each P the kernels use starts on a cache line (after init, as read back, as trained), so that no SIMD
    vector of it straddles two lines."""
    from spikeforge.core.aligned import is_aligned
    from spikeforge.rls.files import RunDir
    from spikeforge.rls.model import Model

    weights, matrices = {}, {}
    for storage in ("full", "symmetric", "packed"):
        directory = tmp_path / storage
        rls.new(directory, {**SMALL, "p_storage": storage, "p_precision": "float64", "float_precision": "float64"})
        assert is_aligned(rls.init(directory, verbose=False).P)
        result = rls.train(directory, nloops=1, verbose=False)
        assert is_aligned(result.model.P) and is_aligned(Model.load(RunDir(directory), 1).P)
        saved, _ = read_h5(directory / "ckpt-1.h5", ["plastic/weight", "P"])
        weights[storage] = saved["plastic/weight"]
        matrices[storage] = p_matrix.dense(result.model.P, storage, result.model.p.steps.n_plastic, 1.0)
    for storage in ("full", "packed"):
        np.testing.assert_allclose(weights[storage], weights["symmetric"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(matrices[storage], matrices["symmetric"], rtol=1e-10, atol=1e-12)
    assert not np.allclose(weights["symmetric"], rls.Params(SMALL).wpee)  # it did learn something


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_training_with_interleaved_p_saves_and_returns_the_packed_p_of_training_without(tmp_path, monkeypatch,
                                                                                        precision):
    """numba keeps P interleaved while it trains (KernelOptions.rls_interleave): the checkpoints (a best-correlation
    one written mid-run, the final one) and the model it returns hold the packed P that training without
    interleaving gives, bit for bit, with 1000 neurons (the last 8 after the last group of 16 stay packed); a
    second call continues from that checkpoint as it would without."""
    from spikeforge.core.backends import get_backend, numba_rls

    kernel, updates = numba_rls.rls_interleaved, []
    monkeypatch.setattr(numba_rls, "rls_interleaved", lambda *args: updates.append(1) or kernel(*args))
    outcomes = []
    for interleave in (True, False):
        directory = tmp_path / f"interleave-{interleave}"
        rls.new(directory, {**SMALL, "n_cells": 1000, "p_precision": precision})
        rls.init(directory, verbose=False)
        backend = get_backend("numba", rls_interleave=interleave)
        first = rls.train(directory, nloops=2, save_best_checkpoint=True, verbose=False, backend=backend)
        best = sorted(directory.glob("ckpt-*-cor*.h5"))
        assert len(best) == 1
        best, _ = read_h5(best[0], ["plastic/weight", "P"])
        result = rls.train(directory, nloops=1, verbose=False, backend=backend)
        final, _ = read_h5(directory / "ckpt-3.h5", ["plastic/weight", "P"])
        outcomes.append((first.model.P.copy(), best["P"], best["plastic/weight"], result.model.P, final["P"],
                         final["plastic/weight"]))
    assert len(updates) == 3 * 20  # the interleaved kernel did every update of the first run (20 per loop)
    assert outcomes[0][0].dtype == np.dtype(precision) and outcomes[0][0].shape == (1000, 40 * 41 // 2)
    for interleaved, packed in zip(*outcomes):
        np.testing.assert_array_equal(interleaved, packed)
    saved, _ = read_h5(tmp_path / "interleave-True" / "ckpt-2.h5", ["P"])
    np.testing.assert_array_equal(outcomes[0][0], saved["P"])  # the model returned is the one saved
    assert not np.array_equal(outcomes[0][0], outcomes[0][3])  # P did change between the calls


@pytest.mark.parametrize("precision", ["int16", "float16"])
def test_low_precision_p_keeps_rates_and_still_learns(tmp_path, precision):
    directory = tmp_path / precision
    rls.new(directory, {**SMALL, "p_precision": precision, "p_storage": "packed"})
    model = rls.init(directory, verbose=False)
    assert model.P.dtype == np.dtype(precision)
    result = rls.train(directory, nloops=10, verbose=False)
    assert all(0 < rate < 15 for rate in result.firing_rate)
    assert np.mean(result.correlation[-3:]) > np.mean(result.correlation[:3]) + 0.05


@pytest.mark.parametrize("storage, precision", [("packed", "float16"), ("symmetric", "float32"), ("full", "int16")])
def test_estimate_matches_the_arrays_init_makes(tmp_path, storage, precision):
    from click.testing import CliRunner

    from spikeforge.cli import cli
    from spikeforge.rls.estimate import estimate

    directory = tmp_path / "net"
    rls.new(directory, {**SMALL, "p_storage": storage, "p_precision": precision})
    model = rls.init(directory, verbose=False)
    e = estimate(model.p)
    with __import__("h5py").File(directory / "init.h5") as f:
        assert e.p_file[storage, precision] == f["P"].nbytes
    assert e.p_memory[storage, precision] == model.P.nbytes
    result = CliRunner().invoke(cli, ["estimate", str(directory)])
    assert result.exit_code == 0 and "<- params.toml" in result.output
    chosen = [line for line in result.output.splitlines() if line.endswith("<- params.toml")][0]
    assert chosen.split()[:2] == [storage, precision]


def test_a_model_too_large_for_the_device_is_refused_with_what_would_fit():
    from spikeforge.errors import ParameterError
    from spikeforge.rls.estimate import check_fits

    big = {"n_cells": 1_000_000, "k": 500, "l": 50}  # 10^8 plastic synapses, as the reference's largest
    check_fits(rls.Params({**big, "p_storage": "packed", "p_precision": "float16"}), 80 * 10**9, "cuda:0")
    symmetric = rls.Params({**big, "p_storage": "symmetric", "p_precision": "float32"})
    with pytest.raises(ParameterError) as info:
        check_fits(symmetric, 60 * 10**9, "cuda:0")
    message = str(info.value)
    assert "cuda:0, which has 60.0 GB free (p_storage = 'symmetric', p_precision = 'float32')" in message
    fitting = message.split("fit: ")[1].split(", ")
    assert "packed/float16" in fitting and "symmetric/float32" not in fitting
    with pytest.raises(ParameterError, match="no P storage/precision fits"):
        check_fits(symmetric, 10 * 10**9, "cuda:0")
