"""Sub-partner scopes without a Temporal server: ids, keys, validation at the door, what is
written for a default-scope customer (exactly what was written before), the Iron client's
per-call scope and the receiver's lookup across scopes against the sandbox over HTTP."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import pytest
import pytest_asyncio
from hypothesis import given, strategies as st
from pydantic import ValidationError

import contracts.activity_models as am
import workflows.decide as d
from contracts import search_attributes as sa
from contracts.events import event_data, event_id, phase_changed
from contracts.messages import (
    IdentificationRequest,
    OnboardingInput,
    OnboardingState,
    Phase,
    _valid_external_id,
)
from contracts.workflow_ids import scope_of_workflow_id, workflow_id_for
from contracts.start_metadata import differing_fields, start_digest, start_metadata
from iron_client.errors import IronNotFound
from iron_sandbox.testing import SandboxServer
from runtime.process import EXIT_CONFIGURATION
from runtime.settings import ConfigurationError, ProcessSettings
from starter import BadInput, OnboardingNotFound, build_onboarding_input, check_sub_partner_id, main, start_onboarding
from tests.conftest import REPO_ROOT
from webhook_receiver.routing import CustomerRouter, UnknownCustomer
from webhook_receiver.settings import ReceiverSettings
from workflows.idempotency import customer_key, identification_key, signing_key
from workflows.iron_calls import iron_call

A = "0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f"
B = "0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e60"

external_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=60
).filter(_valid_external_id)


# --- workflow ids --------------------------------------------------------------------------------


def test_the_default_scope_keeps_its_workflow_ids_and_keys():
    assert workflow_id_for("cust-42") == workflow_id_for("cust-42", None) == "onboarding-cust-42"
    # The keys running default-scope customers already use at Iron: they must never move.
    assert customer_key(workflow_id_for("cust-42")) == "510e6334-5c0a-5150-b0be-d8480363c264"
    assert identification_key(workflow_id_for("cust-42"), 1, 1) == "4147d5f4-aed5-533a-adb8-01d3ce8394f5"
    assert signing_key(workflow_id_for("cust-42"), 1, "doc-1") == "499458de-0660-51e9-96d1-f95fc7411ccb"
    assert event_id(workflow_id_for("cust-42"), 1) == "d98db1f0-24f6-59c3-81b2-3e655fdf09b8"


def test_a_sub_partners_workflow_id_is_readable_and_canonical():
    assert workflow_id_for("cust-42", A) == f"onboarding-sp-{A}-cust-42"
    assert workflow_id_for("cust-42", A.upper()) == workflow_id_for("cust-42", "{" + A + "}") == f"onboarding-sp-{A}-cust-42"
    with pytest.raises(ValueError):
        workflow_id_for("cust-42", "not-a-uuid")


@given(external_ids, st.sampled_from([None, A, B]))
def test_a_workflow_id_names_its_scope_and_external_id(external_id, sub_partner_id):
    assert scope_of_workflow_id(workflow_id_for(external_id, sub_partner_id)) == (sub_partner_id, external_id)


@given(external_ids, external_ids)
def test_two_scopes_never_share_a_workflow_id_or_a_key(first, second):
    ids = {workflow_id_for(first, A), workflow_id_for(second, B)}
    assert len(ids) == 2
    if first == second:
        assert workflow_id_for(first, None) not in ids
        keys = {customer_key(w) for w in (*ids, workflow_id_for(first))}
        assert len(keys) == 3


def test_ids_that_are_not_an_onboardings_read_as_none():
    assert scope_of_workflow_id("something-else") is None
    assert scope_of_workflow_id("onboarding-") is None
    # A default-scope id that merely looks like the sub-partner form without a UUID stays default.
    assert scope_of_workflow_id("onboarding-sp-123-x") == (None, "sp-123-x")


# --- validation at the door ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", " ", "not-a-uuid", "0190d6c2", A + "0", "x" * 100, A.replace("-", "/")])
def test_a_sub_partner_that_is_not_a_uuid_is_refused_by_the_input(bad):
    with pytest.raises(ValidationError):
        OnboardingInput(external_id="x", email="a@example.com", sub_partner_id=bad)
    with pytest.raises(BadInput) as refused:
        build_onboarding_input("x", email="a@example.com", sub_partner_id=bad)
    assert refused.value.flag == "sub_partner_id"


async def test_start_onboarding_refuses_a_bad_sub_partner_before_touching_temporal():
    # No client at all: a refusal must come before anything uses it.
    with pytest.raises(BadInput):
        await start_onboarding(None, "x", email="a@example.com", sub_partner_id="nope")  # type: ignore[arg-type]


def test_the_deployments_own_default_sub_partner_is_the_default_scope():
    from operations.onboardings import using_settings

    with using_settings(ProcessSettings.load({"IRON_SUB_PARTNER_ID": A.upper()})):
        assert check_sub_partner_id(A) is None
        assert check_sub_partner_id(B) == B
        assert build_onboarding_input("x", email="a@example.com", sub_partner_id=A).workflow_id == "onboarding-x"
    with using_settings(ProcessSettings.load({})):
        assert check_sub_partner_id(A.upper()) == A


COMMANDS = [
    ["start", "x", "--email", "a@example.com"],
    ["status", "x"],
    ["sign", "x", "--all"],
    ["restart", "x"],
    ["amend", "x", "--email", "b@example.com"],
    ["refresh", "x"],
    ["adopt", str(uuid.uuid4())],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_command_refuses_a_bad_sub_partner_with_exit_2_before_connecting(command, monkeypatch):
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # connecting would answer 5, not 2
    out, err = io.StringIO(), io.StringIO()
    assert main([*command, "--sub-partner", "acme"], out=out, err=err) == 2
    assert err.getvalue().strip() == (
        "error: --sub-partner: must be an Iron sub-partner id (a UUID such as 0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f)"
    )


def test_the_cli_refuses_a_bad_sub_partner_in_a_bare_shell():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "IRON_", "ONBOARDING_"))}
    done = subprocess.run(
        [sys.executable, "starter.py", "start", "x", "--email", "a@example.com", "--sub-partner", "12"],
        cwd=REPO_ROOT, env={**env, "TEMPORAL_ADDRESS": "127.0.0.1:1"}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "--sub-partner" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_onboarding_names_its_scope():
    assert f"onboarding-sp-{A}-x" in str(OnboardingNotFound("x", A))
    assert str(OnboardingNotFound("x")) == 'no onboarding for external id "x" (onboarding-x)'


@pytest.mark.parametrize("variable", ["IRON_SUB_PARTNER_ID", "IRON_SUB_PARTNER_IDS"])
def test_processes_refuse_a_sub_partner_setting_that_is_not_a_uuid(variable):
    with pytest.raises(ConfigurationError, match=variable):
        ReceiverSettings.load({"IRON_WEBHOOK_SECRETS": "s", variable: f"{A},acme"})
    if variable == "IRON_SUB_PARTNER_ID":
        with pytest.raises(ConfigurationError, match=variable):
            ProcessSettings.load({variable: "acme"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONBOARDING_", "IRON_", "TEMPORAL_"))}
    done = subprocess.run(
        [sys.executable, "-m", "webhook_receiver", "--port", "0"], cwd=REPO_ROOT,
        env={**env, "IRON_WEBHOOK_SECRETS": "s", variable: "acme", "TEMPORAL_ADDRESS": "127.0.0.1:1"},
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == EXIT_CONFIGURATION and done.stderr.startswith(f"configuration: {variable}: ")
    assert "Traceback" not in done.stderr


def test_the_receiver_looks_up_each_sub_partner_once_and_not_the_default_again():
    settings = ReceiverSettings.load(
        {"IRON_WEBHOOK_SECRETS": "s", "IRON_SUB_PARTNER_ID": A, "IRON_SUB_PARTNER_IDS": f"{A.upper()}, {B}, {B}"}
    )
    assert settings.sub_partner_ids == (A, B)
    assert settings.lookup_scopes() == (B,)


# --- what is written: nothing new for the default scope -----------------------------------------


def _input(sub_partner_id=None) -> OnboardingInput:
    return build_onboarding_input("cust-42", email="a@example.com", sub_partner_id=sub_partner_id)


def test_a_default_scope_customer_is_written_as_before():
    start = _input()
    state = OnboardingState.first(start)
    assert "sub_partner_id" not in start.model_dump_json() and "sub_partner_id" not in state.model_dump_json()
    carried = d.next_run_input(start, state)
    assert "sub_partner_id" not in carried.model_dump_json()
    assert "sub_partner_id" not in phase_changed(state, previous_phase=None, at=datetime.now(timezone.utc)).body().decode()
    assert sa.IRON_SUB_PARTNER_ID not in {pair.key for pair in sa.at_start(state)}
    state.iron_customer_id = "c1"
    for action in _every_iron_action():
        call = iron_call(action, state, start, start.workflow_id)
        assert "sub_partner_id" not in call.arg.model_dump_json(), type(action).__name__


def test_a_sub_partners_customer_carries_its_scope_everywhere():
    start = _input(A.upper())
    assert start.sub_partner_id == A and start.workflow_id == f"onboarding-sp-{A}-cust-42"
    state = OnboardingState.first(start)
    assert state.sub_partner_id == A
    # Through continue-as-new, as a payload would carry it.
    carried = OnboardingInput.model_validate_json(d.next_run_input(start, state).model_dump_json())
    assert carried.sub_partner_id == A and carried.carried.sub_partner_id == A
    data = event_data(state)
    assert (data.sub_partner_id, data.workflow_id) == (A, start.workflow_id)
    assert {pair.key.name: pair.value for pair in sa.at_start(state)}["IronSubPartnerId"] == A
    state.iron_customer_id = "c1"
    for action in _every_iron_action():
        call = iron_call(action, state, start, start.workflow_id)
        assert call.arg.sub_partner_id == A, type(action).__name__
        if hasattr(call.arg, "idempotency_key"):
            assert call.arg.idempotency_key != iron_call(action, state, start, "onboarding-cust-42").arg.idempotency_key
    # The start digest is salted by the workflow id: another scope's start never compares equal.
    assert start_digest(start)["email"] != start_digest(_input())["email"]
    details = start_metadata(start)["static_details"]
    assert f"python starter.py status cust-42 --sub-partner {A}" in details


def test_a_start_that_meets_another_scopes_workflow_differs_instead_of_attaching():
    # The reserved collision: the default scope's `sp-<A>-x` and sub-partner A's `x`.
    default = build_onboarding_input(f"sp-{A}-x", email="a@example.com")
    scoped = build_onboarding_input("x", email="a@example.com", sub_partner_id=A)
    assert default.workflow_id == scoped.workflow_id
    assert "sub_partner_id" not in start_digest(default)
    assert differing_fields(start_digest(default), start_digest(scoped)) == ["sub_partner_id"]
    assert differing_fields(start_digest(scoped), start_digest(default)) == ["sub_partner_id"]
    assert differing_fields(start_digest(scoped), start_digest(scoped)) == []


def _every_iron_action() -> list[d.Action]:
    return [
        d.FindOrCreateCustomer(attempt=0),
        d.ReadCustomer(cause="test"),
        d.ReadIdentification(identification_id="i1", cause="test"),
        d.ReadLatestIdentification(),
        d.CreateIdentification(cycle=1, attempt=1, cause="test"),
        d.ReadSignings(),
        d.Sign(content_id="doc-1", cycle=1),
        d.ReadRequirements(cause="test"),
    ]


def test_every_search_attribute_is_registered_by_the_demo():
    from demo.stack import SEARCH_ATTRIBUTES

    assert set(SEARCH_ATTRIBUTES) == {key.name for key in sa.ALL}
    assert sa.IRON_SUB_PARTNER_ID in sa.ALL


# --- the Iron client's per-call scope and the receiver's lookup, over HTTP -----------------------


@pytest_asyncio.fixture
async def sandbox():
    async with SandboxServer() as server:
        yield server


async def _customer(iron, external_id: str | None = None):
    return await iron.create_customer(
        customer_type="Person", email=f"{uuid.uuid4().hex[:8]}@example.com", idempotency_key=str(uuid.uuid4()),
        external_id=external_id or f"ext-{uuid.uuid4().hex[:8]}",
    )


async def test_a_scoped_client_sends_its_sub_partner_and_shares_the_pool(sandbox):
    observed: list[tuple[str, int | None]] = []
    async with sandbox.client(sub_partner_id=A) as iron:
        assert iron.scoped(None) is iron and iron.scoped(A) is iron
        b = iron.scoped(B)
        assert b is iron.scoped(B) and b._http is iron._http
        # Observers (the metrics) hooked on the client see the scoped view's requests too.
        iron.observe_responses(lambda operation, status, timed_out: observed.append((operation, status)))
        made_for_b = await _customer(b)
        assert observed == [("create_customer", 201)]
        made_for_a = await _customer(iron)
        with pytest.raises(IronNotFound):
            await iron.get_customer(made_for_b.id)
        assert (await b.get_customer(made_for_b.id)).id == made_for_b.id
        await b.aclose()  # a view does not own the pool: closing it leaves the client working
        assert (await iron.get_customer(made_for_a.id)).id == made_for_a.id
    log = await sandbox.control.requests()
    assert [r["sub_partner_id"] for r in log if made_for_b.id in r["path"]] == [A, B]
    creates = [r["sub_partner_id"] for r in log if r["method"] == "POST" and r["path"] == "/api/customers"]
    assert creates == [B, A]
    assert [r["sub_partner_id"] for r in log if made_for_a.id in r["path"]] == [A]


async def test_the_router_finds_a_customer_in_its_scope_and_the_default_in_one_read(sandbox):
    router = CustomerRouter(sandbox.settings(), sub_partner_ids=(A, B))
    try:
        async with sandbox.client() as iron:
            default_customer = await _customer(iron, "shared")
            b_customer = await _customer(iron.scoped(B), "shared")
        route = await router.route(default_customer.id)
        assert (route.workflow_id, route.sub_partner_id, router.lookups) == ("onboarding-shared", None, 1)
        route = await router.route(b_customer.id)
        assert (route.workflow_id, route.sub_partner_id) == (f"onboarding-sp-{B}-shared", B)
        assert router.lookups == 1 + 3, "default, then A, then B"
        adoption = route.adoption_input()
        assert adoption.sub_partner_id == B and adoption.workflow_id == route.workflow_id
        cached = await router.route(b_customer.id)
        assert cached.from_cache and cached.sub_partner_id == B and cached.workflow_id == route.workflow_id
        assert router.lookups == 4
        with pytest.raises(UnknownCustomer):
            await router.route(str(uuid.uuid4()))
        assert router.lookups == 4 + 3
    finally:
        await router.aclose()
