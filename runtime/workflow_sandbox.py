"""The sandbox the workflows run in: Temporal's, with this project's workflow modules passed
through rather than imported again for every workflow instance.

Temporal's sandbox executes every module it does not pass through anew for each workflow it
runs, cached or woken from its history: for `workflows/onboarding.py` that is the module's code
and `workflow.defn`'s inspection of the class, 0.07 MB of every cached workflow and 7 ms of
every wake (`python -m bench.scale`: 0.22 MB and 29 ms before, 0.148 MB and 21 ms after).
Everything the workflow modules import from this project was already passed through.

What passing through changes, and what stands in for it:
- the sandbox's restrictions on built-ins (`open`, ...) still apply to passed-through code; its
  restrictions on module members (`datetime.now`, `random`, `uuid.uuid4`) do not, so
  `tests/test_workflow_sandbox.py` reads the workflow modules' source for them;
- one module object serves every instance, so the modules keep no mutable state at module level
  (the same test checks each module-level value);
- replay of the recorded histories in CI proves determinism, as before.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# Packages whose modules every workflow instance shares.
PASSED_THROUGH = ("workflows",)


def sandboxed_runner(passed_through: tuple[str, ...] = PASSED_THROUGH) -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*passed_through))
