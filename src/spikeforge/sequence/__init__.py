"""Sequence learning in a grid of winner-take-all circuits with STDP (Klampfl & Maass 2013).

``Network``, ``InputGenerator`` and ``Recorder`` follow the original's README (docs/sequence.md):

    from spikeforge.sequence import InputGenerator, Network, Recorder

Modules: :mod:`~spikeforge.sequence.connectivity` (the grid, circuit sizes, distance-dependent circuit
links), :mod:`~spikeforge.sequence.plasticity` (STDP, variance-tracking learning rates, short-term
plasticity), :mod:`~spikeforge.sequence.inputs` (frozen Poisson patterns in noise, sequences, switching
modes, time warp), :mod:`~spikeforge.sequence.network` (the numba step kernel; its plain NumPy twin is
:mod:`~spikeforge.sequence.reference`), :mod:`~spikeforge.sequence.model` (``Network``),
:mod:`~spikeforge.sequence.recorder` (``Recorder``), :mod:`~spikeforge.sequence.analysis` (ordering,
selectivity, readouts, reliability), :mod:`~spikeforge.sequence.experiment` (the experiments of the
acceptance tests and their scores), :mod:`~spikeforge.sequence.plotting` (figures),
:mod:`~spikeforge.sequence.config`, :mod:`~spikeforge.sequence.runs`, :mod:`~spikeforge.sequence.files`
and :mod:`~spikeforge.sequence.cli` (``spikeforge sequence new|run``).  The neuron is
:mod:`spikeforge.core.cells.wta`.  The classes are imported on first use, so the command line starts
without compiling anything.
"""

_EXPORTS = {"Network": "spikeforge.sequence.model", "InputGenerator": "spikeforge.sequence.inputs",
            "InputConfig": "spikeforge.sequence.inputs", "Recorder": "spikeforge.sequence.recorder"}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spikeforge.sequence' has no attribute {name!r}")


__all__ = list(_EXPORTS)
