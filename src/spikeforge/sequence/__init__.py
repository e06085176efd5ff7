"""Sequence learning in a grid of winner-take-all circuits with STDP (Klampfl & Maass 2013).

Modules: :mod:`~spikeforge.sequence.connectivity` (the grid, circuit sizes, distance-dependent circuit
links) and :mod:`~spikeforge.sequence.plasticity` (STDP, variance-tracking learning rates, short-term
plasticity), :mod:`~spikeforge.sequence.inputs` (frozen Poisson patterns in noise, sequences, switching
modes, time warp), :mod:`~spikeforge.sequence.network` (the numba step kernel; its plain NumPy twin is
:mod:`~spikeforge.sequence.reference`) and :mod:`~spikeforge.sequence.analysis` (ordering, selectivity,
readouts, reliability), :mod:`~spikeforge.sequence.model` (``Network``) and
:mod:`~spikeforge.sequence.experiment` (the full-scale experiment and its scores); the neuron is
:mod:`spikeforge.core.cells.wta`.  (Work in progress: the ``Recorder``, figures, the command and the
tutorial come next.)
"""
