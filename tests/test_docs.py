"""The documentation site (issue 16): it builds from the checkout with MkDocs in strict mode, so a broken
link, a missing page, a figure that is not there or a docstring griffe cannot read fails the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import publish_figures

ROOT = Path(__file__).resolve().parents[1]


def test_the_site_builds_without_warnings(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    site = tmp_path / "site"
    for page in ("index.html", "install/index.html", "reference/rls/index.html", "benchmarks/index.html"):
        assert (site / page).is_file(), page
    reference = (site / "reference" / "rls" / "index.html").read_text()
    assert "spikeforge.rls.training.train" in reference  # generated from the docstrings
    assert (site / "bench" / "peers" / "seconds_vs_size.png").is_file()  # the benchmarks page's figure


def _hooks():
    import importlib.util

    pytest.importorskip("mkdocs")
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_figure_no_test_has_drawn_yet_is_a_note_or_with_require_a_warning(tmp_path, caplog):
    hooks = _hooks()
    (tmp_path / "figures" / "demo").mkdir(parents=True)
    (tmp_path / "figures" / "demo" / "drawn.png").write_bytes(b"png")
    page = "Text.\n\n![a drawn one](figures/demo/drawn.png)\n\n![a missing one](figures/demo/missing.png)\n"
    shown = hooks.show_figures(page, "demo.md", tmp_path, require=False)
    assert "![a drawn one](figures/demo/drawn.png)" in shown and "missing.png" not in shown
    assert "“a missing one” not drawn yet: `python -m pytest -m tutorial`" in shown
    with caplog.at_level("WARNING"):
        assert hooks.show_figures(page, "demo.md", tmp_path, require=True) == page  # strict mode fails on it
    assert [r.getMessage() for r in caplog.records] == ["demo.md shows figures/demo/missing.png, which no test drew "
                                                        "(run the tests first)"]


def test_every_figure_of_the_docs_is_published_by_a_tutorial_test():
    """The pages show ``figures/<page>/<name>``; some test must draw each one (``publish_figures``), or the
    site built after the tests (``.ci/run``) fails."""
    import re

    shown = {match for path in (ROOT / "docs").rglob("*.md")
             for match in re.findall(r"\]\((figures/[^)\s]+)\)", path.read_text())}
    published = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for names, page in re.findall(r"publish_figures\([^,]+, \[([^\]]*)\],\s*\"([^\"]+)\"\)", path.read_text()):
            published |= {f"figures/{page}/{name}" for name in re.findall(r'"([^"]+)"', names)}
    assert len(shown) >= 15 and shown <= published, sorted(shown - published)


def test_every_page_of_the_docs_folder_is_in_the_site_navigation():
    yaml = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert pages and [page for page in pages if page not in yaml] == []


def _undocumented(path: Path) -> list[str]:
    """Public functions, classes and methods of one module without a docstring ("file:line name")."""
    import ast

    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            if ast.get_docstring(node) is None:
                found.append(f"{path.name}:{node.lineno} {node.name}")
            if isinstance(node, ast.ClassDef):
                found += [f"{path.name}:{member.lineno} {node.name}.{member.name}" for member in node.body
                          if isinstance(member, ast.FunctionDef) and not member.name.startswith("_")
                          and ast.get_docstring(member) is None]
    return found


def test_every_public_function_class_and_method_has_a_docstring(tmp_path):
    """The API reference is generated from the docstrings: a public name without one would be a bare
    signature on the site."""
    example = tmp_path / "example.py"
    example.write_text('def shown():\n    """Told."""\n\n\ndef bare():\n    pass\n\n\ndef _private():\n    pass\n\n\n'
                       'class Told:\n    """A class."""\n\n    def method(self):\n        pass\n')
    assert _undocumented(example) == ["example.py:5 bare", "example.py:16 Told.method"]
    missing = [item for path in sorted((ROOT / "src" / "spikeforge").rglob("*.py")) for item in _undocumented(path)]
    assert missing == []


def _blocks(page: str, language: str) -> list[str]:
    import re

    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "docs" / page).read_text(), re.S)


@pytest.mark.tutorial
def test_the_rls_tutorial_runs_as_written_and_the_command_line_equals_python(tmp_path, monkeypatch):
    import shlex

    import h5py
    import numpy as np
    from click.testing import CliRunner

    from spikeforge.cli import cli

    quickstart, steps = _blocks("rls-tutorial.md", "bash")
    assert quickstart.split() == ["spikeforge", "quickstart", "runs/quickstart"]  # run by test_cli
    monkeypatch.chdir(tmp_path)
    for line in steps.splitlines():
        command = shlex.split(line.split("#")[0])
        result = CliRunner().invoke(cli, command[1:])
        assert result.exit_code == 0, (line, result.output)
    (python,) = _blocks("rls-tutorial.md", "python")
    exec(compile(python, "rls-tutorial.md", "exec"), {})
    for name in ("ckpt-10.h5", "learning-curve.h5", "test.h5", "test-syninput-task0.png"):
        assert (tmp_path / "my-net" / name).is_file() and (tmp_path / "py-net" / name).is_file(), name
    with h5py.File(tmp_path / "my-net" / "ckpt-10.h5") as a, h5py.File(tmp_path / "py-net" / "ckpt-10.h5") as b:
        np.testing.assert_array_equal(a["plastic/weight"][()], b["plastic/weight"][()])
        assert np.abs(a["plastic/weight"][()]).sum() > 0
    with h5py.File(tmp_path / "my-net" / "learning-curve.h5") as curve:
        assert curve["firing_rate"][()].min() > 1.0  # an active network [Hz], as the tutorial's sizes must give
    publish_figures(tmp_path / "my-net", ["test-syninput-task0.png", "test-psth-task0.png"], "rls-tutorial")


def _documented(text: str) -> set[str]:
    """Every name written in backticks in ``text`` (a backticked "a, b c" names a, b and c)."""
    return {name for cell in text.split("`")[1::2] for name in cell.replace(",", " ").split()}


def _formats_section(heading: str) -> str:
    """The part of docs/formats.md under the first heading that contains ``heading``, up to the next
    heading of the same or a higher level."""
    lines = (ROOT / "docs" / "formats.md").read_text().splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("#") and heading in line)
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = next((k for k in range(start + 1, len(lines))
                if lines[k].startswith("#") and len(lines[k]) - len(lines[k].lstrip("#")) <= level), len(lines))
    return "\n".join(lines[start:end])


def _names_in(path: Path) -> list[str]:
    """What a file names: an HDF5 file its root attributes and datasets, a CSV file the header of each
    block (blocks are separated by an empty line), a .mat file its variables, a TOML file its keys and
    tables (``[table]``)."""
    import csv

    if path.suffix == ".h5":
        import h5py

        with h5py.File(path) as handle:
            names = list(handle.attrs)
            handle.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        return names
    if path.suffix == ".csv":
        blocks = path.read_text().strip().split("\n\n")
        return [name for block in blocks for name in next(csv.reader(block.splitlines()))]
    if path.suffix == ".mat":
        import scipy.io

        return [name for name in scipy.io.loadmat(path) if not name.startswith("__")]
    if path.suffix == ".toml":
        import tomllib

        values = tomllib.loads(path.read_text())
        return [f"[{name}]" if isinstance(value, dict) else name for name, value in values.items()] + [
            name for value in values.values() if isinstance(value, dict) for name in value]
    raise ValueError(f"no names known for {path}")


def _names_not_on_the_formats_page(files: dict[Path, str | tuple[str, ...]]) -> list[str]:
    """The names of each file (``file: heading``, or several, of its part of docs/formats.md) that its part
    does not name in backticks, as "file: name".  Numbered groups are written with ``<k>`` (``restart_0/losses``:
    ``restart_<k>/losses``), and a group's datasets may be named by the group (``trained/test_<k>/``) and
    their own names."""
    import re

    missing = []
    for path, heading in files.items():
        headings = (heading,) if isinstance(heading, str) else heading
        documented = set().union(*(_documented(_formats_section(h)) for h in headings))
        assert len(documented) > 5, heading
        for name in _names_in(path):
            name = re.sub(r"_\d+(?=/)", "_<k>", name)
            group, _, own = name.rpartition("/")
            if name not in documented and not (group and f"{group}/" in documented and own in documented):
                missing.append(f"{path.name}: {name}")
    return sorted(set(missing))


def test_every_dataset_and_attribute_of_the_rls_files_is_documented(small_run):
    """docs/formats.md names every dataset and attribute that init, train and test write (checked on the
    files themselves, so the page cannot fall behind the code)."""
    import h5py

    from spikeforge import rls

    rls.train(small_run, nloops=1, verbose=False)
    rls.test(small_run, ntrials=1, plot=False, verbose=False)
    documented = _documented((ROOT / "docs" / "formats.md").read_text())
    written = set()
    for file in ("init.h5", "ckpt-1.h5", "learning-curve.h5", "test.h5"):
        with h5py.File(small_run / file) as handle:
            names = list(handle.attrs)
            handle.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        written |= {f"{file}: {name}" for name in names}
    assert {"init.h5: static/ptr", "ckpt-1.h5: P", "test.h5: spike_step", "learning-curve.h5: segments"} <= written
    assert sorted(entry for entry in written if entry.split(": ")[1] not in documented) == []


def test_every_dataset_and_attribute_of_the_rate_to_spike_files_is_documented(tmp_path):
    """docs/formats.md names, each in the part of its file, every dataset and attribute that ``rate train``,
    ``map`` and ``eval`` write and every variable of ``rate export``'s .mat file (small settings of
    tests/test_rate2spike_files.py)."""
    pytest.importorskip("torch")
    from conftest import invoke

    model = tmp_path / "gng"
    for command in (("rate", "train", model, "--task", "go-nogo", "--N", 20, "--n_trials", 12, "--seed", 3),
                    ("rate", "map", model, "--scaling-factors", "20,40", "--trials", 2, "--held-out", 2, "--seed", 1),
                    ("rate", "eval", model, "--trials", 3, "--seed", 2),
                    ("rate", "export", model, tmp_path / "gng.mat")):
        result = invoke(*command)
        assert result.exit_code == 0, (command, result.output)
    assert _names_not_on_the_formats_page({model / "model.h5": "`model.h5`", model / "search.h5": "`search.h5`",
                          model / "eval.h5": "`eval.h5`", tmp_path / "gng.mat": ("`.mat`", "`model.h5`")}) == []


def test_every_dataset_attribute_and_column_of_the_fit_files_is_documented(tmp_path):
    """docs/formats.md names every dataset and attribute of the synthetic data files and of fit.h5, and every
    column of parameters.csv, report.csv and held_out.csv, for a cell and a network fit (small settings of
    tests/test_fit_cli.py)."""
    from conftest import invoke

    protocol = ["--delay", 100, "--duration", 1000, "--total", 1200]
    cell, net = tmp_path / "cell-fit", tmp_path / "net-fit"
    for command in (("fit", "synthetic", "cell", tmp_path / "cell.h5", "--preset", "RS", "--amplitudes", "100,125,150",
                     "--gain", 0.1, *protocol),
                    ("fit", "cell", tmp_path / "cell.h5", cell, "--sweeps", "0,2", *protocol, "--population", 8,
                     "--generations", 3, "--restarts", 2, "--seed", 3),
                    ("fit", "report", cell),
                    ("fit", "report", cell, "--data", tmp_path / "cell.h5", "--sweeps", 1),
                    ("fit", "synthetic", "network", tmp_path / "net.h5", "--connectivity-seed", 7),
                    ("fit", "network", tmp_path / "net.h5", net, "--connectivity-seed", 7, "--population", 8,
                     "--generations", 2, "--restarts", 1, "--seed", 1),
                    ("fit", "report", net, "--noise-seeds", 1)):
        result = invoke(*command)
        assert result.exit_code == 0, (command, result.output)
    files = {tmp_path / "cell.h5": "Synthetic data", tmp_path / "net.h5": "Synthetic data"}
    for directory in (cell, net):
        files |= {directory / "fit.h5": "`fit.h5`", directory / "parameters.csv": "`parameters.csv`",
                  directory / "report.csv": "`report.csv`"}
    files[cell / "held_out.csv"] = "`report.csv`"
    assert _names_not_on_the_formats_page(files) == []


def test_every_dataset_attribute_column_and_setting_of_the_sequence_files_is_documented(tmp_path):
    """docs/formats.md names every key of the configuration ``sequence new`` writes, every dataset and
    attribute of run.h5, and the columns and scores of scores.csv and seeds.csv (a small configuration as
    in tests/test_sequence_cli.py; the seeds on a local Dask cluster of one worker)."""
    import csv
    import re

    from conftest import invoke

    assert invoke("sequence", "new", tmp_path / "full.toml").exit_code == 0
    config = tmp_path / "small.toml"
    config.write_text("seed = 4\ntraining_s = 20\ntest_s = 2.0\ntests = 2\nsnapshot_every_s = 10\n\n[network]\n"
                      "grid_shape = [3, 3]\nk_min = 2\nk_max = 4\nn_inputs = 20\nn_links = 20\n\n[inputs]\n"
                      "t_noise_range = [200.0, 300.0]\nn_patterns = 2\nt_pattern = [150.0, 150.0]\n"
                      "pattern_sequences = [[0], [1]]\n")
    for command in (("sequence", "run", config, "--out", tmp_path / "run"),
                    ("sequence", "run", config, "--out", tmp_path / "seeds", "--seeds", 5, "--workers", 1)):
        result = invoke(*command)
        assert result.exit_code == 0, (command, result.output)
    run = tmp_path / "run"
    missing = _names_not_on_the_formats_page({tmp_path / "full.toml": "The configuration", run / "run.h5": "`run.h5`",
                             run / "scores.csv": "`scores.csv`"})
    with open(run / "scores.csv") as table:
        scores = [row[0] for row in csv.reader(table)][1:]
    assert "pattern_identity" in scores  # two patterns: every score
    documented = _documented(_formats_section("`scores.csv`"))
    missing += [f"scores.csv: {name}" for name in scores if name not in documented]
    documented = _documented(_formats_section("`seeds.csv`"))
    with open(tmp_path / "seeds" / "seeds.csv") as table:
        rows = list(csv.reader(table))
    names = [re.sub(r"^(un)?trained_.+$", r"\1trained_<score>", name) for name in rows[0]] + [rows[-2][0], rows[-1][0]]
    missing += [f"seeds.csv: {name}" for name in names if name not in documented]
    assert missing == []
