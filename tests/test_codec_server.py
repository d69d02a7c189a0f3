"""The codec server: Temporal's remote codec protocol, token auth and CORS, over real HTTP too."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace

import httpx
import pytest
import uvicorn
from google.protobuf import json_format
from pydantic import BaseModel
from temporalio import workflow
from temporalio.api.common.v1 import Payloads
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from data_protection.codec import ENCODING, EncryptionCodec
from codec_server.app import create_app
from data_protection.keys import ENV_CURRENT_KEY_ID, ENV_KEY_FILE, ENV_KEYS, KeyRing
from runtime.process import EXIT_CONFIGURATION

TOKEN = "codec-token-" + "a1" * 16
OTHER_TOKEN = "codec-token-" + "b2" * 16
UI_ORIGIN = "http://localhost:8233"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Namespace": "default"}


@pytest.fixture
def codec() -> EncryptionCodec:
    return EncryptionCodec(KeyRing({"k1": os.urandom(32)}))


def plain_body(*values) -> dict:
    payloads = pydantic_data_converter.payload_converter.to_payloads(list(values))
    return json_format.MessageToDict(Payloads(payloads=payloads))


def values_of(body: dict, count: int) -> list:
    payloads = Payloads()
    json_format.ParseDict(body, payloads)
    return pydantic_data_converter.payload_converter.from_payloads(list(payloads.payloads), [object] * count)


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec.test")


# -- the protocol -------------------------------------------------------------------------------


async def test_encode_then_decode_round_trip(codec):
    async with client_for(create_app(codec, [TOKEN])) as client:
        encoded = await client.post("/encode", json=plain_body({"first_name": "Ottilie"}, "x"), headers=AUTH)
        assert encoded.status_code == 200, encoded.text
        body = encoded.json()
        assert len(body["payloads"]) == 2
        for payload in body["payloads"]:
            # protobuf JSON: metadata values and data are base64
            assert base64.b64decode(payload["metadata"]["encoding"]) == ENCODING
            assert base64.b64decode(payload["metadata"]["encryption-key-id"]) == b"k1"
        assert "Ottilie" not in encoded.text and b"Ottilie" not in base64.b64decode(body["payloads"][0]["data"])

        decoded = await client.post("/decode", json=body, headers=AUTH)
        assert decoded.status_code == 200, decoded.text
        assert decoded.json() == plain_body({"first_name": "Ottilie"}, "x")
        assert values_of(decoded.json(), 2) == [{"first_name": "Ottilie"}, "x"]


async def test_decodes_what_the_worker_encoded_and_passes_plain_payloads_through(codec):
    encrypted = await codec.encode(pydantic_data_converter.payload_converter.to_payloads(["Ottilie"]))
    mixed = json_format.MessageToDict(Payloads(payloads=[*encrypted, *pydantic_data_converter.payload_converter.to_payloads([7])]))
    async with client_for(create_app(codec, [TOKEN])) as client:
        response = await client.post("/decode", json=mixed, headers=AUTH)
    assert response.status_code == 200
    assert values_of(response.json(), 2) == ["Ottilie", 7]


async def test_empty_payload_list_and_namespace_path_form(codec):
    async with client_for(create_app(codec, [TOKEN])) as client:
        response = await client.post("/default/decode", json={"payloads": []}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.json() == {"payloads": []}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer "},
    ],
)
async def test_missing_or_wrong_token_is_401(codec, headers):
    async with client_for(create_app(codec, [TOKEN])) as client:
        for path in ("/decode", "/encode", "/default/decode"):
            response = await client.post(path, json=plain_body("Ottilie"), headers={"X-Namespace": "default", **headers})
            assert response.status_code == 401
            assert "Ottilie" not in response.text
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_any_of_several_tokens_is_accepted(codec):
    async with client_for(create_app(codec, [TOKEN, OTHER_TOKEN])) as client:
        for token in (TOKEN, OTHER_TOKEN):
            response = await client.post("/decode", json={"payloads": []}, headers={"Authorization": f"bearer {token}"})
            assert response.status_code == 200


def test_a_token_is_required_unless_explicitly_waived(codec):
    with pytest.raises(ValueError, match="token"):
        create_app(codec, [])
    assert create_app(codec, [], allow_unauthenticated=True) is not None


async def test_namespaces_can_be_restricted(codec):
    async with client_for(create_app(codec, [TOKEN], namespaces=["onboarding"])) as client:
        ok = await client.post("/decode", json={"payloads": []}, headers={**AUTH, "X-Namespace": "onboarding"})
        assert ok.status_code == 200
        other = await client.post("/decode", json={"payloads": []}, headers={**AUTH, "X-Namespace": "payments"})
        assert other.status_code == 403 and "payments" in other.json()["error"]
        missing = await client.post("/decode", json={"payloads": []}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert missing.status_code == 403
        by_path = await client.post("/onboarding/decode", json={"payloads": []}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert by_path.status_code == 200


async def test_unknown_key_and_tampering_are_reported_not_garbled(codec):
    other = EncryptionCodec(KeyRing({"k7": os.urandom(32)}))
    foreign = await other.encode(pydantic_data_converter.payload_converter.to_payloads(["Ottilie"]))
    [mine] = await codec.encode(pydantic_data_converter.payload_converter.to_payloads(["Ottilie"]))
    mine.data = mine.data[:-1] + bytes([mine.data[-1] ^ 1])
    async with client_for(create_app(codec, [TOKEN])) as client:
        response = await client.post("/decode", json=json_format.MessageToDict(Payloads(payloads=foreign)), headers=AUTH)
        assert response.status_code == 422
        assert '"k7"' in response.json()["error"]
        response = await client.post("/decode", json=json_format.MessageToDict(Payloads(payloads=[mine])), headers=AUTH)
        assert response.status_code == 422
        assert "failed authentication" in response.json()["error"]


async def test_malformed_and_oversized_bodies(codec):
    async with client_for(create_app(codec, [TOKEN], max_body_bytes=1024)) as client:
        bad = await client.post("/decode", content=b"not json", headers=AUTH)
        assert bad.status_code == 400
        wrong_shape = await client.post("/decode", json={"payloads": "not a list"}, headers=AUTH)
        assert wrong_shape.status_code == 400
        big = await client.post("/decode", json=plain_body("x" * 4096), headers=AUTH)
        assert big.status_code == 413


async def test_healthz_needs_no_token(codec):
    async with client_for(create_app(codec, [TOKEN])) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


# -- CORS ---------------------------------------------------------------------------------------


def preflight_headers(origin: str) -> dict:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }


async def test_preflight_for_the_ui_origin_needs_no_token(codec):
    async with client_for(create_app(codec, [TOKEN])) as client:
        for origin in ("http://localhost:8233", "http://127.0.0.1:8233"):
            response = await client.options("/decode", headers=preflight_headers(origin))
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == origin
            assert response.headers["access-control-allow-credentials"] == "true"
            allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
            assert {"content-type", "x-namespace", "authorization"} <= allowed
            assert "POST" in response.headers["access-control-allow-methods"]


async def test_no_cors_headers_for_other_origins(codec):
    async with client_for(create_app(codec, [TOKEN])) as client:
        preflight = await client.options("/decode", headers=preflight_headers("https://evil.example"))
        assert preflight.status_code >= 400
        assert "access-control-allow-origin" not in preflight.headers
        post = await client.post("/decode", json={"payloads": []}, headers={**AUTH, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in post.headers


async def test_responses_to_the_ui_origin_carry_cors_headers_even_when_refused(codec):
    async with client_for(create_app(codec, [TOKEN], origins=["https://temporal.internal.example"])) as client:
        ok = await client.post("/decode", json={"payloads": []}, headers={**AUTH, "Origin": "https://temporal.internal.example"})
        assert ok.headers["access-control-allow-origin"] == "https://temporal.internal.example"
        assert ok.headers["access-control-allow-credentials"] == "true"
        refused = await client.post("/decode", json={"payloads": []}, headers={"Origin": "https://temporal.internal.example"})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "https://temporal.internal.example"
        # the defaults are not allowed once origins are configured
        local = await client.options("/decode", headers=preflight_headers(UI_ORIGIN))
        assert "access-control-allow-origin" not in local.headers


# -- real HTTP ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def running_server(codec):
    port = free_port()
    config = uvicorn.Config(create_app(codec, [TOKEN]), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("codec server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_protocol_over_real_http(running_server, codec):
    with httpx.Client(base_url=running_server, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        assert client.post("/decode", json={"payloads": []}).status_code == 401
        preflight = client.options("/decode", headers=preflight_headers(UI_ORIGIN))
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == UI_ORIGIN

        encoded = client.post("/encode", json=plain_body({"email": "ottilie@example.org"}), headers={**AUTH, "Origin": UI_ORIGIN})
        assert encoded.status_code == 200
        assert encoded.headers["access-control-allow-origin"] == UI_ORIGIN
        assert "ottilie" not in encoded.text
        decoded = client.post("/decode", json=encoded.json(), headers=AUTH)
        assert values_of(decoded.json(), 1) == [{"email": "ottilie@example.org"}]


def test_server_refuses_to_start_without_keys_or_open_to_the_network():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k not in (ENV_KEYS, ENV_KEY_FILE, ENV_CURRENT_KEY_ID, "ONBOARDING_CODEC_TOKEN")}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "codec_server", *args],
            cwd=repo, env={**env, **extra}, capture_output=True, text=True, timeout=60,
        )

    no_keys = run("--port", str(free_port()))
    assert no_keys.returncode == EXIT_CONFIGURATION and ENV_KEYS in no_keys.stderr
    key = base64.b64encode(os.urandom(32)).decode()
    open_to_all = run("--host", "0.0.0.0", "--port", str(free_port()), **{ENV_KEYS: f"k1:{key}"})
    assert open_to_all.returncode == EXIT_CONFIGURATION
    assert open_to_all.stderr.startswith("configuration: ONBOARDING_CODEC_TOKEN: not set")
    assert key not in open_to_all.stderr + open_to_all.stdout


# -- the Temporal CLI against the codec server ----------------------------------------------------


class Greeting(BaseModel):
    full_name: str


@workflow.defn(sandboxed=False)
class CodecShowWorkflow:
    @workflow.run
    async def run(self, greeting: Greeting) -> str:
        return f"done for {greeting.full_name}"


async def test_temporal_cli_reads_history_through_the_codec_server(codec, running_server, temporal_cli_path):
    converter = replace(pydantic_data_converter, payload_codec=codec)
    workflow_id = f"codec-show-{uuid.uuid4()}"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path,
        data_converter=converter,
    )
    async with env:
        async with Worker(env.client, task_queue="codec-show", workflows=[CodecShowWorkflow]):
            result = await env.client.execute_workflow(
                CodecShowWorkflow.run, Greeting(full_name="Ottilie Quarrington"), id=workflow_id, task_queue="codec-show"
            )
        assert result == "done for Ottilie Quarrington"
        address = env.client.service_client.config.target_host

        def show(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [temporal_cli_path, "workflow", "show", "-w", workflow_id, "--address", address,
                 "--namespace", env.client.namespace, "--output", "json", *extra],
                capture_output=True, text=True, timeout=60,
            )

        def started_input(output: str) -> tuple[bytes, bytes]:
            events = json.loads(output)["events"]
            [payload] = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
            return base64.b64decode(payload["metadata"]["encoding"]), base64.b64decode(payload.get("data", ""))

        without = await asyncio.to_thread(show)
        assert without.returncode == 0, without.stderr
        encoding, data = started_input(without.stdout)
        assert encoding == ENCODING and b"Ottilie" not in data

        with_codec = await asyncio.to_thread(
            show, "--codec-endpoint", running_server, "--codec-auth", f"Bearer {TOKEN}"
        )
        assert with_codec.returncode == 0, with_codec.stderr
        encoding, data = started_input(with_codec.stdout)
        assert encoding == b"json/plain"
        assert json.loads(data) == {"full_name": "Ottilie Quarrington"}
