"""The HTTP API's contract and its keys, without a server: the committed OpenAPI document
(`onboarding_api/openapi.json`, what clients are generated from) is the one the API serves
(`make api-spec` rewrites it); the keys file is read strictly, keys are checked by their hash
only, and `new-key` prints a key with its line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from contracts.configuration import ConfigurationError
from onboarding_api.app import openapi_document, openapi_text
from onboarding_api.auth import ApiKeyRing, key_sha256
from onboarding_api.problems import CATALOGUE
from tests.conftest import REPO_ROOT

COMMITTED = REPO_ROOT / "onboarding_api" / "openapi.json"


def test_the_committed_contract_is_the_one_the_api_serves():
    assert COMMITTED.read_text() == openapi_text(), "the API changed: run `make api-spec` and commit onboarding_api/openapi.json"
    document = json.loads(COMMITTED.read_text())
    assert document["openapi"].startswith("3.1")
    assert "api-spec:" in (REPO_ROOT / "Makefile").read_text()


def test_every_error_the_contract_names_is_a_problem_document_and_no_framework_422_is_left():
    document = openapi_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
                    assert response["content"]["application/problem+json"]["schema"]["$ref"].endswith("/ProblemDetails")
            if not path.startswith(("/healthz", "/readyz", "/metrics")):
                assert operation["security"] == [{"apiKey": []}], (method, path)
                assert "401" in operation["responses"], (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert {status for status, _ in CATALOGUE.values()} >= {400, 401, 404, 408, 409, 422}


def test_the_keys_file_is_read_strictly_and_names_the_variable():
    good = {"name": "a", "sha256": key_sha256("k"), "sub_partner_id": None}
    for document, problem in [
        ({}, "must be a JSON object"),
        ({"keys": []}, "lists no key"),
        ({"keys": [{**good, "sha256": "oak_the-key-itself"}]}, "never the key itself"),
        ({"keys": [{**good, "sub_partner_id": "brand-a"}]}, "sub_partner_id must be"),
        ({"keys": [good, {**good, "sha256": key_sha256("other")}]}, "two keys are named"),
        ({"keys": [good, {**good, "name": "b"}]}, "same sha256"),
        ({"keys": [{**good, "extra": 1}]}, "unknown fields"),
    ]:
        with pytest.raises(ConfigurationError, match=f"^ONBOARDING_API_KEYS_FILE: .*{problem}"):
            ApiKeyRing.from_document(document)


def test_a_key_is_known_by_its_hash_and_a_scope_naming_the_default_sub_partner_is_the_default_scope():
    default = "0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f"
    ring = ApiKeyRing.from_document(
        {"keys": [{"name": "old", "sha256": key_sha256("oak_old"), "sub_partner_id": None},
                  {"name": "new", "sha256": key_sha256("oak_new").upper(), "sub_partner_id": default.upper()}]},
        default_scope=lambda s: None if s == default else s,
    )
    assert ring.caller("Bearer oak_old").name == "old"
    new = ring.caller("bearer  oak_new ")
    assert new.name == "new" and new.scoped and new.sub_partner_id is None
    assert ring.caller("Bearer oak_other") is None and ring.caller(None) is None and ring.caller("oak_old") is None


def test_new_key_prints_the_key_and_its_line_and_adds_it_to_a_file(tmp_path):
    keys_file = tmp_path / "keys.json"
    made = subprocess.run([sys.executable, "-m", "onboarding_api", "new-key", "--name", "backend", "--file", str(keys_file)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key, line = made.stdout.splitlines()
    entry = json.loads(line)
    assert key.startswith("oak_") and entry == {"name": "backend", "sha256": key_sha256(key), "sub_partner_id": None}
    assert key not in keys_file.read_text()
    assert ApiKeyRing.from_file(keys_file).caller(f"Bearer {key}").name == "backend"
    refused = subprocess.run([sys.executable, "-m", "onboarding_api", "new-key", "--name", "x", "--sub-partner", "nope"],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.startswith("error: --sub-partner: ")
