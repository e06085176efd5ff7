"""docs/sequence.md runs as written: its commands print the table it shows, its two-pattern configuration
gives the pattern-identity score it describes, and its Python example runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import publish_figures
from spikeforge.cli import cli

TEXT = (Path(__file__).parents[1] / "docs" / "sequence.md").read_text()


def blocks(language: str) -> list[str]:
    """The fenced code blocks of the page whose fence names ``language`` ("" for a bare fence)."""
    found, current, inside = [], [], None
    for line in TEXT.splitlines():
        if line.startswith("```"):
            if inside is None:
                inside, current = line[3:].strip(), []
            else:
                if inside == language:
                    found.append("\n".join(current) + "\n")
                inside = None
        elif inside is not None:
            current.append(line)
    return found


@pytest.mark.slow
@pytest.mark.tutorial
def test_the_sequence_tutorial_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = [line.strip() for line in blocks("bash")[0].splitlines() if line.strip()]
    assert [c.split()[:3] for c in commands] == [["spikeforge", "sequence", "new"], ["spikeforge", "sequence", "run"]]
    outputs = []
    for line in commands:
        result = CliRunner().invoke(cli, shlex.split(line)[1:])
        assert result.exit_code == 0, (line, result.output)
        outputs.append(result.output)
    table = blocks("")[0].strip()
    assert table in outputs[1]  # the scores the tutorial shows, digit for digit
    assert (tmp_path / "fig4" / "raster.png").stat().st_size > 10_000
    publish_figures(tmp_path / "fig4", ["raster.png", "raster-untrained.png", "circuits.png", "weights.png",
                                        "selectivity.png"], "sequence")

    # the two-pattern configuration, made as the tutorial says
    assert CliRunner().invoke(cli, ["sequence", "new", "two.toml", "--seed", "2"]).exit_code == 0
    top = (tmp_path / "two.toml").read_text().split("[inputs]")[0]
    top = re.sub(r"^test_s = \S+", "test_s = 6", top, flags=re.M)
    (tmp_path / "two.toml").write_text(top + blocks("toml")[0])
    result = CliRunner().invoke(cli, ["sequence", "run", "two.toml"])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "two" / "scores.csv").read_text().splitlines()
    rows = {line.split(",")[0]: [float(v) for v in line.split(",")[1:]] for line in lines[1:]}
    identity, chance = rows["pattern_identity"], rows["identity_chance"]
    stated = re.search(r"For seed 2 it gives ([\d.]+) against ([\d.]+) by chance \(([\d.]+) before training\)", TEXT)
    assert (f"{identity[1]:.3f}", f"{chance[1]:.3f}", f"{identity[0]:.2f}") == stated.groups()

    # the Python example
    code = blocks("python")[0]
    namespace: dict = {}
    exec(compile(code, "docs/sequence.md", "exec"), namespace)
    test = namespace["test"]
    assert test.weights.shape[0] == 31 and test.spikes.shape == (3000, namespace["grid"].n_neurons)
    assert namespace["order"] is not None and (tmp_path / "test.png").exists()
