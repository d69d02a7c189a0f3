"""`make demo`'s driver, headless: every part as its own process, every sample checked."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_demo_takes_every_sample_to_its_expected_state(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "demo", "--headless", "--state-dir", str(tmp_path / "demo")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^(alice|bob|carol|dave)\s+\S+ \(cycle \d\)\s+(.+?)\s+(ok|FAILED)", output, re.M)}
    results = dict(re.findall(r"^(alice|bob|carol|dave)\s+.*?\s(ok|FAILED)\s+http", output, re.M))
    assert results == {"alice": "ok", "bob": "ok", "carol": "ok", "dave": "ok"}, output[-4000:]
    assert rows["carol"].startswith("Active (cycle 2)")
    assert rows["dave"].startswith("Declined")
    assert "every sample reached its expected state" in output
    # Everything it started is stopped: no process is left holding the state directory.
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", leftovers.stdout
