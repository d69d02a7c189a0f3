"""`make demo`: the whole product on this machine, taking sample customers through onboarding.

    python -m demo [--keep-running] [--headless] [--state-dir DIR]

Starts the Temporal dev server (Web UI on http://127.0.0.1:8233, decoding through the local
codec server), the Iron sandbox in autopilot (a simulated customer completes hosted KYC a few
seconds after the link exists), the webhook receiver, the HTTP API (`python -m onboarding_api`),
the partner's backend (`demo/partner_backend.py`, which receives the engine's signed events and
signs through the API) and a worker; then drives four samples, each started through the API:

  alice   hosted link KYC, signs, Active
  bob     every webhook about him is dropped: the polling fallback still gets him to Active
          (its first read of Iron a minute after the KYC url, as in production)
  carol   Active, then Iron's compliance reverts her to IdentificationRequired (a step-up
          identification Iron creates), and she comes back to Active in cycle 2
  dave    Iron's compliance declines his identification: he waits, visibly, for an operator

Every sample's external id starts with `demo-`: a rerun terminates the samples of earlier runs
(their sandbox state is gone) and nothing else, so onboardings a person started beside them stay.

The demo learns every change from the events the partner's backend received (it asks the
backend, never Temporal: it sends no workflow query, and says so), and the backend signs each
document when an event says it is required.

Exits 0 when every sample reached its expected state with its events complete and in order.
Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from contracts.messages import workflow_id_for
from demo.partner_backend import EVENTS_PATH, PartnerBackendClient
from demo.query_counter import QueryCounter
from demo.stack import Stack, StackConfig

# Marks the demo's own samples: the only onboardings the demo ever terminates.
SAMPLE_PREFIX = "demo-"


@dataclass
class Sample:
    name: str
    story: str
    expected_phase: str
    expected_cycle: int
    external_id: str = ""
    final: dict = field(default_factory=dict)
    events: list = field(default_factory=list)  # as the partner's backend received them
    signed_by_backend: list = field(default_factory=list)

    @property
    def sequences(self) -> list[int]:
        return [e["sequence"] for e in self.events]

    @property
    def in_order(self) -> bool:
        return bool(self.events) and self.sequences == list(range(1, len(self.events) + 1))

    @property
    def ok(self) -> bool:
        return (
            self.final.get("phase") == self.expected_phase
            and self.final.get("cycle") == self.expected_cycle
            and self.in_order
        )


class Printer:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.started = time.monotonic()

    def line(self, who: str, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {who:<6} {text}", flush=True)


def describe_event(event: dict) -> str:
    data = event["data"]
    text = (
        f"event {event['sequence']:<2} {data['phase']:<24} customer={data.get('customer_status') or '-':<22} "
        f"kyc={data.get('identification_status') or '-':<13} cycle={data['cycle']}"
    )
    if data["phase"] == "AwaitingIdentification" and data.get("identification_url"):
        text += f"  kyc url {data['identification_url']}"
    elif data["phase"] == "AwaitingSignings":
        unsigned = [s["display_name"] for s in data.get("required_signings") or [] if not s.get("signed")]
        text += "  to sign: " + ", ".join(unsigned) + " (the backend signs them on this event)"
    elif data.get("needs_attention"):
        text += f"  needs attention: {data['needs_attention']['reason']}"
    return text


async def follow(sample: Sample, printer: Printer, until, *, timeout: float = 120.0) -> dict:
    """Print each event the partner's backend receives for the sample until `until(data)`
    holds for the newest one. The backend is asked (a long poll), never Temporal."""
    backend = _backend()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sample.events and until(sample.events[-1]["data"]):
            sample.final = dict(sample.events[-1]["data"])
            return sample.final
        try:
            arrived = await backend.events(
                sample.external_id, after=len(sample.events), wait=max(0.1, min(20.0, deadline - time.monotonic()))
            )
        except Exception:  # noqa: BLE001 - the backend restarting: ask again
            await asyncio.sleep(0.3)
            continue
        for event in arrived:
            sample.events.append(event)
            printer.line(sample.name, describe_event(event))
    if sample.events:
        sample.final = dict(sample.events[-1]["data"])
    raise TimeoutError(f"{sample.name} did not get there in {timeout:.0f}s")


_CLIENT = None
_BACKEND = None
# Every workflow query the demo's driver sends is counted: it follows customers by events.
QUERIES = QueryCounter()


async def _client():
    global _CLIENT
    if _CLIENT is None:
        from runtime.temporal import connect

        _CLIENT = await connect(interceptors=[QUERIES])
    return _CLIENT


def _backend() -> PartnerBackendClient:
    global _BACKEND
    if _BACKEND is None:
        import os

        _BACKEND = PartnerBackendClient(os.environ["ONBOARDING_EVENTS_URL"].removesuffix(EVENTS_PATH))
    return _BACKEND


_API = None


def _api():
    """The HTTP API, as the partner's backend reaches it (`ONBOARDING_API_URL`, `ONBOARDING_API_KEY`)."""
    global _API
    if _API is None:
        import os

        import httpx

        _API = httpx.AsyncClient(base_url=os.environ["ONBOARDING_API_URL"], timeout=90,
                                 headers={"Authorization": f"Bearer {os.environ['ONBOARDING_API_KEY']}"})
    return _API


async def start(sample: Sample, printer: Printer) -> None:
    from runtime.settings import workflow_ui_link

    # One request to the HTTP API (update-with-start behind it): it answers once the KYC url
    # exists. The Idempotency-Key makes a retry of it safe.
    answer = await _api().post(
        "/v1/onboardings", params={"wait": "identification_url", "timeout": 60},
        json={"external_id": sample.external_id, "email": f"{sample.name}@example.com", "name": sample.name.title()},
        headers={"Idempotency-Key": f"start-{sample.external_id}"},
    )
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"{sample.name}: the API answered {answer.status_code}: {answer.text[:300]}")
    onboarding = answer.json()["onboarding"]
    url = onboarding["identification_url"]
    printer.line(sample.name, f"{sample.story}\n{'':16}UI: {workflow_ui_link(onboarding['workflow_id'])}"
                              f"\n{'':16}start answered with the kyc url: {url or '-'}")


def reached(phase: str, cycle: int | None = None):
    return lambda data: data["phase"] == phase and (cycle is None or data["cycle"] == cycle)


async def run_alice(sample: Sample, printer: Printer) -> None:
    await start(sample, printer)
    await follow(sample, printer, reached("Active", 1))


async def run_dave(sample: Sample, printer: Printer) -> None:
    await start(sample, printer)
    await follow(sample, printer, reached("Declined"))


async def run_carol(sample: Sample, printer: Printer, control) -> None:
    await start(sample, printer)
    active = await follow(sample, printer, reached("Active", 1))
    printer.line(sample.name, "Iron's compliance reverts her: a step-up identification is required")
    await control.set_customer_status(active["iron_customer_id"], "IdentificationRequired")
    # The sandbox's simulated customer completes the step-up; approval makes her Active again.
    await follow(sample, printer, reached("Active", 2))


async def run_bob(sample: Sample, printer: Printer, control) -> None:
    printer.line(sample.name, "webhook delivery is switched off: Iron's events about bob never arrive")
    await control.set_webhooks(drop_rate=1.0)
    try:
        await start(sample, printer)
        # Only the workflow's own reads of Iron move him: the first a minute after the KYC url
        # (the production timings every start through the API gets).
        await follow(sample, printer, reached("Active", 1), timeout=180)
    finally:
        await control.set_webhooks(drop_rate=0.0)


def is_sample(workflow_id: str) -> bool:
    return workflow_id.startswith(workflow_id_for(SAMPLE_PREFIX))


async def close_previous_runs(client, printer: Printer | None = None) -> list[str]:
    """Samples of earlier demo runs survive in Temporal's database, but the sandbox's Iron
    state does not: terminate them, with a reason, rather than let them park on 404s. Only the
    demo's own samples (ids starting `demo-`): anything else in the database is left alone."""
    closed: list[str] = []
    others = 0
    async for execution in client.list_workflows('WorkflowType = "CustomerOnboarding" AND ExecutionStatus = "Running"'):
        # Filtered here, not in the query: prefix matching differs between visibility stores.
        if not is_sample(execution.id):
            others += 1
            continue
        await client.get_workflow_handle(execution.id).terminate(
            reason="demo restarted: the Iron sandbox these samples lived in is gone"
        )
        closed.append(execution.id)
    if printer and (closed or others):
        printer.line(
            "demo",
            f"terminated {len(closed)} sample(s) of earlier runs (their sandbox state is gone); "
            f"left {others} other onboarding(s) running",
        )
    return closed


async def drive(stack: Stack, run_id: str) -> list[Sample]:
    from iron_sandbox.testing import SandboxControl

    samples = {
        "alice": Sample("alice", "hosted KYC link, then signings", "Active", 1),
        "carol": Sample("carol", "Active, reverted by compliance, Active again", "Active", 2),
        "dave": Sample("dave", "identification declined by compliance", "Declined", 1),
        "bob": Sample("bob", "webhooks lost: polling recovers", "Active", 1),
    }
    for s in samples.values():
        s.external_id = f"{SAMPLE_PREFIX}{s.name}-{run_id}" if s.name != "dave" else f"{SAMPLE_PREFIX}dave-decline-{run_id}"
    printer = Printer(stack)
    control = SandboxControl(stack.sandbox_root)
    await close_previous_runs(await _client(), printer)
    results = await asyncio.gather(
        run_alice(samples["alice"], printer),
        run_carol(samples["carol"], printer, control),
        run_dave(samples["dave"], printer),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    try:
        await run_bob(samples["bob"], printer, control)
    except Exception as exc:  # reported in the summary
        errors.append(exc)
    for error in errors:
        print(f"  ! {error}", flush=True)
    try:
        signed = (await _backend().snapshot())["signed"]
    except Exception as exc:  # noqa: BLE001 - reported; the summary then shows nothing signed
        print(f"  ! the partner backend did not answer: {exc}", flush=True)
        signed = {}
    for s in samples.values():
        s.signed_by_backend = signed.get(s.external_id, [])
    return list(samples.values())


def summary(samples: list[Sample], stack: Stack) -> str:
    from runtime.settings import workflow_ui_link

    rows = [f"{'sample':<8} {'expected':<18} {'reached':<18} {'result':<6} {'events':<14} {'signed':<7} workflow"]
    for s in samples:
        reached = f"{s.final.get('phase', '?')} (cycle {s.final.get('cycle', '?')})"
        events = f"{len(s.events)}, {'in order' if s.in_order else 'GAPS'}"
        rows.append(
            f"{s.name:<8} {s.expected_phase + f' (cycle {s.expected_cycle})':<18} {reached:<18} "
            f"{'ok' if s.ok else 'FAILED':<6} {events:<14} {len(s.signed_by_backend):<7} "
            f"{workflow_ui_link('onboarding-' + s.external_id)}"
        )
    return "\n".join(rows)


def _shown(path: Path) -> str:
    """A path as a person types it from the repository root."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    parser.add_argument("--keep-running", action="store_true", help="leave the stack up to explore the UI and starter.py")
    parser.add_argument("--headless", action="store_true", help="free ports, no Web UI (for tests and CI)")
    parser.add_argument("--state-dir", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.headless:
        config = StackConfig.ephemeral(args.state_dir or Path(".demo-headless"), autopilot_seconds=1.0)
    else:
        config = StackConfig(state_dir=args.state_dir or StackConfig().state_dir)
    stack = Stack(config)
    stack.apply_to_current_process()
    # SIGTERM stops the stack the way Ctrl-C does: the processes run in their own sessions.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    run_id = secrets.token_hex(3)
    print("starting: Temporal dev server, codec server, Iron sandbox (autopilot), webhook receiver, "
          "HTTP API, partner backend, worker", flush=True)
    try:
        stack.start_all()
        env_file = stack.write_env_file()
        print(f"for starter.py and the temporal CLI in your shell: source {_shown(env_file)}", flush=True)
        print(f"HTTP API: {stack.api_url} (docs/http-api.md; the shell's $ONBOARDING_API_KEY is its key)", flush=True)
        if config.ui:
            print(f"Temporal UI: {stack.ui_url}  (payloads are encrypted; the UI decodes them through {stack.codec_url})")
        samples = asyncio.run(drive(stack, run_id))
        print()
        print(summary(samples, stack))
        ok = all(s.ok for s in samples)
        print(f"\nevents: what the partner's backend received, verified with standardwebhooks "
              f"({_shown(config.state_dir / 'logs' / 'partner-backend.log')}); signed: documents it signed "
              f"when an event asked; Temporal queries the demo sent: {QUERIES.total}")
        print(f"\n{'every sample reached its expected state' if ok else 'some samples did not reach their expected state'}"
              f" (logs: {config.state_dir / 'logs'})")
        if args.keep_running:
            print(f"\nThe stack stays up. Try:\n  source {_shown(env_file)}\n"
                  f"  python starter.py status {samples[0].external_id}\n"
                  f"  temporal workflow list --query 'ExecutionStatus = \"Running\"'\nCtrl-C to stop.", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping", flush=True)
        return 130
    except RuntimeError as exc:
        print(f"cannot run the demo: {exc}", flush=True)
        return 1
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    from runtime.process import exit_now

    exit_now(main())
