"""Process settings read from the environment, with the names operators set."""

from __future__ import annotations

import os
from pathlib import Path

from workflows.messages import DEFAULT_TASK_QUEUE


def task_queue() -> str:
    return os.environ.get("ONBOARDING_TASK_QUEUE", DEFAULT_TASK_QUEUE)


def document_store_dir() -> Path:
    """Where the filesystem document store keeps identification data (`ONBOARDING_DOCUMENT_DIR`)."""
    return Path(os.environ.get("ONBOARDING_DOCUMENT_DIR", ".data/documents"))


def temporal_ui_url() -> str:
    return os.environ.get("TEMPORAL_UI_URL", "http://127.0.0.1:8233")


def workflow_ui_link(workflow_id: str, namespace: str | None = None) -> str:
    ns = namespace or os.environ.get("TEMPORAL_NAMESPACE", "default")
    return f"{temporal_ui_url().rstrip('/')}/namespaces/{ns}/workflows/{workflow_id}"
