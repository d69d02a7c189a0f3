"""The documentation site (`mkdocs.yml`, pages under `docs/`) builds strictly: no broken link or
anchor, no page left out of the navigation; the README stays a short entrance to it."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from tests.conftest import REPO_ROOT
from tests.readme import DOCS, README

README_MAX_LINES = 300


def nav_pages(nav) -> set[str]:
    found: set[str] = set()
    for entry in nav:
        for value in entry.values():
            found |= nav_pages(value) if isinstance(value, list) else {value}
    return found


def test_the_site_builds_strictly(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "site" / "operating" / "index.html").exists()


def test_every_page_is_in_the_navigation_and_the_readme_is_short():
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    assert nav_pages(config["nav"]) == {page.name for page in DOCS.glob("*.md")}
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"the README has {len(lines)} lines"
    for page in DOCS.glob("*.md"):
        if page.name != "index.md":
            assert f"](docs/{page.name}" in README.read_text(), f"the README does not lead to {page.name}"
