"""Static and plastic connectivity of the RLS network, and the initial P matrices.

Neurons ``0 .. ne-1`` are excitatory, ``ne .. n_cells-1`` inhibitory.

* Static synapses (reference tsn.md 4.1): every neuron projects to ``2k`` distinct
  other neurons drawn uniformly (fixed out-degree, no autapses).  The weight depends
  on the pre and post types: ``jee`` (E->E), ``jie`` (E->I), ``jei`` (I->E), ``jii`` (I->I).
* Plastic synapses (tsn.md 4.2): every neuron receives ``lexc`` inputs from the top
  ``frac`` excitatory neurons and ``linh`` from the top ``frac`` inhibitory neurons, ranked
  by their spike counts in the init run; excitatory inputs first.  Unlike the reference,
  a neuron is never its own plastic input (no plastic autapses).  Initial weights are
  ``wpee``/``wpei`` onto E neurons and ``wpie``/``wpii`` onto I neurons.
* Feed-forward inputs (``lx`` > 0) come first: presynaptic indices ``n_cells .. n_cells+lx-1``.
* Initial P (tsn.md 3.6): the inverse of ``penlambda * I + penmu * S`` where
  ``S[j, k] = 1`` when recurrent inputs j and k have initial weights of the same strict
  sign, and of ``penlam_ff * I`` on the feed-forward block.  Computed in closed form
  (Sherman-Morrison per sign block).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikeforge.rls.params import Params


class PlasticInputs(NamedTuple):
    """Plastic inputs in postsynaptic (in) layout, padded to the largest in-degree Lmax."""

    index: np.ndarray  # int32 (N, Lmax) presynaptic neuron; padding 0
    count: np.ndarray  # int32 (N,) number of inputs of each neuron
    weight: np.ndarray  # float (N, Lmax) weights; padding 0


class OutLayout(NamedTuple):
    """A synapse set in presynaptic (out) layout as compressed rows."""

    ptr: np.ndarray  # int64 (N + 1,)
    post: np.ndarray  # int32 (nnz,)
    weight: np.ndarray  # float (nnz,)


def static_weights(p: Params, rng: np.random.Generator, dtype=np.float64) -> OutLayout:
    """Fixed out-degree ``2k`` random static connectivity without autapses."""
    n, out_degree = p.n_cells, 2 * p.k
    post = np.empty((n, out_degree), dtype=np.int32)
    for j in range(n):
        targets = rng.choice(n - 1, size=out_degree, replace=False)
        targets[targets >= j] += 1  # skip j itself
        post[j] = np.sort(targets)
    pre_is_exc = (np.arange(n) < p.ne)[:, None]
    post_is_exc = post < p.ne
    weight = np.where(pre_is_exc, np.where(post_is_exc, p.jee, p.jie), np.where(post_is_exc, p.jei, p.jii))
    ptr = np.arange(n + 1, dtype=np.int64) * out_degree
    return OutLayout(ptr, post.ravel(), weight.astype(dtype).ravel())


def _choose_excluding(rng: np.random.Generator, candidates: np.ndarray, size: int, exclude: int) -> np.ndarray:
    """``size`` distinct entries of ``candidates`` other than ``exclude``."""
    if size == 0:
        return np.empty(0, dtype=candidates.dtype)
    pool = candidates[candidates != exclude]
    return pool[rng.choice(pool.size, size=size, replace=False)]


def plastic_weights(p: Params, init_spike_count: np.ndarray, rng: np.random.Generator,
                    ff_weight: np.ndarray | None = None, dtype=np.float64) -> PlasticInputs:
    """Plastic inputs drawn from the most active neurons of the init run.

    With ``ff_weight`` (n_cells, lx), the first ``lx`` inputs of every neuron are the
    feed-forward neurons ``n_cells .. n_cells + lx - 1`` with those initial weights.
    """
    n, ne = p.n_cells, p.ne
    n_keep_e, n_keep_i = round(p.frac * ne), round(p.frac * p.ni)
    # stable sort: ties keep index order, so the ranking is reproducible
    exc = np.argsort(-init_spike_count[:ne], kind="stable")[:n_keep_e]
    inh = ne + np.argsort(-init_spike_count[ne:], kind="stable")[:n_keep_i]
    n_in = p.lexc + p.linh
    index = np.empty((n, n_in), dtype=np.int32)
    for i in range(n):
        index[i, : p.lexc] = _choose_excluding(rng, exc, p.lexc, i)
        index[i, p.lexc:] = _choose_excluding(rng, inh, p.linh, i)
    post_is_exc = (np.arange(n) < ne)[:, None]
    from_exc = np.arange(n_in) < p.lexc
    weight = np.where(post_is_exc, np.where(from_exc, p.wpee, p.wpei), np.where(from_exc, p.wpie, p.wpii))
    if ff_weight is not None and ff_weight.shape[1] > 0:
        lx = ff_weight.shape[1]
        index = np.hstack([np.broadcast_to(n + np.arange(lx, dtype=np.int32), (n, lx)), index])
        weight = np.hstack([ff_weight, weight])
    count = np.full(n, index.shape[1], dtype=np.int32)
    return PlasticInputs(index, count, weight.astype(dtype))


def out_layout(inputs: PlasticInputs, n_pre: int) -> tuple[OutLayout, np.ndarray]:
    """Presynaptic layout of plastic synapses and the map from (post, slot) to its out position.

    ``n_pre`` is the number of presynaptic neurons (n_cells + lx).

    Returns:
        (layout, in_to_out) where ``in_to_out[i, m]`` indexes ``layout.post``/``layout.weight``
        for input ``m`` of neuron ``i`` (0 for padding slots, which are never used).
    """
    n, lmax = inputs.index.shape
    valid = np.arange(lmax)[None, :] < inputs.count[:, None]
    post_of_slot = np.broadcast_to(np.arange(n, dtype=np.int32)[:, None], (n, lmax))
    pre = inputs.index[valid]
    post = post_of_slot[valid]
    order = np.lexsort((post, pre))  # by presynaptic neuron, then postsynaptic
    ptr = np.zeros(n_pre + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre, minlength=n_pre), out=ptr[1:])
    position = np.empty(pre.size, dtype=np.int64)
    position[order] = np.arange(pre.size)
    in_to_out = np.zeros((n, lmax), dtype=np.int64)
    in_to_out[valid] = position
    layout = OutLayout(ptr, post[order].astype(np.int32), inputs.weight[valid][order])
    return layout, in_to_out


def initial_p(weight: np.ndarray, count: np.ndarray, penlambda: float, penmu: float, n_ff: int = 0,
              penlam_ff: float = 1.0) -> np.ndarray:
    """Per-neuron ``P = (penalty)^-1``, (N, Lmax, Lmax) float64.

    The penalty is ``penlam_ff`` on the diagonal of the first ``n_ff`` (feed-forward) inputs
    and ``penlambda I + penmu S`` on the recurrent ones, where ``S[j, k] = 1`` when initial
    weights j and k have the same strict sign.  Within a sign block of size n the inverse is
    ``(I - penmu / (penlambda + penmu n) 11') / penlambda`` (Sherman-Morrison); padding rows
    and columns are zero.

    Args:
        weight: (N, Lmax) initial plastic weights; count: (N,) inputs per neuron.
    """
    n, lmax = weight.shape
    valid = np.arange(lmax)[None, :] < count[:, None]
    feedforward = np.arange(lmax)[None, :] < n_ff
    P = np.zeros((n, lmax, lmax), dtype=np.float64)
    diag = np.arange(lmax)
    P[:, diag, diag] = np.where(valid, np.where(feedforward, 1.0 / penlam_ff, 1.0 / penlambda), 0.0)
    recurrent = valid & ~feedforward
    for sign in (1.0, -1.0):
        member = (np.sign(weight) == sign) & recurrent
        size = member.sum(axis=1)
        coefficient = penmu / (penlambda * (penlambda + penmu * size))
        P -= coefficient[:, None, None] * (member[:, :, None] & member[:, None, :])
    return P
