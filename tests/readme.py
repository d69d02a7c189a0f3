"""The README's commands, as data: tests run them, so the doc cannot drift from the code."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"


@dataclass(frozen=True)
class Command:
    line: str
    expected_exit: int


def section(title: str, level: int = 2) -> str:
    """The text of the README section with this heading, its subsections included, up to the
    next heading of its level or above."""
    text = README.read_text()
    marker = "#" * level + " " + title + "\n"
    start = text.index(marker) + len(marker)
    nxt = re.search(rf"^#{{1,{level}}} ", text[start:], re.M)
    return text[start : start + nxt.start()] if nxt else text[start:]


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
