"""The memory-light RLS mode (p_compute = "small")."""

from __future__ import annotations

import shutil

import numpy as np

from spikeforge import rls
from spikeforge.core.backends import numba_rls
from spikeforge.core.store import read_h5



def test_small_mode_solves_the_windowed_least_squares_problem():
    rng = np.random.default_rng(2)
    n, lmax, n_pre, n_ff = 3, 6, 12, 2
    index = rng.integers(0, n_pre, size=(n, lmax)).astype(np.int32)
    count = np.array([6, 4, 6], dtype=np.int32)
    weights = rng.normal(size=(n, lmax))
    history = rng.random((5, n_pre)) * 0.02
    r, u_bal, target = rng.random(n_pre) * 0.02, rng.normal(size=n), rng.normal(size=n)
    lam, mu, lam_ff = 0.8, 0.01, 1.5
    expected = weights.copy()
    for i, c in enumerate(count):
        w = weights[i, :c]
        signs = np.sign(w)
        penalty = np.diag(np.where(np.arange(c) < n_ff, lam_ff, lam))
        recurrent = np.arange(c) >= n_ff
        same = (signs[:, None] == signs[None, :]) & (signs[:, None] != 0) & recurrent[:, None] & recurrent[None, :]
        g = history[:3][:, index[i, :c]]  # 3 filled snapshots
        A = penalty + mu * same + g.T @ g
        a = r[index[i, :c]]
        k = np.linalg.solve(A, a)
        error = w @ a + u_bal[i] - target[i]
        expected[i, :c] = w - error / (1 + a @ k) * k
    out = np.zeros(n * lmax)
    numba_rls.rls_small(history, 3, weights, index, count, np.arange(n * lmax).reshape(n, lmax), out, r, u_bal,
                            target, lam, mu, lam_ff, n_ff, True, True)
    np.testing.assert_allclose(weights, expected, rtol=1e-12)


def test_small_mode_learns_and_restores_exactly(small_run, tmp_path):
    params = small_run / "params.toml"
    params.write_text(params.read_text().replace('p_compute = "fast"', 'p_compute = "small"'))
    rls.init(small_run, force=True, verbose=False)
    resumed = tmp_path / "resumed"
    shutil.copytree(small_run, resumed)
    result = rls.train(small_run, nloops=8, verbose=False)
    assert np.mean(result.correlation[-3:]) > np.mean(result.correlation[:3]) + 0.05
    rls.train(resumed, nloops=4, verbose=False)
    rls.train(resumed, nloops=4, restore_from_checkpoint="4", verbose=False)
    straight, _ = read_h5(small_run / "ckpt-8.h5", ["plastic/weight", "history"])
    restored, attrs = read_h5(resumed / "ckpt-8.h5", ["plastic/weight", "history"])
    for name in straight:
        np.testing.assert_array_equal(straight[name], restored[name])
    assert attrs["history_filled"] == 10 and read_h5(small_run / "init.h5", ["P"])[0]["P"].size == 0
