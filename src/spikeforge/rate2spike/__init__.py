"""Rate-to-spike: train a continuous rate RNN on a cognitive task, then map it one-to-one onto a
LIF spiking network (Kim, Li & Sejnowski 2019, PNAS 116:22811).

Modules: :mod:`tasks` (Go-NoGo, Mante, XOR), :mod:`rate_model` (the torch rate RNN with Dale's
principle and trained synaptic decay), :mod:`training` (the original's trial-by-trial Adam and
stopping rule), :mod:`lif_network` (the batched LIF network of the mapping), :mod:`search` (the
scaling-factor grid search and its held-out evaluation).
"""
