"""How fast `starter.py adopt --all` brings customers in, on a stack of real processes.

    python -m bench.backfill_rate --customers 1000 [--rate 1000] [--concurrency 16] [--worker] [--in-memory]

Starts a dev server (database file) and the sandbox, with no webhook receiver (it would adopt
each new customer from its `customer_created` webhook first) and no worker unless `--worker`,
creates the customers through Iron's API, runs `adopt --all` with the flags given,
then once more (every customer already running), and prints both summaries' rates. The
adoption rate is customers started per second of the run, listing included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid

from bench.common import DEFAULT_STATE_ROOT, fresh_dir
from demo.stack import REPO_ROOT, Stack, StackConfig
from iron_client import IronClient, IronSettings
from runtime.settings import ProcessSettings
from iron_sandbox.testing import SandboxControl


async def create_customers(settings: IronSettings, count: int, concurrency: int = 20) -> None:
    gate = asyncio.Semaphore(concurrency)
    prefix = uuid.uuid4().hex[:8]

    async def one(i: int) -> None:
        async with gate:
            await iron.create_customer(
                customer_type="Person", email=f"bulk-{prefix}-{i}@example.com", external_id=f"bulk-{prefix}-{i}",
                idempotency_key=str(uuid.uuid4()),
            )

    async with IronClient(settings) as iron:
        await asyncio.gather(*(one(i) for i in range(count)))


def adopt_all(env: dict[str, str], flags: list[str]) -> dict:
    run = subprocess.run(
        [sys.executable, "starter.py", "adopt", "--all", "--json", *flags], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True,
    )
    if run.returncode != 0:
        raise SystemExit(f"adopt --all exited {run.returncode}: {run.stderr.strip()[-500:]}")
    return json.loads(run.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill_rate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--rate", default="1000", help="adopt --all --rate (default 1000: as fast as it goes)")
    parser.add_argument("--concurrency", default="16")
    parser.add_argument("--iron-rate", default="50")
    parser.add_argument("--worker", action="store_true", help="run a worker beside it (its CPU competes)")
    parser.add_argument("--in-memory", action="store_true", help="the dev server without a database file")
    args = parser.parse_args(argv)
    stack = Stack(StackConfig.ephemeral(
        fresh_dir(DEFAULT_STATE_ROOT / "backfill-rate"), autopilot=False, persistent=not args.in_memory
    ))
    try:
        stack.start_temporal()
        stack.start_sandbox("--log-level", "warning")
        # No webhooks: nothing listens for them, and a receiver would adopt each customer first.
        asyncio.run(SandboxControl(stack.sandbox_root).set_webhooks(targets=[]))
        if args.worker:
            stack.start_worker()
        env = stack.env()
        settings = ProcessSettings.load(env).iron_settings()
        began = time.monotonic()
        asyncio.run(create_customers(settings, args.customers))
        print(f"{args.customers} customers created at Iron in {time.monotonic() - began:.1f} s")
        flags = ["--rate", args.rate, "--concurrency", args.concurrency, "--iron-rate", args.iron_rate]
        first = adopt_all(env, flags)
        again = adopt_all(env, flags)
    finally:
        stack.stop()
    print(f"adopt --all {' '.join(flags)}")
    for name, s in (("first run", first), ("rerun", again)):
        print(
            f"  {name:<10} adopted {s['adopted']:>6}  already running {s['already_running']:>6}  "
            f"failed {len(s['failed'])}  {s['seconds']:.1f} s  "
            f"{s['adoption_rate']:.1f} adopted/s  {s['listed'] / max(s['seconds'], 1e-9):.1f} listed/s"
        )
    return 0 if first["adopted"] == args.customers and again["already_running"] == args.customers else 1


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())
