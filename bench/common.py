"""What the chaos suite and the benchmark share: bringing up the local stack as real processes
(the partner's backend among them), a Temporal client that reads what the workers write and
counts the workflow queries it sends, bounded retries, and small measuring helpers (RSS from
/proc, percentiles, machine facts).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import platform
import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from demo.stack import REPO_ROOT, Process, Stack, StackConfig, free_port
from contracts.messages import OnboardingState

T = TypeVar("T")

DEFAULT_STATE_ROOT = REPO_ROOT / ".data"


def fresh_dir(path: Path) -> Path:
    """An empty directory at `path` (whatever a previous run left there is removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


@dataclasses.dataclass
class MeasuredStack(Stack):
    """The stack, its dev server serving its own Prometheus counters on a known port
    (`temporal server start-dev --metrics-port`), so a run can say what the server did."""

    metrics_port: int = dataclasses.field(default_factory=free_port)

    def _process(self, name: str, argv: list[str], *, port: int | None, **env: str) -> Process:
        if name == "temporal":
            argv = [*argv, "--metrics-port", str(self.metrics_port)]
        return super()._process(name, argv, port=port, **env)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


def launch(
    state_dir: Path,
    *,
    autopilot: bool,
    autopilot_after: float = 1.0,
    workers: tuple[str, ...] = ("worker",),
    worker_args: tuple[str, ...] = (),
    task_queue: str = "iron-onboarding",
    sign_prefixes: tuple[str, ...] = (),
    database_file: bool = True,
    events_retry_schedule: str | None = None,
) -> Stack:
    """A fresh stack on free ports: dev server (database file in `state_dir`, or in memory
    without `database_file`), Iron sandbox, webhook receiver, the HTTP API, the partner's backend
    (signing through the API, for `sign_prefixes` only) and the named worker processes, which deliver events to it.
    Stops whatever started if a part fails. The dev server serves its metrics at `metrics_url`."""
    config = StackConfig.ephemeral(
        fresh_dir(state_dir), autopilot=autopilot, autopilot_seconds=autopilot_after, task_queue=task_queue,
        sign_prefixes=sign_prefixes, persistent=database_file, events_retry_schedule=events_retry_schedule,
    )
    stack = MeasuredStack(config)
    try:
        stack.start_temporal()
        stack.start_sandbox("--log-level", "warning")
        stack.start_receiver()
        stack.start_api()  # the partner's backend signs through it
        stack.start_partner_backend()
        for name in workers:
            stack.start_worker(name, *worker_args)
    except BaseException:
        stack.stop()
        raise
    return stack


async def connect(stack: Stack, queries: Any = None) -> Client:
    """A client for the stack's dev server with the same payload codec as its workers, built
    from the stack's environment (this process's own environment is left alone); `queries`, a
    `demo.query_counter.QueryCounter`, counts the workflow queries it sends."""
    from data_protection.codec import EncryptionCodec
    from runtime.settings import ProcessSettings

    ring = ProcessSettings.load(stack.env()).keyring()
    converter = pydantic_data_converter
    if ring is not None:
        converter = dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(ring))
    return await Client.connect(
        stack.temporal_address, namespace="default", data_converter=converter, runtime=_quiet_runtime(),
        interceptors=[queries] if queries is not None else [],
    )


_RUNTIME: Runtime | None = None


def _quiet_runtime() -> Runtime:
    """The SDK core warns on every retried call while a server restarts, which these runs do
    on purpose; errors still show."""
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = Runtime(
            telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")))
        )
    return _RUNTIME


async def bounded(call: Awaitable[T], seconds: float) -> T:
    return await asyncio.wait_for(call, seconds)


async def retrying(
    make_call: Callable[[], Awaitable[T]],
    *,
    deadline: float,
    what: str,
    per_try: float = 20.0,
    pause: float = 0.5,
    give_up_on: tuple[type[BaseException], ...] = (),
) -> T:
    """`make_call()` until it succeeds, each try bounded by `per_try` seconds and all of them
    by the monotonic `deadline`. For calls that are safe to repeat."""
    last: BaseException | None = None
    while True:
        try:
            return await asyncio.wait_for(make_call(), max(0.5, min(per_try, deadline - time.monotonic())))
        except give_up_on:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline, then reported
            last = exc
        if time.monotonic() + pause > deadline:
            raise TimeoutError(f"{what}: gave up at the deadline; last error {type(last).__name__}: {last}")
        await asyncio.sleep(pause)


def describe(state: OnboardingState) -> str:
    text = (
        f"phase={state.phase.value} cycle={state.cycle} customer={state.customer_status} "
        f"identification={state.identification_status}"
    )
    if state.needs_attention:
        text += f" needs_attention={state.needs_attention.step}: {state.needs_attention.reason}"
    return text


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process from /proc: current (VmRSS) and peak (VmHWM), in MB."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024.0
    return {"rss_mb": round(values.get("VmRSS", 0.0), 1), "peak_rss_mb": round(values.get("VmHWM", 0.0), 1)}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(min(rank, len(ordered))) - 1]


def machine() -> dict[str, Any]:
    memory_gib = None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    import temporalio

    return {
        "nproc": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "temporalio": getattr(temporalio, "__version__", None) or _package_version("temporalio"),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _package_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


# --- the dev server's own counters ---------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
# The families counted, and the prefix of their keys: `persistence:UpdateWorkflowExecution`,
# `visibility:UpsertWorkflowExecution`, `matching:AddActivityTask`, `history:SignalWorkflowExecution`.
_FAMILIES = {"persistence_requests": "persistence", "visibility_persistence_requests": "visibility",
             "service_requests": None}
# Writes of a workflow's mutable state: one transaction each (history events ride along in it).
EXECUTION_WRITES = ("CreateWorkflowExecution", "UpdateWorkflowExecution", "ConflictResolveWorkflowExecution",
                    "SetWorkflowExecution")
VISIBILITY_WRITES = ("RecordWorkflowExecutionStarted", "RecordWorkflowExecutionClosed", "UpsertWorkflowExecution",
                     "DeleteWorkflowExecution")
MATCHING_DISPATCHES = ("AddActivityTask", "AddWorkflowTask")


def server_counters(text: str, namespace: str = "default") -> Counter:
    """Requests by kind from the dev server's Prometheus text, for one namespace (visibility's
    for the whole server, which labels them with none)."""
    counts: Counter = Counter()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) not in _FAMILIES:
            continue
        labels = dict(_LABEL.findall(match.group(2)))
        # Visibility's requests carry no namespace label: the whole server's are counted.
        if labels.get("namespace", namespace) != namespace or "operation" not in labels:
            continue
        prefix = _FAMILIES[match.group(1)] or labels.get("service_name", "service")
        counts[f"{prefix}:{labels['operation']}"] += float(match.group(3))
    return counts


async def scrape_server(stack: Stack, timeout: float = 10.0) -> Counter:
    """The dev server's counters now; empty when the stack serves none."""
    import httpx

    url = getattr(stack, "metrics_url", None)
    if url is None:
        return Counter()
    async with httpx.AsyncClient(timeout=timeout) as http:
        response = await http.get(url)
        response.raise_for_status()
        return server_counters(response.text)


def server_work(delta: Counter, lifecycles: int) -> dict[str, float]:
    """Per lifecycle: mutable-state writes, matching dispatches and visibility writes, from
    the change in the dev server's counters over a round."""
    def per(keys: tuple[str, ...], prefix: str) -> float:
        return round(sum(delta[f"{prefix}:{k}"] for k in keys) / lifecycles, 2)

    return {
        "persistence_writes": per(EXECUTION_WRITES, "persistence"),
        "matching_dispatches": per(MATCHING_DISPATCHES, "matching"),
        "visibility_writes": per(VISIBILITY_WRITES, "visibility"),
        "add_activity_task": per(("AddActivityTask",), "matching"),
        "add_workflow_task": per(("AddWorkflowTask",), "matching"),
    }
