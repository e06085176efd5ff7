"""Sequence learning in a grid of winner-take-all circuits with STDP (Klampfl & Maass 2013).

Modules: :mod:`~spikeforge.sequence.connectivity` (the grid, circuit sizes, distance-dependent circuit
links) and :mod:`~spikeforge.sequence.plasticity` (STDP, variance-tracking learning rates, short-term
plasticity), :mod:`~spikeforge.sequence.inputs` (frozen Poisson patterns in noise, sequences, switching
modes, time warp); the neuron is :mod:`spikeforge.core.cells.wta`.  (Work in progress: the network
kernel, training and testing, the recorder and analysis come next.)
"""
