"""The codec server's edges: no credential in any log line, tokenless mode only for loopback
`Host` names (DNS rebinding), a minimum token length, and no generated request answered 5xx."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import structlog
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.hypothesis_profiles import examples

from data_protection.codec import EncryptionCodec
from codec_server.app import MIN_TOKEN_LENGTH, create_app
from data_protection.keys import KeyRing
from data_protection.redaction import redact_processor
from tests.test_codec_server import TOKEN, client_for, plain_body
from demo.stack import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
CODEC = EncryptionCodec(KeyRing({"k1": os.urandom(32)}))


def test_a_token_shorter_than_the_minimum_is_refused():
    with pytest.raises(ValueError, match=str(MIN_TOKEN_LENGTH)):
        create_app(CODEC, ["x"])
    with pytest.raises(ValueError):
        create_app(CODEC, [TOKEN, "a" * (MIN_TOKEN_LENGTH - 1)])
    create_app(CODEC, ["a" * MIN_TOKEN_LENGTH])


async def test_tokenless_mode_answers_only_loopback_host_names():
    """Before: any Host was decrypted for, so a page whose DNS name rebinds to 127.0.0.1 could
    read payloads through the operator's browser."""
    app = create_app(CODEC, [], allow_unauthenticated=True)
    body = plain_body({"email": "ottilie@example.org"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8888") as client:
        assert (await client.post("/encode", json=body)).status_code == 200
        assert (await client.post("/encode", json=body, headers={"Host": "localhost:8888"})).status_code == 200
        for host in ("rebind.attacker.example:8888", "127.0.0.1.nip.io", "evil", ""):
            refused = await client.post("/encode", json=body, headers={"Host": host})
            assert refused.status_code == 400, host
            assert "payloads" not in refused.text


def _token_line_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    env["ONBOARDING_ENCRYPTION_KEYS"] = "k1:" + base64.b64encode(os.urandom(32)).decode()
    env["ONBOARDING_CODEC_TOKEN"] = TOKEN
    return env


def test_a_token_in_a_query_string_is_never_logged(tmp_path):
    """Before: uvicorn's access log wrote the request line, query string and all."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "codec_server", "--port", str(port)],
        cwd=REPO_ROOT, env=_token_line_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("codec server did not start")
                time.sleep(0.1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            client.post(f"/decode?token={TOKEN}&access_token={TOKEN}", json={"payloads": []})
            client.get(f"/healthz?token={TOKEN}")
            client.post("/decode", json={"payloads": []}, headers={"Authorization": f"Bearer {TOKEN[:-1]}"})
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
    assert "codec server starting" in output
    assert TOKEN not in output and TOKEN[:-1] not in output


# -- no generated request gives a 5xx, a hang or a credential in a log line ------------------------

methods = st.sampled_from(["GET", "POST", "PUT", "OPTIONS", "DELETE", "PATCH"])
paths = st.one_of(
    st.sampled_from(["/encode", "/decode", "/default/decode", "/ns/encode", "/healthz", "/", "/decode/x"]),
    st.text(alphabet=st.characters(codec="ascii", categories=("L", "N", "P")), max_size=40).map(lambda p: "/" + p),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(st.fixed_dictionaries({"metadata": st.dictionaries(st.sampled_from(["encoding", "encryption-key-id", "x"]), st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()), max_size=3), "data": st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())}), max_size=3).map(lambda p: json.dumps({"payloads": p}).encode()),
    st.integers(min_value=1, max_value=2000).map(lambda n: b'{"payloads": ' + b"[" * n + b"]" * n + b"}"),
)
authorizations = st.one_of(
    st.none(), st.just(f"Bearer {TOKEN}"), st.text(max_size=60).filter(lambda t: "\n" not in t and "\r" not in t),
    st.just(f"Bearer {TOKEN}x"), st.just("Bearer "),
)


def _log_text(logs: list[dict]) -> str:
    return json.dumps([redact_processor(None, "info", dict(entry)) for entry in logs], default=str)


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=methods, path=paths, body=bodies, authorization=authorizations, namespace=st.one_of(st.none(), st.text(max_size=20).filter(str.isprintable)))
async def test_no_generated_request_gives_a_5xx_a_hang_or_a_logged_token(method, path, body, authorization, namespace):
    app = create_app(CODEC, [TOKEN], namespaces=["default"], max_body_bytes=4096)
    headers: dict[str, str | bytes] = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization.encode()  # bytes: any octets, as a hostile client sends
    if namespace is not None:
        headers["x-namespace"] = namespace.encode()
    with structlog.testing.capture_logs() as logs:
        async with client_for(app) as client:
            response = await asyncio.wait_for(client.request(method, path + f"?token={TOKEN}", content=body, headers=headers), 10)
    assert response.status_code < 500, (method, path, response.text)
    assert TOKEN not in _log_text(logs)
    if authorization != f"Bearer {TOKEN}" and response.status_code == 200 and path.endswith(("code",)):
        pytest.fail("a request without the token was served")
