"""The copy of Iron's onboarding spec this client was written against (see README.md beside it).

`PINNED_API_VERSION` is the `X-API-Version` the client sends unless `IRON_API_VERSION` says
otherwise: the newest version the spec copy documents, so a change of Iron's default version
cannot alter the answers a running fleet reads. A test checks it against the spec copy; moving
to a newer version means taking a newer copy, reading its changes, and moving this constant.
"""

from __future__ import annotations

import os
from pathlib import Path

SPEC_PATH = Path(__file__).resolve().parent / "openapi-onboarding.yml"
PINNED_API_VERSION = "2026-07-01"
# Not a process setting: the test suite reads it to try another copy of the spec.
ENV_SPEC = "IRON_OPENAPI_SPEC"


def spec_path(override: str | os.PathLike[str] | None = None) -> Path:
    """The spec to use: `override` (the test suite passes `IRON_OPENAPI_SPEC`) if given, else
    the copy in this package."""
    text = str(override or "").strip()
    return Path(text) if text else SPEC_PATH


__all__ = ["SPEC_PATH", "PINNED_API_VERSION", "ENV_SPEC", "spec_path"]
