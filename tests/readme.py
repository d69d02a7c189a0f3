"""The documentation's commands, as data (the README and the pages under `docs/`): tests run
them, so the docs cannot drift from the code."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"


def pages() -> list[Path]:
    """The README and every documentation page."""
    return [README, *sorted(DOCS.glob("*.md"))]


def documentation() -> str:
    """Every page's text, one after another."""
    return "\n".join(page.read_text() for page in pages())


@dataclass(frozen=True)
class Command:
    line: str
    expected_exit: int


def section(title: str, level: int = 2) -> str:
    """The text of the section with this heading (in the README or a page of `docs/`; a title
    names one section in all of them), its subsections included, up to the next heading of its
    level or above."""
    marker = "#" * level + " " + title + "\n"
    found = [text for text in map(Path.read_text, pages()) if marker in text]
    assert len(found) == 1, f"{marker.strip()!r} is in {len(found)} pages, not one"
    text = found[0]
    start = text.index(marker) + len(marker)
    lines, fenced = [], False
    for line in text[start:].splitlines(keepends=True):
        fenced ^= line.startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", line):  # a `# comment` in a code block is no heading
            break
        lines.append(line)
    return "".join(lines)


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)


def commands(block: str) -> list[Command]:
    """One command per line (a trailing `\\` continues it); `# exit N` in a line's comment says
    which exit code it documents, 0 otherwise."""
    result: list[Command] = []
    pending = ""
    for raw in block.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if not line or line.startswith("#"):
            continue
        documented = re.search(r"#\s*exit (\d+)", line)
        result.append(Command(line, int(documented.group(1)) if documented else 0))
    return result


def placeholders(line: str) -> set[str]:
    """Upper-case words a reader replaces (CONTENT_ID), not `$VARIABLES` or comment text."""
    code = line.split("  #", 1)[0]
    return {m.group(1) for m in re.finditer(r"(?<![$\w-])([A-Z][A-Z0-9]*_[A-Z0-9_]+)\b", code)}


# A shell with nothing of this venv: only what `.demo/env.sh` sets can make `python` work.
BARE_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def documented_shell(env_file: Path, line: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run one README line the way the README says: `source .demo/env.sh` at the repository root."""
    return subprocess.run(
        ["bash", "-c", f"source {env_file} && {line}"], cwd=REPO_ROOT, env=BARE_ENV,
        capture_output=True, text=True, timeout=timeout,
    )
