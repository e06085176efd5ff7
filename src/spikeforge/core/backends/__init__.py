"""Kernels of the RLS network, one module per backend.

``numba_network`` / ``numba_rls`` (CPU, the default) run the per-step network update
and the batched per-neuron RLS update.  Both are pure functions of arrays: the
host-side driver in :mod:`spikeforge.rls.simulation` draws every random number and
passes it in, so results do not depend on the number of threads.
"""
