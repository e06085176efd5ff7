"""The continuous-variable rate RNN of Kim, Li & Sejnowski (2019), in torch (spikernn.md section 2).

Per unit ``i``, in rate-model steps of 5 ms (Euler, noise outside the ``1/tau`` factor)::

    x_t = (1 - 1/tau_i) x_{t-1} + (1/tau_i) (W_eff r_{t-1} + W_in u_{t-1}) + xi_t,   xi ~ N(0, 0.1^2)
    r_t = phi(x_t),    o_t = w_out . r_t + b_out,    t = 1 .. T-1

* ``W_eff = relu(W) D * M_som`` under Dale's principle: ``D`` is the diagonal of presynaptic signs
  (+1 excitatory, -1 inhibitory), ``M_som`` removes every inhibitory input to the SOM units;
  without Dale ``W_eff = W``.
* ``tau_i = sigmoid(taus_gaus_i) (tau_max - tau_min) + tau_min`` [steps] when two decay time
  constants are given (``taus_gaus`` is then trained); one value fixes ``tau`` for all units.
* ``x_0 ~ N(0, 0.01^2)`` fresh for every trial.
* ``phi``: sigmoid (the default, the only one that maps well onto LIF), clipped ReLU (0..20) or
  softplus (clamped at 20).

Rows are postsynaptic, columns presynaptic.  The initial weights follow the original: each
connection exists with probability ``p_rec``, ``W_ij ~ N(0, 1) g / sqrt(N p_rec)``, made
non-negative under Dale; ``W_in ~ N(0, 1)`` (not trained); ``w_out ~ N(0, 1) / 100``; ``b_out = 0``.
Units are inhibitory independently with probability ``p_inh``; the first ``som_n`` inhibitory
units are SOM units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

ACTIVATIONS = ("sigmoid", "clipped_relu", "softplus")
INITIAL_STATE_STD = 0.01  # x_0 ~ N(0, 0.01^2)
NOISE_STD = 0.1  # per-step noise on x


@dataclass(frozen=True)
class RateConfig:
    """Everything that defines a rate network before training (the original's CLI arguments)."""

    n: int  # units
    n_inputs: int
    decay_taus: tuple[float, ...] = (4.0, 20.0)  # synaptic decay [steps of 5 ms]: one value or (min, max)
    p_inh: float = 0.2  # probability that a unit is inhibitory
    p_rec: float = 0.2  # initial connection probability
    gain: float = 1.5  # g of the initial weights
    som_n: int = 0  # SOM (SST) units among the inhibitory ones
    apply_dale: bool = True
    activation: str = "sigmoid"
    noise_std: float = NOISE_STD  # per-step noise on x; the original uses 0.1 in training and evaluation
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.n < 2:
            raise ValueError(f"N = {self.n} must be >= 2 units")
        if self.n_inputs < 1:
            raise ValueError(f"n_inputs = {self.n_inputs} must be >= 1")
        if not 0.0 <= self.p_inh <= 1.0:
            raise ValueError(f"P_inh = {self.p_inh} must be in [0, 1]")
        if not 0.0 < self.p_rec <= 1.0:
            raise ValueError(f"P_rec = {self.p_rec} must be in (0, 1]")
        if not self.gain > 0:
            raise ValueError(f"gain = {self.gain} must be > 0")
        if len(self.decay_taus) not in (1, 2):
            raise ValueError(f"decay_taus = {list(self.decay_taus)} must be one value or (min, max) in steps")
        if not all(np.isfinite(t) and t >= 1 for t in self.decay_taus):
            raise ValueError(f"decay_taus = {list(self.decay_taus)} must be finite and >= 1 step (5 ms) each")
        if len(self.decay_taus) == 2 and self.decay_taus[1] < self.decay_taus[0]:
            raise ValueError(f"decay_taus = {list(self.decay_taus)}: max must be >= min")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not one of {', '.join(ACTIVATIONS)}")
        if not 0 <= self.som_n <= self.n:
            raise ValueError(f"som_n = {self.som_n} must be in [0, N = {self.n}]")
        if not self.noise_std >= 0:
            raise ValueError(f"noise_std = {self.noise_std} must be >= 0")

    @property
    def trains_taus(self) -> bool:
        """Whether the decay time constants are trained: true when ``decay_taus`` is a (min, max) pair."""
        return len(self.decay_taus) == 2

    def as_dict(self) -> dict:
        """The fields as a plain dict, with ``decay_taus`` as a list."""
        values = asdict(self)
        values["decay_taus"] = list(self.decay_taus)
        return values


def activation_function(name: str):
    """phi as a torch function (spikernn.md 2.3)."""
    if name == "sigmoid":
        return torch.sigmoid
    if name == "clipped_relu":
        return lambda x: torch.clamp(x, 0.0, 20.0)
    if name == "softplus":
        return lambda x: torch.clamp(torch.nn.functional.softplus(x), max=20.0)
    raise ValueError(f"activation {name!r} is not one of {', '.join(ACTIVATIONS)}")


def initial_weights(config: RateConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The original's initialisation (spikernn.md 2.4) from one numpy stream: ``inh`` (N,) bool,
    ``w`` (N, N), ``w_in`` (N, n_inputs), ``w_out`` (1, N), ``taus_gaus`` (N, 1), ``som_mask``."""
    n = config.n
    inh = rng.random(n) < config.p_inh if config.apply_dale else np.zeros(n, dtype=bool)
    connected = rng.random((n, n)) < config.p_rec
    w = np.where(connected, rng.standard_normal((n, n)) * config.gain / np.sqrt(n * config.p_rec), 0.0)
    if config.apply_dale:
        w = np.abs(w)
    som_mask = np.ones((n, n))
    if config.som_n > 0:
        if config.som_n > int(inh.sum()):
            raise ValueError(f"som_n = {config.som_n} exceeds the {int(inh.sum())} inhibitory units drawn")
        som = np.flatnonzero(inh)[:config.som_n]
        som_mask[np.ix_(som, np.flatnonzero(inh))] = 0.0
    return {
        "inh": inh,
        "w": w,
        "w_in": rng.standard_normal((n, config.n_inputs)),
        "w_out": rng.standard_normal((1, n)) / 100.0,
        "taus_gaus": rng.standard_normal((n, 1)),
        "som_mask": som_mask,
    }


class RateRNN(torch.nn.Module):
    """The rate network.  Trainable: ``w``, ``w_out``, ``b_out`` and (with two decay taus)
    ``taus_gaus``; ``w_in``, the signs and the SOM mask are buffers."""

    def __init__(self, config: RateConfig, weights: dict[str, np.ndarray], dtype=torch.float32):
        super().__init__()
        self.config = config
        as_tensor = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)  # noqa: E731
        self.w = torch.nn.Parameter(as_tensor(weights["w"]))
        self.w_out = torch.nn.Parameter(as_tensor(weights["w_out"]))
        self.b_out = torch.nn.Parameter(as_tensor(np.reshape(weights.get("b_out", 0.0), (1,))))
        self.taus_gaus = torch.nn.Parameter(as_tensor(weights["taus_gaus"]), requires_grad=config.trains_taus)
        inh = np.asarray(weights["inh"], dtype=bool).reshape(-1)
        self.register_buffer("w_in", as_tensor(weights["w_in"]))
        self.register_buffer("sign", as_tensor(np.where(inh, -1.0, 1.0)))
        self.register_buffer("som_mask", as_tensor(weights["som_mask"]))
        self.inh = inh
        self.phi = activation_function(config.activation)

    def effective_weights(self) -> torch.Tensor:
        """``W_eff`` (N, N): ``relu(W) D * M_som`` under Dale, ``W`` otherwise."""
        if not self.config.apply_dale:
            return self.w
        return torch.relu(self.w) * self.sign[None, :] * self.som_mask

    def taus(self) -> torch.Tensor:
        """Per-unit synaptic decay [steps], shape (N,)."""
        taus = self.config.decay_taus
        if len(taus) == 1:
            return torch.full((self.config.n,), float(taus[0]), dtype=self.w.dtype, device=self.w.device)
        return torch.sigmoid(self.taus_gaus[:, 0]) * (taus[1] - taus[0]) + taus[0]

    def forward(self, u: torch.Tensor, generator: torch.Generator | None = None):
        """Run a batch of trials.  ``u``: (batch, n_inputs, T).  Returns the outputs ``o``
        (batch, T-1) and the rates ``r`` (batch, T, N) including ``r_0``.

        The update is the one of the module docstring, arranged so that each step is three
        operations (at N = 200 the per-operation overhead, not the arithmetic, sets the speed):
        ``x_t = decay * x_{t-1} + (r_{t-1} @ (alpha W_eff)^T + drive_t)`` with ``alpha = 1/tau``,
        ``decay = 1 - alpha`` and ``drive_t = alpha W_in u_{t-1} + xi_t`` computed for all steps
        at once."""
        batch, _, n_steps = u.shape
        n = self.config.n
        kwargs = {"dtype": self.w.dtype, "device": self.w.device, "generator": generator}
        alpha = 1.0 / self.taus()
        decay = 1.0 - alpha
        w_scaled_t = (alpha[:, None] * self.effective_weights()).T  # (pre, post)
        x = torch.randn((batch, n), **kwargs) * INITIAL_STATE_STD
        noise = torch.randn((batch, n_steps, n), **kwargs) * self.config.noise_std
        drive = alpha * torch.einsum("ni,bit->btn", self.w_in, u[:, :, :-1]) + noise[:, 1:]  # (batch, T-1, N)
        r = self.phi(x)
        rates = [r]
        for drive_t in drive.unbind(1):
            x = torch.addcmul(torch.addmm(drive_t, r, w_scaled_t), decay, x)
            r = self.phi(x)
            rates.append(r)
        rates = torch.stack(rates, dim=1)
        o = rates[:, 1:] @ self.w_out[0] + self.b_out
        return o, rates


def loss(o: torch.Tensor, z: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """The original's loss per trial, averaged over the batch: ``l2`` is the root of the *summed*
    squared error, ``l1`` the summed absolute error, comparing ``o[i]`` (the output at step ``i+1``)
    with ``z[i]`` for ``i = 0 .. T-2`` (the original's one-step offset; the stopping threshold 7
    assumes it)."""
    error = o - z[:, : o.shape[1]]
    if kind == "l2":
        return torch.sqrt((error ** 2).sum(dim=1)).mean()
    if kind == "l1":
        return error.abs().sum(dim=1).mean()
    raise ValueError(f"loss {kind!r} is not one of l1, l2")
