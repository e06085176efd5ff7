"""spikeforge: functional spiking recurrent neural networks.

Subpackages
-----------
``spikeforge.rls``
    Train every neuron's synaptic current to follow a target with per-neuron
    recursive least squares (a counterpart of TrainSpikingNet.jl).
``spikeforge.core``
    Parameters, random streams, HDF5 storage, cell models and kernels shared by
    all capabilities.
"""

from spikeforge.errors import DataFileError, ParameterError, SpikeforgeError

__version__ = "0.2.0"

__all__ = ["SpikeforgeError", "ParameterError", "DataFileError", "__version__"]
