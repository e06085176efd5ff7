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
import scipy.sparse

from spikeforge.core import plugins
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


def sorted_by_target(layout: OutLayout) -> OutLayout:
    """``layout`` with each presynaptic neuron's targets in ascending order, as the step kernels need them
    (a thread finds the stretch of an out-list onto its own neurons by searching it).

    The layouts spikeforge builds are sorted already and come back as they are; another tool's init.h5
    is sorted here, and synapses onto the same target keep their order (the sort is stable)."""
    ptr, post = layout.ptr, layout.post
    falls = np.flatnonzero(post[1:] < post[:-1]) + 1  # where the target index goes down
    if np.isin(falls, ptr).all():  # only where a new out-list starts
        return layout
    pre = np.repeat(np.arange(ptr.size - 1), np.diff(ptr))
    order = np.lexsort((post, pre))
    return OutLayout(ptr, post[order], layout.weight[order])


def static_weights(p: Params, rng: np.random.Generator) -> OutLayout:
    """Fixed out-degree ``2k`` random static connectivity without autapses (the default plugin)."""
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
    return OutLayout(ptr, post.ravel(), weight.ravel())


def _choose_excluding(rng: np.random.Generator, candidates: np.ndarray, size: int, exclude: int) -> np.ndarray:
    """``size`` distinct entries of ``candidates`` other than ``exclude``."""
    if size == 0:
        return np.empty(0, dtype=candidates.dtype)
    pool = candidates[candidates != exclude]
    return pool[rng.choice(pool.size, size=size, replace=False)]


def plastic_weights(p: Params, init_spike_count: np.ndarray, rng: np.random.Generator) -> PlasticInputs:
    """Plastic inputs drawn from the most active neurons of the init run (the default plugin)."""
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
    count = np.full(n, index.shape[1], dtype=np.int32)
    return PlasticInputs(index, count, weight)


def with_feedforward(inputs: PlasticInputs, ff_weight: np.ndarray) -> PlasticInputs:
    """Put the ``lx`` feed-forward neurons (presynaptic n_cells .. n_cells + lx - 1, weights
    ``ff_weight`` (n_cells, lx)) before every neuron's recurrent plastic inputs."""
    n, lx = ff_weight.shape
    if lx == 0:
        return inputs
    index = np.hstack([np.broadcast_to(n + np.arange(lx, dtype=np.int32), (n, lx)), inputs.index])
    return PlasticInputs(index, inputs.count + lx, np.hstack([ff_weight, inputs.weight]))


def static_from_plugin(value, spec: str, n_cells: int) -> OutLayout:
    """A static-weights plugin's result as an OutLayout.

    Accepted: an :class:`OutLayout`; a tuple ``(pre, post, weight)`` of equal-length arrays;
    or a scipy.sparse matrix ``W[post, pre]`` (n_cells x n_cells).
    """
    if isinstance(value, OutLayout):
        pre = np.repeat(np.arange(n_cells), np.diff(plugins.check_array(value.ptr, spec, "ptr", (n_cells + 1,), "iu")))
        post, weight = value.post, value.weight
    elif scipy.sparse.issparse(value):
        if value.shape != (n_cells, n_cells):
            raise plugins.PluginError(f"plugin {spec!r} returned a sparse matrix of shape {value.shape}; expected "
                                      f"({n_cells}, {n_cells}) as W[post, pre]")
        coo = value.tocoo()
        pre, post, weight = coo.col, coo.row, coo.data
    elif isinstance(value, tuple) and len(value) == 3:
        pre, post, weight = value
    else:
        raise plugins.PluginError(f"plugin {spec!r} returned {type(value).__name__}; expected (pre, post, weight) "
                                  "arrays, a scipy.sparse matrix W[post, pre] or an OutLayout")
    pre = plugins.check_array(pre, spec, "pre", (None,), "iu").astype(np.int64)
    post = plugins.check_array(post, spec, "post", (pre.size,), "iu").astype(np.int64)
    weight = plugins.check_array(weight, spec, "weight", (pre.size,)).astype(np.float64)
    for name, index in (("pre", pre), ("post", post)):
        if index.size and (index.min() < 0 or index.max() >= n_cells):
            raise plugins.PluginError(f"plugin {spec!r} returned {name} indices outside 0 .. {n_cells - 1}")
    order = np.lexsort((post, pre))
    ptr = np.zeros(n_cells + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre, minlength=n_cells), out=ptr[1:])
    return OutLayout(ptr, post[order].astype(np.int32), weight[order])


def plastic_from_plugin(value, spec: str, n_cells: int) -> PlasticInputs:
    """A plastic-weights plugin's result as PlasticInputs (recurrent inputs only).

    Accepted: :class:`PlasticInputs`; or ``(index, weight)`` where both are lists of n_cells
    1-D arrays (neuron i's presynaptic neurons and initial weights; lengths may differ) or
    (n_cells, L) arrays.
    """
    if isinstance(value, PlasticInputs):
        index = [row[:c] for row, c in zip(value.index, value.count)]
        weight = [row[:c] for row, c in zip(value.weight, value.count)]
    elif isinstance(value, tuple) and len(value) == 2:
        index, weight = value
    else:
        raise plugins.PluginError(f"plugin {spec!r} returned {type(value).__name__}; expected (index, weight) or "
                                  "PlasticInputs")
    if len(index) != n_cells or len(weight) != n_cells:
        raise plugins.PluginError(f"plugin {spec!r} returned inputs for {len(index)} neurons and weights for "
                                  f"{len(weight)}; expected {n_cells} of each")
    rows = [plugins.check_array(row, spec, f"index[{i}]", (None,), "iu") for i, row in enumerate(index)]
    rows_w = [plugins.check_array(w, spec, f"weight[{i}]", (rows[i].size,)) for i, w in enumerate(weight)]
    count = np.array([row.size for row in rows], dtype=np.int32)
    if count.max(initial=0) == 0:
        raise plugins.PluginError(f"plugin {spec!r} gave no neuron any plastic input")
    lmax = int(count.max())
    padded_index = np.zeros((n_cells, lmax), dtype=np.int32)
    padded_weight = np.zeros((n_cells, lmax))
    for i, (row, w) in enumerate(zip(rows, rows_w)):
        if row.size and (row.min() < 0 or row.max() >= n_cells):
            raise plugins.PluginError(f"plugin {spec!r}: index[{i}] has presynaptic neurons outside 0 .. {n_cells - 1}")
        padded_index[i, : row.size] = row
        padded_weight[i, : row.size] = w
    return PlasticInputs(padded_index, count, padded_weight)


def out_layout(inputs: PlasticInputs, n_pre: int) -> tuple[OutLayout, np.ndarray]:
    """Presynaptic layout of plastic synapses and the map from (post, slot) to its out position.

    ``n_pre`` is the number of presynaptic neurons (n_cells + lx).

    Returns:
        (layout, in_to_out) where ``in_to_out[i, m]`` indexes ``layout.post``/``layout.weight``
        for input ``m`` of neuron ``i``.  Padding slots repeat the row's first position (0 for a
        row without inputs): the torch backend's write-back touches them with no effect, and
        keeping them in the row spreads those touches instead of piling them on one synapse.
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
    if lmax:
        in_to_out[:] = np.where(valid, in_to_out, in_to_out[:, :1])
    layout = OutLayout(ptr, post[order].astype(np.int32), inputs.weight[valid][order])
    return layout, in_to_out


def out_to_in(in_to_out: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The inverse of ``in_to_out`` for a whole network: where each out-layout synapse is in the in-layout.

    Returns ``sources``: ``weights_out[s] == weights_in.flat[sources[s]]`` for every synapse ``s`` of the
    out-layout (each is one input slot of ``in_to_out``'s rows): the step kernel can read the plastic weights where
    the RLS update writes them (:attr:`spikeforge.core.backends.layout.Connectivity.plastic_source`), or the copy to
    the out-layout can write it front to back (:func:`spikeforge.core.backends.numba_rls.gather_back`; through
    ``in_to_out``, scattered, it took three times longer)."""
    valid = np.arange(in_to_out.shape[1])[None, :] < count[:, None]
    slots = np.flatnonzero(valid.ravel())
    sources = np.full(slots.size, -1, dtype=np.int32 if in_to_out.size < 2**31 else np.int64)  # int32: half the bytes
    sources[in_to_out.ravel()[slots]] = slots
    if sources.size and sources.min() < 0:
        raise ValueError("in_to_out does not map the input slots one to one onto a whole out-layout")
    return sources


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
