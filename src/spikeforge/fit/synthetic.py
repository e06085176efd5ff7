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
    truth = np.asarray(truth, dtype=np.float64)
    config = networks.NetworkConfig(*config).check()
    path = _output(path, force)
    responses = networks.simulate_network(truth[None], config, networks.connectivity(config, connectivity_seed))
    write_spike_file(path, responses.trains.to_list(), (0.0, config.duration + config.dt), None,
                     {"truth": dict(zip(networks.NAMES, truth.tolist())), "connectivity_seed": int(connectivity_seed),
                      "network": {**config._asdict(), "v_init": list(config.v_init)}})
    echo(verbose, f"wrote {path}: {config.n_e} E + {config.n_i} I cells, {responses.counts.sum()} spikes in "
                  f"{config.duration:g} ms")
    return path
