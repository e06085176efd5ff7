"""Neuron models.  Each module states its equations and units in its docstring.

The contract shared by the RLS kernels: ``lif`` (the default, one update) and ``glif`` (GLIF1-5,
one update with per-neuron parameters; a model is a choice of mechanisms).  A cell model is
chosen by name (``cell_model = "glif3"``) or by a plugin returning per-neuron GLIF parameters
(see docs/custom-connectivity.md), so every backend compiles one update per family.
"""
