"""Neuron and synapse models: each model's equations and update in one module.

The contract every model follows (the coming Izhikevich, AdEx, mV-LIF and WTA neurons too):

* the module docstring states the equations, with units;
* ``Parameters``: a NamedTuple, one field per parameter with its unit in a comment; per-neuron
  arrays where a network needs them (a leading batch dimension for batches of trials or
  candidates); constants a step multiplies by are stored per step (``dt / tau``, ``1 - dt b``)
  and in the state's floating type, so that float32 arithmetic stays float32 on every backend;
* ``State``: a NamedTuple of the arrays the model carries from step to step besides the
  membrane potential ``v`` and the last spike (which every network kernel keeps);
* one step per backend: ``step`` for numba (one neuron, ``inline="always"``, called inside the
  network kernel's loop; numbers in and out, except that state arrays a step updates in place
  are passed as arrays, because numba drops writes through tuple attributes in parallel loops)
  and ``step_torch`` (every neuron at once, the same arithmetic in the same order, so that the
  backends agree bit for bit on the CPU);
* ``initial_voltage(rng, ...)``: the model's initial voltages, from the trial's stream;
* network kernels call these steps and never write a model's update again; a Triton kernel may
  inline a step for speed (:mod:`~spikeforge.core.backends.triton_step` for LIF,
  :mod:`~spikeforge.core.backends.triton_rls` for the RLS update), and is then tested against
  the torch version.

Names: ``v`` is the membrane potential and ``u`` the synaptic current everywhere; a model's own
recovery variable (Izhikevich's ``u``, AdEx's ``w``) is called ``recovery``.  Currents are in
the units of the voltage (the RLS model's convention, README "Units").

What the network kernels do around a model's step, for every model: the synaptic currents
(:mod:`synapse`), the drive, the noise (voltage noise kicks every neuron, refractory or not),
refractoriness (``active``), spike bookkeeping and propagation.

Adding a model to the RLS network (the checklist):

1. the cell module as above, with tests against hand-computed steps on both backends;
2. a cell-kind constant in :mod:`spikeforge.core.backends.layout` and a slot for its Parameters
   in ``NetworkParameters`` (and its State arrays in the network ``State``);
3. the dispatch in ``numba_network.run_steps`` and ``torch_kernels._neurons``;
4. its parameters and initial voltages in :mod:`spikeforge.rls.network_parameters`, its name in
   the ``cell_model`` choices of :mod:`spikeforge.rls.params`, and its state's reset or
   persistence across trials in :mod:`spikeforge.rls.trial`;
5. a torch-against-numba case in ``tests/test_torch_backend.py``.

Models: :mod:`lif` (the RLS default), :mod:`glif` (GLIF1-5, Teeter et al. 2017, per-neuron
parameters), :mod:`synapse` (the exponential synaptic filter, whose one formula serves both
backends).
"""
