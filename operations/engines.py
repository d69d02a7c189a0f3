"""Open onboardings by engine version: when an engine's gates can go.

    python starter.py engines [--json]

Each run shows the engine version it executes in the search attribute `OnboardingEngineVersion`
(given at its start, at no cost). A gate for behaviour that came with version N guards the runs
of versions below N; once no open onboarding runs one of them, and no release that starts them
is deployed, the gate and those versions' recorded histories can be removed
(docs/changing-the-workflow.md). The counts come from visibility, which trails the workflows by
a moment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from temporalio.client import Client

import contracts.search_attributes as sa
from contracts.engine import ENGINE_VERSION
from contracts.messages import WORKFLOW_TYPE

OPEN_ONBOARDINGS = f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running"'


@dataclass(frozen=True)
class EngineCounts:
    current: int  # the engine version this code starts runs on
    by_version: dict[int, int]  # every version from 1 to the current one, zeros included
    newer: int  # runs of a version this code does not know (newer code deployed somewhere)
    unknown: int  # runs without the attribute: started past the engine's start path

    @property
    def open(self) -> int:
        return sum(self.by_version.values()) + self.newer + self.unknown

    def as_json(self) -> dict:
        return {
            "current": self.current,
            "open": self.open,
            "by_version": {str(v): n for v, n in self.by_version.items()},
            "newer": self.newer,
            "unknown": self.unknown,
        }


async def count_by_engine(client: Client) -> EngineCounts:
    async def count(where: str = "") -> int:
        return (await client.count_workflows(OPEN_ONBOARDINGS + where)).count

    key = sa.ONBOARDING_ENGINE_VERSION.name
    by_version = {version: await count(f" AND {key} = {version}") for version in range(1, ENGINE_VERSION + 1)}
    newer = await count(f" AND {key} > {ENGINE_VERSION}")
    total = await count()
    return EngineCounts(ENGINE_VERSION, by_version, newer, max(total - sum(by_version.values()) - newer, 0))


def format_counts(counts: EngineCounts) -> str:
    lines = [f"open onboardings: {counts.open} (this code starts runs on engine {counts.current})"]
    lines += [f"  engine {version}: {n}" for version, n in counts.by_version.items()]
    if counts.newer:
        lines.append(f"  newer than engine {counts.current}: {counts.newer} (a newer release runs somewhere)")
    if counts.unknown:
        lines.append(f"  without an engine version: {counts.unknown} (started past the engine's start path)")
    return "\n".join(lines)


def add_command(subparsers) -> None:
    engines = subparsers.add_parser("engines", help="count open onboardings by the engine version they run")
    engines.add_argument("--json", action="store_true", help="print the counts as JSON")


async def run_command(client: Client, args, out) -> None:
    counts = await count_by_engine(client)
    print(json.dumps(counts.as_json(), indent=2) if args.json else format_counts(counts), file=out)
