"""Start, inspect and drive customer onboardings from a shell: the command line of the API in
`operations/onboardings.py`, which it re-exports under the names backends import.

    python starter.py start EXTERNAL_ID --email E [--customer-type Person|Business] [--name N]
                            [--identification link|token|person|business]
                            [--identification-file F.json] [--token T] [--intended-use U]
                            [--wait [--timeout S] [--json]]
    python starter.py status EXTERNAL_ID [--json] [--live]
    python starter.py wait EXTERNAL_ID --phase P [--phase P2 ...] [--timeout S] [--json]
    python starter.py sign EXTERNAL_ID [CONTENT_ID ... | --all]
    python starter.py restart EXTERNAL_ID [--reason R] [--identification K [--identification-file F.json]]
    python starter.py amend EXTERNAL_ID [--email E] [--name N] [--customer-type T]
    python starter.py refresh EXTERNAL_ID
    python starter.py adopt IRON_CUSTOMER_ID
    python starter.py report [--json] [--sub-partner ID] [--waiting-on-customer D] [--pending-review D] [--needs-attention D] [--declined D]
    python starter.py adopt --all [--status S ...] [--rate N] [--iron-rate N] [--concurrency N] [--json]
    python starter.py engines [--json]

Every command takes `--sub-partner ID` for a customer onboarded for an Iron sub-partner: an
onboarding is found by (sub-partner, external id).

Backends import `start_onboarding`, `get_state`, `wait_for`, `accept_signing`,
`amend_onboarding`, ... from here or from `operations.onboardings`, with a client from
`runtime.temporal.connect()`.

`main()` checks the command line, then loads its settings (`StarterSettings`) once, before
anything connects or is stored, and passes them down: the API's defaults run under them
(`operations.onboardings.using_settings`). Exit codes are every process's (docs/configuration.md,
"Exit codes"); a configuration it cannot use is `configuration: <VARIABLE>: ...` and 7, as in
every process. Every error is one line on stderr, never a traceback (`LOG_LEVEL=DEBUG` adds it).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

from iron_client import IronClient, IronError
from iron_client.errors import IronUnauthorized
from iron_client.models import IdentificationKind, IntendedUse
import operations.report
from data_protection.documents import DocumentStore
from runtime.settings import DocumentStoreSettings, workflow_ui_link
from runtime.process import (  # noqa: F401 - the exit codes, under the names scripts import
    EXIT_BAD_INPUT,
    EXIT_CONFIGURATION,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_START_DATA_DIFFERS,
    EXIT_UNEXPECTED,
    EXIT_UNREACHABLE,
    EXIT_WAIT_TIMED_OUT,
    exit_now,
)
from runtime.temporal import connect
from contracts.quoting import message_line, quoted
import operations.engines
import operations.fleet_schedule as fleet_reconcile
from contracts.messages import IdentificationRequest, OnboardingState, Phase
from contracts.start_metadata import START_DIGEST_MEMO, start_metadata
from contracts.state_view import OnboardingStateView
import operations.state_access as state_access
from operations.state_access import NoStateView, OnboardingClosed, WaitTimedOut  # noqa: F401 - part of the API
from operations.onboardings import (  # noqa: F401 - the API, under the names backends import
    BadInput,
    ConfigurationError,
    KINDS_WITH_FILE,
    NAME_MAX_LENGTH,
    OnboardingNotFound,
    StartDataDiffers,
    StartResult,
    TEXT_MAX_LENGTH,
    UnknownIronCustomer,
    accept_signing,
    adopt_customer,
    amend_onboarding,
    attach_to_running,
    build_onboarding_input,
    check_external_id,
    check_iron_customer_id,
    check_printable,
    check_sub_partner_format,
    check_sub_partner_id,
    check_token,
    check_wait,
    get_live_state,
    get_state,
    load_identification_file,
    normalise_email,
    not_found_as_lookup,
    onboarding_handle,
    onboarding_ui_link,
    refresh,
    restart_identification,
    sign_all,
    start_onboarding,
    using_settings,
    wait_for,
)


class StarterSettings(DocumentStoreSettings):
    """The starter's configuration: what every process shares (Iron, keys, task queue, events
    URL, the Temporal UI, logs) and the document store it writes identification files to."""


@dataclass(frozen=True)
class StarterConfiguration:
    """What the starter reads at start, loaded and built once: its settings, the data
    converter (the keys) and the document store."""

    settings: StarterSettings
    converter: DataConverter
    documents: DocumentStore


def load_configuration(environ: Mapping[str, str] | None = None) -> StarterConfiguration:
    """Every setting this process reads, checked before anything connects or is stored, so an
    unusable one is one line naming it, as in every other process: Iron's settings, the
    encryption keys, the document store, and whether onboardings send events."""
    starter_settings = StarterSettings.load(environ)
    keyring = starter_settings.keyring()
    return StarterConfiguration(
        settings=starter_settings,
        converter=starter_settings.data_converter(),
        documents=starter_settings.documents(keyring),
    )


# --- CLI ---------------------------------------------------------------------------------------


def format_state(state: OnboardingState, ui_link: str | None = None) -> str:
    """The state as a person reads it; `ui_link`: its Temporal UI link (`onboarding_ui_link`;
    default: the local development UI's)."""
    lines = [
        f"external id      {state.external_id}",
        *([f"sub-partner      {state.sub_partner_id}"] if state.sub_partner_id else []),
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
    if state.sla_breached:
        lines.append(f"SLA BREACHED     {state.sla_breached.sla}: {state.sla_breached.phase.value} since {state.sla_breached.since}")
    if getattr(state, "idle", None):
        lines.append(f"IDLE             {state.idle.phase.value} untouched since {state.idle.since}")
    outbox = getattr(state, "outbox", None)  # the state view has the flag and count as fields
    failing = outbox.failing_since if outbox is not None else getattr(state, "events_failing_since", None)
    if failing:
        waiting = len(outbox.pending) if outbox is not None else state.events_pending
        lines.append(f"EVENTS FAILING   the backend has refused them since {failing} ({waiting} waiting)")
    requirements = getattr(state, "requirements", None)  # the state view has them in one line
    requires = requirements.brief() if requirements and requirements.outstanding() else getattr(state, "requires", None)
    if requires:
        lines.append(f"iron requires    {requires}")
    if state.required_signings:
        lines.append("signings:")
        for s in state.required_signings:
            lines.append(f"  [{'x' if s.signed else ' '}] {s.id}  {s.display_name}  {s.url}")
    if getattr(state, "audit", None):
        lines.append("recent history:")
        for entry in state.audit[-8:]:
            lines.append(f"  {entry.at}  {entry.phase.value:<24} {entry.cause}")
    lines.append(f"ui               {ui_link or workflow_ui_link(state.workflow_id)}")
    return "\n".join(lines)


@dataclass
class IdentificationChoice:
    """The identification the command line asks for, checked; the data file read, not stored."""

    request: IdentificationRequest
    file_bytes: bytes | None = None
    content: Any = None


def identification_from_args(args: argparse.Namespace) -> IdentificationChoice | None:
    """What `--identification`, `--identification-file`, `--token` and `--intended-use` ask
    for; None when `restart` is given none of them (the original request is reused)."""
    kind_text = getattr(args, "identification", None)
    file_arg = getattr(args, "identification_file", None)
    token = getattr(args, "token", None)
    intended_use = getattr(args, "intended_use", None)
    if kind_text is None:
        for flag, value in (("--identification-file", file_arg), ("--token", token), ("--intended-use", intended_use)):
            if value is not None:
                raise BadInput(flag, "needs --identification (which kind: link, token, person or business)")
        return None
    kind = IdentificationKind(kind_text.capitalize())
    if kind in KINDS_WITH_FILE and file_arg is None:
        raise BadInput(
            "--identification-file",
            f"is required with --identification {kind_text}: a JSON file with the {kind.value} identification "
            f"data (see samples/{kind_text}_identification.json)",
        )
    if kind not in KINDS_WITH_FILE and file_arg is not None:
        raise BadInput("--identification-file", "goes with --identification person or business only")
    if kind == IdentificationKind.TOKEN:
        if token is None:
            raise BadInput("--token", "is required with --identification token (the SumSub share token)")
        if intended_use is None:
            raise BadInput("--intended-use", "is required with --identification token")
    else:
        for flag, value in (("--token", token), ("--intended-use", intended_use)):
            if value is not None:
                raise BadInput(flag, "goes with --identification token only")
    if token is not None:
        token = check_token(token, "--token")
    file_bytes = content = None
    if file_arg is not None:
        file_bytes, content = load_identification_file(file_arg, kind)
    request = IdentificationRequest.model_construct(
        kind=kind, token=token, intended_use=IntendedUse(intended_use) if intended_use else None,
    )
    return IdentificationChoice(request=request, file_bytes=file_bytes, content=content)


async def _with_document(choice: IdentificationChoice, documents: DocumentStore) -> IdentificationRequest:
    """The identification request, its data file stored in the document store."""
    ref = None
    if choice.file_bytes is not None:
        ref = await documents.put(choice.file_bytes, content_type="application/json")
    return IdentificationRequest(
        kind=choice.request.kind, token=choice.request.token, intended_use=choice.request.intended_use, document_ref=ref
    )


async def _forget_document(documents: DocumentStore, ref: str | None) -> None:
    if ref:
        await documents.delete(ref)


class _Parser(argparse.ArgumentParser):
    """argparse that reports to the caller's stream and exits 2, as every bad input does."""

    err = None

    def error(self, message: str):  # noqa: D401 - argparse's hook
        print(f"error: {message} (see python starter.py {self.prog.split()[-1]} --help)"
              if " " in self.prog else f"error: {message} (see python starter.py --help)",
              file=_Parser.err or sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="starter.py", description="Drive Iron customer onboardings.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    kinds = ["link", "token", "person", "business"]
    uses = [u.value for u in IntendedUse]

    start = sub.add_parser("start", help="start (or attach to) a customer's onboarding")
    start.add_argument("external_id")
    start.add_argument("--email", required=True)
    start.add_argument("--customer-type", default="Person", choices=["Person", "Business"])
    start.add_argument("--name")
    start.add_argument("--identification", default="link", choices=kinds)
    start.add_argument("--identification-file", help="JSON identification data (person/business)")
    start.add_argument("--token", help="SumSub share token (token)")
    start.add_argument("--intended-use", default=None, choices=uses, help="Iron IntendedUse (token)")
    start.add_argument("--wait", action="store_true", help="return once the identification url exists (or none will come)")
    start.add_argument("--timeout", type=float, help="with --wait: seconds to wait (60), then exit 8")
    start.add_argument("--json", action="store_true", help="with --wait: print the state JSON alone")

    status = sub.add_parser("status", help="show a customer's onboarding")
    status.add_argument("external_id")
    status.add_argument("--json", action="store_true", help="print the state JSON alone")
    status.add_argument("--live", action="store_true", help="ask the workflow (the state query) instead of its memo")

    wait_cmd = sub.add_parser("wait", help="return once the onboarding reaches a phase (exit 8 on timeout)")
    wait_cmd.add_argument("external_id")
    wait_cmd.add_argument("--phase", action="append", required=True, choices=[p.value for p in Phase])
    wait_cmd.add_argument("--timeout", type=float, default=300.0, help="seconds (300), then exit 8")
    wait_cmd.add_argument("--json", action="store_true", help="print the state JSON alone")

    sign = sub.add_parser("sign", help="report that the customer accepted required signings")
    sign.add_argument("external_id")
    sign.add_argument("content_ids", nargs="*")
    sign.add_argument("--all", action="store_true")

    restart = sub.add_parser("restart", help="operator restart after Declined or NeedsAttention")
    restart.add_argument("external_id")
    restart.add_argument("--reason", default="operator restart")
    restart.add_argument("--identification", choices=kinds)
    restart.add_argument("--identification-file")
    restart.add_argument("--token")
    restart.add_argument("--intended-use", default=None, choices=uses)

    amend = sub.add_parser("amend", help="correct the start data before the Iron customer exists")
    amend.add_argument("external_id")
    amend.add_argument("--email")
    amend.add_argument("--name")
    amend.add_argument("--customer-type", choices=["Person", "Business"])

    refresh_cmd = sub.add_parser("refresh", help="read Iron now")
    refresh_cmd.add_argument("external_id")

    adopt = sub.add_parser("adopt", help="take over an existing Iron customer, or every one without an onboarding")
    adopt.add_argument("iron_customer_id", nargs="?")
    from operations import backfill

    backfill.add_arguments(adopt)

    report_cmd = sub.add_parser("report", help="customers per phase, and those stuck past a threshold")
    operations.report.add_arguments(report_cmd)
    fleet_reconcile.add_command(sub)
    operations.engines.add_command(sub)
    for command in (start, status, wait_cmd, sign, restart, amend, refresh_cmd, adopt):
        command.add_argument(
            "--sub-partner", dest="sub_partner", metavar="ID",
            help="the Iron sub-partner (UUID) the customer is onboarded for; default: IRON_SUB_PARTNER_ID's scope",
        )
    report_cmd.add_argument(
        "--sub-partner", dest="sub_partner", metavar="ID",
        help="only the customers of this Iron sub-partner (UUID), or `default` for those without one; default: every customer",
    )
    return parser


# The workflow input's field names, as the command line spells them.
_FLAG_FOR_FIELD = {
    "external_id": "EXTERNAL_ID",
    "email": "--email",
    "name": "--name",
    "customer_type": "--customer-type",
    "iron_customer_id": "IRON_CUSTOMER_ID",
    "reason": "--reason",
    "content_id": "CONTENT_ID",
    "identification": "--identification",
    "sub_partner_id": "--sub-partner",
}


@dataclass
class Checked:
    """A command line with every value checked, before anything connects or is stored."""

    args: argparse.Namespace
    identification: IdentificationChoice | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def check_args(args: argparse.Namespace) -> Checked:
    """Everything that can be refused without Temporal or Iron is refused here."""
    checked = Checked(args)
    if hasattr(args, "external_id"):
        check_external_id(args.external_id)
    named = getattr(args, "sub_partner", None)
    # `report --sub-partner default`: the customers onboarded without a sub-partner. Whether an
    # id is the deployment's default scope needs the settings: `_run` decides it.
    checked.fields["sub_partner_id"] = check_sub_partner_format(None if (args.command, named) == ("report", "default") else named)
    if args.command == "start":
        checked.fields["email"] = normalise_email(args.email)
        if args.name is not None:
            checked.fields["name"] = check_printable(args.name, "--name", max_length=NAME_MAX_LENGTH, what="a name")
        checked.identification = identification_from_args(args)
        if not args.wait:
            for flag, value in (("--timeout", args.timeout), ("--json", args.json or None)):
                if value is not None:
                    raise BadInput(flag, "goes with --wait")
        elif args.timeout is not None:
            check_wait([], args.timeout, True, flag="--phase")
    elif args.command == "wait":
        check_wait(args.phase, args.timeout, flag="--phase")
    elif args.command == "restart":
        checked.fields["reason"] = check_printable(args.reason, "--reason", max_length=TEXT_MAX_LENGTH)
        checked.identification = identification_from_args(args)
    elif args.command == "amend":
        if args.email is None and args.name is None and args.customer_type is None:
            raise BadInput("amend", "nothing to amend: give --email, --name or --customer-type")
        if args.email is not None:
            checked.fields["email"] = normalise_email(args.email)
        if args.name is not None:
            checked.fields["name"] = check_printable(args.name, "--name", max_length=NAME_MAX_LENGTH, what="a name")
    elif args.command == "sign":
        if args.all and args.content_ids:
            raise BadInput("--all", "signs every required document: give CONTENT_ID values or --all, not both")
        for content_id in args.content_ids:
            check_token(content_id, "CONTENT_ID")
    elif args.command == "adopt":
        from operations.backfill import usage_problem

        if problem := usage_problem(args):
            raise BadInput(*problem)
        if not args.all:
            checked.fields["iron_customer_id"] = check_iron_customer_id(args.iron_customer_id)
    return checked


async def _start_from_cli(client: Client, checked: Checked, documents: DocumentStore) -> StartResult:
    args = checked.args
    choice = checked.identification
    kwargs = dict(
        email=checked.fields["email"], customer_type=args.customer_type, name=checked.fields.get("name"),
        identification_content=choice.content, sub_partner_id=checked.fields["sub_partner_id"],
    )
    wait = dict(wait=True, wait_timeout=args.timeout or state_access.DEFAULT_START_WAIT_SECONDS) if args.wait else {}
    if choice.file_bytes is not None:
        # Already running: compare without storing the data file a second time.
        try:
            running = await onboarding_handle(client, args.external_id, checked.fields["sub_partner_id"]).describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            running = None
        if running is not None and running.status == WorkflowExecutionStatus.RUNNING:
            placeholder = IdentificationRequest(kind=choice.request.kind, document_ref="fs:" + "0" * 32)
            workflow_input = build_onboarding_input(args.external_id, identification=placeholder, **{
                k: v for k, v in kwargs.items() if k != "identification_content"})
            digest = start_metadata(workflow_input, identification_content=choice.content)["memo"][START_DIGEST_MEMO]
            attached = await attach_to_running(client, args.external_id, digest, checked.fields["sub_partner_id"])
            if not wait:
                return attached
            waited = await not_found_as_lookup(args.external_id, state_access.wait(
                onboarding_handle(client, args.external_id, checked.fields["sub_partner_id"]), phases=state_access.NO_URL_PHASES, identification_url=True,
                timeout=wait["wait_timeout"], external_id=args.external_id), checked.fields["sub_partner_id"])
            return dataclasses.replace(attached, state=waited.state, reached=waited.reached)
    identification = await _with_document(choice, documents)
    try:
        result = await start_onboarding(client, args.external_id, identification=identification, documents=documents,
                                        **kwargs, **wait)
    except BaseException:
        await _forget_document(documents, identification.document_ref)
        raise
    if not result.started:
        await _forget_document(documents, identification.document_ref)
    return result


async def _status(
    client: Client, external_id: str, *, live: bool, err, sub_partner_id: str | None = None
) -> OnboardingState | OnboardingStateView:
    """The memo's state view; the live query with `--live`, or for a run that keeps no view."""
    scope = {"sub_partner_id": sub_partner_id}
    if not live:
        try:
            return await get_state(client, external_id, fallback_to_query=False, **scope)
        except NoStateView as missing:
            print(f"note: {missing}: asking the workflow's state query", file=err)
            return OnboardingStateView.of(await get_live_state(client, external_id, **scope))
    return await get_live_state(client, external_id, **scope)


def _print_waited(state: OnboardingStateView | None, reached: bool | None, args, out, err, intro: str = "",
                  ui_link: str | None = None) -> int:
    """What `wait` and `start --wait` print: the state like `status` (`--json`: its JSON alone),
    and exit 8 with one line on stderr when the wait timed out."""
    if state is not None:
        text = state.model_dump_json(indent=2) if args.json else (f"{intro}\n" if intro else "") + format_state(state, ui_link)
        print(text, file=out)
    if reached:
        return EXIT_OK
    timeout = args.timeout or state_access.DEFAULT_START_WAIT_SECONDS
    wanted = "an identification url" if args.command == "start" else " or ".join(args.phase)
    print(f"timed out: {args.external_id} did not reach {wanted} within {timeout:g} s "
          f"(phase {state.phase.value if state else 'unknown'})", file=err)
    return EXIT_WAIT_TIMED_OUT


async def _run(checked: Checked, configuration: StarterConfiguration, out, err) -> int:
    """The command, under the starter's settings (the API's defaults are theirs)."""
    args = checked.args
    # The deployment's own default sub-partner is the default scope (the settings say which).
    checked.fields["sub_partner_id"] = check_sub_partner_id(checked.fields["sub_partner_id"])
    scope = {"sub_partner_id": checked.fields["sub_partner_id"]}  # every command: (sub-partner, external id)
    process_settings = configuration.settings
    client = await connect(data_converter=configuration.converter)

    def ui_link(workflow_id: str) -> str:
        return onboarding_ui_link(client, workflow_id)

    if args.command == "start":
        result = await _start_from_cli(client, checked, configuration.documents)
        verb = "started" if result.started else "already running with the same start data, attached to"
        if not result.started and not result.compared:
            verb = "already running, attached to"
            print(f"note: {result.workflow_id} carries no start digest: its start data was not compared", file=err)
        if args.wait:
            return _print_waited(result.state, result.reached, args, out, err, intro=f"{verb} {result.workflow_id}",
                                 ui_link=result.ui_link)
        print(f"{verb} {result.workflow_id}\n  {result.ui_link}", file=out)
        return EXIT_OK
    if args.command == "status":
        state = await _status(client, args.external_id, live=args.live, err=err, **scope)
        print(state.model_dump_json(indent=2) if args.json else format_state(state, ui_link(state.workflow_id)), file=out)
        return EXIT_OK
    if args.command == "wait":
        link = ui_link(onboarding_handle(client, args.external_id, **scope).id)
        try:
            view = await wait_for(client, args.external_id, phases=args.phase, timeout=args.timeout, **scope)
        except WaitTimedOut as timed_out:
            return _print_waited(timed_out.state, False, args, out, err, ui_link=link)
        return _print_waited(view, True, args, out, err, ui_link=link)
    if args.command == "sign":
        if not args.content_ids and not args.all:
            state = await get_state(client, args.external_id, **scope)
            if not state.required_signings:
                print(f"no required signings (phase {state.phase.value})", file=out)
            for s in state.required_signings:
                print(f"[{'x' if s.signed else ' '}] {s.id}  {s.display_name}  {s.url}", file=out)
            return EXIT_OK
        results = (
            await sign_all(client, args.external_id, **scope)
            if args.all
            else [await accept_signing(client, args.external_id, cid, **scope) for cid in args.content_ids]
        )
        for r in results:
            print(f"signed {r.content_id} (signing {r.signing_id}); remaining: {len(r.remaining)}", file=out)
        if not results:
            print("nothing to sign", file=out)
        return EXIT_OK
    if args.command == "restart":
        identification = await _with_document(checked.identification, configuration.documents) if checked.identification else None
        try:
            result = await restart_identification(
                client, args.external_id, reason=checked.fields["reason"], identification=identification, **scope
            )
        except BaseException:
            await _forget_document(configuration.documents, identification.document_ref if identification else None)
            raise
        print(f"restarted: phase {result.phase.value}, cycle {result.cycle}", file=out)
        return EXIT_OK
    if args.command == "amend":
        amended = await amend_onboarding(
            client, args.external_id, email=checked.fields.get("email"), name=checked.fields.get("name"),
            customer_type=args.customer_type, **scope,
        )
        print(f"amended {', '.join(amended.amended) or 'nothing'}: phase {amended.phase.value}", file=out)
        return EXIT_OK
    if args.command == "refresh":
        state = await refresh(client, args.external_id, **scope)
        print(format_state(state, ui_link(state.workflow_id)), file=out)
        return EXIT_OK
    if args.command == "report":
        # `--sub-partner` naming the deployment's default scope reads as None once checked.
        only = None if args.sub_partner is None else (checked.fields["sub_partner_id"] or operations.report.DEFAULT_SCOPE)
        await operations.report.run(client, args, out, sub_partner=only, ui_url=process_settings.temporal_ui_url)
        return EXIT_OK
    if args.command == "adopt" and args.all:
        from operations.backfill import run_cli

        return await run_cli(client, args, out, err, iron_settings=process_settings.iron_settings())
    if args.command == "adopt":
        async with IronClient(process_settings.iron_settings()) as iron:
            result = await adopt_customer(client, iron, checked.fields["iron_customer_id"], **scope)
        verb = "adopted as" if result.started else "already running, attached to"
        print(f"{verb} {result.workflow_id}\n  {result.ui_link}", file=out)
        return EXIT_OK
    if args.command == "engines":
        await operations.engines.run_command(client, args, out)
        return EXIT_OK
    if args.command == "fleet-reconcile":
        await fleet_reconcile.run_command(client, args, process_settings.task_queue, out)
        return EXIT_OK
    raise AssertionError(args.command)


def main(argv: list[str] | None = None, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    _Parser.err = err
    configuration: StarterConfiguration | None = None
    try:
        args = _parser().parse_args(argv)
        checked = check_args(args)  # bad input is refused before anything connects or is stored
        configuration = load_configuration()  # every setting, once, before anything connects
        with using_settings(configuration.settings):
            return asyncio.run(_run(checked, configuration, out, err))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already reported)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    except Exception as exc:  # every error is one line with an exit code, never a traceback
        loaded = configuration.settings if configuration is not None else None
        code, message = explain(exc, loaded)
        print(message, file=err)
        if loaded is not None and loaded.log_level == "DEBUG":
            import traceback

            traceback.print_exception(exc, file=err)
        return code


def explain(exc: BaseException, starter_settings: StarterSettings | None = None) -> tuple[int, str]:
    """The exit code and the one line that tell a person what went wrong and what to do
    (`starter_settings`: the settings loaded, if they were, to name the variable at fault)."""
    from data_protection.documents import DocumentStoreUnavailable
    from data_protection.keys import DataProtectionError, KeyConfigurationError, KeyNotFoundError
    from data_protection.redaction import redact_text

    keys_hint = "set ONBOARDING_ENCRYPTION_KEY_FILE (or ONBOARDING_ENCRYPTION_KEYS) to the keys the worker uses"
    if isinstance(exc, BadInput):
        return EXIT_BAD_INPUT, f"error: {exc.flag}: {message_line(exc.rule)}"  # a rule may name a path given
    if isinstance(exc, WaitTimedOut):  # a TimeoutError, so an OSError: before those
        return EXIT_WAIT_TIMED_OUT, f"timed out: {exc}"
    if isinstance(exc, OnboardingClosed):
        return EXIT_REJECTED, f"rejected: {exc}"
    if isinstance(exc, ValidationError):
        return EXIT_BAD_INPUT, f"error: {_describe_validation(exc)}"
    if isinstance(exc, (OnboardingNotFound, UnknownIronCustomer)):
        return EXIT_NOT_FOUND, f"error: {exc}"
    if isinstance(exc, StartDataDiffers):
        flags = ", ".join(_FLAG_FOR_FIELD.get(f, f"--{f.replace('_', '-')}") for f in exc.fields)
        return EXIT_START_DATA_DIFFERS, (
            f"error: {exc.workflow_id} is already running, started with a different {flags}; nothing changed "
            f"(correct it with `python starter.py amend` while its Iron customer does not exist, "
            f"or `restart` for the identification)"
        )
    if isinstance(exc, WorkflowUpdateFailedError):
        reason = message_line(getattr(exc.cause, "message", None) or str(exc.cause or exc))
        if reason == "Encoded failure":  # the failure converter's placeholder: no codec to read it
            reason = f"the workflow's reason is encrypted and no encryption keys are configured to read it; {keys_hint}"
        return EXIT_REJECTED, f"rejected: {reason}"
    # Configuration: `configuration: <VARIABLE>: <what is wrong>`, as every process says it.
    if isinstance(exc, (KeyConfigurationError, ConfigurationError)):  # their messages name the variable first
        return EXIT_CONFIGURATION, f"configuration: {message_line(str(exc))}"
    if isinstance(exc, KeyNotFoundError):
        return EXIT_CONFIGURATION, f"configuration: {_keys_variable(starter_settings)}: {message_line(str(exc))}"
    if isinstance(exc, DataProtectionError):
        return EXIT_CONFIGURATION, (
            f"configuration: {_keys_variable(starter_settings)}: cannot decrypt this onboarding's data ({message_line(str(exc))}); "
            "set it to the keys the worker uses"
        )
    if _is_undecodable_payload(exc):
        return EXIT_CONFIGURATION, (
            f"configuration: {_keys_variable(starter_settings)}: not set, and this onboarding's data is encrypted: set it "
            "(or ONBOARDING_ENCRYPTION_KEYS) to the keys the worker uses (the demo's: source .demo/env.sh)"
        )
    if isinstance(exc, DocumentStoreUnavailable):
        return EXIT_UNREACHABLE, message_line(redact_text(str(exc)))
    if isinstance(exc, IronUnauthorized):
        return EXIT_CONFIGURATION, "configuration: IRON_API_KEY: Iron refused it (check IRON_BASE_URL too)"
    if isinstance(exc, IronError):
        code = EXIT_UNREACHABLE if exc.retryable else EXIT_REJECTED
        where = " (check IRON_BASE_URL)" if exc.retryable else ""
        return code, f"Iron: {message_line(redact_text(str(exc)))}{where}"
    if isinstance(exc, RPCError):
        return _explain_rpc(exc)
    if _is_temporal_env_config_error(exc):
        variable = "TEMPORAL_PROFILE" if "profile" in str(exc).lower() else "TEMPORAL_CONFIG_FILE"
        return EXIT_CONFIGURATION, f"configuration: {variable}: Temporal's env config: {message_line(redact_text(str(exc)))}"
    if isinstance(exc, RuntimeError) and "connect" in str(exc).lower():
        return EXIT_UNREACHABLE, (
            f"cannot reach Temporal at {_temporal_address()}: {_short_connect_error(str(exc))}; "
            "is the server running? set TEMPORAL_ADDRESS (and TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS) to reach it"
        )
    if isinstance(exc, OSError):
        return EXIT_UNREACHABLE, f"cannot reach Temporal at {_temporal_address()}: {message_line(redact_text(str(exc)))}"
    return EXIT_UNEXPECTED, (
        f"unexpected error ({type(exc).__name__}): {message_line(redact_text(str(exc)))}; "
        "LOG_LEVEL=DEBUG shows the traceback"
    )


def _explain_rpc(exc: RPCError) -> tuple[int, str]:
    from data_protection.redaction import redact_text

    message = message_line(redact_text(exc.message))
    if exc.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION):
        return EXIT_REJECTED, f"rejected: {message}"
    if exc.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
        return EXIT_CONFIGURATION, f"configuration: TEMPORAL_API_KEY: Temporal refused the credentials ({message}); set it, or TLS"
    if exc.status == RPCStatusCode.NOT_FOUND:
        return EXIT_CONFIGURATION, f"configuration: TEMPORAL_NAMESPACE: {message}"
    return EXIT_UNREACHABLE, f"Temporal at {_temporal_address()}: {message}"


def _is_temporal_env_config_error(exc: BaseException) -> bool:
    """Temporal's env config (a profile, its TOML file) could not be read: raised by the Python
    side of `temporalio.envconfig`, or as the native bridge's `ConfigError`."""
    kind = type(exc)
    return kind.__module__.startswith("temporalio.envconfig") or kind.__name__ == "ConfigError" or (
        "profile" in str(exc).lower() and not isinstance(exc, OSError)
    )


def _keys_variable(starter_settings: StarterSettings | None) -> str:
    """The variable that gives this process its encryption keys (the key file's when none does)."""
    from data_protection.keys import ENV_KEY_FILE, ENV_KEYS

    keys = starter_settings.encryption_keys if starter_settings is not None else None
    return ENV_KEYS if keys is not None and keys.get_secret_value().strip() else ENV_KEY_FILE


def _is_undecodable_payload(exc: BaseException) -> bool:
    """The pydantic converter's "Unknown payload encoding binary/encrypted": this process has
    no codec for the encrypted payloads it read."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, KeyError) and "binary/encrypted" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _temporal_address() -> str:
    """Where Temporal's env config points (the SDK reads `TEMPORAL_ADDRESS` and the profile)."""
    from runtime.temporal import DEFAULT_ADDRESS, connect_config

    try:
        return str(connect_config().get("target_host"))
    except Exception:
        return DEFAULT_ADDRESS


def _short_connect_error(text: str) -> str:
    for hint in ("Connection refused", "dns error", "timed out", "certificate", "tls", "Unauthenticated"):
        if hint.lower() in text.lower():
            return hint.lower()
    return message_line(text)[:160]


def _describe_validation(exc: ValidationError) -> str:
    parts: list[str] = []
    for e in exc.errors(include_input=False, include_url=False):
        where = quoted(".".join(str(p) for p in e["loc"])) if e["loc"] else "input"
        flag = _FLAG_FOR_FIELD.get(str(e["loc"][0]), where) if e["loc"] else where
        parts.append(f"{flag}: {message_line(e['msg'])}")
    return "; ".join(parts)


if __name__ == "__main__":
    exit_now(main())
