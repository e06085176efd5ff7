"""The numba (CPU) backend: the two kernels the RLS driver calls."""

from spikeforge.core.backends.numba_network import run_steps
from spikeforge.core.backends.numba_rls import rls_update

__all__ = ["run_steps", "rls_update"]
