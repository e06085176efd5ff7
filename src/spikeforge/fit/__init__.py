"""Fitting to data (a counterpart of SpikeNetOpt): single neurons (Izhikevich, AdEx, LIF) fitted to a recorded
cell's spikes under current steps, and the connectivity of an E/I network fitted to recorded spike trains,
with spike-distance losses and evolutionary optimizers; the fit is validated with effect sizes
(``spikeforge fit cell|network|report|synthetic``; docs/fitting.md)."""
