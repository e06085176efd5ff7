"""Neuron models.  Each module states its equations and units in its docstring."""
