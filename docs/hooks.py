"""MkDocs hooks of the documentation site: files outside ``docs/`` that pages show.

The benchmarks page includes BENCHMARKS.md from the repository root, whose figures live under
``bench/``; they are published at the same paths so that its links work on the site as on GitHub.
"""

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]


def on_files(files, config):
    for figure in sorted((ROOT / "bench").rglob("*.png")):
        if ".venv" in figure.parts or ".work" in figure.parts:
            continue
        files.append(File(figure.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"],
                          config["use_directory_urls"]))
    return files
