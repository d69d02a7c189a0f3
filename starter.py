"""Start, inspect and drive customer onboardings: a CLI for people, an API for backends.

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

Every command takes `--sub-partner ID` for a customer onboarded for an Iron sub-partner: an
onboarding is found by (sub-partner, external id).

Backends import the functions below (`start_onboarding`, `get_state`, `wait_for`,
`accept_signing`, `amend_onboarding`, ...) with a client from `runtime.temporal.connect()`.
`get_state` reads the state view in the workflow's memo (no workflow query); `wait_for` and
`start_onboarding(..., wait=True)` wait inside the workflow (update `wait_for`), no polling.

Exit codes: 0 done, 1 unexpected error (a defect: report it), 2 bad input (nothing started),
3 no such onboarding or Iron customer, 4 rejected by the workflow or Iron, 5 Temporal or Iron
unreachable, 6 already running with other start data (nothing changed), 7 configuration
(`configuration: <VARIABLE>: ...`, the same line and code as every process: encryption keys,
credentials, namespace, Iron's settings), 8 a wait timed out (`wait`, `start --wait`). Every
error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import email_validator
from pydantic import TypeAdapter, ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from iron_client import IronClient, IronError
from iron_client.errors import IronNotFound, IronUnauthorized
from iron_client.models import CustomerType, IdentificationKind, IdentificationParams, IntendedUse
import operations.report
from runtime import settings
from runtime.process import EXIT_CONFIGURATION, exit_now
from runtime.temporal import connect
from contracts import search_attributes
from contracts.quoting import quoted
import operations.fleet_schedule as fleet_reconcile
from contracts.messages import (
    ENGINE_VERSION,
    EXTERNAL_ID_MAX_LENGTH,
    UPDATE_ACCEPT_SIGNING,
    UPDATE_AMEND,
    UPDATE_REFRESH,
    UPDATE_RESTART_IDENTIFICATION,
    WORKFLOW_TYPE,
    AcceptSigningRequest,
    AcceptSigningResult,
    AmendRequest,
    AmendResult,
    IdentificationRequest,
    OnboardingInput,
    OnboardingState,
    OnboardingTimings,
    Phase,
    RefreshRequest,
    RestartIdentificationRequest,
    RestartIdentificationResult,
    _valid_external_id,
    canonical_sub_partner_id,
    external_id_for_customer,
    workflow_id_for,
)
from contracts.start_metadata import START_DIGEST_MEMO, differing_fields, start_metadata
from contracts.state_view import STATE_MEMO, WAIT_MAX_SECONDS, OnboardingStateView
import operations.state_access as state_access
from operations.state_access import NoStateView, OnboardingClosed, WaitTimedOut  # noqa: F401 - part of the API

EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_REJECTED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4, 5
# EXIT_CONFIGURATION (7) is every process's code for a configuration it cannot use (runtime.process).
EXIT_START_DATA_DIFFERS, EXIT_WAIT_TIMED_OUT = 6, 8

NAME_MAX_LENGTH = 200
TEXT_MAX_LENGTH = 500
TOKEN_MAX_LENGTH = 2048
# An identification file holds a few base64 documents of up to 10 MB each (Iron's limit, checked
# per document): 64 MiB is above any valid file and keeps a wrong file from filling memory.
IDENTIFICATION_FILE_MAX_BYTES = 64 * 1024 * 1024
# Iron's Person and Business params nest a handful of levels; beneficiaries may nest businesses.
IDENTIFICATION_FILE_MAX_DEPTH = 32
KINDS_WITH_FILE = (IdentificationKind.PERSON, IdentificationKind.BUSINESS)


# --- errors a caller can act on ------------------------------------------------------------------


class BadInput(ValueError):
    """Input refused before anything is stored or started: which flag, which rule."""

    def __init__(self, flag: str, rule: str) -> None:
        super().__init__(f"{flag}: {rule}")
        self.flag = flag
        self.rule = rule


class OnboardingNotFound(LookupError):
    def __init__(self, external_id: str, sub_partner_id: str | None = None) -> None:
        scope = f" of sub-partner {sub_partner_id}" if sub_partner_id else ""
        super().__init__(
            f"no onboarding for external id {quoted(external_id)}{scope} ({workflow_id_for(external_id, sub_partner_id)})"
        )
        self.external_id = external_id
        self.sub_partner_id = sub_partner_id


class UnknownIronCustomer(LookupError):
    def __init__(self, iron_customer_id: str) -> None:
        super().__init__(f"Iron has no customer {iron_customer_id}")
        self.iron_customer_id = iron_customer_id


class StartDataDiffers(Exception):
    """A start for an external id whose running onboarding was started with other data."""

    def __init__(self, workflow_id: str, fields: list[str]) -> None:
        self.workflow_id = workflow_id
        self.fields = fields
        super().__init__(f"{workflow_id} is already running with a different {', '.join(fields)}")


# Something to set or fix in the environment before this can work; the message names the
# variable first (`TEMPORAL_NAMESPACE: ...`). The one class every process raises.
ConfigurationError = settings.ConfigurationError


@dataclass(frozen=True)
class StartResult:
    workflow_id: str
    run_id: str | None
    started: bool  # False: an onboarding was already running and was attached to
    # Attached to a running onboarding that carries no start digest (started by the webhook
    # receiver's adoption, say): its start data could not be compared.
    compared: bool = True
    # With wait=True: the state view when the call returned, and whether the identification url
    # (or a phase where none will come) was reached before the timeout.
    state: OnboardingStateView | None = None
    reached: bool | None = None

    @property
    def ui_link(self) -> str:
        return settings.workflow_ui_link(self.workflow_id)


# --- validation: one rule per field, the same for the CLI and the API -----------------------------


def check_external_id(value: str, flag: str = "EXTERNAL_ID") -> str:
    if not isinstance(value, str) or not _valid_external_id(value):
        raise BadInput(
            flag,
            f"must be 1 to {EXTERNAL_ID_MAX_LENGTH} printable characters, without spaces or control characters, "
            "and not `.` or `..` (a URL would resolve them to another path)",
        )
    return value


def normalise_email(value: str, flag: str = "--email") -> str:
    """The address as Iron should get it, checked by `email-validator` (syntax only: this
    machine may be offline, and deliverability is Iron's business)."""
    if not isinstance(value, str) or not value.strip():
        raise BadInput(flag, "must be an email address")
    try:
        checked = email_validator.validate_email(value.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise BadInput(flag, f"is not a valid email address: {_one_line(str(exc))}") from None
    return checked.normalized


def check_printable(value: str, flag: str, *, max_length: int, what: str = "text") -> str:
    """Trimmed, NFC-normalised, 1 to `max_length` characters, none of them a control or
    line-breaking character (a name ends up in Iron and in logs' neighbours)."""
    if not isinstance(value, str):
        raise BadInput(flag, f"must be {what}")
    text = unicodedata.normalize("NFC", value.strip())
    if not text:
        raise BadInput(flag, "must not be empty")
    if len(text) > max_length:
        raise BadInput(flag, f"must be at most {max_length} characters (got {len(text)})")
    if not text.isprintable():
        raise BadInput(flag, "must hold printable characters only (no control characters or line breaks)")
    return text


def check_token(value: str, flag: str) -> str:
    if not isinstance(value, str) or not value or len(value) > TOKEN_MAX_LENGTH:
        raise BadInput(flag, f"must be 1 to {TOKEN_MAX_LENGTH} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise BadInput(flag, "must not contain spaces or control characters")
    return value


def check_iron_customer_id(value: str, flag: str = "IRON_CUSTOMER_ID") -> str:
    """Iron's customer ids are UUIDs: anything else cannot name a customer."""
    rule = "must be an Iron customer id (a UUID such as 0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f)"
    if not isinstance(value, str) or len(value) > 64:
        raise BadInput(flag, rule)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadInput(flag, rule) from None


def check_sub_partner_id(value: str | None, flag: str = "--sub-partner") -> str | None:
    """The sub-partner scope an onboarding belongs to: a UUID in canonical form, or None for the
    default scope. Naming the deployment's default sub-partner (`IRON_SUB_PARTNER_ID`) is the
    default scope itself: its customers keep `onboarding-{external_id}`, whoever names them."""
    if value is None:
        return None
    try:
        sub_partner_id = canonical_sub_partner_id(value)
    except ValueError:
        raise BadInput(flag, "must be an Iron sub-partner id (a UUID such as 0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f)") from None
    return None if sub_partner_id == _default_sub_partner_id() else sub_partner_id


def _default_sub_partner_id() -> str | None:
    try:
        return canonical_sub_partner_id(os.environ["IRON_SUB_PARTNER_ID"])
    except (KeyError, ValueError):
        return None


def load_identification_file(path: str | os.PathLike[str], kind: IdentificationKind,
                             flag: str = "--identification-file") -> tuple[bytes, Any]:
    """Read and check a Person or Business identification data file: (raw bytes, parsed).
    Missing, unreadable, too big, not UTF-8, not JSON, nested too deep, a document above
    Iron's 10 MB, or not the shape Iron expects: each is refused, naming the flag and the rule."""
    from data_protection.documents import IdentificationFileError, check_identification_params

    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise BadInput(flag, f"{path} is not a file")
        if size > IDENTIFICATION_FILE_MAX_BYTES:
            raise BadInput(flag, f"{path} is {size} bytes, above the limit of {IDENTIFICATION_FILE_MAX_BYTES} bytes")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(flag, f"{path} does not exist") from None
    except OSError as exc:
        raise BadInput(flag, f"{path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(flag, f"{path} is not UTF-8 text (invalid byte at offset {exc.start})") from None
    depth = _nesting_depth(text)
    if depth > IDENTIFICATION_FILE_MAX_DEPTH:
        raise BadInput(flag, f"{path} nests deeper than {IDENTIFICATION_FILE_MAX_DEPTH} levels")
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(flag, f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError):
        raise BadInput(flag, f"{path} is not valid JSON") from None
    try:
        check_identification_params(params, source=str(path))
    except IdentificationFileError as exc:
        raise BadInput(flag, _one_line(str(exc))) from None
    if params.get("type", kind.value) != kind.value:
        raise BadInput(flag, f"{path} holds a {params.get('type')} identification, not {kind.value}")
    try:  # the shape Iron expects, checked before anything starts
        TypeAdapter(IdentificationParams).validate_python({**params, "type": kind.value})
    except ValidationError as exc:
        problems = "; ".join(
            f"{quoted('.'.join(str(p) for p in e['loc'][1:])) if e['loc'][1:] else 'file'}: {_one_line(e['msg'])}"
            for e in exc.errors(include_input=False, include_url=False)[:5]
        )
        raise BadInput(flag, f"{path} is not {kind.value} identification data Iron accepts ({problems})") from None
    return raw, params


def _nesting_depth(text: str) -> int:
    """How deep JSON brackets nest, strings skipped: measured before parsing, so a hostile file
    cannot exhaust the parser's recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > IDENTIFICATION_FILE_MAX_DEPTH:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def build_onboarding_input(
    external_id: str,
    *,
    email: str | None = None,
    customer_type: CustomerType | str = CustomerType.PERSON,
    name: str | None = None,
    identification: IdentificationRequest | None = None,
    iron_customer_id: str | None = None,
    timings: OnboardingTimings | None = None,
    sub_partner_id: str | None = None,
) -> OnboardingInput:
    """The workflow input, every field checked and normalised; BadInput names what is wrong."""
    check_external_id(external_id, "external_id")
    sub_partner_id = check_sub_partner_id(sub_partner_id, "sub_partner_id")
    if email is not None:
        email = normalise_email(email, "email")
    if name is not None:
        name = check_printable(name, "name", max_length=NAME_MAX_LENGTH, what="a name")
    try:
        customer_type = CustomerType(customer_type)
    except ValueError:
        raise BadInput("customer_type", f"must be one of {', '.join(t.value for t in CustomerType)}") from None
    if iron_customer_id is not None:
        iron_customer_id = check_iron_customer_id(iron_customer_id, "iron_customer_id")
    if not iron_customer_id and not email:
        raise BadInput("email", "is required to create a customer (or give iron_customer_id to adopt one)")
    return OnboardingInput(
        engine_version=ENGINE_VERSION,
        external_id=external_id,
        email=email,
        customer_type=customer_type,
        name=name,
        identification=identification or IdentificationRequest(),
        iron_customer_id=iron_customer_id,
        timings=timings or OnboardingTimings(),
        **({"sub_partner_id": sub_partner_id} if sub_partner_id else {}),
    )


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
    started_by: str = "starter",
    identification_content: Any = None,
    compare_start_data: bool = True,
    deliver_events: bool | None = None,
    wait: bool = False,
    wait_timeout: float = state_access.DEFAULT_START_WAIT_SECONDS,
    sub_partner_id: str | None = None,
) -> StartResult:
    """Start one customer's onboarding, or attach to the one already running for that
    external id (in that sub-partner's scope): never a second workflow, never a second Iron
    customer. `sub_partner_id` onboards the customer for that Iron sub-partner (None: the
    default scope, `IRON_SUB_PARTNER_ID`); a non-UUID raises BadInput.

    Raises BadInput for input no onboarding could use, and StartDataDiffers when the running
    onboarding was started with other data (`amend_onboarding` corrects it while the Iron
    customer does not exist yet). `identification_content`, the parsed identification data,
    is what a second start compares instead of the document reference. Events go to the
    partner's backend when `deliver_events` says so (default: `ONBOARDING_EVENTS_URL` is set);
    after an earlier onboarding of this customer that was closed (terminated, say), their
    sequence goes on from its last one.

    With `wait=True` the start (or attach) and a wait are one round trip (update-with-start):
    it returns once the identification url exists or the customer is in a phase where none will
    come (`AwaitingSignings`, `Active`, `Declined`, `NeedsAttention`, `Suspended`, `Archived`),
    or `wait_timeout` seconds passed (`reached` False); `state` is the state view."""
    workflow_input = build_onboarding_input(
        external_id,
        email=email,
        customer_type=customer_type,
        name=name,
        identification=identification,
        iron_customer_id=iron_customer_id,
        timings=timings,
        sub_partner_id=sub_partner_id,
    )
    if deliver_events is None:
        deliver_events = bool(os.environ.get("ONBOARDING_EVENTS_URL"))
    # A customer whose earlier onboarding was closed (terminated, say) goes on with its sequence.
    events_after = await state_access.last_event_sequence(client, workflow_input.workflow_id)
    workflow_input = workflow_input.model_copy(update={"deliver_events": deliver_events, "events_after": events_after})
    metadata = start_metadata(workflow_input, started_by=started_by, identification_content=identification_content)
    metadata["memo"][STATE_MEMO] = OnboardingStateView.of(OnboardingState.first(workflow_input)).to_memo()
    if wait:
        return await _start_and_wait(client, workflow_input, metadata, task_queue, compare_start_data, wait_timeout)
    try:
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            workflow_input,
            id=workflow_input.workflow_id,
            task_queue=task_queue or settings.task_queue(),
            # FAIL, then attach below: the public way to know whether this call started it.
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=search_attributes.at_start(OnboardingState.first(workflow_input)),
            **metadata,
        )
    except WorkflowAlreadyStartedError:
        return await _attach(
            client, external_id, metadata["memo"][START_DIGEST_MEMO] if compare_start_data else None,
            workflow_input.sub_partner_id,
        )
    return StartResult(workflow_id=handle.id, run_id=handle.result_run_id, started=True)


async def _start_and_wait(client: Client, workflow_input: OnboardingInput, metadata: dict[str, Any],
                          task_queue: str | None, compare: bool, timeout: float) -> StartResult:
    external_id = workflow_input.external_id
    digest = metadata["memo"][START_DIGEST_MEMO]
    try:
        outcome = await state_access.start_and_wait(
            client, workflow_input, workflow_id=workflow_input.workflow_id, task_queue=task_queue or settings.task_queue(),
            search_attributes=search_attributes.at_start(OnboardingState.first(workflow_input)), metadata=metadata,
            start_digest=digest if compare else None, timeout=timeout,
        )
    except WorkflowUpdateFailedError:  # attached to a run that cannot wait: differing data says so first
        await _attach(client, external_id, digest if compare else None, workflow_input.sub_partner_id)
        raise
    r = outcome.result
    if r.start_data_differs:
        raise StartDataDiffers(workflow_input.workflow_id, r.start_data_differs)
    return StartResult(workflow_id=workflow_input.workflow_id, run_id=outcome.run_id, started=r.started,
                       compared=r.started or r.start_data_differs is not None, state=r.state, reached=r.reached)


async def _attach(
    client: Client, external_id: str, wanted_digest: dict[str, str] | None, sub_partner_id: str | None = None
) -> StartResult:
    """The running onboarding for `external_id`, once its start data is known to match."""
    handle = _handle(client, external_id, sub_partner_id)
    description = await _not_found_as_lookup(external_id, handle.describe(), sub_partner_id)
    compared = wanted_digest is not None
    if wanted_digest is not None:
        memo = await description.memo()
        differs = differing_fields(memo.get(START_DIGEST_MEMO), wanted_digest)
        if differs is None:
            compared = False
        elif differs:
            raise StartDataDiffers(handle.id, differs)
    return StartResult(workflow_id=handle.id, run_id=description.run_id, started=False, compared=compared)


async def adopt_customer(
    client: Client,
    iron: IronClient,
    iron_customer_id: str,
    *,
    identification: IdentificationRequest | None = None,
    timings: OnboardingTimings | None = None,
    task_queue: str | None = None,
    sub_partner_id: str | None = None,
) -> StartResult:
    """Take over an Iron customer created elsewhere, starting from its real current state.
    `sub_partner_id`: the sub-partner scope the customer lives in at Iron (read and onboarded
    there). Raises BadInput for an id that is not Iron's, UnknownIronCustomer when Iron has none
    in that scope."""
    iron_customer_id = check_iron_customer_id(iron_customer_id)
    sub_partner_id = check_sub_partner_id(sub_partner_id, "sub_partner_id")
    try:
        customer = await iron.scoped(sub_partner_id).get_customer(iron_customer_id)
    except IronNotFound:
        raise UnknownIronCustomer(iron_customer_id) from None
    return await start_onboarding(
        client,
        external_id_for_customer(customer.id, customer.external_id),
        customer_type=customer.customer_type,
        identification=identification,
        iron_customer_id=customer.id,
        timings=timings,
        task_queue=task_queue,
        started_by="adopt",
        # Attaching to a running onboarding is what adoption wants, however it began.
        compare_start_data=False,
        sub_partner_id=sub_partner_id,
    )


def _handle(client: Client, external_id: str, sub_partner_id: str | None = None) -> WorkflowHandle:
    """The onboarding of (sub-partner, external id): `workflow_id_for` names it."""
    return client.get_workflow_handle(workflow_id_for(external_id, check_sub_partner_id(sub_partner_id, "sub_partner_id")))


async def _not_found_as_lookup(external_id: str, call, sub_partner_id: str | None = None):
    try:
        return await call
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            if "namespace" in (err.message or "").lower():
                raise ConfigurationError(f"TEMPORAL_NAMESPACE: {_one_line(err.message).rstrip('.')}") from None
            raise OnboardingNotFound(external_id, check_sub_partner_id(sub_partner_id, "sub_partner_id")) from None
        raise


async def get_state(
    client: Client, external_id: str, *, fallback_to_query: bool = True, sub_partner_id: str | None = None
) -> OnboardingStateView:
    """Where the onboarding stands, from the state view in its memo (one describe, no workflow
    query). A run that keeps no view yet (started by an earlier engine, until its next run)
    answers through the `state` query, or raises NoStateView with `fallback_to_query=False`."""
    handle = _handle(client, external_id, sub_partner_id)
    view = await _not_found_as_lookup(external_id, state_access.view_from_memo(handle), sub_partner_id)
    if view is None:
        if not fallback_to_query:
            raise NoStateView(f"{handle.id} keeps no state view in its memo yet (a run of an earlier engine)")
        view = OnboardingStateView.of(await get_live_state(client, external_id, sub_partner_id=sub_partner_id))
    return view


async def get_live_state(client: Client, external_id: str, *, sub_partner_id: str | None = None) -> OnboardingState:
    """The whole state through the `state` query (a workflow task): for people, not dashboards."""
    return await _not_found_as_lookup(
        external_id, state_access.live_state(_handle(client, external_id, sub_partner_id)), sub_partner_id
    )


async def wait_for(
    client: Client,
    external_id: str,
    *,
    phases: list[Phase | str] | tuple = (),
    identification_url: bool = False,
    timeout: float = 300.0,
    rpc_timeout: float = state_access.DEFAULT_RPC_TIMEOUT_SECONDS,
    sub_partner_id: str | None = None,
) -> OnboardingStateView:
    """Return the state view once the onboarding is in one of `phases` (or, with
    `identification_url`, has its url), without polling: the workflow answers the update
    `wait_for` when it gets there. Raises WaitTimedOut after `timeout` seconds, OnboardingClosed
    when the onboarding ended without getting there, BadInput for a request no wait can use."""
    check_external_id(external_id, "external_id")
    wanted = check_wait(phases, timeout, identification_url)
    result = await _not_found_as_lookup(external_id, state_access.wait(
        _handle(client, external_id, sub_partner_id), phases=wanted, identification_url=identification_url,
        timeout=timeout, rpc_timeout=rpc_timeout, external_id=external_id,
    ), sub_partner_id)
    if not result.reached:
        raise WaitTimedOut(external_id, state_access.wanted_text(wanted, identification_url), timeout, result.state)
    return result.state


def check_wait(phases, timeout: float, identification_url: bool = False, flag: str = "phases") -> list[Phase]:
    try:
        wanted = [Phase(p) for p in phases]
    except ValueError:
        raise BadInput(flag, f"must be phases among {', '.join(p.value for p in Phase)}") from None
    if not wanted and not identification_url:
        raise BadInput(flag, "give at least one phase to wait for")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= WAIT_MAX_SECONDS:
        raise BadInput("timeout" if flag == "phases" else "--timeout", f"must be more than 0 and at most {WAIT_MAX_SECONDS:g} seconds")
    return wanted


async def accept_signing(
    client: Client,
    external_id: str,
    content_id: str,
    *,
    request_id: str | None = None,
    sub_partner_id: str | None = None,
) -> AcceptSigningResult:
    """Signs one required document. A caller that retries a signing whose answer it lost (a
    timeout, a worker or Temporal away) passes the same `request_id` on every try: Temporal
    takes a second update under the same id as the first one, so the retry waits for that
    signing's own answer, where a fresh update is refused while it is in flight ("being signed
    right now") and after it is done ("already signed")."""
    handle = _handle(client, external_id, sub_partner_id)
    return await _not_found_as_lookup(
        external_id,
        handle.execute_update(
            UPDATE_ACCEPT_SIGNING,
            AcceptSigningRequest(content_id=content_id),
            id=request_id,
            result_type=AcceptSigningResult,
        ),
        sub_partner_id,
    )


async def sign_all(client: Client, external_id: str, *, sub_partner_id: str | None = None) -> list[AcceptSigningResult]:
    state = await get_state(client, external_id, sub_partner_id=sub_partner_id)
    return [
        await accept_signing(client, external_id, s.id, sub_partner_id=sub_partner_id)
        for s in state.required_signings
        if not s.signed
    ]


async def restart_identification(
    client: Client,
    external_id: str,
    *,
    reason: str = "operator restart",
    identification: IdentificationRequest | None = None,
    sub_partner_id: str | None = None,
) -> RestartIdentificationResult:
    handle = _handle(client, external_id, sub_partner_id)
    return await _not_found_as_lookup(
        external_id,
        handle.execute_update(
            UPDATE_RESTART_IDENTIFICATION,
            RestartIdentificationRequest(reason=reason, identification=identification),
            result_type=RestartIdentificationResult,
        ),
        sub_partner_id,
    )


async def amend_onboarding(
    client: Client,
    external_id: str,
    *,
    email: str | None = None,
    name: str | None = None,
    customer_type: CustomerType | str | None = None,
    sub_partner_id: str | None = None,
) -> AmendResult:
    """Correct the start data of an onboarding that has not created its Iron customer yet
    (update `amend`). Only the fields given change; the workflow rejects the update once the
    customer exists (WorkflowUpdateFailedError)."""
    check_external_id(external_id, "external_id")
    if email is not None:
        email = normalise_email(email, "email")
    if name is not None:
        name = check_printable(name, "name", max_length=NAME_MAX_LENGTH, what="a name")
    if customer_type is not None:
        try:
            customer_type = CustomerType(customer_type)
        except ValueError:
            raise BadInput("customer_type", f"must be one of {', '.join(t.value for t in CustomerType)}") from None
    if email is None and name is None and customer_type is None:
        raise BadInput("amend", "nothing to amend: give email, name or customer_type")
    request = AmendRequest(email=email, name=name, customer_type=customer_type)
    handle = _handle(client, external_id, sub_partner_id)
    return await _not_found_as_lookup(
        external_id, handle.execute_update(UPDATE_AMEND, request, result_type=AmendResult), sub_partner_id
    )


async def refresh(client: Client, external_id: str, *, sub_partner_id: str | None = None) -> OnboardingState:
    handle = _handle(client, external_id, sub_partner_id)
    return await _not_found_as_lookup(
        external_id,
        handle.execute_update(UPDATE_REFRESH, RefreshRequest(), result_type=OnboardingState),
        sub_partner_id,
    )


# --- CLI ---------------------------------------------------------------------------------------


def format_state(state: OnboardingState) -> str:
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
    lines.append(f"ui               {settings.workflow_ui_link(state.workflow_id)}")
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


async def _with_document(choice: IdentificationChoice) -> IdentificationRequest:
    """The identification request, its data file stored in the document store."""
    ref = None
    if choice.file_bytes is not None:
        from data_protection.documents import document_store_from_env

        ref = await document_store_from_env().put(choice.file_bytes, content_type="application/json")
    return IdentificationRequest(
        kind=choice.request.kind, token=choice.request.token, intended_use=choice.request.intended_use, document_ref=ref
    )


async def _forget_document(ref: str | None) -> None:
    if ref:
        from data_protection.documents import document_store_from_env

        await document_store_from_env().delete(ref)


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
    # `report --sub-partner default`: the customers onboarded without a sub-partner.
    checked.fields["sub_partner_id"] = check_sub_partner_id(None if (args.command, named) == ("report", "default") else named)
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


async def _start_from_cli(client: Client, checked: Checked) -> StartResult:
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
            running = await _handle(client, args.external_id, checked.fields["sub_partner_id"]).describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            running = None
        if running is not None and running.status == WorkflowExecutionStatus.RUNNING:
            placeholder = IdentificationRequest(kind=choice.request.kind, document_ref="fs:" + "0" * 32)
            workflow_input = build_onboarding_input(args.external_id, identification=placeholder, **{
                k: v for k, v in kwargs.items() if k != "identification_content"})
            digest = start_metadata(workflow_input, identification_content=choice.content)["memo"][START_DIGEST_MEMO]
            attached = await _attach(client, args.external_id, digest, checked.fields["sub_partner_id"])
            if not wait:
                return attached
            waited = await _not_found_as_lookup(args.external_id, state_access.wait(
                _handle(client, args.external_id, checked.fields["sub_partner_id"]), phases=state_access.NO_URL_PHASES, identification_url=True,
                timeout=wait["wait_timeout"], external_id=args.external_id), checked.fields["sub_partner_id"])
            return dataclasses.replace(attached, state=waited.state, reached=waited.reached)
    identification = await _with_document(choice)
    try:
        result = await start_onboarding(client, args.external_id, identification=identification, **kwargs, **wait)
    except BaseException:
        await _forget_document(identification.document_ref)
        raise
    if not result.started:
        await _forget_document(identification.document_ref)
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


def _print_waited(state: OnboardingStateView | None, reached: bool | None, args, out, err, intro: str = "") -> int:
    """What `wait` and `start --wait` print: the state like `status` (`--json`: its JSON alone),
    and exit 8 with one line on stderr when the wait timed out."""
    if state is not None:
        print(state.model_dump_json(indent=2) if args.json else (f"{intro}\n" if intro else "") + format_state(state), file=out)
    if reached:
        return EXIT_OK
    timeout = args.timeout or state_access.DEFAULT_START_WAIT_SECONDS
    wanted = "an identification url" if args.command == "start" else " or ".join(args.phase)
    print(f"timed out: {args.external_id} did not reach {wanted} within {timeout:g} s "
          f"(phase {state.phase.value if state else 'unknown'})", file=err)
    return EXIT_WAIT_TIMED_OUT


def check_configuration() -> settings.ProcessSettings:
    """Every setting this process reads, checked before anything connects or is stored, so an
    unusable one is one line naming it, as in every other process: Iron's settings, the
    encryption keys, the document store, and whether onboardings send events."""
    from data_protection.documents import document_store_from_env
    from runtime.events_settings import events_url_from_env

    process_settings = settings.ProcessSettings.load()
    process_settings.keyring()
    document_store_from_env()
    events_url_from_env()
    return process_settings


async def _run(checked: Checked, out, err) -> int:
    args = checked.args
    scope = {"sub_partner_id": checked.fields["sub_partner_id"]}  # every command: (sub-partner, external id)
    process_settings = check_configuration()
    client = await connect()
    if args.command == "start":
        result = await _start_from_cli(client, checked)
        verb = "started" if result.started else "already running with the same start data, attached to"
        if not result.started and not result.compared:
            verb = "already running, attached to"
            print(f"note: {result.workflow_id} carries no start digest: its start data was not compared", file=err)
        if args.wait:
            return _print_waited(result.state, result.reached, args, out, err, intro=f"{verb} {result.workflow_id}")
        print(f"{verb} {result.workflow_id}\n  {result.ui_link}", file=out)
        return EXIT_OK
    if args.command == "status":
        state = await _status(client, args.external_id, live=args.live, err=err, **scope)
        print(state.model_dump_json(indent=2) if args.json else format_state(state), file=out)
        return EXIT_OK
    if args.command == "wait":
        try:
            view = await wait_for(client, args.external_id, phases=args.phase, timeout=args.timeout, **scope)
        except WaitTimedOut as timed_out:
            return _print_waited(timed_out.state, False, args, out, err)
        return _print_waited(view, True, args, out, err)
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
        identification = await _with_document(checked.identification) if checked.identification else None
        try:
            result = await restart_identification(
                client, args.external_id, reason=checked.fields["reason"], identification=identification, **scope
            )
        except BaseException:
            await _forget_document(identification.document_ref if identification else None)
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
        print(format_state(await refresh(client, args.external_id, **scope)), file=out)
        return EXIT_OK
    if args.command == "report":
        # `--sub-partner` naming the deployment's default scope reads as None once checked.
        only = None if args.sub_partner is None else (checked.fields["sub_partner_id"] or operations.report.DEFAULT_SCOPE)
        await operations.report.run(client, args, out, sub_partner=only)
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
    if args.command == "fleet-reconcile":
        await fleet_reconcile.run_command(client, args, settings.task_queue(), out)
        return EXIT_OK
    raise AssertionError(args.command)


def main(argv: list[str] | None = None, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    _Parser.err = err
    try:
        args = _parser().parse_args(argv)
        checked = check_args(args)  # bad input is refused before anything connects or is stored
        return asyncio.run(_run(checked, out, err))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already reported)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    except Exception as exc:  # every error is one line with an exit code, never a traceback
        code, message = explain(exc)
        print(message, file=err)
        if os.environ.get("LOG_LEVEL", "").upper() == "DEBUG":
            import traceback

            traceback.print_exception(exc, file=err)
        return code


def explain(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line that tell a person what went wrong and what to do."""
    from data_protection.documents import DocumentStoreUnavailable
    from data_protection.keys import DataProtectionError, KeyConfigurationError, KeyNotFoundError
    from data_protection.redaction import redact_text

    keys_hint = "set ONBOARDING_ENCRYPTION_KEY_FILE (or ONBOARDING_ENCRYPTION_KEYS) to the keys the worker uses"
    if isinstance(exc, BadInput):
        return EXIT_BAD_INPUT, f"error: {exc.flag}: {_one_line(exc.rule)}"  # a rule may name a path given
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
        reason = _one_line(getattr(exc.cause, "message", None) or str(exc.cause or exc))
        if reason == "Encoded failure":  # the failure converter's placeholder: no codec to read it
            reason = f"the workflow's reason is encrypted and no encryption keys are configured to read it; {keys_hint}"
        return EXIT_REJECTED, f"rejected: {reason}"
    # Configuration: `configuration: <VARIABLE>: <what is wrong>`, as every process says it.
    if isinstance(exc, (KeyConfigurationError, ConfigurationError)):  # their messages name the variable first
        return EXIT_CONFIGURATION, f"configuration: {_one_line(str(exc))}"
    if isinstance(exc, KeyNotFoundError):
        return EXIT_CONFIGURATION, f"configuration: {_keys_variable()}: {_one_line(str(exc))}"
    if isinstance(exc, DataProtectionError):
        return EXIT_CONFIGURATION, (
            f"configuration: {_keys_variable()}: cannot decrypt this onboarding's data ({_one_line(str(exc))}); "
            "set it to the keys the worker uses"
        )
    if _is_undecodable_payload(exc):
        return EXIT_CONFIGURATION, (
            f"configuration: {_keys_variable()}: not set, and this onboarding's data is encrypted: set it "
            "(or ONBOARDING_ENCRYPTION_KEYS) to the keys the worker uses (the demo's: source .demo/env.sh)"
        )
    if isinstance(exc, DocumentStoreUnavailable):
        return EXIT_UNREACHABLE, _one_line(redact_text(str(exc)))
    if isinstance(exc, IronUnauthorized):
        return EXIT_CONFIGURATION, "configuration: IRON_API_KEY: Iron refused it (check IRON_BASE_URL too)"
    if isinstance(exc, IronError):
        code = EXIT_UNREACHABLE if exc.retryable else EXIT_REJECTED
        where = " (check IRON_BASE_URL)" if exc.retryable else ""
        return code, f"Iron: {_one_line(redact_text(str(exc)))}{where}"
    if isinstance(exc, RPCError):
        return _explain_rpc(exc)
    if _is_temporal_env_config_error(exc):
        variable = "TEMPORAL_PROFILE" if "profile" in str(exc).lower() else "TEMPORAL_CONFIG_FILE"
        return EXIT_CONFIGURATION, f"configuration: {variable}: Temporal's env config: {_one_line(redact_text(str(exc)))}"
    if isinstance(exc, RuntimeError) and "connect" in str(exc).lower():
        return EXIT_UNREACHABLE, (
            f"cannot reach Temporal at {_temporal_address()}: {_short_connect_error(str(exc))}; "
            "is the server running? set TEMPORAL_ADDRESS (and TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS) to reach it"
        )
    if isinstance(exc, OSError):
        return EXIT_UNREACHABLE, f"cannot reach Temporal at {_temporal_address()}: {_one_line(redact_text(str(exc)))}"
    return EXIT_UNEXPECTED, (
        f"unexpected error ({type(exc).__name__}): {_one_line(redact_text(str(exc)))}; "
        "LOG_LEVEL=DEBUG shows the traceback"
    )


def _explain_rpc(exc: RPCError) -> tuple[int, str]:
    from data_protection.redaction import redact_text

    message = _one_line(redact_text(exc.message))
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


def _keys_variable() -> str:
    """The variable that gives this process its encryption keys (the key file's when none does)."""
    from data_protection.keys import ENV_KEY_FILE, ENV_KEYS

    return ENV_KEYS if (os.environ.get(ENV_KEYS) or "").strip() else ENV_KEY_FILE


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
    try:
        from runtime.temporal import connect_config

        return str(connect_config().get("target_host"))
    except Exception:
        return os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233")


def _short_connect_error(text: str) -> str:
    for hint in ("Connection refused", "dns error", "timed out", "certificate", "tls", "Unauthenticated"):
        if hint.lower() in text.lower():
            return hint.lower()
    return _one_line(text)[:160]


# How much of a message that had to be escaped the one error line shows.
_MESSAGE_LIMIT = 500


def _one_line(text: str) -> str:
    """A message (an exception's text, which may embed input) as one line. Line breaks and tabs
    that lay a message out fold to one space; a message holding any other character that does
    not print (a terminal escape, a C1 control, a Unicode line separator) is shown `quoted`,
    every such character escaped, nothing folded: it shows what was given."""
    text = str(text)
    if all(ch.isprintable() or ch in "\t\n\r" for ch in text):
        return " ".join(text.split())
    return quoted(text.strip(), limit=_MESSAGE_LIMIT)


def _describe_validation(exc: ValidationError) -> str:
    parts: list[str] = []
    for e in exc.errors(include_input=False, include_url=False):
        where = quoted(".".join(str(p) for p in e["loc"])) if e["loc"] else "input"
        flag = _FLAG_FOR_FIELD.get(str(e["loc"][0]), where) if e["loc"] else where
        parts.append(f"{flag}: {_one_line(e['msg'])}")
    return "; ".join(parts)


if __name__ == "__main__":
    exit_now(main())
