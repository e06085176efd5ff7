"""The torch backend: the RLS network kernels on ``cpu`` or ``cuda`` tensors.

The same algorithm as the numba kernels (:mod:`numba_network`, :mod:`numba_rls`), written
with whole-network tensor operations; every floating-point operation is done in the same
order, so on the CPU in float64 the two backends give the same spikes.  Arrays are the
NamedTuples of :mod:`spikeforge.core.backends.layout` holding tensors (see :func:`put`).

How they run is a :class:`~spikeforge.core.backends.KernelOptions` passed with every call.
Spike propagation has three strategies (``options.propagation``):

* ``sparse`` (default on the CPU): gather the out-synapses of the neurons that spiked, in
  neuron order, and ``index_add_`` their weights;
* ``dense``: ``index_add_`` every synapse's weight times its presynaptic neuron's spike, a
  fixed-size operation per step that needs no host synchronisation;
* ``push`` (default on CUDA with Triton): :func:`triton_step.push_spikes`, one program per
  block of presynaptic neurons, work in proportion to the spikes, no host synchronisation.

On CUDA with Triton the LIF neuron update is one fused kernel too
(:func:`triton_step.lif_neurons`, ``options.fused_neurons``).  The tests compare every strategy on
the CPU (the Triton kernels in Triton's interpreter).

Nothing in a ``TRAIN`` or ``TRAIN_RECORD`` step after ``stim_off`` with dense or push
propagation, nor in an RLS update with P, waits for the device: no ``.item()``, no
boolean-mask indexing, no output whose size depends on the data.  Time is read from a
device ``clock`` when one is given, so :mod:`torch_graphs` can capture a learning interval
once as a CUDA graph and replay it for every later interval.

Reductions have two orders (``options.summation``): ``ordered`` adds term after term as the numba
kernels do (bit-identical on the CPU); ``batched`` uses one batched reduction per sum
(default on CUDA, where a Python loop over inputs would launch hundreds of kernels).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch

from spikeforge.core.backends import KernelOptions
from spikeforge.core.backends.layout import (BOTH, DELIVER, GLIF, INIT, LIF, TEST, TRAIN, TRAIN_RECORD, UPDATE,
                                             one_static_charge)
from spikeforge.core.cells import glif, lif, synapse

def usable_triton_step(device: torch.device):
    """The :mod:`triton_step` module if its kernels run on ``device`` (a smoke test; a failure
    warns and the torch code takes over), else None."""
    try:
        from spikeforge.core.backends import triton_step

        triton_step.smoke_test(device)
    except ImportError:
        return None
    except Exception as error:  # noqa: BLE001 - a Triton failure must not stop a run: fall back
        warnings.warn(f"the fused Triton step kernels cannot run on {device} ({error}); using torch "
                      "operations instead", RuntimeWarning, stacklevel=3)
        return None
    return triton_step


def put(value: Any, device: str | torch.device) -> Any:
    """numpy arrays (also inside NamedTuples) as tensors on ``device``; other values unchanged."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value)).to(device)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(put(item, device) for item in value))
    return value


def get(value: Any) -> Any:
    """Tensors (also inside NamedTuples) back to numpy arrays of their own (never views of a
    CPU tensor, which a later trial may overwrite)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True).numpy()
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(get(item) for item in value))
    return value


class _Presynaptic(NamedTuple):
    """Presynaptic neuron of every synapse (for the dense strategy)."""

    static_pre: torch.Tensor
    plastic_pre: torch.Tensor


def _presynaptic(net) -> _Presynaptic:
    """The presynaptic neuron of every static and plastic synapse (for dense propagation); the
    output sizes come from the arrays' shapes, so nothing waits for the device."""
    def pre_of(ptr, n_synapses):
        return torch.repeat_interleave(torch.arange(ptr.numel() - 1, device=ptr.device), ptr.diff(),
                                       output_size=n_synapses)
    return _Presynaptic(pre_of(net.static_ptr, net.static_post.numel()),
                        pre_of(net.plastic_ptr, net.plastic_post.numel()))


def _synapses_of(ptr: torch.Tensor, neurons: torch.Tensor) -> torch.Tensor:
    """Indices of the out-synapses of ``neurons`` (ascending), neuron after neuron."""
    starts, ends = ptr[neurons], ptr[neurons + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=ptr.device)
    offsets = torch.repeat_interleave(starts - torch.cumsum(lengths, 0) + lengths, lengths)
    return offsets + torch.arange(total, device=ptr.device)


def _propagate(charge_e, charge_i, charge_p, net, fired_mask, fired_index, plastic: bool, pre: _Presynaptic | None,
               one_charge: bool, first_pre: int = 0) -> None:
    """Add the out-weights of the neurons that fired to their targets' synaptic charge, which the next
    step reads (dense when ``pre`` is given, else sparse over ``fired_index``); with ``one_charge``
    (:func:`layout.one_static_charge`) every static weight goes to ``charge_e``, in synapse order."""
    if pre is not None:
        if first_pre == 0:  # recurrent neurons: static and plastic synapses
            spikes = fired_mask.to(net.static_weight.dtype)[pre.static_pre]
            charge = net.static_weight * spikes
            if one_charge:
                charge_e.index_add_(0, net.static_post, charge)
            else:
                positive = net.static_weight > 0
                charge_e.index_add_(0, net.static_post, torch.where(positive, charge, torch.zeros_like(charge)))
                charge_i.index_add_(0, net.static_post, torch.where(positive, torch.zeros_like(charge), charge))
        if plastic:
            full_mask = torch.zeros(net.plastic_ptr.numel() - 1, dtype=net.plastic_weight.dtype,
                                    device=net.plastic_weight.device)
            full_mask[first_pre:first_pre + fired_mask.numel()] = fired_mask.to(net.plastic_weight.dtype)
            charge_p.index_add_(0, net.plastic_post, net.plastic_weight * full_mask[pre.plastic_pre])
        return
    neurons = fired_index + first_pre
    if first_pre == 0:
        synapses = _synapses_of(net.static_ptr, neurons)
        post, weight = net.static_post[synapses], net.static_weight[synapses]
        if one_charge:
            charge_e.index_add_(0, post, weight)
        else:
            positive = weight > 0
            charge_e.index_add_(0, post[positive], weight[positive])
            charge_i.index_add_(0, post[~positive], weight[~positive])
    if plastic:
        synapses = _synapses_of(net.plastic_ptr, neurons)
        charge_p.index_add_(0, net.plastic_post[synapses], net.plastic_weight[synapses])


def run_steps(state, net, c, rec, x_stim, noise, ff_spikes, first_step: int, last_step: int, kind: int,
              options: KernelOptions = KernelOptions(), triton=None, clock: torch.Tensor | None = None,
              owned: tuple[int, int] | None = None, phase: int = BOTH) -> None:
    """Advance ``state`` through steps ``first_step .. last_step``; see :func:`numba_network.run_steps`.

    ``options``: the propagation strategy and whether the LIF update is the fused Triton kernel;
    ``triton``: the :mod:`triton_step` module, needed for "push" and the fused update.
    ``clock``: a 0-d int64 tensor on the device holding ``first_step - 1``; each step advances
    it and reads the time from it instead of from ``first_step``, so that the same captured
    work can run any interval of this length (whose first step has the same remainder modulo
    ``steps_per_ms`` as ``first_step``; see :mod:`torch_graphs`).
    ``owned``, ``phase``: the neurons ``(lo, hi)`` this process updates and which phases of each step run,
    as in :func:`numba_network.run_steps` (a sharded network; not with the fused update).
    """
    device = state.v.device
    strategy = options.propagation
    pre = _presynaptic(net) if strategy == "dense" else None  # once per call, not per step
    n = state.v.shape[0]
    plastic = kind != INIT
    learning = kind in (TRAIN, TRAIN_RECORD)
    recording = kind in (TRAIN_RECORD, TEST)
    n_ff = ff_spikes.shape[1]
    spike_slots = _SpikeSlots(rec.spike_steps) if recording else None
    fused = c.cell_kind == LIF and options.fused_neurons
    one_charge = one_static_charge(c.synapses)
    lo, hi = (0, n) if owned is None else owned
    sharded = (lo, hi) != (0, n)
    if sharded and fused:
        raise ValueError("the fused neuron update runs every neuron: a sharded network needs fused_neurons=False")
    own = _Owned(state, c, rec, lo, hi) if sharded else None
    if fused:
        scalars = triton.step_scalars(c, state.v.dtype, device)
        if clock is None:  # the fused kernel reads the time from the device
            clock = torch.full((), first_step - 1, dtype=torch.int64, device=device)
    for ti in range(first_step, last_step + 1):
        now = ti if clock is None else clock.add_(1)
        noise_row = noise[ti - first_step] if noise.shape[0] else None
        t = c.timeline
        stim_row = x_stim[ti - t.stim_on_step - 1] if plastic and t.stim_on_step < ti < t.stim_off_step else None
        if phase != DELIVER:
            fired = _update_phase(state, c, rec, now, ti, noise_row, stim_row, kind, own, fused, triton, scalars
                                  if fused else None, clock, recording or strategy != "push")
        if phase == DELIVER:  # every neuron's spikes of this step, exchanged
            fired = state.spiked[:n].to(torch.bool)
            if own is not None:  # count the other processes' neurons' (the update counted this one's)
                others = fired & own.others
                state.last_spike.copy_(torch.where(others, now, state.last_spike))
                state.spike_count.add_(others.to(state.spike_count.dtype))
        if phase == UPDATE:
            continue
        if recording:
            spike_slots.record(fired, state.spike_count, now)
        if strategy == "push":
            triton.push_spikes(state, net, plastic, one_charge)
        else:
            _propagate(state.charge_e, state.charge_i, state.charge_p, net, fired,
                       fired.nonzero().flatten() if pre is None else None, plastic, pre, one_charge)
        if plastic and n_ff:
            ff_row = ff_spikes[ti - first_step]
            if learning:
                state.r[n:] = synapse.filtered(state.r[n:], state.spiked[n:].to(state.r.dtype), c.synapses.decay_plastic[n:],
                                               c.synapses.kick_plastic[n:])
            state.spiked[n:] = ff_row
            if strategy == "push":
                triton.push_spikes(state, net, True, one_charge, first_pre=n, n_pre=n_ff)
            else:
                ff_fired = ff_row.to(torch.bool)
                _propagate(state.charge_e, state.charge_i, state.charge_p, net, ff_fired,
                           ff_fired.nonzero().flatten() if pre is None else None, True, pre, one_charge, first_pre=n)


class _Owned:
    """Views of the state, parameters and recording restricted to the neurons ``lo .. hi - 1`` a process
    of a sharded network updates (writes through them land in the whole arrays)."""

    def __init__(self, state, c, rec, lo: int, hi: int):
        n = state.v.shape[0]
        n_pre = state.r.shape[0]
        self.lo, self.hi = lo, hi
        self.state = state._make(x[lo:hi] for x in state)
        self.c = _per_neuron(c, lo, hi, (n, n_pre))
        self.rec = rec._replace(roll_sum=rec.roll_sum[:, :, lo:hi], u_sum=rec.u_sum[lo:hi] if rec.u_sum.numel() else
                                rec.u_sum, u_sumsq=rec.u_sumsq[lo:hi] if rec.u_sumsq.numel() else rec.u_sumsq)
        self.others = torch.ones(n, dtype=torch.bool, device=state.v.device)
        self.others[lo:hi] = False


def _per_neuron(value, lo: int, hi: int, sizes: tuple[int, int]):
    """``value`` (a NamedTuple of parameters, nested) with every per-neuron tensor (first axis N or N + lx)
    restricted to ``lo .. hi - 1``."""
    fields = []
    for x in value:
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            x = _per_neuron(x, lo, hi, sizes)
        elif isinstance(x, torch.Tensor) and x.dim() and x.shape[0] in sizes:
            x = x[lo:hi]
        fields.append(x)
    return type(value)(*fields)


def _update_phase(state, c, rec, now, ti: int, noise_row, stim_row, kind: int, own, fused: bool, triton,
                  scalars, clock, need_fired: bool):
    """The first phase of step ``ti``: the neurons (all, or ``own``'s), the filtered trains of the others
    (from the spikes exchanged after the previous step), and the init and rolling sums; returns which
    neurons fired (of all neurons, or of ``own``'s; None when the fused kernel's caller needs none)."""
    plastic, learning = kind != INIT, kind in (TRAIN, TRAIN_RECORD)
    t = c.timeline
    whole_state, whole_synapses, n = state, c.synapses, state.v.shape[0]
    if own is not None:
        state, c, rec = own.state, own.c, own.rec
        noise_row = noise_row[own.lo:own.hi] if noise_row is not None else None
        stim_row = stim_row[own.lo:own.hi] if stim_row is not None else None
    if fused:
        triton.lif_neurons(state, c, scalars, clock, noise_row, stim_row, plastic, learning)
        fired = state.spiked[:n].to(torch.bool) if need_fired else None
    else:
        fired = _neurons(state, c, now, noise_row, stim_row, plastic, learning)
    if own is not None and learning:  # the neurons other processes own: from their exchanged spikes
        syn, r, spiked = whole_synapses, whole_state.r, whole_state.spiked
        for part in (slice(0, own.lo), slice(own.hi, n)):
            r[part] = synapse.filtered(r[part], spiked[part].to(r.dtype), syn.decay_plastic[part], syn.kick_plastic[part])
    if kind == INIT and ti > t.u0_skip_steps:
        rec.u_sum.add_(state.u_bal)
        rec.u_sumsq.add_(state.u_bal * state.u_bal)
    if kind in (TRAIN_RECORD, TEST) and ti % t.steps_per_ms == 0 and ti > t.stim_off_step:
        _add_to_rolling_bins(rec, c, now, state.u_bal + state.u_plas, state.u_plas)
    return fired


def _neurons(state, c, now, noise_row, stim_row, plastic: bool, learning: bool) -> torch.Tensor:
    """One step of every neuron at time ``now`` with torch operations: currents, filtered spike
    trains, the cell model's step (:mod:`spikeforge.core.cells`); returns which neurons fired.
    ``noise_row``, ``stim_row``: (N,) or None."""
    n = state.v.shape[0]
    syn, drive = c.synapses, c.drive
    u_bal, carried_e = synapse.current_and_carry(state.charge_e, syn.decay_e, syn.kick_e)
    state.charge_e.copy_(carried_e)
    if not one_static_charge(syn):
        u_i, carried_i = synapse.current_and_carry(state.charge_i, syn.decay_i, syn.kick_i)
        state.charge_i.copy_(carried_i)
        u_bal = u_bal + u_i
    if noise_row is not None and not drive.noise_on_voltage:
        u_bal = u_bal + drive.noise_scale * noise_row
    state.u_bal.copy_(u_bal)
    u = u_bal
    if plastic:
        u_plas, carried_p = synapse.current_and_carry(state.charge_p, syn.decay_plastic[:n], syn.kick_plastic[:n])
        state.charge_p.copy_(carried_p)
        state.u_plas.copy_(u_plas)
        u = u + u_plas
    if learning:
        state.r[:n] = synapse.filtered(state.r[:n], state.spiked[:n].to(state.r.dtype), syn.decay_plastic[:n],
                                       syn.kick_plastic[:n])
    total_drive = drive.x_bal + u
    if stim_row is not None:
        total_drive = total_drive + stim_row
    v = state.v
    if noise_row is not None and drive.noise_on_voltage:
        v = v + drive.noise_scale * noise_row
    active = lif.active_since(now, state.last_spike, c.lif.refrac_steps)
    if c.cell_kind == GLIF:
        v, fired = glif.step_torch(v, total_drive, active, c.glif, glif.State(state.thresh_s, state.thresh_v,
                                                                                     state.asc))
    else:
        v, fired = lif.step_torch(v, total_drive, active, c.lif)
    state.v.copy_(v)
    state.spiked[:n] = fired.to(state.spiked.dtype)
    state.last_spike.copy_(torch.where(fired, now, state.last_spike))
    state.spike_count.add_(fired.to(state.spike_count.dtype))
    return fired


def _add_to_rolling_bins(rec, c, now, total, plastic) -> None:
    """Add this step's sample of u_total and u_plastic to every rolling bin whose boxcar
    covers step ``now`` (an int or a 0-d tensor): bins ``first .. first + wid_bins`` (1-based).

    Bins outside ``1 .. n_bins`` are clamped to the edge and add 0 there, so the same
    operations serve every step without a host-side test.
    """
    n_bins, t = rec.roll_count.shape[0], c.timeline
    first = (now - t.stim_off_step - t.wid_steps) // t.learn_step  # 0-based index of the first bin
    bins = first + torch.arange(t.wid_bins + 1, device=total.device)
    inside = (bins >= 0) & (bins < n_bins)
    index = bins.clamp(0, n_bins - 1)
    rec.roll_count.index_add_(0, index, inside.to(rec.roll_count.dtype))
    for which, sample in enumerate((total, plastic)):
        rec.roll_sum[which].index_add_(0, index, torch.where(inside[:, None], sample[None, :].to(rec.roll_sum.dtype),
                                                              torch.zeros((), dtype=rec.roll_sum.dtype,
                                                                          device=total.device)))


class _SpikeSlots:
    """Writes the step of each neuron's first ``max_times`` spikes into ``spike_steps`` (N, max_times).

    Every neuron writes one entry of its own row each step: the neurons that fired their
    step at the slot of this spike, the others the value their slot already holds.  So there
    are no duplicate writes and no data-dependent sizes (no host synchronisation).
    """

    def __init__(self, spike_steps: torch.Tensor):
        self.flat = spike_steps.view(-1)
        self.max_times = spike_steps.shape[1]
        self.row_start = torch.arange(spike_steps.shape[0], device=spike_steps.device) * self.max_times

    def record(self, fired: torch.Tensor, spike_count: torch.Tensor, now) -> None:
        """Record step ``now`` for ``fired`` neurons; ``spike_count`` already counts this spike."""
        if self.max_times == 0:
            return
        slot = self.row_start + (spike_count - 1).clamp(0, self.max_times - 1)
        write = fired & (spike_count <= self.max_times)
        self.flat.scatter_(0, slot, torch.where(write, now, self.flat[slot]))


def _row_sum(terms: torch.Tensor, ordered: bool, mask: torch.Tensor | None = None,
             start: torch.Tensor | None = None) -> torch.Tensor:
    """``start`` (default 0) plus the sum over the last axis of (N, L) ``terms`` (entries where
    ``mask`` is False count 0): term after term like the numba kernels when ``ordered``, else
    in one batched reduction."""
    if mask is not None:
        terms = torch.where(mask, terms, torch.zeros((), dtype=terms.dtype, device=terms.device))
    total = torch.zeros(terms.shape[0], dtype=terms.dtype, device=terms.device) if start is None else start
    if not ordered:
        return total + terms.sum(dim=1)
    for m in range(terms.shape[1]):
        total = total + terms[:, m]
    return total


def _write_out(weights_out, in_to_out, new, count_mask) -> None:
    """``weights_out[in_to_out[valid]] = new[valid]`` without boolean indexing (no host
    synchronisation): each out-synapse is the target of exactly one valid entry, so
    multiplying every target by 0 (valid) or 1 (padding) and then adding the new weight (valid)
    or 0 (padding) leaves each out-synapse at exactly its new weight, in any order."""
    if weights_out.numel() == 0:
        return
    index = in_to_out.reshape(-1).long()
    keep = torch.where(count_mask, 0.0, 1.0).to(weights_out.dtype).reshape(-1)
    weights_out.scatter_reduce_(0, index, keep, reduce="prod")
    weights_out.index_add_(0, index, torch.where(count_mask, new, torch.zeros_like(new)).reshape(-1).to(weights_out.dtype))


def _weights_step(a, k, den, count_mask, weights_in, in_to_out, weights_out, u_bal, target, gain_with_den, apply,
                  ordered):
    """Error and weight step of every neuron (see numba_rls._update_weights)."""
    error = _row_sum(weights_in * a[:, : weights_in.shape[1]], ordered, start=u_bal - target)
    if apply:
        step = error * den if gain_with_den else error
        new = (weights_in - step[:, None] * k[:, : weights_in.shape[1]].to(weights_in.dtype)).to(weights_in.dtype)
        new = torch.where(count_mask, new, weights_in)
        weights_in.copy_(new)
        _write_out(weights_out, in_to_out, new, count_mask)


def _gather_a(r, plastic_index, count_mask, width, dtype):
    a = torch.zeros((plastic_index.shape[0], width), dtype=dtype, device=r.device)
    a[:, : plastic_index.shape[1]] = torch.where(count_mask, r[plastic_index.long()], torch.zeros((), dtype=r.dtype,
                                                                                                  device=r.device)).to(dtype)
    return a


def _den_and_c(a, k, count_mask, p_scale, work_dtype, ordered):
    k.mul_(torch.tensor(1.0 / p_scale, dtype=work_dtype))
    lmax = count_mask.shape[1]
    a_k = _row_sum(a[:, :lmax].double() * k[:, :lmax].double(), ordered, count_mask)
    den = 1.0 / (1.0 + a_k)
    c = (den * p_scale).to(work_dtype)
    return den, c


def rls_dense_torch(P, weights_in, plastic_index, plastic_count, in_to_out, weights_out, r, u_bal, target, p_scale,
                    gain_with_den, symmetric, apply, ordered=True):
    """RLS with (N, Lmax, W) P blocks, batched over neurons (see numba_rls.rls_dense); ``ordered``:
    sums term after term as numba (else batched)."""
    lmax, width = plastic_index.shape[1], P.shape[2]
    count_mask = torch.arange(lmax, device=P.device)[None, :] < plastic_count[:, None]
    a = _gather_a(r, plastic_index, count_mask, width, P.dtype)
    if ordered:
        k = torch.zeros_like(a)
        for q in range(lmax):  # k += a_q P[q, :], row by row as the numba kernel
            k.add_(a[:, q, None] * P[:, q, :])
    else:
        k = torch.bmm(a[:, None, :lmax], P).squeeze(1)
    den, c = _den_and_c(a, k, count_mask, p_scale, P.dtype, ordered)
    if symmetric:
        P.sub_(c[:, None, None] * (k[:, :lmax, None] * k[:, None, :]))
    else:
        P.sub_((c[:, None] * k[:, :lmax])[:, :, None] * k[:, None, :])
    _weights_step(a, k, den, count_mask, weights_in, in_to_out, weights_out, u_bal, target, gain_with_den, apply,
                  ordered)


def packed_rows(lmax: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of every entry of a packed upper triangle, row by row."""
    rows, cols = torch.triu_indices(lmax, lmax, device=device)
    return rows, cols


def rls_packed_torch(P, weights_in, plastic_index, plastic_count, in_to_out, weights_out, r, u_bal, target, p_scale,
                     gain_with_den, apply, ordered=True):
    """RLS with packed upper-triangular P (N, Lmax (Lmax+1)/2) (see numba_rls.rls_packed)."""
    lmax = plastic_index.shape[1]
    count_mask = torch.arange(lmax, device=P.device)[None, :] < plastic_count[:, None]
    a = _gather_a(r, plastic_index, count_mask, lmax, P.dtype)
    rows, cols = packed_rows(lmax, P.device)
    k = packed_product_ordered(P, a) if ordered else packed_product(P, a, rows, cols)
    den, c = _den_and_c(a, k, count_mask, p_scale, P.dtype, ordered)
    P.sub_(c[:, None] * (k[:, rows] * k[:, cols]))
    _weights_step(a, k, den, count_mask, weights_in, in_to_out, weights_out, u_bal, target, gain_with_den, apply,
                  ordered)


def packed_product(P, a, rows, cols):
    """k = P a for packed symmetric P (N, L(L+1)/2) and a (N, L)."""
    lmax = a.shape[1]
    k = torch.zeros_like(a)
    k.index_add_(1, rows, P * a[:, cols])
    # the strict upper triangle again, mirrored; its packed positions from the index arithmetic
    # of the layout (row q starts at q L - q (q - 1) / 2), not from a mask, so nothing waits for the device
    upper_rows, upper_cols = torch.triu_indices(lmax, lmax, offset=1, device=P.device)
    positions = upper_rows * lmax - upper_rows * (upper_rows - 1) // 2 + upper_cols - upper_rows
    k.index_add_(1, upper_cols, P[:, positions] * a[:, upper_rows])
    return k


def packed_product_ordered(P, a):
    """k = P a for packed symmetric P (N, L(L+1)/2) and a (N, L), in the numba kernel's order of additions
    (:func:`spikeforge.core.backends.numba_rls.rls_packed`), so both backends give the same bits: every row q
    adds ``a_q P[q, m]`` to ``k[m]`` (m >= q), row after row; the part of ``k[q]`` right of the diagonal
    (``lower[q]``, the sum of ``P[q, m] a[m]`` for m > q) is summed per SIMD lane (lane m mod LANES, the column
    chunks in order) and the lanes as a tree of halves (:func:`spikeforge.core.backends.simd.gain_rows`), or
    term after term on the rows the kernel updates lane by lane; it is added once every row is done.  Terms
    the kernel masks are zeros here (adding them changes no sum: k starts at +0, so it is never -0)."""
    from spikeforge.core.backends.numba_rls import packed_row_bases
    from spikeforge.core.backends.simd import LANES

    n, lmax = a.shape
    k = torch.zeros_like(a)
    if lmax == 0:
        return k
    row_base, first_tail_row = packed_row_bases(lmax, P.shape[1])  # (host numbers: nothing waits for the device)
    for q in range(lmax):  # row q's diagonal is at row_base[q] + q
        start = int(row_base[q]) + q
        k[:, q:].add_(a[:, q, None] * P[:, start: start + lmax - q])
    zero = torch.zeros((), dtype=P.dtype, device=P.device)
    rows = torch.arange(lmax, device=P.device)[:, None]
    base = rows * lmax - rows * (rows - 1) // 2 - rows  # P[q, m] at base[q] + m
    chunks = -(-lmax // LANES)
    a_wide = torch.zeros((n, LANES * chunks), dtype=a.dtype, device=a.device)
    a_wide[:, :lmax] = a
    lanes = None
    for chunk in range(chunks):  # a chunk at a time: temporaries of (N, L, LANES)
        columns = torch.arange(LANES * chunk, LANES * (chunk + 1), device=P.device)[None, :]
        right = (columns > rows) & (columns < lmax)
        terms = torch.where(right, P[:, torch.where(right, base + columns, 0)] * a_wide[:, None, columns[0]], zero)
        lanes = terms if lanes is None else lanes + terms
    width = LANES
    while width > 1:
        width //= 2
        lanes = lanes[:, :, :width] + lanes[:, :, width: 2 * width]
    lower = lanes[:, :, 0]
    if first_tail_row < lmax:  # these rows' sums run term after term, from the first column right of a diagonal
        tail_rows = rows[first_tail_row:, 0]
        tail = torch.zeros((n, tail_rows.shape[0]), dtype=P.dtype, device=P.device)
        for m in range(first_tail_row + 1, lmax):
            right = m > tail_rows
            tail = tail + torch.where(right, P[:, torch.where(right, base[first_tail_row:, 0] + m, 0)] * a[:, m, None],
                                      zero)
        lower[:, first_tail_row:] = tail
    return k + lower


def block_neurons(P: torch.Tensor, block_bytes: int) -> int:
    """Neurons per block of the RLS update: as many as keep the block's working (float32 or
    float64) copy of P within ``block_bytes``."""
    row_bytes = max(P[0].numel() * max(P.element_size(), 4), 1) if P.shape[0] else 1
    return max(1, block_bytes // row_bytes)


def _packed_update(device, p_scale: float, fused: bool, ordered: bool):
    """The fused Triton kernel on CUDA when ``fused`` (Triton runs there), else the torch code
    (also when ``p_scale`` or its inverse is not exact in float32, the type of Triton's float
    arguments)."""
    exact = all(float(np.float32(value)) == value for value in (p_scale, 1.0 / p_scale))
    if fused and device.type == "cuda" and exact:
        from spikeforge.core.backends.triton_rls import fused_packed_rls

        return fused_packed_rls
    return functools.partial(rls_packed_torch, ordered=ordered)


def rls_update(P, weights_in, plastic_index, plastic_count, in_to_out, weights_out, r, u_bal, target, p_scale,
               gain_with_den, storage, apply, ordered=True, fused=False, block_bytes=KernelOptions.rls_block_bytes):
    """One RLS update of every neuron (see numba_rls.rls_update), block of neurons after block
    (:func:`block_neurons` of ``block_bytes``); float16/int16 P is updated in a float32 copy of each
    block.  ``ordered``: sums in numba's order; ``fused``: the Triton kernel for packed P on CUDA."""
    def run(block, lo, hi):
        args = (block, weights_in[lo:hi], plastic_index[lo:hi], plastic_count[lo:hi], in_to_out[lo:hi],
                weights_out, r, u_bal[lo:hi], target[lo:hi], p_scale, gain_with_den)
        if storage == "packed":
            _packed_update(block.device, p_scale, fused, ordered)(*args, apply)
        else:
            rls_dense_torch(*args, storage == "symmetric", apply, ordered)

    step = block_neurons(P, block_bytes)
    for lo in range(0, P.shape[0], step):
        hi = min(lo + step, P.shape[0])
        if P.dtype in (torch.float32, torch.float64):
            run(P[lo:hi], lo, hi)  # in place, through the view
            continue
        block = P[lo:hi].to(torch.float32)
        run(block, lo, hi)
        if P.dtype == torch.int16:
            block = torch.clamp(torch.round(block), -32768, 32767)
        P[lo:hi] = block.to(P.dtype)


def count_p_faults(P: torch.Tensor, block_bytes: int = KernelOptions.rls_block_bytes) -> tuple[int, int]:
    """(saturated, non-finite) entries of P (see numba_rls.count_p_faults), block by block
    (:func:`block_neurons` of ``block_bytes``)."""
    saturated = nonfinite = 0
    step = block_neurons(P, block_bytes)
    for lo in range(0, P.shape[0], step):
        block = P[lo:lo + step]
        if P.dtype == torch.int16:
            saturated += int(((block <= -32768) | (block >= 32767)).sum())
        else:
            nonfinite += int((~torch.isfinite(block)).sum())
    return saturated, nonfinite


def count_nonfinite(values: torch.Tensor) -> int:
    """NaN and infinite entries of ``values``."""
    return int((~torch.isfinite(values)).sum())


def rls_small(history, n_history, weights_in, plastic_index, plastic_count, in_to_out, weights_out, r, u_bal, target,
              penlambda, penmu, penlam_ff, n_ff, gain_with_den, apply, ordered=True):
    """Memory-light update (see numba_rls.rls_small), batched with torch.linalg.solve."""
    n, lmax = plastic_index.shape
    count_mask = torch.arange(lmax, device=r.device)[None, :] < plastic_count[:, None]
    index = plastic_index.long()
    positions = torch.arange(lmax, device=r.device)
    diagonal = torch.where(positions < n_ff, torch.tensor(penlam_ff, dtype=torch.float64),
                           torch.tensor(penlambda, dtype=torch.float64))
    signs = torch.sign(weights_in)
    recurrent = (positions >= n_ff)[None, :] & count_mask
    same = (signs[:, :, None] == signs[:, None, :]) & (signs[:, :, None] != 0)
    same = same & recurrent[:, :, None] & recurrent[:, None, :]
    A = torch.diag_embed(diagonal.expand(n, lmax).clone()) + penmu * same.to(torch.float64)
    for h in range(n_history):
        g = torch.where(count_mask, history[h][index].to(torch.float64), torch.zeros((), dtype=torch.float64,
                                                                                      device=r.device))
        A = A + g[:, :, None] * g[:, None, :]
    # padding inputs: identity rows keep the system regular and their k at 0
    pad = ~count_mask
    A = A + torch.diag_embed(pad.to(torch.float64))
    a = torch.where(count_mask, r[index].to(torch.float64), torch.zeros((), dtype=torch.float64, device=r.device))
    k = torch.linalg.solve(A, a)
    den = 1.0 / (1.0 + (a * k).sum(dim=1))
    _weights_step(a, k, den, count_mask, weights_in, in_to_out, weights_out, u_bal, target, gain_with_den, apply,
                  ordered)
