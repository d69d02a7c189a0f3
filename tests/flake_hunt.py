"""Runs the timing-sensitive test modules N times in a row and prints the failures per module.

    python -m tests.flake_hunt [--runs N] [--log-dir D] [MODULE ...]    (make flake-hunt RUNS=N)

A test that waits on the world (processes, a dev server, HTTP, outages) must wait for evidence
with a deadline that fails loudly, never for a chance that something happened inside a window.
One green run proves little about such a test; this runs each module `--runs` times, one
module at a time, each run a fresh pytest process (as CI runs them), and keeps the output of
every failed run under `--log-dir`. Exits 1 if any run failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# The modules whose tests depend on timing: the chaos smoke runs, the dev-server end to end
# runs, event delivery, the fleet pass, and the time-skipping lifecycle (queries racing a
# continue-as-new).
TIMING_SENSITIVE = (
    "tests/test_chaos_smoke.py",
    "tests/test_workflow_devserver.py",
    "tests/test_events_devserver.py",
    "tests/test_webhook_receiver_e2e.py",
    "tests/test_event_delivery.py",
    "tests/test_event_outbox_temporal.py",
    "tests/test_partner_backend.py",
    "tests/test_fleet_reconciliation_devserver.py",
    "tests/test_process_shutdown.py",
    "tests/test_workflow_lifecycle.py",
)
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ModuleRuns:
    module: str
    passed: int = 0
    failed: int = 0
    seconds: list[float] = field(default_factory=list)
    failed_tests: list[str] = field(default_factory=list)


def _failed_tests(output: str) -> list[str]:
    return [line.split(" ", 2)[1] for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]


def hunt(modules: list[str], runs: int, log_dir: Path, out=print) -> list[ModuleRuns]:
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "ci")}
    results = [ModuleRuns(m) for m in modules]
    for round_ in range(1, runs + 1):
        for result in results:
            started = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", result.module],
                cwd=REPO_ROOT, env=env, capture_output=True, text=True,
            )
            seconds = time.monotonic() - started
            result.seconds.append(seconds)
            if proc.returncode == 0:
                result.passed += 1
                verdict = "passed"
            else:
                result.failed += 1
                result.failed_tests += _failed_tests(proc.stdout) or [f"exit {proc.returncode}"]
                log = log_dir / f"{Path(result.module).stem}-run{round_}.log"
                log.write_text(proc.stdout + proc.stderr)
                verdict = f"FAILED (exit {proc.returncode}, output in {log})"
            out(f"run {round_}/{runs} {result.module}: {verdict} in {seconds:.0f} s")
    return results


def table(results: list[ModuleRuns]) -> str:
    width = max(len(r.module) for r in results)
    lines = [f"{'module':<{width}}  runs  failed  median s  max s"]
    for r in results:
        ordered = sorted(r.seconds)
        median = ordered[len(ordered) // 2] if ordered else 0.0
        lines.append(f"{r.module:<{width}}  {r.passed + r.failed:>4}  {r.failed:>6}  {median:>8.0f}  {max(ordered, default=0):>5.0f}")
        for name in sorted(set(r.failed_tests)):
            lines.append(f"    failed {r.failed_tests.count(name)}x: {name}")
    total = sum(r.failed for r in results)
    lines.append(f"{total} failed runs of {sum(r.passed + r.failed for r in results)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.flake_hunt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each module (default 10)")
    parser.add_argument("--log-dir", type=Path, default=REPO_ROOT / "test-output" / "flake-hunt")
    parser.add_argument("modules", nargs="*", default=list(TIMING_SENSITIVE))
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    started = time.monotonic()
    results = hunt(args.modules, args.runs, args.log_dir)
    print(table(results))
    print(f"flake hunt took {time.monotonic() - started:.0f} s")
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
