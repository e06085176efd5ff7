"""The numba (CPU) backend: the kernels the RLS driver calls."""

from spikeforge.core.backends.numba_network import run_steps
from spikeforge.core.backends.numba_rls import count_nonfinite, count_p_faults, rls_small, rls_update

__all__ = ["run_steps", "rls_update", "rls_small", "count_p_faults", "count_nonfinite"]
