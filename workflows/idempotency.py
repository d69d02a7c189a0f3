"""Idempotency keys for Iron, derived from the workflow ID, the step and counters kept in
workflow state.

The same logical operation always gets the same key: across activity retries, worker crashes
and continue-as-new (the workflow ID survives all three; attempt numbers and run IDs do not).
A new logical operation (a new cycle, a renewed identification, another signing) gets a new
key because one of its counters moved.
"""

from __future__ import annotations

import uuid

# Fixed namespace: changing it would change every key and let retries create duplicates.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d7c1e-3b0a-4f5e-9a51-0c7d2b8e4a10")


def idempotency_key(workflow_id: str, step: str, *parts: object) -> str:
    name = "|".join([workflow_id, step, *(str(p) for p in parts)])
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, name))


def customer_key(workflow_id: str, attempt: int = 0) -> str:
    """Attempt 0 is the original start data; each `amend` of it is a new attempt."""
    if attempt == 0:
        return idempotency_key(workflow_id, "create_customer")
    return idempotency_key(workflow_id, "create_customer", attempt)


def identification_key(workflow_id: str, cycle: int, attempt: int) -> str:
    return idempotency_key(workflow_id, "create_identification", cycle, attempt)


def signing_key(workflow_id: str, cycle: int, content_id: str) -> str:
    return idempotency_key(workflow_id, "create_signing", cycle, content_id)
