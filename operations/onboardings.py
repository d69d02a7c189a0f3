"""Start, inspect and drive customer onboardings: the API backends import, with a Temporal
client from `runtime.temporal.connect()`. `starter.py` is its command line, and re-exports it
under the same names; the webhook receiver's adoption and the backfill start through
`start_onboarding` too, so every start sets the same conflict policy, search attributes, memo
and engine version.

`get_state` reads the state view in the workflow's memo (no workflow query); `wait_for` and
`start_onboarding(..., wait=True)` wait inside the workflow (update `wait_for`), no polling.
Errors a caller can act on are classes of their own (`BadInput`, `OnboardingNotFound`,
`UnknownIronCustomer`, `StartDataDiffers`, `ConfigurationError`, and `state_access`'s
`WaitTimedOut`, `OnboardingClosed`, `NoStateView`).

The API reads no environment. Its defaults (the task queue, the deployment's default
sub-partner, whether onboardings send events, the Temporal UI's address) come from one
`ProcessSettings`: those a process loaded at start and runs the API under (`using_settings`,
as the starter does), else, for a backend that imports the API and gives none,
`ProcessSettings.load()`, read from the environment once on first use (`api_settings`): the
same settings object, with the same checks, as every process's.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import email_validator
from pydantic import TypeAdapter, ValidationError
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from iron_client import IronClient
from iron_client.errors import IronNotFound
from iron_client.models import CustomerType, IdentificationKind, IdentificationParams
from contracts.configuration import ConfigurationError
from runtime.settings import ProcessSettings, workflow_ui_link
from contracts.quoting import message_line, quoted
from contracts.messages import (
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
from contracts.start_metadata import START_DIGEST_MEMO, differing_fields, start_options
from data_protection.contact import store_contact
from data_protection.documents import DocumentStore, forget_document
from contracts.state_view import WAIT_MAX_SECONDS, OnboardingStateView
import operations.state_access as state_access
from operations.state_access import NoStateView, OnboardingClosed, WaitTimedOut  # noqa: F401 - part of the API

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


# `ConfigurationError`: something to set or fix in the environment before this can work; the
# message names the variable first (`TEMPORAL_NAMESPACE: ...`). The one class every process raises.


# --- the settings behind the API's defaults -----------------------------------------------------

_settings_in_use: contextvars.ContextVar[ProcessSettings | None] = contextvars.ContextVar("onboarding_api_settings", default=None)
_settings_from_environment: ProcessSettings | None = None
_loading = threading.Lock()


@contextlib.contextmanager
def using_settings(process_settings: ProcessSettings) -> Iterator[ProcessSettings]:
    """Within this block (and the asyncio tasks started in it) the API's defaults come from
    `process_settings`: the settings the calling process loaded at start."""
    token = _settings_in_use.set(process_settings)
    try:
        yield process_settings
    finally:
        _settings_in_use.reset(token)


def api_settings() -> ProcessSettings:
    """The settings behind the API's defaults: those of the enclosing `using_settings`, else
    `ProcessSettings.load()`, read from the environment once, on first use, for a backend that
    imports the API and gives none. Raises `ConfigurationError` naming the variable when a
    value cannot be used."""
    global _settings_from_environment
    in_use = _settings_in_use.get()
    if in_use is not None:
        return in_use
    with _loading:
        if _settings_from_environment is None:
            _settings_from_environment = ProcessSettings.load()
        return _settings_from_environment


def onboarding_ui_link(client: Client, workflow_id: str) -> str:
    """The Temporal UI's page for an onboarding: `TEMPORAL_UI_URL` (`api_settings`) and the
    client's namespace."""
    return workflow_ui_link(workflow_id, getattr(client, "namespace", None) or "default", api_settings().temporal_ui_url)


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
    # The Temporal UI's page for it (`onboarding_ui_link`).
    ui_link: str = ""


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
        raise BadInput(flag, f"is not a valid email address: {message_line(str(exc))}") from None
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


def check_sub_partner_format(value: str | None, flag: str = "--sub-partner") -> str | None:
    """A sub-partner id in canonical form (None stays None); BadInput for anything that is not
    a UUID. Needs no settings, so a command line can be checked before they are loaded."""
    if value is None:
        return None
    try:
        return canonical_sub_partner_id(value)
    except ValueError:
        raise BadInput(flag, "must be an Iron sub-partner id (a UUID such as 0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f)") from None


def check_sub_partner_id(value: str | None, flag: str = "--sub-partner") -> str | None:
    """The sub-partner scope an onboarding belongs to: a UUID in canonical form, or None for the
    default scope. Naming the deployment's default sub-partner (`IRON_SUB_PARTNER_ID` of
    `api_settings()`) is the default scope itself: its customers keep `onboarding-{external_id}`,
    whoever names them."""
    sub_partner_id = check_sub_partner_format(value, flag)
    if sub_partner_id is None:
        return None
    return None if sub_partner_id == api_settings().iron_sub_partner_id else sub_partner_id


def load_identification_file(path: str | os.PathLike[str], kind: IdentificationKind,
                             flag: str = "--identification-file") -> tuple[bytes, Any]:
    """Read and check a Person or Business identification data file: (raw bytes, parsed).
    Missing, unreadable, too big, not UTF-8, not JSON, nested too deep, a document above
    Iron's 10 MB, or not the shape Iron expects: each is refused, naming the flag and the rule."""
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
    _check_identification_data(params, kind, flag, source=str(path))
    return raw, params


def _check_identification_data(params: Any, kind: IdentificationKind, flag: str, *, source: str | None) -> None:
    """The rules every Person or Business identification data meets before anything starts:
    the documents, the type, the shape Iron expects. `source`: the file it came from, which
    messages name (None: given inline, named by `flag` alone)."""
    from data_protection.documents import IdentificationFileError, check_identification_params

    named = f"{source} " if source else ""
    try:
        check_identification_params(params, source=source or flag)
    except IdentificationFileError as exc:
        raise BadInput(flag, message_line(str(exc)).removeprefix(f"{flag}: ")) from None
    if params.get("type", kind.value) != kind.value:
        raise BadInput(flag, f"{named}holds a {quoted(str(params.get('type')))} identification, not {kind.value}")
    try:
        TypeAdapter(IdentificationParams).validate_python({**params, "type": kind.value})
    except ValidationError as exc:
        problems = "; ".join(
            f"{quoted('.'.join(str(p) for p in e['loc'][1:])) if e['loc'][1:] else 'data'}: {message_line(e['msg'])}"
            for e in exc.errors(include_input=False, include_url=False)[:5]
        )
        raise BadInput(flag, f"{named}is not {kind.value} identification data Iron accepts ({problems})") from None


def check_identification_data(params: Any, kind: IdentificationKind, flag: str = "identification.data") -> bytes:
    """Person or Business identification data given inline (parsed JSON, as the HTTP API takes
    it) checked by the rules of `load_identification_file`: the documents, the type, the shape
    Iron expects. Returns the JSON bytes to store in the document store."""
    try:
        raw = json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        raise BadInput(flag, "must be JSON data") from None
    if len(raw) > IDENTIFICATION_FILE_MAX_BYTES:
        raise BadInput(flag, f"is {len(raw)} bytes, above the limit of {IDENTIFICATION_FILE_MAX_BYTES} bytes")
    if _nesting_depth(raw.decode("utf-8")) > IDENTIFICATION_FILE_MAX_DEPTH:
        raise BadInput(flag, f"nests deeper than {IDENTIFICATION_FILE_MAX_DEPTH} levels")
    _check_identification_data(params, kind, flag, source=None)
    return raw


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
    memo: dict[str, Any] | None = None,
    documents: DocumentStore | None = None,
) -> StartResult:
    """Start one customer's onboarding, or attach to the one already running for that
    external id (in that sub-partner's scope): never a second workflow, never a second Iron
    customer. `sub_partner_id` onboards the customer for that Iron sub-partner (None: the
    default scope, `IRON_SUB_PARTNER_ID`); a non-UUID raises BadInput.

    Raises BadInput for input no onboarding could use, and StartDataDiffers when the running
    onboarding was started with other data (`amend_onboarding` corrects it while the Iron
    customer does not exist yet). `identification_content`, the parsed identification data,
    is what a second start compares instead of the document reference. Events go to the
    partner's backend when `deliver_events` says so (default: `ONBOARDING_EVENTS_URL` is set
    in `api_settings()`); `task_queue` defaults to theirs too;
    after an earlier onboarding of this customer that was closed (terminated, say), their
    sequence goes on from its last one.

    With `wait=True` the start (or attach) and a wait are one round trip (update-with-start):
    it returns once the identification url exists or the customer is in a phase where none will
    come (`AwaitingSignings`, `Active`, `Declined`, `NeedsAttention`, `Suspended`, `Archived`),
    or `wait_timeout` seconds passed (`reached` False); `state` is the state view.

    `memo`: further memo entries a caller keeps with the onboarding it starts (the HTTP API's
    idempotency record); they go on through continue-as-new, and an attach leaves them alone.

    `documents`: the store the workers read (the API's and the starter's): the email and name go
    there and the workflow gets their reference (`contact_ref`), so no history holds them and
    the customer needs no second run to leave them behind; a start that attaches deletes its
    copy. Without it they go inline and the first run continues as new once the customer
    exists."""
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
        deliver_events = api_settings().events_url is not None
    # A customer whose earlier onboarding was closed (terminated, say) goes on with its sequence.
    events_after = await state_access.last_event_sequence(client, workflow_input.workflow_id)
    workflow_input = workflow_input.model_copy(update={"deliver_events": deliver_events, "events_after": events_after})
    options = start_options(workflow_input, started_by=started_by, identification_content=identification_content)
    if memo:
        options["memo"] = {**memo, **options["memo"]}  # the engine's own entries win
    contact_ref = None
    if documents is not None and workflow_input.email:  # the digest above compares the values
        contact_ref = await store_contact(documents, workflow_input.email, workflow_input.name)
        workflow_input = workflow_input.model_copy(update={"email": None, "name": None, "contact_ref": contact_ref})
    try:
        result = await _start(client, workflow_input, options, task_queue, compare_start_data, wait, wait_timeout)
    except BaseException:
        await forget_document(documents, contact_ref)
        raise
    if not result.started:
        await forget_document(documents, contact_ref)
    return result


async def _start(client: Client, workflow_input: OnboardingInput, options: dict[str, Any], task_queue: str | None,
                 compare_start_data: bool, wait: bool, wait_timeout: float) -> StartResult:
    external_id = workflow_input.external_id
    if wait:
        return await _start_and_wait(client, workflow_input, options, task_queue, compare_start_data, wait_timeout)
    try:
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            workflow_input,
            task_queue=task_queue or api_settings().task_queue,
            # FAIL, then attach below: the public way to know whether this call started it.
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            **options,
        )
    except WorkflowAlreadyStartedError:
        return await attach_to_running(
            client, external_id, options["memo"][START_DIGEST_MEMO] if compare_start_data else None,
            workflow_input.sub_partner_id,
        )
    return StartResult(workflow_id=handle.id, run_id=handle.result_run_id, started=True,
                       ui_link=onboarding_ui_link(client, handle.id))


async def _start_and_wait(client: Client, workflow_input: OnboardingInput, options: dict[str, Any],
                          task_queue: str | None, compare: bool, timeout: float) -> StartResult:
    external_id = workflow_input.external_id
    digest = options["memo"][START_DIGEST_MEMO]
    try:
        outcome = await state_access.start_and_wait(
            client, workflow_input, task_queue=task_queue or api_settings().task_queue, options=options,
            start_digest=digest if compare else None, timeout=timeout,
        )
    except WorkflowUpdateFailedError:  # attached to a run that cannot wait: differing data says so first
        await attach_to_running(client, external_id, digest if compare else None, workflow_input.sub_partner_id)
        raise
    r = outcome.result
    if r.start_data_differs:
        raise StartDataDiffers(workflow_input.workflow_id, r.start_data_differs)
    return StartResult(workflow_id=workflow_input.workflow_id, run_id=outcome.run_id, started=r.started,
                       compared=r.started or r.start_data_differs is not None, state=r.state, reached=r.reached,
                       ui_link=onboarding_ui_link(client, workflow_input.workflow_id))


async def attach_to_running(
    client: Client, external_id: str, wanted_digest: dict[str, str] | None, sub_partner_id: str | None = None
) -> StartResult:
    """The running onboarding for `external_id`, once its start data is known to match."""
    handle = onboarding_handle(client, external_id, sub_partner_id)
    description = await not_found_as_lookup(external_id, handle.describe(), sub_partner_id)
    compared = wanted_digest is not None
    if wanted_digest is not None:
        memo = await description.memo()
        differs = differing_fields(memo.get(START_DIGEST_MEMO), wanted_digest)
        if differs is None:
            compared = False
        elif differs:
            raise StartDataDiffers(handle.id, differs)
    return StartResult(workflow_id=handle.id, run_id=description.run_id, started=False, compared=compared,
                       ui_link=onboarding_ui_link(client, handle.id))


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


def onboarding_handle(client: Client, external_id: str, sub_partner_id: str | None = None) -> WorkflowHandle:
    """The onboarding of (sub-partner, external id): `workflow_id_for` names it."""
    return client.get_workflow_handle(workflow_id_for(external_id, check_sub_partner_id(sub_partner_id, "sub_partner_id")))


async def not_found_as_lookup(external_id: str, call, sub_partner_id: str | None = None):
    try:
        return await call
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            if "namespace" in (err.message or "").lower():
                raise ConfigurationError(f"TEMPORAL_NAMESPACE: {message_line(err.message).rstrip('.')}") from None
            raise OnboardingNotFound(external_id, check_sub_partner_id(sub_partner_id, "sub_partner_id")) from None
        raise


async def get_state(
    client: Client, external_id: str, *, fallback_to_query: bool = True, sub_partner_id: str | None = None
) -> OnboardingStateView:
    """Where the onboarding stands, from the state view in its memo (one describe, no workflow
    query). A run that keeps no view (started past this engine's start path, until its first
    wait) answers through the `state` query, or raises NoStateView with `fallback_to_query=False`."""
    handle = onboarding_handle(client, external_id, sub_partner_id)
    view = await not_found_as_lookup(external_id, state_access.view_from_memo(handle), sub_partner_id)
    if view is None:
        if not fallback_to_query:
            raise NoStateView(f"{handle.id} keeps no state view in its memo yet (started past the engine's start path)")
        view = OnboardingStateView.of(await get_live_state(client, external_id, sub_partner_id=sub_partner_id))
    return view


async def get_live_state(client: Client, external_id: str, *, sub_partner_id: str | None = None) -> OnboardingState:
    """The whole state through the `state` query (a workflow task): for people, not dashboards."""
    return await not_found_as_lookup(
        external_id, state_access.live_state(onboarding_handle(client, external_id, sub_partner_id)), sub_partner_id
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
    result = await not_found_as_lookup(external_id, state_access.wait(
        onboarding_handle(client, external_id, sub_partner_id), phases=wanted, identification_url=identification_url,
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
    handle = onboarding_handle(client, external_id, sub_partner_id)
    return await not_found_as_lookup(
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
    handle = onboarding_handle(client, external_id, sub_partner_id)
    return await not_found_as_lookup(
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
    handle = onboarding_handle(client, external_id, sub_partner_id)
    return await not_found_as_lookup(
        external_id, handle.execute_update(UPDATE_AMEND, request, result_type=AmendResult), sub_partner_id
    )


async def refresh(client: Client, external_id: str, *, sub_partner_id: str | None = None) -> OnboardingState:
    handle = onboarding_handle(client, external_id, sub_partner_id)
    return await not_found_as_lookup(
        external_id,
        handle.execute_update(UPDATE_REFRESH, RefreshRequest(), result_type=OnboardingState),
        sub_partner_id,
    )
