"""The batched LIF network of :mod:`spikeforge.rate2spike.lif_network` in torch (CPU or CUDA).

The same update, step for step, on (batch, N) tensors: the cell step is
:func:`spikeforge.core.cells.lif_mv.step_torch` and the synapse
:func:`spikeforge.core.cells.synapse.double_exponential`; the spikes' weights are one matrix
product per step.  The noise comes from a torch generator (so numbers differ from the numba
kernel's streams); without noise both backends give the same spikes.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeforge.core.cells import lif_mv
from spikeforge.core.cells.synapse import double_exponential


def run(w, w_in, w_out, decay, kick, u, trial_scale, v0, per_column, n_t, cell: lif_mv.Parameters, rise_decay,
        dt_s, record, seed, device):
    """Simulate the batch; arguments as the numba kernel's (numpy arrays), plus the noise ``seed``
    and the torch ``device``.  Returns (out (batch, n_t) float32, counts (batch, N), spikes or None)."""
    device = torch.device(device)
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64, device=device)  # noqa: E731
    w_t = as_tensor(w).T.contiguous()  # (pre, post): spikes @ w_t = the weights the spikes carry
    ext = torch.einsum("ni,bic->bcn", as_tensor(w_in), as_tensor(u))  # (batch, n_columns, N)
    scale = as_tensor(trial_scale)[:, None]
    w_out, decay, kick = as_tensor(w_out), as_tensor(decay), as_tensor(kick)
    batch, n = v0.shape
    v = as_tensor(v0).clone()
    last = torch.zeros((batch, n), dtype=torch.int64, device=device)
    ipsc, rise, r, r_rise = (torch.zeros((batch, n), dtype=torch.float64, device=device) for _ in range(4))
    counts = torch.zeros((batch, n), dtype=torch.int64, device=device)
    out = torch.empty((batch, n_t), dtype=torch.float32, device=device)
    spikes = torch.zeros((batch, n_t, n), dtype=torch.bool, device=device) if record else None
    generator = torch.Generator(device=device).manual_seed(int(seed))
    for i in range(1, n_t + 1):
        column = (i + per_column // 2) // per_column
        active = (i - last) > cell.refrac_steps
        drive = ipsc + cell.bias + ext[:, column]
        noise = torch.randn((batch, n), generator=generator, dtype=torch.float64, device=device) * cell.noise_std
        v, fired = lif_mv.step_torch(v, drive, active, noise, cell)
        last = torch.where(fired, i, last)
        if i >= 10:
            counts += fired
        if record:
            spikes[:, i - 1] = fired
        spiking = fired.to(torch.float64)
        ipsc, rise = double_exponential(ipsc, rise, (spiking @ w_t) * scale, decay, rise_decay, dt_s, kick)
        r, r_rise = double_exponential(r, r_rise, spiking, decay, rise_decay, dt_s, kick)
        out[:, i - 1] = ((r @ w_out)[:, None] * scale)[:, 0]
    return (out.cpu().numpy(), counts.cpu().numpy(), None if spikes is None else spikes.cpu().numpy())
