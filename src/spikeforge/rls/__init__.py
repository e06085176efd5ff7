"""Train spiking networks with per-neuron recursive least squares (TrainSpikingNet's method).

Workflow, from Python (each step mirrors a ``spikeforge`` subcommand)::

    from spikeforge import rls
    rls.new("my-net", {"n_cells": 1024})     # writes my-net/params.toml
    rls.init("my-net")                       # connectivity, targets, stimulus, P -> init.h5
    rls.train("my-net", nloops=50)           # RLS loops -> ckpt-50.h5, learning-curve.h5
    rls.test("my-net", ntrials=10)           # frozen-weight trials -> test.h5 and figures
    rls.plot("my-net/test.h5", neurons=[0, 4, 8])

Units: time in ms, voltage dimensionless (threshold 1, reset 0); see
:mod:`spikeforge.rls.params` for every parameter.
"""

from spikeforge.rls.initialize import init, new
from spikeforge.rls.params import Params
from spikeforge.rls.plotting import plot
from spikeforge.rls.frozen_trials import test
from spikeforge.rls.training import TrainingDiverged, TrainingInterrupted, TrainResult, train

__all__ = ["new", "init", "train", "test", "plot", "Params", "TrainResult", "TrainingInterrupted", "TrainingDiverged"]
