"""Neuron and synapse models: each model's equations and update in one module.

The contract every model follows (the coming Izhikevich, AdEx, mV-LIF and WTA neurons too):

* the module docstring states the equations, with units;
* ``Parameters``: a NamedTuple, one field per parameter with its unit in a comment; per-neuron
  arrays where a network needs them (a leading batch dimension for batches of trials or
  candidates);
* ``State``: a NamedTuple of the arrays the model carries from step to step;
* one step per backend: ``step`` for numba (one neuron, scalars in and out, ``inline="always"``,
  called inside the network kernel's loop; state arrays a step updates in place are passed as
  arrays, because numba drops writes through tuple attributes in parallel loops) and
  ``step_torch`` (every neuron at once, the same arithmetic in the same order, so that the
  backends agree bit for bit on the CPU in float64);
* network kernels call these steps and never write a model's update again; a Triton kernel may
  inline a step for speed, and is then tested against ``step_torch``.

Models: :mod:`lif` (the RLS default), :mod:`glif` (GLIF1-5, Teeter et al. 2017, per-neuron
parameters), :mod:`synapse` (the exponential synaptic filter, whose one formula serves both
backends).
"""
