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


def test_every_dataset_and_attribute_of_the_rls_files_is_documented(small_run):
    """docs/formats.md names every dataset and attribute that init, train and test write (checked on the
    files themselves, so the page cannot fall behind the code)."""
    import h5py

    from spikeforge import rls

    rls.train(small_run, nloops=1, verbose=False)
    rls.test(small_run, ntrials=1, plot=False, verbose=False)
    page = (ROOT / "docs" / "formats.md").read_text()
    documented = {name for cell in page.split("`")[1::2] for name in cell.replace(",", " ").split()}
    written = set()
    for file in ("init.h5", "ckpt-1.h5", "learning-curve.h5", "test.h5"):
        with h5py.File(small_run / file) as handle:
            names = list(handle.attrs)
            handle.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        written |= {f"{file}: {name}" for name in names}
    assert {"init.h5: static/ptr", "ckpt-1.h5: P", "test.h5: spike_step", "learning-curve.h5: segments"} <= written
    assert sorted(entry for entry in written if entry.split(": ")[1] not in documented) == []
