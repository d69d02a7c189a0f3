"""A local, faithful stand-in for Iron's onboarding API (`python -m iron_sandbox`).

Iron's onboarding paths under `/api` (spec-conformant bodies and statuses, idempotency keys,
sub-partner scoping), signed webhooks with retries, switchable faults, and a control surface
under `/_sim` to play Iron's compliance team. In memory: a restart starts empty.
"""

from iron_sandbox.app import Sandbox, create_app
from iron_sandbox.config import SandboxConfig

__all__ = ["Sandbox", "SandboxConfig", "create_app"]
