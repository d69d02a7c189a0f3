"""Iron's models have one source, the spec copy: `iron_client/generated.py` is what `make models`
writes from it, and the client and the sandbox build on that module. Offline, about a second."""

from __future__ import annotations

import difflib
import types
from enum import Enum
from typing import Any, Iterator, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from iron_client import generated as spec
from iron_client import models
from iron_client.models import IronResponse, is_unknown, wire
from iron_client.spec.generate import COMMAND, GENERATED_PATH, generate
from iron_sandbox import schemas

TIMESTAMP = "2025-01-01T00:00:00Z"
ID = "01a200b0-babd-7221-8ad4-bf95474087d9"
CUSTOMER = {
    "id": ID, "customer_type": "Person", "status": "IdentificationRequired", "name": "Ada", "email": "ada@example.com",
    "partner_id": "5b0ad8a2-3f7e-4c1d-9a41-6f0c2d8e7b13", "identification_ids": [], "signing_ids": [],
    "created_at": TIMESTAMP, "updated_at": TIMESTAMP,
}
IDENTIFICATION = {"id": ID, "status": "Pending", "created_at": TIMESTAMP, "updated_at": TIMESTAMP}
REQUIREMENT = {"code": "kyc_selfie", "reject_labels": [], "reject_reasons": [], "missing_questions": []}
REQUIREMENTS = {"requirements_due": ["kyc"], "complete": [], "pending": [], "missing": [REQUIREMENT], "issues": []}
WEBHOOK = {
    "id": ID, "label": "", "url": "https://x.example/webhooks/iron", "partner_id": ID, "topics": ["CustomerStatus"],
    "created_at": TIMESTAMP, "updated_at": TIMESTAMP, "enabled": True,
}


def test_the_committed_models_are_what_the_spec_generates(tmp_path) -> None:
    regenerated = tmp_path / "generated.py"
    generate(output=regenerated)
    committed, fresh = GENERATED_PATH.read_text(), regenerated.read_text()
    diff = "".join(difflib.unified_diff(
        committed.splitlines(keepends=True), fresh.splitlines(keepends=True),
        fromfile="iron_client/generated.py (committed)", tofile="generated from the spec copy", n=1,
    ))
    assert committed == fresh, f"iron_client/generated.py is not what the spec generates: run `{COMMAND}`\n{diff[:4000]}"


# --- the client's leniency on top of the spec --------------------------------------------------


@pytest.mark.parametrize(
    ("client_model", "spec_model", "payload", "path", "unlisted"),
    [
        (models.Customer, spec.Customer, dict(CUSTOMER, status="Frozen"), "status", "Frozen"),
        (models.Customer, spec.Customer, dict(CUSTOMER, identification_status="OnHold"), "identification_status", "OnHold"),
        (models.Customer, spec.Customer, dict(CUSTOMER, customer_type="Trust"), "customer_type", "Trust"),
        (models.Identification, spec.Identification, dict(IDENTIFICATION, status="OnHold"), "status", "OnHold"),
        (models.VerificationStepDetail, spec.VerificationStepDetail, {"result": "Reconsidering", "retry": False},
         "result", "Reconsidering"),
        (models.RequirementItem, spec.RequirementItem, dict(REQUIREMENT, code="kyc_liveness"), "code", "kyc_liveness"),
        (models.CustomerRequirements, spec.CustomerRequirements, dict(REQUIREMENTS, requirements_due=["kyt"]),
         "requirements_due", "kyt"),
        (models.Webhook, spec.Webhook, dict(WEBHOOK, topics=["CustomerDeleted"]), "topics", "CustomerDeleted"),
    ],
)
def test_a_value_the_spec_does_not_list_still_parses_in_the_client(
    client_model: type[IronResponse], spec_model: type[BaseModel], payload: dict, path: str, unlisted: str
) -> None:
    with pytest.raises(ValidationError):
        spec_model.model_validate(payload)  # the spec's enum does not list it

    read = client_model.model_validate(payload)
    value = getattr(read, path)
    kept = value[0] if isinstance(value, list) else value
    assert kept == unlisted and type(kept) is str and is_unknown(kept) and wire(kept) == unlisted
    assert read.unknown_values() == [(path, unlisted)]


def test_the_client_reads_known_values_as_the_spec_enums_and_keeps_added_fields() -> None:
    customer = models.Customer.model_validate(dict(CUSTOMER, novel={"a": 1}))
    assert customer.status is spec.CustomerStatus.IDENTIFICATION_REQUIRED and models.CustomerStatus is spec.CustomerStatus
    assert customer.model_extra == {"novel": {"a": 1}} and customer.unknown_values() == []
    with pytest.raises(ValidationError):  # requests stay strict: a typo fails before Iron sees it
        models.CreateCustomerParams.model_validate({"customer_type": "Person", "email": "a@b.co", "emial": "x"})


def _strict_spec_types(annotation: Any, *, tolerant: bool = False) -> Iterator[type]:
    """The enums outside `Tolerant[...]`, and the models that are not the client's, that a type names."""
    args = get_args(annotation)
    if get_origin(annotation) in (Union, types.UnionType) and str in args:
        tolerant = tolerant or any(isinstance(arg, type) and issubclass(arg, Enum) for arg in args)
    if isinstance(annotation, type):
        if issubclass(annotation, Enum) and not tolerant:
            yield annotation
        if issubclass(annotation, BaseModel) and not issubclass(annotation, IronResponse):
            yield annotation
    for arg in args:
        yield from _strict_spec_types(arg, tolerant=tolerant)


def test_every_enum_a_response_holds_is_tolerant() -> None:
    """A field the spec adds to a response is inherited as the spec types it: an enum there, or a
    spec model in place of the client's, would refuse a value Iron adds later. Restate it here."""
    responses = [value for value in vars(models).values()
                 if isinstance(value, type) and issubclass(value, IronResponse) and value is not IronResponse]
    assert len(responses) > 10
    strict = {
        f"{model.__name__}.{name}": [kind.__name__ for kind in found]
        for model in responses
        for name, field in model.model_fields.items()
        if (found := list(_strict_spec_types(field.annotation)))
    }
    assert strict == {}, f"restate these in iron_client/models.py as Tolerant[...] or the client's model: {strict}"


def test_identification_kinds_are_the_spec_discriminator_values() -> None:
    variants = get_args(spec.IdentificationCreateParamsV2.model_fields["root"].annotation)
    kinds = [get_args(variant.model_fields["type"].annotation)[0] for variant in variants]
    assert sorted(kinds) == sorted(kind.value for kind in models.IdentificationKind)


# --- the sandbox: the spec's enums, strictly ---------------------------------------------------


def test_the_sandbox_takes_the_spec_enums_as_plain_strings_and_refuses_others() -> None:
    body = schemas.validate(schemas.UpdateWebhookRequest, {"topics": ["CustomerStatus", "Ping"]})
    assert body.topics == ["CustomerStatus", "Ping"] and all(type(topic) is str for topic in body.topics)
    created = schemas.validate(schemas.CreateCustomerParams, {"customer_type": "Business", "email": "a@b.co"})
    assert created.customer_type == "Business" and type(created.customer_type) is str

    for payload in ({"customer_type": "Robot", "email": "a@b.co"}, {"customer_type": 1, "email": "a@b.co"}):
        with pytest.raises(ValidationError) as refused:
            schemas.validate(schemas.CreateCustomerParams, payload)
        assert schemas.describe(refused.value).startswith("customer_type: Input should be 'Business' or 'Person'")
    with pytest.raises(ValidationError):  # JSON types must match exactly
        schemas.validate(schemas.SigningCreateParams, {"signed": "true"})
