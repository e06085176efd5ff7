"""Static and plastic connectivity, the out-layout map, and the initial P."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.core import rng as streams
from spikeforge.rls import connectivity
from spikeforge.rls.params import Params


@pytest.fixture
def p():
    return Params({"n_cells": 300, "ne": 200, "seed": 5})


def test_static_weights_have_fixed_out_degree_distinct_targets_and_no_autapses(p):
    static = connectivity.static_weights(p, streams.stream(p.seed, "static_weights"))
    post = static.post.reshape(p.n_cells, 2 * p.k)
    assert np.all(np.diff(static.ptr) == 2 * p.k)
    assert all(len(set(row)) == 2 * p.k for row in post)
    assert not np.any(post == np.arange(p.n_cells)[:, None])
    weight = static.weight.reshape(post.shape)
    pre_exc = np.arange(p.n_cells)[:, None] < p.ne
    post_exc = post < p.ne
    expected = np.where(pre_exc, np.where(post_exc, p.jee, p.jie), np.where(post_exc, p.jei, p.jii))
    np.testing.assert_array_equal(weight, expected)


def test_plastic_inputs_come_from_the_most_active_neurons_without_autapses(p):
    p = Params({"n_cells": 300, "ne": 200, "seed": 5, "frac": 0.5})
    counts = np.random.default_rng(0).permutation(p.n_cells)  # distinct activity levels
    inputs = connectivity.plastic_weights(p, counts, streams.stream(p.seed, "plastic_weights"))
    top_exc = set(np.argsort(-counts[: p.ne])[:100])
    top_inh = set(p.ne + np.argsort(-counts[p.ne:])[:50])
    assert inputs.index.shape == (p.n_cells, p.lexc + p.linh)
    for i, row in enumerate(inputs.index):
        assert set(row[: p.lexc]) <= top_exc and set(row[p.lexc:]) <= top_inh
        assert len(set(row)) == row.size and i not in row
    assert np.all(inputs.weight[: p.ne, : p.lexc] == p.wpee) and np.all(inputs.weight[p.ne:, p.lexc:] == p.wpii)


def test_out_layout_lists_each_plastic_synapse_once_at_its_mapped_position(p):
    counts = np.arange(p.n_cells)
    inputs = connectivity.plastic_weights(p, counts, streams.stream(1, "x"))
    inputs = inputs._replace(weight=np.random.default_rng(1).normal(size=inputs.weight.shape))
    layout, in_to_out = connectivity.out_layout(inputs, p.n_cells)
    pre_of_slot = np.repeat(np.arange(p.n_cells), np.diff(layout.ptr))
    for i in range(p.n_cells):
        positions = in_to_out[i, : inputs.count[i]]
        np.testing.assert_array_equal(layout.post[positions], i)
        np.testing.assert_array_equal(pre_of_slot[positions], inputs.index[i, : inputs.count[i]])
        np.testing.assert_array_equal(layout.weight[positions], inputs.weight[i, : inputs.count[i]])
    assert layout.post.size == inputs.count.sum()


def test_initial_p_inverts_the_penalty_matrix():
    weight = np.array([[1.0, 2.0, -1.0, -3.0, 0.0], [1.0, -1.0, 1.0, 0.0, 0.0]])
    count = np.array([5, 3])
    lam, mu = 0.8, 0.01
    P = connectivity.initial_p(weight, count, lam, mu)
    for n in range(2):
        c = count[n]
        s = np.sign(weight[n, :c])
        penalty = lam * np.eye(c) + mu * ((s[:, None] == s[None, :]) & (s[:, None] != 0))
        np.testing.assert_allclose(P[n, :c, :c] @ penalty, np.eye(c), atol=1e-12)
        assert np.all(P[n, c:, :] == 0) and np.all(P[n, :, c:] == 0)
    with_ff = connectivity.initial_p(np.hstack([[[0.5], [-0.5]], weight]), count + 1, lam, mu, n_ff=1, penlam_ff=2.0)
    assert with_ff[0, 0, 0] == 0.5 and np.all(with_ff[:, 0, 1:] == 0)  # 1 / penlam_ff, no coupling to recurrent
    np.testing.assert_allclose(with_ff[:, 1:, 1:], P)


def test_out_lists_of_a_foreign_file_are_sorted_by_target_and_sorted_ones_kept_as_they_are():
    from spikeforge.rls.connectivity import OutLayout, sorted_by_target

    ptr = np.array([0, 3, 3, 6])  # neuron 1 has no targets; neuron 2 targets 0 twice
    layout = OutLayout(ptr, np.array([4, 1, 2, 0, 3, 0], dtype=np.int32), np.array([1.0, 2, 3, 4, 5, 6]))
    fixed = sorted_by_target(layout)
    np.testing.assert_array_equal(fixed.ptr, ptr)
    np.testing.assert_array_equal(fixed.post, [1, 2, 4, 0, 0, 3])
    np.testing.assert_array_equal(fixed.weight, [2.0, 3, 1, 4, 6, 5])  # the two synapses onto 0 keep their order
    assert sorted_by_target(fixed) is fixed
    # a row ending above where the next begins is sorted already
    assert sorted_by_target(OutLayout(np.array([0, 2, 4]), np.array([3, 5, 0, 1]), np.zeros(4))).post.tolist() == \
        [3, 5, 0, 1]
