"""Start, inspect and drive customer onboardings: a CLI for people, an API for backends.

    python starter.py start EXTERNAL_ID --email E [--customer-type Person|Business] [--name N]
                            [--identification link|token|person|business]
                            [--identification-file F.json] [--token T] [--intended-use U]
    python starter.py status EXTERNAL_ID [--json]
    python starter.py sign EXTERNAL_ID [CONTENT_ID ... | --all]
    python starter.py restart EXTERNAL_ID [--reason R] [--identification-file F.json]
    python starter.py refresh EXTERNAL_ID
    python starter.py adopt IRON_CUSTOMER_ID

Backends import the functions below (`start_onboarding`, `get_state`, `accept_signing`, ...)
with a client from `runtime.temporal.connect()`.

Exit codes: 0 done, 2 bad input, 3 no such onboarding, 4 rejected by the workflow or Iron,
5 Temporal or Iron unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from iron_client import IronClient, IronError, IronSettings
from iron_client.models import CustomerType, IdentificationKind, IdentificationParams
from runtime import settings
from runtime.temporal import connect
from contracts import search_attributes
from contracts.messages import (
    ENGINE_VERSION,
    QUERY_STATE,
    UPDATE_ACCEPT_SIGNING,
    UPDATE_REFRESH,
    UPDATE_RESTART_IDENTIFICATION,
    WORKFLOW_TYPE,
    AcceptSigningRequest,
    AcceptSigningResult,
    IdentificationRequest,
    OnboardingInput,
    OnboardingState,
    OnboardingTimings,
    RefreshRequest,
    RestartIdentificationRequest,
    RestartIdentificationResult,
    external_id_for_customer,
    workflow_id_for,
)

EXIT_OK, EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_REJECTED, EXIT_UNREACHABLE = 0, 2, 3, 4, 5


class OnboardingNotFound(LookupError):
    def __init__(self, external_id: str) -> None:
        super().__init__(f"no onboarding for external id {external_id!r} ({workflow_id_for(external_id)})")
        self.external_id = external_id


@dataclass(frozen=True)
class StartResult:
    workflow_id: str
    run_id: str | None
    started: bool  # False: an onboarding was already running and was attached to

    @property
    def ui_link(self) -> str:
        return settings.workflow_ui_link(self.workflow_id)


# --- API for backends --------------------------------------------------------------------------


async def start_onboarding(
    client: Client,
    external_id: str,
    *,
    email: str | None = None,
    customer_type: CustomerType | str = CustomerType.PERSON,
    name: str | None = None,
    identification: IdentificationRequest | None = None,
    iron_customer_id: str | None = None,
    timings: OnboardingTimings | None = None,
    task_queue: str | None = None,
    deliver_events: bool | None = None,
) -> StartResult:
    """Start one customer's onboarding, or attach to the one already running for that
    external id: never a second workflow, never a second Iron customer. Events go to the
    partner's backend when `deliver_events` says so (default: `ONBOARDING_EVENTS_URL` is set)."""
    workflow_input = OnboardingInput(
        engine_version=ENGINE_VERSION,
        deliver_events=bool(os.environ.get("ONBOARDING_EVENTS_URL")) if deliver_events is None else deliver_events,
        external_id=external_id,
        email=email,
        customer_type=CustomerType(customer_type),
        name=name,
        identification=identification or IdentificationRequest(),
        iron_customer_id=iron_customer_id,
        timings=timings or OnboardingTimings(),
    )
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        workflow_input,
        id=workflow_id_for(external_id),
        task_queue=task_queue or settings.task_queue(),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search_attributes.at_start(OnboardingState.first(workflow_input)),
    )
    response = getattr(handle, "_start_workflow_response", None)
    started = bool(getattr(response, "started", True))
    return StartResult(workflow_id=handle.id, run_id=handle.result_run_id, started=started)


async def adopt_customer(
    client: Client,
    iron: IronClient,
    iron_customer_id: str,
    *,
    identification: IdentificationRequest | None = None,
    timings: OnboardingTimings | None = None,
    task_queue: str | None = None,
) -> StartResult:
    """Take over an Iron customer created elsewhere, starting from its real current state."""
    customer = await iron.get_customer(iron_customer_id)
    return await start_onboarding(
        client,
        external_id_for_customer(customer.id, customer.external_id),
        customer_type=customer.customer_type,
        identification=identification,
        iron_customer_id=customer.id,
        timings=timings,
        task_queue=task_queue,
    )


def _handle(client: Client, external_id: str) -> WorkflowHandle:
    return client.get_workflow_handle(workflow_id_for(external_id))


async def _not_found_as_lookup(external_id: str, call):
    try:
        return await call
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise OnboardingNotFound(external_id) from None
        raise


async def get_state(client: Client, external_id: str) -> OnboardingState:
    handle = _handle(client, external_id)
    return await _not_found_as_lookup(
        external_id, handle.query(QUERY_STATE, result_type=OnboardingState)
    )


async def accept_signing(client: Client, external_id: str, content_id: str) -> AcceptSigningResult:
    handle = _handle(client, external_id)
    return await _not_found_as_lookup(
        external_id,
        handle.execute_update(
            UPDATE_ACCEPT_SIGNING, AcceptSigningRequest(content_id=content_id), result_type=AcceptSigningResult
        ),
    )


async def sign_all(client: Client, external_id: str) -> list[AcceptSigningResult]:
    state = await get_state(client, external_id)
    return [await accept_signing(client, external_id, s.id) for s in state.required_signings if not s.signed]


async def restart_identification(
    client: Client,
    external_id: str,
    *,
    reason: str = "operator restart",
    identification: IdentificationRequest | None = None,
) -> RestartIdentificationResult:
    handle = _handle(client, external_id)
    return await _not_found_as_lookup(
        external_id,
        handle.execute_update(
            UPDATE_RESTART_IDENTIFICATION,
            RestartIdentificationRequest(reason=reason, identification=identification),
            result_type=RestartIdentificationResult,
        ),
    )


async def refresh(client: Client, external_id: str) -> OnboardingState:
    handle = _handle(client, external_id)
    return await _not_found_as_lookup(
        external_id, handle.execute_update(UPDATE_REFRESH, RefreshRequest(), result_type=OnboardingState)
    )


# --- CLI ---------------------------------------------------------------------------------------


def format_state(state: OnboardingState) -> str:
    lines = [
        f"external id      {state.external_id}",
        f"phase            {state.phase.value}",
        f"customer         {state.iron_customer_id or '-'} ({state.customer_status or '-'})",
        f"identification   {state.identification_id or '-'} ({state.identification_status or '-'})",
    ]
    if state.identification_url:
        lines.append(f"identification url {state.identification_url}")
    lines.append(f"cycle            {state.cycle}")
    if state.outcome:
        lines.append(f"outcome          {state.outcome}")
    if state.needs_attention:
        a = state.needs_attention
        lines.append(f"NEEDS ATTENTION  at {a.step}: {a.reason} (since {a.since})")
    if state.required_signings:
        lines.append("signings:")
        for s in state.required_signings:
            lines.append(f"  [{'x' if s.signed else ' '}] {s.id}  {s.display_name}  {s.url}")
    if state.audit:
        lines.append("recent history:")
        for entry in state.audit[-8:]:
            lines.append(f"  {entry.at}  {entry.phase.value:<24} {entry.cause}")
    lines.append(f"ui               {settings.workflow_ui_link(workflow_id_for(state.external_id))}")
    return "\n".join(lines)


async def _identification_from_args(args: argparse.Namespace, *, check_only: bool = False) -> IdentificationRequest:
    """The identification request from the command line. With `check_only`, the data file is
    validated but not stored (a placeholder reference stands in for it)."""
    kind = IdentificationKind(args.identification.capitalize())
    document_ref = None
    if getattr(args, "identification_file", None):
        if kind not in (IdentificationKind.PERSON, IdentificationKind.BUSINESS):
            raise ValueError("--identification-file goes with --identification person or business")
        from data_protection.documents import (
            check_identification_params,
            document_store_from_env,
            store_identification_file,
        )

        path = Path(args.identification_file)
        if check_only:
            try:
                params = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read {path}: {exc}") from None
            check_identification_params(params, source=str(path))
            if isinstance(params, dict):  # the shape Iron expects, checked before anything starts
                TypeAdapter(IdentificationParams).validate_python({**params, "type": kind.value})
            document_ref = "fs:" + "0" * 32
        else:
            document_ref = await store_identification_file(document_store_from_env(), path)
    return IdentificationRequest(
        kind=kind,
        token=getattr(args, "token", None),
        intended_use=getattr(args, "intended_use", None),
        document_ref=document_ref,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="starter.py", description="Drive Iron customer onboardings.")
    sub = parser.add_subparsers(dest="command", required=True)

    start = sub.add_parser("start", help="start (or attach to) a customer's onboarding")
    start.add_argument("external_id")
    start.add_argument("--email", required=True)
    start.add_argument("--customer-type", default="Person", choices=["Person", "Business"])
    start.add_argument("--name")
    start.add_argument("--identification", default="link", choices=["link", "token", "person", "business"])
    start.add_argument("--identification-file", help="JSON identification data (person/business)")
    start.add_argument("--token", help="SumSub share token (token)")
    start.add_argument("--intended-use", default=None, help="Iron IntendedUse (token), e.g. Investing")

    status = sub.add_parser("status", help="show a customer's onboarding")
    status.add_argument("external_id")
    status.add_argument("--json", action="store_true", help="print the state query's JSON alone")

    sign = sub.add_parser("sign", help="report that the customer accepted required signings")
    sign.add_argument("external_id")
    sign.add_argument("content_ids", nargs="*")
    sign.add_argument("--all", action="store_true")

    restart = sub.add_parser("restart", help="operator restart after Declined or NeedsAttention")
    restart.add_argument("external_id")
    restart.add_argument("--reason", default="operator restart")
    restart.add_argument("--identification", choices=["link", "token", "person", "business"])
    restart.add_argument("--identification-file")
    restart.add_argument("--token")
    restart.add_argument("--intended-use", default=None)

    refresh_cmd = sub.add_parser("refresh", help="read Iron now")
    refresh_cmd.add_argument("external_id")

    adopt = sub.add_parser("adopt", help="take over an existing Iron customer")
    adopt.add_argument("iron_customer_id")
    return parser


def _onboarding_input(args: argparse.Namespace, identification: IdentificationRequest) -> OnboardingInput:
    return OnboardingInput(
        engine_version=ENGINE_VERSION,
        external_id=args.external_id,
        email=args.email,
        customer_type=CustomerType(args.customer_type),
        name=args.name,
        identification=identification,
    )


async def _run(args: argparse.Namespace, out) -> int:
    # Validate everything first: bad input is rejected before anything is stored or started.
    if args.command == "start":
        identification = await _identification_from_args(args, check_only=True)
        _onboarding_input(args, identification)
    if args.command == "restart" and args.identification:
        await _identification_from_args(args, check_only=True)
    client = await connect()
    if args.command == "start":
        identification = await _identification_from_args(args)
        result = await start_onboarding(
            client,
            args.external_id,
            email=args.email,
            customer_type=args.customer_type,
            name=args.name,
            identification=identification,
        )
        verb = "started" if result.started else "already running, attached to"
        print(f"{verb} {result.workflow_id}\n  {result.ui_link}", file=out)
        return EXIT_OK
    if args.command == "status":
        state = await get_state(client, args.external_id)
        print(state.model_dump_json(indent=2) if args.json else format_state(state), file=out)
        return EXIT_OK
    if args.command == "sign":
        if not args.content_ids and not args.all:
            state = await get_state(client, args.external_id)
            if not state.required_signings:
                print(f"no required signings (phase {state.phase.value})", file=out)
            for s in state.required_signings:
                print(f"[{'x' if s.signed else ' '}] {s.id}  {s.display_name}  {s.url}", file=out)
            return EXIT_OK
        results = (
            await sign_all(client, args.external_id)
            if args.all
            else [await accept_signing(client, args.external_id, cid) for cid in args.content_ids]
        )
        for r in results:
            print(f"signed {r.content_id} (signing {r.signing_id}); remaining: {len(r.remaining)}", file=out)
        if not results:
            print("nothing to sign", file=out)
        return EXIT_OK
    if args.command == "restart":
        identification = await _identification_from_args(args) if args.identification else None
        result = await restart_identification(
            client, args.external_id, reason=args.reason, identification=identification
        )
        print(f"restarted: phase {result.phase.value}, cycle {result.cycle}", file=out)
        return EXIT_OK
    if args.command == "refresh":
        print(format_state(await refresh(client, args.external_id)), file=out)
        return EXIT_OK
    if args.command == "adopt":
        async with IronClient(IronSettings.from_env()) as iron:
            result = await adopt_customer(client, iron, args.iron_customer_id)
        verb = "adopted as" if result.started else "already running, attached to"
        print(f"{verb} {result.workflow_id}\n  {result.ui_link}", file=out)
        return EXIT_OK
    raise AssertionError(args.command)


def main(argv: list[str] | None = None, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args, out))
    except OnboardingNotFound as exc:
        print(f"error: {exc}", file=err)
        return EXIT_NOT_FOUND
    except (ValidationError, ValueError) as exc:
        print(f"error: invalid input: {_describe_validation(exc)}", file=err)
        return EXIT_BAD_INPUT
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        print(f"rejected: {getattr(cause, 'message', None) or cause or exc}", file=err)
        return EXIT_REJECTED
    except IronError as exc:
        print(f"Iron: {exc}", file=err)
        return EXIT_REJECTED if not exc.retryable else EXIT_UNREACHABLE
    except RPCError as exc:
        if exc.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION):
            print(f"rejected: {exc.message}", file=err)
            return EXIT_REJECTED
        print(f"Temporal: {exc.message}", file=err)
        return EXIT_UNREACHABLE
    except (OSError, RuntimeError) as exc:
        print(f"cannot reach Temporal: {exc}", file=err)
        return EXIT_UNREACHABLE


def _describe_validation(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts: list[str] = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"]) or "input"
            parts.append(f"{where}: {e['msg']}")
        return "; ".join(parts)
    return str(exc)


def exit_now(code: int) -> None:
    """Leave without interpreter finalization: the Temporal client's native threads can abort
    a finalizing interpreter, which would turn a clean exit code into a crash."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
