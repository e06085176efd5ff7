"""MkDocs hooks of the documentation site: files outside ``docs/`` that pages show, and the tutorials'
figures.

The benchmarks page includes BENCHMARKS.md from the repository root, whose figures live under
``bench/``; they are published at the same paths so that its links work on the site as on GitHub.

The tutorials' figures (``docs/figures/<page>/<name>.png``) are drawn by the tests that run each
tutorial as written (``publish_figures`` in ``tests/conftest.py``); they are not under version
control.  ``.ci/run`` builds the site after the tests with ``SPIKEFORGE_DOCS_FIGURES=require``, so a
missing figure is a warning and fails the strict build.  Otherwise (``mkdocs serve`` on a fresh
checkout) a missing figure is replaced by a line that says which command draws it.
"""

import logging
import os
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<path>figures/[^)\s]+)\)")
log = logging.getLogger("mkdocs.plugins.spikeforge")


def on_files(files, config):
    for figure in sorted((ROOT / "bench").rglob("*.png")):
        if ".venv" in figure.parts or ".work" in figure.parts:
            continue
        files.append(File(figure.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"],
                          config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    return show_figures(markdown, page.file.src_uri, Path(config["docs_dir"]),
                        os.environ.get("SPIKEFORGE_DOCS_FIGURES") == "require")


def show_figures(markdown: str, page: str, docs: Path, require: bool) -> str:
    """``markdown`` with each tutorial figure that has not been drawn yet replaced by a note naming the
    command that draws it, or, with ``require``, unchanged and a warning logged for it."""

    def replace(match):
        if (docs / Path(page).parent / match["path"]).is_file():
            return match[0]
        if require:
            log.warning("%s shows %s, which no test drew (run the tests first)", page, match["path"])
            return match[0]
        return (f"*(Figure “{match['alt']}” not drawn yet: `python -m pytest -m tutorial` runs the "
                f"tutorials and draws it.)*")

    return FIGURE.sub(replace, markdown)
