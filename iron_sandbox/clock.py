"""The sandbox's notion of "now".

Iron keeps idempotency keys for 24 hours. Tests cannot wait a day, so every time-dependent rule
(key expiry, resource timestamps) reads this clock, and the control surface can move it forward.
Webhook signatures always use the real wall clock: a receiver checks them against its own time.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Callable


class Clock:
    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._source() + self._offset

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=timezone.utc)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += float(seconds)

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset


def iso(dt: datetime) -> str:
    """RFC 3339 with microseconds and a `Z`, the way Iron writes timestamps."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
