"""A simulated customer who completes the hosted KYC on their own.

When enabled, every new identification is walked `Pending -> Processed -> PendingReview ->`
the decision, a few seconds after it was created and with small gaps between the steps, each
step emitting its webhook as a real review would. The decision is `approve`, `decline` or
`expire`; a customer whose external id contains "decline" is always declined. If anything else
moves the identification meanwhile (an operator, the sandbox endpoint), the autopilot steps
aside.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import structlog

from iron_sandbox.state import ApiError, SandboxState

log = structlog.get_logger("iron_sandbox.autopilot")
DECISIONS = {"approve": "Approved", "decline": "Declined", "expire": "Expired"}


@dataclass
class AutopilotSettings:
    enabled: bool = False
    complete_after_seconds: float = 2.0
    step_gap_seconds: float = 0.2
    decision: str = "approve"

    def updated(self, payload: Any) -> "AutopilotSettings":
        if not isinstance(payload, dict):
            raise ValueError("body must be a JSON object")
        unknown = set(payload) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown autopilot fields: {sorted(unknown)}")
        changes: dict[str, Any] = {}
        if "enabled" in payload:
            if not isinstance(payload["enabled"], bool):
                raise ValueError("enabled must be a boolean")
            changes["enabled"] = payload["enabled"]
        for name in ("complete_after_seconds", "step_gap_seconds"):
            if name in payload:
                value = payload[name]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{name} must be a non-negative number")
                changes[name] = float(value)
        if "decision" in payload:
            if payload["decision"] not in DECISIONS:
                raise ValueError(f"decision must be one of {sorted(DECISIONS)}")
            changes["decision"] = payload["decision"]
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Autopilot:
    def __init__(self, state: SandboxState, settings: AutopilotSettings, base_url: Callable[[], str]) -> None:
        self.state = state
        self.initial = settings
        self.settings = settings
        self.base_url = base_url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        state.creation_listeners.append(self.on_identification_created)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()

    async def reset(self) -> None:
        await self.close()
        with self._lock:
            self.settings = self.initial

    def configure(self, payload: Any) -> AutopilotSettings:
        with self._lock:
            self.settings = self.settings.updated(payload)
            return self.settings

    def on_identification_created(self, identification_id: str) -> None:
        settings = self.settings
        if not settings.enabled or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._spawn, identification_id, settings)
        except RuntimeError:
            pass

    def _spawn(self, identification_id: str, settings: AutopilotSettings) -> None:
        task = asyncio.get_running_loop().create_task(self._complete(identification_id, settings))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _complete(self, identification_id: str, settings: AutopilotSettings) -> None:
        await asyncio.sleep(settings.complete_after_seconds)
        snapshot = self.state.identification_snapshot(identification_id)
        if snapshot is None:
            return
        _, external_id = snapshot
        final = DECISIONS[settings.decision]
        if external_id and "decline" in external_id.lower():
            final = "Declined"
        steps = [("Pending", "Expired")] if final == "Expired" else [
            ("Pending", "Processed"), ("Processed", "PendingReview"), ("PendingReview", final)
        ]
        for index, (expect, target) in enumerate(steps):
            if index:
                await asyncio.sleep(settings.step_gap_seconds)
            try:
                self.state.sim_set_identification_status(
                    identification_id, target, base_url=self.base_url(), expect=expect
                )
            except ApiError:
                return  # moved by someone else, or gone: step aside
            log.info("autopilot step", identification_id=identification_id, status=target)
