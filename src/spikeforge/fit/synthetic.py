"""Data with known parameters, written in the formats the fits read: a cell's sweeps and a network's
spike trains (HDF5 spike files, :func:`spikeforge.fit.data.write_spike_file`), with the true
parameters in the file's attributes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeforge.core.run_support import echo, refuse_existing
from spikeforge.errors import ParameterError
from spikeforge.fit import network as networks
from spikeforge.fit.data import write_spike_file
from spikeforge.fit.models import model_named, parameter_rows
from spikeforge.fit.simulate import StepProtocol, simulate


def _output(path: Path, force: bool) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".h5", ".hdf5"):
        raise ParameterError(f"output {str(path)!r} must end in .h5 (an HDF5 spike file)")
    refuse_existing(path, force, "a file")
    return path


def cell(path, model: str, values: dict, preset: str | None, amplitudes, protocol: StepProtocol, gain: float = 1.0,
         force: bool = False, verbose: bool = True) -> Path:
    """Simulate one cell with known parameters on current steps and write its sweeps as an HDF5 spike file.

    Each amplitude is one sweep of ``protocol``, simulated with current ``gain * amplitude`` and stored
    with its amplitude [pA].  The file's attributes hold ``model``, ``truth`` (every parameter's value),
    ``gain`` and ``protocol``.

    Args:
        path: the output file, ending in .h5 or .hdf5.
        model: izhikevich, adex or lif.
        values: parameter values, taking precedence over the preset and the model's defaults.
        preset: an Izhikevich cell type (RS, IB, CH, ...; any case) to start from, or None.
        amplitudes: the steps' amplitudes [pA], one per sweep.
        gain: model current per pA (for Izhikevich, whose current has its own units).
        force: replace an existing ``path``.
        verbose: print a line about what was written.

    Returns:
        The path written.

    Raises:
        ParameterError: an unknown model, preset or parameter name, or a preset for a model other than
            Izhikevich; an invalid protocol; no amplitudes or non-finite ones; an output path that does not
            end in .h5.
        DataFileError: ``path`` exists and ``force`` is false.
    """
    the_model = model_named(model)
    base = {}
    if preset is not None:
        if not the_model.presets:
            raise ParameterError(f"{the_model.name} has no presets; --preset names an Izhikevich cell type")
        if str(preset).upper() not in the_model.presets:
            raise ParameterError(f"preset {preset!r} is not one of {', '.join(the_model.presets)}")
        base = dict(zip(the_model.names, the_model.presets[str(preset).upper()]))
    rows = parameter_rows(the_model, {k: [v] for k, v in values.items()}, 1, base)
    protocol = StepProtocol(*protocol).check()
    amplitudes = np.asarray(amplitudes, dtype=np.float64)
    if amplitudes.size == 0 or not np.isfinite(amplitudes).all():
        raise ParameterError("--amplitudes must be one or more finite numbers [pA]")
    path = _output(path, force)
    responses = simulate(the_model, np.repeat(rows, amplitudes.size, axis=0), gain * amplitudes, protocol)
    truth = dict(zip(the_model.names, rows[0].tolist()))
    write_spike_file(path, responses.trains.to_list(), (0.0, protocol.total + protocol.dt), amplitudes,
                     {"model": the_model.name, "truth": truth, "gain": gain, "protocol": protocol._asdict()})
    echo(verbose, f"wrote {path}: {amplitudes.size} sweeps, {', '.join(str(c) for c in responses.counts)} spikes")
    return path


def network(path, truth, config: networks.NetworkConfig, connectivity_seed: int, force: bool = False,
            verbose: bool = True) -> Path:
    """Simulate the E/I network with known parameters and write every cell's spike train as an HDF5 spike file.

    The trains (E cells first, then I cells) are the units of one trial.  The file's attributes hold
    ``truth`` (the four parameters by name), ``connectivity_seed`` and ``network`` (``config``).

    Args:
        path: the output file, ending in .h5 or .hdf5.
        truth: (sigma_ee, p_ee, sigma_ei, p_ei).
        config: the network's settings (:class:`~spikeforge.fit.network.NetworkConfig`, or a tuple of its
            fields).
        connectivity_seed: seed of the frozen connectivity, drives and initial voltages.
        force: replace an existing ``path``.
        verbose: print a line about what was written.

    Returns:
        The path written.

    Raises:
        ParameterError: an invalid configuration, ``truth`` that is not four finite numbers, or an output
            path that does not end in .h5.
        DataFileError: ``path`` exists and ``force`` is false.
    """
    truth = np.asarray(truth, dtype=np.float64)
    for name, value in zip(networks.NAMES, truth):
        networks.check_within_limits(name, value, value, "--truth")
    config = networks.NetworkConfig(*config).check()
    path = _output(path, force)
    responses = networks.simulate_network(truth[None], config, networks.connectivity(config, connectivity_seed))
    write_spike_file(path, responses.trains.to_list(), (0.0, config.duration + config.dt), None,
                     {"truth": dict(zip(networks.NAMES, truth.tolist())), "connectivity_seed": int(connectivity_seed),
                      "network": {**config._asdict(), "v_init": list(config.v_init)}})
    echo(verbose, f"wrote {path}: {config.n_e} E + {config.n_i} I cells, {responses.counts.sum()} spikes in "
                  f"{config.duration:g} ms")
    return path
