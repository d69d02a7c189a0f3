"""Signed webhook delivery, asynchronous and retried, with switchable faults.

Each state change becomes Iron's container `{type, timestamp, data: {customer_id, message}}`,
signed with `iron_client.webhooks.sign` (a fresh `webhook-id` and `webhook-timestamp` per
attempt) and POSTed to every target. Delivery never blocks the API answer: events are queued
on the server's loop. Per target, up to `concurrency` deliveries are in flight at once (8 by
default), first attempts start in emit order, and one customer's deliveries go one after the
other, so a busy target is not a single line shared by every customer, while one customer's
events still arrive in the order they happened unless a fault says otherwise. A failed attempt
(non-2xx or no connection) is retried on its own schedule with exponential backoff (0.2 s
doubling up to 10 s, 10 attempts by default), so one bad delivery does not hold up the rest.

Faults, switchable at run time: `drop_rate` (a delivery is never sent), `duplicate` (n extra
copies), `delay_ms` (each delivery waits that long after its event), `reorder` (deliveries that
arrive close together are sent in reverse order), `replay_stale` (each delivery is sent once more
with a validly signed but stale timestamp, which a receiver must refuse), `wrapped` (the message
wrapped in its variant name, as Iron sends it, or the bare form).

Webhooks as Iron keeps them: each target is a registered webhook (`id`, `label`, `url`,
`enabled`, `topics`, `last_failure`, `last_failure_reason`), listed by `GET /webhooks`, changed by
`PATCH /webhooks/{id}` and pinged by `POST /webhooks/{id}/ping`. An event goes to every enabled
webhook subscribed to its topic; a ping goes to the pinged webhook alone, whatever its topics, so
an operator can test an endpoint before turning it on. Setting `targets` on the control surface
registers one enabled webhook per url with the onboarding topics, replacing the others.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import httpx
import structlog

from iron_client.webhooks import build_container, sign
from iron_sandbox.clock import iso
from iron_sandbox.state import ApiError, Event, uuid7

# Event type -> the topic a webhook subscribes to for it.
TOPIC_OF = {
    "customer_created": "CustomerCreated",
    "customer_status": "CustomerStatus",
    "identification_status": "IdentificationStatus",
    "ping": "Ping",
}
DEFAULT_TOPICS = ("CustomerCreated", "CustomerStatus", "IdentificationStatus")


@dataclass
class RegisteredWebhook:
    id: str
    label: str
    url: str
    topics: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    last_failure: datetime | None = None
    last_failure_reason: str | None = None

    def to_api(self, partner_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "label": self.label,
            "url": self.url,
            "partner_id": partner_id,
            "topics": list(self.topics),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "enabled": self.enabled,
        }
        if self.last_failure is not None:
            out["last_failure"] = iso(self.last_failure)
            out["last_failure_reason"] = self.last_failure_reason or ""
        return out

log = structlog.get_logger("iron_sandbox.webhooks")


@dataclass
class WebhookSettings:
    targets: list[str] = field(default_factory=list)
    secret: str = field(default="", repr=False)
    wrapped: bool = True
    drop_rate: float = 0.0
    duplicate: int = 0
    delay_ms: float = 0.0
    reorder: bool = False
    reorder_window_ms: float = 300.0
    replay_stale: bool = False
    stale_seconds: int = 3600
    max_attempts: int = 10
    initial_backoff_ms: float = 200.0
    max_backoff_ms: float = 10_000.0
    timeout_seconds: float = 5.0
    concurrency: int = 8
    seed: int | None = None

    def updated(self, payload: Any) -> "WebhookSettings":
        """A copy with the given fields changed; raises ValueError for anything malformed."""
        if not isinstance(payload, dict):
            raise ValueError("body must be a JSON object")
        known = set(self.__dataclass_fields__)
        unknown = set(payload) - known
        if unknown:
            raise ValueError(f"unknown webhook fields: {sorted(unknown)}; known: {sorted(known)}")
        changes: dict[str, Any] = {}
        for name, value in payload.items():
            if name == "targets":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(
                    isinstance(v, str) and v.startswith(("http://", "https://")) for v in value
                ):
                    raise ValueError("targets must be a list of http(s) urls")
            elif name == "secret":
                if not isinstance(value, str) or not value:
                    raise ValueError("secret must be a non-empty string")
            elif name in ("wrapped", "reorder", "replay_stale"):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be a boolean")
            elif name == "drop_rate":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise ValueError("drop_rate must be a number between 0 and 1")
                value = float(value)
            elif name in ("duplicate", "stale_seconds", "max_attempts", "concurrency"):
                least = 1 if name in ("max_attempts", "concurrency") else 0
                if isinstance(value, bool) or not isinstance(value, int) or value < least:
                    raise ValueError(f"{name} must be an integer of at least {least}")
            elif name == "seed":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise ValueError("seed must be an integer")
            else:  # the millisecond and second durations
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{name} must be a non-negative number")
                value = float(value)
            changes[name] = value
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("secret")
        out["secret_set"] = bool(self.secret)
        return out


@dataclass
class _Delivery:
    seq: int
    event_seq: int
    target: str
    body: bytes
    event: dict[str, Any]
    kind: str  # "delivery", "duplicate" or "stale_replay"
    due: float


class WebhookDispatcher:
    def __init__(self, settings: WebhookSettings) -> None:
        self.initial = settings
        self.settings = replace(settings, targets=list(settings.targets))
        self._rng = random.Random(settings.seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.AsyncClient | None = None
        self._queues: dict[str, asyncio.Queue[_Delivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        # Per target: the slots for deliveries in flight, and the size they were made with.
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}
        # Per (target, customer): the latest first attempt, which the next one waits for.
        self._chains: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._events: deque[dict[str, Any]] = deque(maxlen=50_000)
        self._log: deque[dict[str, Any]] = deque(maxlen=50_000)
        self._event_seq = 0
        self._delivery_seq = 0
        self._pending = 0
        self._idle: asyncio.Event | None = None
        self._registry: dict[str, RegisteredWebhook] = {}
        self._register_targets(self.settings.targets)

    # --- the registered webhooks ---------------------------------------------------------------

    def _register_targets(self, urls: list[str]) -> None:
        now = datetime.now(timezone.utc)
        self._registry = {}
        for index, url in enumerate(urls, start=1):
            webhook_id = uuid7()
            self._registry[webhook_id] = RegisteredWebhook(
                id=webhook_id, label=f"webhook {index}", url=url, topics=list(DEFAULT_TOPICS), enabled=True,
                created_at=now, updated_at=now,
            )

    def _sync_targets(self) -> None:
        self.settings = replace(self.settings, targets=[w.url for w in self._registry.values()])

    def registered(self) -> list[RegisteredWebhook]:
        with self._lock:
            return list(self._registry.values())

    def registry_page(self, *, cursor: str | None, page_size: int, partner_id: str) -> dict[str, Any]:
        """`GET /webhooks`: oldest first; `cursor` is the id of a page's last webhook."""
        items = self.registered()
        start = 0
        if cursor is not None:
            ids = [w.id for w in items]
            if cursor not in ids:
                raise ApiError(400, "Invalid cursor")
            start = ids.index(cursor) + 1
        page = items[start:start + page_size]
        out: dict[str, Any] = {"items": [w.to_api(partner_id) for w in page]}
        if page and start + page_size < len(items):
            out["cursor"] = page[-1].id
        if page and start > 0:
            out["prev_cursor"] = page[0].id
        return out

    def update_webhook(
        self, webhook_id: str, *, url: str | None, enabled: bool | None, topics: list[str] | None, label: str | None
    ) -> RegisteredWebhook:
        with self._lock:
            webhook = self._registry.get(webhook_id)
            if webhook is None:
                raise ApiError(404, "Webhook not found")
            if url is not None:
                webhook.url = url
            if enabled is not None:
                webhook.enabled = enabled
            if topics is not None:
                webhook.topics = list(dict.fromkeys(topics))
            if label is not None:
                webhook.label = label
            webhook.updated_at = datetime.now(timezone.utc)
            self._sync_targets()
            return webhook

    def ping(self, webhook_id: str, customer_id: str) -> None:
        """Send a signed `ping` to one webhook, naming `customer_id`, whatever its topics."""
        with self._lock:
            webhook = self._registry.get(webhook_id)
            if webhook is None:
                raise ApiError(404, "Webhook not found")
            target = webhook.url
        self.emit(Event("ping", customer_id, "Ping", {"id": str(uuid.uuid4())}), only=[target])

    def _targets_for(self, event_type: str) -> list[str]:
        topic = TOPIC_OF.get(event_type)
        with self._lock:
            return [w.url for w in self._registry.values() if w.enabled and topic in w.topics]

    def _record_failure(self, target: str, reason: str) -> None:
        now = datetime.now(timezone.utc)
        with self._lock:
            for webhook in self._registry.values():
                if webhook.url == target:
                    webhook.last_failure = now
                    webhook.last_failure_reason = reason[:500]

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._http = httpx.AsyncClient(timeout=self.settings.timeout_seconds, follow_redirects=False)
        self._idle = asyncio.Event()
        self._idle.set()

    async def close(self) -> None:
        await self._cancel_all()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _cancel_all(self) -> None:
        tasks = list(self._workers.values()) + list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._workers.clear()
        self._tasks.clear()
        self._queues.clear()
        self._slots.clear()
        self._chains.clear()
        self._pending = 0
        if self._idle is not None:
            self._idle.set()

    async def reset(self) -> None:
        await self._cancel_all()
        with self._lock:
            self.settings = replace(self.initial, targets=list(self.initial.targets))
            self._rng = random.Random(self.initial.seed)
            self._events.clear()
            self._log.clear()
            self._register_targets(self.settings.targets)

    def configure(self, payload: Any) -> WebhookSettings:
        with self._lock:
            self.settings = self.settings.updated(payload)
            if "seed" in payload:
                self._rng = random.Random(self.settings.seed)
            if "targets" in payload:
                self._register_targets(self.settings.targets)
            return self.settings

    # --- emitting ------------------------------------------------------------------------------

    def emit(self, event: Event, *, only: list[str] | None = None) -> None:
        """Called by the state on every change, from any thread; never blocks. `only` sends to
        those urls instead of the subscribed webhooks (a ping)."""
        with self._lock:
            self._event_seq += 1
            seq = self._event_seq
            settings = self.settings
        container = build_container(
            event.type, event.customer_id, event.variant, event.message,
            timestamp=iso(datetime.now(timezone.utc)), wrapped=settings.wrapped,
        )
        record = {
            "seq": seq,
            "type": event.type,
            "customer_id": event.customer_id,
            "entity_id": event.message.get("id"),
            "status": event.message.get("status") or event.message.get("kind"),
            "at": container["timestamp"],
            "body": container,
        }
        with self._lock:
            self._events.append(record)
        if self._loop is None:
            return
        body = json.dumps(container, separators=(",", ":")).encode()
        targets = list(only) if only is not None else self._targets_for(event.type)
        try:
            self._loop.call_soon_threadsafe(self._enqueue, record, body, targets)
        except RuntimeError:  # the loop is closed: the server is shutting down
            pass

    def _enqueue(self, record: dict[str, Any], body: bytes, targets: list[str]) -> None:
        settings = self.settings
        assert self._loop is not None
        due = self._loop.time() + settings.delay_ms / 1000.0
        summary = {k: record[k] for k in ("type", "customer_id", "entity_id", "status")}
        for target in targets:
            if settings.drop_rate > 0 and self._rng.random() < settings.drop_rate:
                self._record(None, target, summary, record["seq"], "delivery", 0, outcome="dropped")
                continue
            kinds = ["delivery"] + ["duplicate"] * settings.duplicate + (["stale_replay"] if settings.replay_stale else [])
            queue = self._queue_for(target)
            for kind in kinds:
                self._delivery_seq += 1
                self._pending += 1
                assert self._idle is not None
                self._idle.clear()
                queue.put_nowait(_Delivery(self._delivery_seq, record["seq"], target, body, summary, kind, due))

    def _queue_for(self, target: str) -> asyncio.Queue[_Delivery]:
        queue = self._queues.get(target)
        if queue is None:
            queue = self._queues[target] = asyncio.Queue()
            self._workers[target] = asyncio.get_running_loop().create_task(self._worker(target, queue))
        return queue

    # --- delivering ----------------------------------------------------------------------------

    async def _worker(self, target: str, queue: asyncio.Queue[_Delivery]) -> None:
        """Takes the target's deliveries in emit order and starts each first attempt once a slot
        is free; the attempt itself runs in its own task (`_first_attempt`)."""
        assert self._loop is not None
        while True:
            batch = [await queue.get()]
            if self.settings.reorder:
                await asyncio.sleep(self.settings.reorder_window_ms / 1000.0)
                while not queue.empty():
                    batch.append(queue.get_nowait())
                batch.reverse()
            for delivery in batch:
                wait = delivery.due - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                slots = self._slots_for(target)
                await slots.acquire()
                key = (target, str(delivery.event.get("customer_id") or ""))
                task = self._spawn(self._first_attempt(delivery, slots, self._chains.get(key)))
                self._chains[key] = task
                task.add_done_callback(lambda done, key=key: self._forget_chain(key, done))

    def _spawn(self, work: Any) -> asyncio.Task[None]:
        assert self._loop is not None
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _forget_chain(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._chains.get(key) is task:
            del self._chains[key]

    def _slots_for(self, target: str) -> asyncio.Semaphore:
        wanted = self.settings.concurrency
        current = self._slots.get(target)
        if current is None or current[1] != wanted:  # a changed setting applies to the next deliveries
            current = self._slots[target] = (asyncio.Semaphore(wanted), wanted)
        return current[0]

    async def _first_attempt(self, delivery: _Delivery, slots: asyncio.Semaphore, after: asyncio.Task[None] | None) -> None:
        try:
            if after is not None:  # the same customer's previous event goes first
                await asyncio.wait([after])
            try:
                delivered = await self._attempt(delivery, 1)
            except asyncio.CancelledError:
                raise
            except Exception:  # one failed delivery never stops the others
                delivered = False
        finally:
            slots.release()
        if delivered or delivery.kind == "stale_replay" or self.settings.max_attempts <= 1:
            if not delivered and delivery.kind != "stale_replay":
                self._record(delivery, delivery.target, delivery.event, delivery.event_seq, delivery.kind, 1,
                             outcome="gave_up")
            self._done()
        else:  # retried on its own schedule: the customer's next event does not wait for it
            self._spawn(self._retry(delivery))

    async def _retry(self, delivery: _Delivery) -> None:
        try:
            settings = self.settings
            backoff = settings.initial_backoff_ms / 1000.0
            for attempt in range(2, settings.max_attempts + 1):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, settings.max_backoff_ms / 1000.0)
                try:
                    if await self._attempt(delivery, attempt):
                        return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    pass
            self._record(delivery, delivery.target, delivery.event, delivery.event_seq, delivery.kind,
                         settings.max_attempts, outcome="gave_up")
        finally:
            self._done()

    async def _attempt(self, delivery: _Delivery, attempt: int) -> bool:
        settings = self.settings
        assert self._http is not None
        timestamp = int(time.time())
        if delivery.kind == "stale_replay":
            timestamp -= settings.stale_seconds
        webhook_id = str(uuid.uuid4())
        headers = sign(settings.secret, delivery.body, timestamp=timestamp, webhook_id=webhook_id)
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self._http.post(
                delivery.target, content=delivery.body, headers=headers, timeout=settings.timeout_seconds
            )
            status_code = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        ok = status_code is not None and 200 <= status_code < 300
        if not ok and delivery.kind != "stale_replay":
            self._record_failure(delivery.target, f"HTTP {status_code}" if status_code is not None else (error or "no answer"))
        if delivery.kind == "stale_replay":
            outcome = "refused" if not ok else "accepted"
        else:
            outcome = "delivered" if ok else "failed"
        self._record(delivery, delivery.target, delivery.event, delivery.event_seq, delivery.kind, attempt,
                     outcome=outcome, status_code=status_code, error=error, webhook_id=webhook_id,
                     webhook_timestamp=timestamp)
        log.debug("webhook attempt", target=delivery.target, type=delivery.event["type"], attempt=attempt,
                  status_code=status_code, error=error, kind=delivery.kind)
        return ok

    def _record(self, delivery: _Delivery | None, target: str, summary: dict[str, Any], event_seq: int, kind: str,
                attempt: int, *, outcome: str, status_code: int | None = None, error: str | None = None,
                webhook_id: str | None = None, webhook_timestamp: int | None = None) -> None:
        entry = {
            "delivery_seq": delivery.seq if delivery else None,
            "event_seq": event_seq,
            **summary,
            "target": target,
            "kind": kind,
            "attempt": attempt,
            "outcome": outcome,
            "status_code": status_code,
            "error": error,
            "webhook_id": webhook_id,
            "webhook_timestamp": webhook_timestamp,
            "at": iso(datetime.now(timezone.utc)),
        }
        with self._lock:
            self._log.append(entry)

    def _done(self) -> None:
        self._pending = max(0, self._pending - 1)
        if self._pending == 0 and self._idle is not None:
            self._idle.set()

    # --- inspection ----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return self._pending

    async def flush(self, timeout: float) -> int:
        """Wait until no delivery is queued or being retried; returns what is still pending."""
        if self._idle is None:
            return 0
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self._pending

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)
