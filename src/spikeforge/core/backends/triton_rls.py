"""A fused Triton kernel for the packed RLS update (one program per neuron).

It does what :func:`torch_kernels.rls_packed_torch` does, in one pass over each neuron's
packed P held in registers row by row: ``k = P a``, ``P -= c k k'`` on the upper triangle,
the error and the weight step, and the copy into the out-layout weights.  On CUDA the torch
backend uses it for ``p_storage = "packed"`` when Triton is installed (``fused_packed_rls``);
elsewhere the plain torch code runs.  The tests run it on the CPU with ``TRITON_INTERPRET=1``
and compare it with the torch code.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _packed_rls(P, W, IDX, COUNT, IN2OUT, WOUT, R, UBAL, TARGET, lmax, n_packed, p_scale, inv_p_scale,
                GAIN_WITH_DEN: tl.constexpr, APPLY: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    count = tl.load(COUNT + i)
    valid = offs < count
    idx = tl.load(IDX + i * lmax + offs, mask=valid, other=0)
    a = tl.load(R + idx, mask=valid, other=0.0).to(P.dtype.element_ty)
    k = tl.zeros([BLOCK], dtype=P.dtype.element_ty)
    base = P + i.to(tl.int64) * n_packed
    start = 0
    for q in range(0, count):  # row q of the upper triangle: P[q, q:] at base + start
        in_row = (offs >= q) & (offs < lmax)
        row = tl.load(base + start + offs - q, mask=in_row, other=0.0)
        a_q = tl.sum(tl.where(offs == q, a, 0.0))
        k += a_q * row
        k += tl.where(offs == q, tl.sum(tl.where(offs > q, row * a, 0.0)), 0.0)
        start += lmax - q
    k = k * inv_p_scale  # as the torch code: a product with 1 / p_scale
    a_k = tl.sum(a.to(tl.float64) * k.to(tl.float64))
    den = 1.0 / (1.0 + a_k)
    c = (den * p_scale).to(P.dtype.element_ty)
    start = 0
    for q in range(0, count):
        in_row = (offs >= q) & (offs < lmax)
        pointers = base + start + offs - q
        row = tl.load(pointers, mask=in_row, other=0.0)
        k_q = tl.sum(tl.where(offs == q, k, 0.0))
        tl.store(pointers, row - c * (k_q * k), mask=in_row)
        start += lmax - q
    w = tl.load(W + i * lmax + offs, mask=valid, other=0.0)
    error = tl.sum(w * a.to(w.dtype)) + tl.load(UBAL + i) - tl.load(TARGET + i)
    if APPLY:
        if GAIN_WITH_DEN:
            step = error * den
        else:
            step = error
        w_new = w - step * k.to(w.dtype)
        tl.store(W + i * lmax + offs, w_new, mask=valid)
        position = tl.load(IN2OUT + i * lmax + offs, mask=valid, other=0)
        tl.store(WOUT + position, w_new, mask=valid)


def fused_packed_rls(P, weights_in, plastic_index, plastic_count, in_to_out, weights_out, r, u_bal, target, p_scale,
                     gain_with_den, apply):
    """The packed RLS update of every neuron in one kernel launch (arguments as rls_packed_torch)."""
    n, lmax = plastic_index.shape
    block = triton.next_power_of_2(max(lmax, 16))
    _packed_rls[(n,)](P, weights_in, plastic_index, plastic_count, in_to_out, weights_out, r, u_bal, target, lmax,
                      P.shape[1], float(p_scale), 1.0 / float(p_scale), GAIN_WITH_DEN=bool(gain_with_den), APPLY=bool(apply), BLOCK=block,
                      enable_fp_fusion=False)
