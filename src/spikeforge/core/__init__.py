"""Pieces shared by every spikeforge capability: parameters, random streams, storage, kernels."""
