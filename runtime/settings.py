"""Process settings read from the environment, with the names operators set."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from contracts.messages import DEFAULT_TASK_QUEUE


def task_queue() -> str:
    return os.environ.get("ONBOARDING_TASK_QUEUE", DEFAULT_TASK_QUEUE)


def document_store_dir() -> Path:
    """Where the filesystem document store keeps identification data (`ONBOARDING_DOCUMENT_DIR`)."""
    return Path(os.environ.get("ONBOARDING_DOCUMENT_DIR", ".data/documents"))


def temporal_ui_url() -> str:
    return os.environ.get("TEMPORAL_UI_URL", "http://127.0.0.1:8233")


def workflow_ui_link(workflow_id: str, namespace: str | None = None) -> str:
    """The Temporal UI's list filtered to one workflow ID: stable across continue-as-new,
    where a run's own page (it needs the run ID) is not."""
    ns = namespace or os.environ.get("TEMPORAL_NAMESPACE", "default")
    query = urllib.parse.quote(f'WorkflowId="{workflow_id}"')
    return f"{temporal_ui_url().rstrip('/')}/namespaces/{ns}/workflows?query={query}"
