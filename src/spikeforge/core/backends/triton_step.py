"""Fused Triton kernels for a network step on CUDA: the LIF neuron update and spike propagation.

The torch code of a step (:func:`torch_kernels.run_steps`) is a few dozen small elementwise
kernels; on a GPU with a few thousand neurons each is mostly launch latency, even inside a
CUDA graph.  Two kernels replace them:

* :func:`lif_neurons`: one pass over the neurons does what the torch code does for LIF cells
  (synaptic currents from the synaptic charge, :func:`spikeforge.core.cells.synapse.current_and_carry`
  inlined, filtered spike trains, noise, stimulus, and the LIF step of
  :func:`spikeforge.core.cells.lif.step_torch` inlined: refractoriness, membrane update,
  threshold, reset; spike count), in the same order of operations; this is the only other
  copy of the LIF step, and the tests compare it with the torch one;
* :func:`push_spikes`: one program per block of presynaptic neurons; one that fired adds its out-weights
  to its targets' synaptic charge with atomic adds (static weights into the one static charge, or
  split by sign into the excitatory and inhibitory charge when their time constants differ; plastic
  weights into the plastic charge).  The work is
  proportional to the spikes, not to the synapses, and the order of the atomic additions
  on a GPU is not fixed, so GPU runs agree with the CPU to rounding, not bit for bit.

The kernels are compiled without FMA contraction (``enable_fp_fusion=False``), so the neuron
update rounds exactly as the torch operations it replaces.  Nothing here waits for the host:
the time is read from the device clock.  The tests run
both kernels on the CPU with ``TRITON_INTERPRET=1`` and compare them with the torch code.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from spikeforge.core.backends import layout

# the noise modes of layout, as constants the kernels can read
NOISE_NONE, NOISE_VOLTAGE, NOISE_CURRENT = (tl.constexpr(mode) for mode in (layout.NOISE_NONE, layout.NOISE_VOLTAGE,
                                                                           layout.NOISE_CURRENT))

BLOCK_NEURONS = 256  # neurons per program of the neuron update
BLOCK_SYNAPSES = 128  # out-synapses handled per iteration of a presynaptic neuron
PRESYNAPTIC_PER_PROGRAM = 64  # presynaptic neurons checked by one program of the spike push



@triton.jit
def _lif_neurons(V, LAST, COUNT, SPIKED, CHARGE_E, CHARGE_I, CHARGE_P, UBAL, UPLAS, R, XBAL, THRESH, DT_TAU,
                 DECAY_PLAS, KICK_PLAS, NOISE_SCALE, NOISE, STIM, CLOCK, SCALARS, n, refrac,
                 PLASTIC: tl.constexpr, LEARNING: tl.constexpr, NOISE_MODE: tl.constexpr, WITH_STIM: tl.constexpr,
                 ONE_CHARGE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    now = tl.load(CLOCK)
    decay_bale, kick_bale = tl.load(SCALARS + 0), tl.load(SCALARS + 1)
    decay_bali, kick_bali = tl.load(SCALARS + 2), tl.load(SCALARS + 3)
    vre = tl.load(SCALARS + 4)
    charge_e = tl.load(CHARGE_E + offs, mask=mask, other=0.0)
    tl.store(CHARGE_E + offs, charge_e * decay_bale, mask=mask)
    u_bal = charge_e * kick_bale
    if not ONE_CHARGE:
        charge_i = tl.load(CHARGE_I + offs, mask=mask, other=0.0)
        tl.store(CHARGE_I + offs, charge_i * decay_bali, mask=mask)
        u_bal = u_bal + charge_i * kick_bali
    if NOISE_MODE != NOISE_NONE:
        noise = tl.load(NOISE_SCALE + offs, mask=mask, other=0.0) * tl.load(NOISE + offs, mask=mask, other=0.0)
    if NOISE_MODE == NOISE_CURRENT:
        u_bal = u_bal + noise
    tl.store(UBAL + offs, u_bal, mask=mask)
    u = u_bal
    decay_plas = tl.load(DECAY_PLAS + offs, mask=mask, other=0.0)
    kick_plas = tl.load(KICK_PLAS + offs, mask=mask, other=0.0)
    if PLASTIC:
        charge_p = tl.load(CHARGE_P + offs, mask=mask, other=0.0)
        tl.store(CHARGE_P + offs, charge_p * decay_plas, mask=mask)
        u_plas = charge_p * kick_plas
        tl.store(UPLAS + offs, u_plas, mask=mask)
        u = u + u_plas
    spiked_before = tl.load(SPIKED + offs, mask=mask, other=0)
    if LEARNING:
        r = tl.load(R + offs, mask=mask, other=0.0) * decay_plas + spiked_before.to(u.dtype) * kick_plas
        tl.store(R + offs, r, mask=mask)
    drive = tl.load(XBAL + offs, mask=mask, other=0.0) + u
    if WITH_STIM:
        drive = drive + tl.load(STIM + offs, mask=mask, other=0.0)
    v = tl.load(V + offs, mask=mask, other=0.0)
    if NOISE_MODE == NOISE_VOLTAGE:
        v = v + noise
    last = tl.load(LAST + offs, mask=mask, other=0)
    active = now > last + refrac
    stepped = v + tl.load(DT_TAU + offs, mask=mask, other=0.0) * (drive - v)
    v = tl.where(active, stepped, v)
    fired = active & (v > tl.load(THRESH + offs, mask=mask, other=0.0))
    tl.store(V + offs, tl.where(fired, vre, v), mask=mask)
    tl.store(SPIKED + offs, fired.to(tl.uint8), mask=mask)
    tl.store(LAST + offs, tl.where(fired, now, last), mask=mask)
    count = tl.load(COUNT + offs, mask=mask, other=0)
    tl.store(COUNT + offs, count + fired.to(count.dtype), mask=mask)


@triton.jit
def _add_out_weights(PTR, POST, W, pre, OUT_POSITIVE, OUT_OTHER, SPLIT_SIGN: tl.constexpr, BLOCK: tl.constexpr):
    """Atomically add the out-weights of neuron ``pre`` to their targets in OUT_POSITIVE (weights
    > 0, or all of them unless SPLIT_SIGN) and OUT_OTHER (weights <= 0 when SPLIT_SIGN)."""
    offs = tl.arange(0, BLOCK)
    start, end = tl.load(PTR + pre), tl.load(PTR + pre + 1)
    for first in range(start, end, BLOCK):
        synapse = first + offs
        valid = synapse < end
        post = tl.load(POST + synapse, mask=valid, other=0)
        weight = tl.load(W + synapse, mask=valid, other=0.0)
        if SPLIT_SIGN:
            tl.atomic_add(OUT_POSITIVE + post, weight, mask=valid & (weight > 0), sem="relaxed")
            tl.atomic_add(OUT_OTHER + post, weight, mask=valid & (weight <= 0), sem="relaxed")
        else:
            tl.atomic_add(OUT_POSITIVE + post, weight, mask=valid, sem="relaxed")


@triton.jit
def _push_spikes(SPIKED, S_PTR, S_POST, S_W, P_PTR, P_POST, P_W, OUT_E, OUT_I, OUT_P, first_pre, n_pre,
                 STATIC: tl.constexpr, PLASTIC: tl.constexpr, SPLIT_SIGN: tl.constexpr, NEURONS: tl.constexpr,
                 BLOCK: tl.constexpr):
    # one program per NEURONS presynaptic neurons: at a few Hz and dt = 0.1 ms most blocks have
    # no spike and end after one vector load; the others go through their neurons in order
    first_neuron = tl.program_id(0) * NEURONS
    neurons = first_neuron + tl.arange(0, NEURONS)
    flags = tl.load(SPIKED + first_pre + neurons, mask=neurons < n_pre, other=0)
    if tl.max(flags.to(tl.int32), axis=0) > 0:
        for j in range(NEURONS):
            pre = first_pre + first_neuron + j
            if first_neuron + j < n_pre:
                if tl.load(SPIKED + pre) != 0:
                    if STATIC:
                        _add_out_weights(S_PTR, S_POST, S_W, pre, OUT_E, OUT_I, SPLIT_SIGN, BLOCK)
                    if PLASTIC:
                        _add_out_weights(P_PTR, P_POST, P_W, pre, OUT_P, OUT_P, False, BLOCK)


def step_scalars(c, dtype: torch.dtype, device) -> torch.Tensor:
    """The scalar constants of the neuron update as a device tensor (float arguments of a
    Triton kernel would be float32): decay_bale, kick_bale, decay_bali, kick_bali, vre.
    Built with fills, not a host copy, so it may be made inside a CUDA graph capture."""
    syn = c.synapses
    return torch.stack([torch.full((), value, dtype=dtype, device=device)
                        for value in (syn.decay_e, syn.kick_e, syn.decay_i, syn.kick_i, c.lif.vre)])


def lif_neurons(state, c, scalars: torch.Tensor, clock: torch.Tensor, noise_row, stim_row,
                plastic: bool, learning: bool) -> None:
    """One step of every LIF neuron at time ``clock`` (see the module docstring); ``noise_row``
    and ``stim_row`` (N,) or None."""
    n = state.v.shape[0]
    noise_mode = (layout.NOISE_NONE if noise_row is None
                  else layout.NOISE_VOLTAGE if c.drive.noise_on_voltage else layout.NOISE_CURRENT)
    unused = state.v  # pointer for the inputs a variant does not read
    _lif_neurons[(triton.cdiv(n, BLOCK_NEURONS),)](
        state.v, state.last_spike, state.spike_count, state.spiked, state.charge_e, state.charge_i, state.charge_p,
        state.u_bal, state.u_plas, state.r, c.drive.x_bal,
        c.lif.thresh, c.lif.dt_over_tau, c.synapses.decay_plastic, c.synapses.kick_plastic, c.drive.noise_scale,
        unused if noise_row is None else noise_row, unused if stim_row is None else stim_row, clock, scalars, n,
        c.lif.refrac_steps,
        PLASTIC=plastic, LEARNING=learning, NOISE_MODE=noise_mode, WITH_STIM=stim_row is not None,
        ONE_CHARGE=layout.one_static_charge(c.synapses), BLOCK=BLOCK_NEURONS, enable_fp_fusion=False)


def push_spikes(state, net, plastic: bool, one_charge: bool, first_pre: int = 0, n_pre: int | None = None) -> None:
    """Add the out-weights of presynaptic neurons ``first_pre .. first_pre + n_pre - 1`` that
    spiked (``state.spiked``) to their targets' synaptic charge (static ones all to ``charge_e`` with
    ``one_charge``, :func:`layout.one_static_charge`); static synapses
    only for recurrent neurons (``first_pre = 0``), plastic ones when ``plastic``."""
    n_pre = state.v.shape[0] if n_pre is None else n_pre
    static = first_pre == 0
    if n_pre == 0 or not (static or plastic):
        return
    _push_spikes[(triton.cdiv(n_pre, PRESYNAPTIC_PER_PROGRAM),)](
        state.spiked, net.static_ptr, net.static_post, net.static_weight, net.plastic_ptr, net.plastic_post,
        net.plastic_weight, state.charge_e, state.charge_i, state.charge_p, first_pre, n_pre,
        STATIC=static, PLASTIC=plastic, SPLIT_SIGN=not one_charge, NEURONS=PRESYNAPTIC_PER_PROGRAM, BLOCK=BLOCK_SYNAPSES, num_warps=1,
        enable_fp_fusion=False)


def smoke_test(device: torch.device) -> None:
    """Compile and launch both kernels once, in float32 and float64, on a two-neuron network with
    one synapse each way; raises whatever Triton raises if they cannot run on ``device``."""
    from spikeforge.core.backends.layout import LIF, Connectivity, Drive, NetworkParameters, State, Synapses
    from spikeforge.core.cells import lif

    n = 2
    for dtype in (torch.float32, torch.float64):
        def zeros(*shape, kind=dtype):
            return torch.zeros(shape, dtype=kind, device=device)

        ones = torch.ones(n, dtype=dtype, device=device)
        state = State(v=2 * ones, last_spike=zeros(n, kind=torch.int64), spike_count=zeros(n, kind=torch.int64),
                      spiked=zeros(n, kind=torch.uint8), charge_e=zeros(n), charge_i=zeros(n), charge_p=zeros(n),
                      u_bal=zeros(n), u_plas=zeros(n), r=zeros(n),
                      thresh_s=zeros(n), thresh_v=zeros(n), asc=zeros(n, 0))
        ptr = torch.arange(n + 1, device=device)
        post = torch.arange(n - 1, -1, -1, device=device, dtype=torch.int32)
        net = Connectivity(ptr, post, ones, ptr, post, ones)
        constants = NetworkParameters(
            cell_kind=LIF, lif=lif.Parameters(dt_over_tau=0 * ones, thresh=ones, vre=0.0, refrac_steps=0),
            glif=None, synapses=Synapses(1.0, 1.0, 1.0, 1.0, ones, ones),
            drive=Drive(x_bal=ones, noise_scale=ones, noise_on_voltage=False), timeline=None)
        clock = torch.ones((), dtype=torch.int64, device=device)
        lif_neurons(state, constants, step_scalars(constants, dtype, device), clock, None, None, True, True)
        for one_charge in (True, False):  # both variants of the push (weights > 0: both add to charge_e)
            push_spikes(state, net, True, one_charge)
        if int(state.spike_count.sum()) != n or float(state.charge_e.sum()) != 2 * n:
            raise RuntimeError("the kernels ran but gave wrong results on a two-neuron network")
