"""Payload encryption: real AES-GCM through the project's data converter and a real Temporal server."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from data_protection.codec import (
    ENCODING,
    METADATA_KEY_ID,
    EncryptionCodec,
    PayloadDecryptionError,
)
from data_protection.keys import (
    ENV_CURRENT_KEY_ID,
    ENV_KEY_FILE,
    ENV_KEYS,
    KeyConfigurationError,
    KeyNotFoundError,
    KeyRing,
    generate_key_file,
)
from runtime.converter import PYDANTIC_DATA_CONVERTER
from runtime.settings import ProcessSettings
from runtime.temporal import data_converter

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Applicant(BaseModel):
    first_name: str
    email_address: str
    date_of_birth: str


PERSON = Applicant(first_name="Philippa", email_address="philippa.q.unique@example.org", date_of_birth="1987-03-14")
PERSONAL_STRINGS = ("Philippa", "philippa.q.unique@example.org", "1987-03-14")


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(autouse=True)
def no_keys_configured(monkeypatch):
    for name in (ENV_KEYS, ENV_KEY_FILE, ENV_CURRENT_KEY_ID):
        monkeypatch.delenv(name, raising=False)


def assert_no_personal_data(blob: bytes) -> None:
    for text in PERSONAL_STRINGS:
        assert text.encode() not in blob, f"{text!r} readable in {blob[:200]!r}"


async def test_round_trip_through_the_project_data_converter(monkeypatch):
    monkeypatch.setenv(ENV_KEYS, f"k1:{new_key()}")
    converter = data_converter()
    assert isinstance(converter.payload_codec, EncryptionCodec)

    payloads = await converter.encode([PERSON, {"note": "Philippa"}, "plain text 1987-03-14"])
    for payload in payloads:
        assert payload.metadata["encoding"] == ENCODING
        assert payload.metadata[METADATA_KEY_ID] == b"k1"
        assert set(payload.metadata) == {"encoding", METADATA_KEY_ID}
        raw = payload.SerializeToString()
        assert_no_personal_data(raw)
        # the original encoding and message type are encrypted too
        assert b"json/plain" not in raw and b"Applicant" not in raw

    decoded = await converter.decode(payloads, [Applicant, dict, str])
    assert decoded == [PERSON, {"note": "Philippa"}, "plain text 1987-03-14"]


async def test_each_encryption_uses_a_fresh_nonce(monkeypatch):
    monkeypatch.setenv(ENV_KEYS, f"k1:{new_key()}")
    converter = data_converter()
    first, second = await converter.encode([PERSON, PERSON])
    assert first.data[:12] != second.data[:12]
    assert first.data != second.data


async def test_history_written_under_old_key_reads_after_rotation(monkeypatch):
    k1, k2 = new_key(), new_key()
    monkeypatch.setenv(ENV_KEYS, f"k1:{k1}")
    old = await data_converter().encode([PERSON])
    assert old[0].metadata[METADATA_KEY_ID] == b"k1"

    # k2 becomes current; k1 stays in the ring for old histories
    monkeypatch.setenv(ENV_KEYS, f"k1:{k1},k2:{k2}")
    monkeypatch.setenv(ENV_CURRENT_KEY_ID, "k2")
    rotated = data_converter()
    assert await rotated.decode(old, [Applicant]) == [PERSON]
    new = await rotated.encode([PERSON])
    assert new[0].metadata[METADATA_KEY_ID] == b"k2"

    # the first entry is current when no current key id is named
    monkeypatch.delenv(ENV_CURRENT_KEY_ID)
    monkeypatch.setenv(ENV_KEYS, f"k2:{k2},k1:{k1}")
    again = data_converter()
    assert (await again.encode([PERSON]))[0].metadata[METADATA_KEY_ID] == b"k2"
    assert await again.decode(old + new, [Applicant, Applicant]) == [PERSON, PERSON]


async def test_key_file_rotation(tmp_path, monkeypatch):
    path = tmp_path / "keys" / "onboarding-keys.json"
    assert generate_key_file(path) == "k1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setenv(ENV_KEY_FILE, str(path))
    old = await data_converter().encode([PERSON])

    assert generate_key_file(path) == "k2"  # the rotation path: added and made current
    content = json.loads(path.read_text())
    assert content["current"] == "k2" and set(content["keys"]) == {"k1", "k2"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rotated = data_converter()
    assert await rotated.decode(old, [Applicant]) == [PERSON]
    assert (await rotated.encode([PERSON]))[0].metadata[METADATA_KEY_ID] == b"k2"

    # staged rotation: a key can be distributed before it becomes current
    assert generate_key_file(path, "k3", make_current=False) == "k3"
    assert KeyRing.from_file(path).current_key_id == "k2"
    with pytest.raises(KeyConfigurationError, match="already exists"):
        generate_key_file(path, "k3")


def test_key_cli_generates_and_rotates_without_printing_keys(tmp_path):
    path = tmp_path / "keys.json"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "data_protection.keys", *args, "--file", str(path)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )

    created = run("generate")
    assert created.returncode == 0, created.stderr
    assert run("generate").returncode == 2  # never overwrites an existing key file
    rotated = run("rotate", "--key-id", "2025-q3")
    assert rotated.returncode == 0, rotated.stderr
    listed = run("list")
    assert listed.stdout.split() == ["k1", "2025-q3", "(current)"]
    keys = json.loads(path.read_text())["keys"]
    for output in (created, rotated, listed):
        for material in keys.values():
            assert material not in output.stdout + output.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_unknown_key_id_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(ENV_KEYS, f"k1:{new_key()}")
    written = await data_converter().encode([PERSON])

    monkeypatch.setenv(ENV_KEYS, f"k2:{new_key()}")
    with pytest.raises(KeyNotFoundError) as caught:
        await data_converter().decode(written, [Applicant])
    assert caught.value.key_id == "k1"
    assert '"k1"' in str(caught.value) and "k2" in str(caught.value)


async def test_wrong_key_material_under_the_same_id_fails_authentication(monkeypatch):
    monkeypatch.setenv(ENV_KEYS, f"k1:{new_key()}")
    written = await data_converter().encode([PERSON])
    monkeypatch.setenv(ENV_KEYS, f"k1:{new_key()}")
    with pytest.raises(PayloadDecryptionError, match="k1"):
        await data_converter().decode(written, [Applicant])


async def test_tampered_ciphertext_is_rejected():
    shared = os.urandom(32)  # same material under two ids: only the authenticated key id tells them apart
    ring = KeyRing({"k1": shared, "k2": shared})
    codec = EncryptionCodec(ring)
    [good] = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"Philippa"')])

    flipped = Payload()
    flipped.CopyFrom(good)
    flipped.data = good.data[:20] + bytes([good.data[20] ^ 0x01]) + good.data[21:]
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await codec.decode([flipped])

    relabelled = Payload()
    relabelled.CopyFrom(good)
    relabelled.metadata[METADATA_KEY_ID] = b"k2"  # the key id is authenticated
    with pytest.raises(PayloadDecryptionError):
        await codec.decode([relabelled])

    truncated = Payload()
    truncated.CopyFrom(good)
    truncated.data = good.data[:10]
    with pytest.raises(PayloadDecryptionError, match="truncated"):
        await codec.decode([truncated])

    unlabelled = Payload(metadata={"encoding": ENCODING}, data=good.data)
    with pytest.raises(PayloadDecryptionError, match=METADATA_KEY_ID):
        await codec.decode([unlabelled])

    assert await codec.decode([good]) == [Payload(metadata={"encoding": b"json/plain"}, data=b'"Philippa"')]


async def test_payloads_written_before_encryption_still_read(monkeypatch):
    before = await pydantic_data_converter.encode([PERSON, None, b"raw-bytes"])
    monkeypatch.setenv(ENV_KEYS, f"k1:{new_key()}")
    converter = data_converter()
    assert await converter.decode(before, [Applicant, type(None), bytes]) == [PERSON, None, b"raw-bytes"]
    codec = converter.payload_codec
    assert await codec.decode(before) == before


def test_no_keys_means_no_codec():
    assert ProcessSettings.load().codec() is None
    assert data_converter() is PYDANTIC_DATA_CONVERTER and PYDANTIC_DATA_CONVERTER.payload_codec is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({ENV_KEYS: "k1"}, "keyid:base64key"),
        ({ENV_KEYS: "k1:not base64!"}, "\"k1\" is not valid base64"),
        ({ENV_KEYS: f"k1:{base64.b64encode(b'short').decode()}"}, "32 bytes"),
        ({ENV_KEYS: "k1:{k},k1:{k}"}, "appears twice"),
        ({ENV_KEYS: "k1:{k}", ENV_CURRENT_KEY_ID: "k9"}, '"k9"'),
        ({ENV_KEYS: "k1:{k}", ENV_KEY_FILE: "/nonexistent.json"}, "not both"),
        ({ENV_KEY_FILE: "/nonexistent/keys.json"}, "does not exist"),
        ({ENV_CURRENT_KEY_ID: "k1"}, "no keys are configured"),
        ({ENV_KEYS: "bad id:{k}"}, "invalid key id"),
    ],
)
def test_misconfigured_keys_fail_loudly_without_echoing_keys(monkeypatch, env, message):
    key = new_key()
    for name, value in env.items():
        monkeypatch.setenv(name, value.replace("{k}", key))
    with pytest.raises(KeyConfigurationError, match=message) as caught:
        data_converter()
    assert key not in str(caught.value)


def test_key_ring_never_shows_its_keys():
    raw = os.urandom(32)
    ring = KeyRing({"k1": raw})
    text = repr(ring) + str(ring) + repr(EncryptionCodec(ring))
    assert base64.b64encode(raw).decode() not in text and raw.hex() not in text
    assert "k1" in text


# -- a real Temporal server -------------------------------------------------------------------


@activity.defn
async def greet_applicant(applicant: Applicant) -> str:
    return f"Welcome {applicant.first_name} <{applicant.email_address}>"


@workflow.defn(sandboxed=False)
class EncryptedEchoWorkflow:
    @workflow.run
    async def run(self, applicant: Applicant) -> str:
        return await workflow.execute_activity(
            greet_applicant, applicant, start_to_close_timeout=timedelta(seconds=30)
        )


async def test_history_on_a_real_server_holds_no_personal_data(monkeypatch, temporal_test_server_path):
    monkeypatch.setenv(ENV_KEYS, f"k1:{new_key()}")
    converter = data_converter()
    workflow_id = f"codec-test-{uuid.uuid4()}"
    task_queue = f"codec-test-{uuid.uuid4()}"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server_path, data_converter=converter
    )
    async with env:
        async with Worker(
            env.client, task_queue=task_queue, workflows=[EncryptedEchoWorkflow], activities=[greet_applicant]
        ):
            result = await env.client.execute_workflow(
                EncryptedEchoWorkflow.run, PERSON, id=workflow_id, task_queue=task_queue
            )
        assert result == "Welcome Philippa <philippa.q.unique@example.org>"

        # What anyone with access to the server (or its database) sees: no codec.
        plain = Client(env.client.service_client, namespace=env.client.namespace, data_converter=pydantic_data_converter)
        history = await plain.get_workflow_handle(workflow_id).fetch_history()
        assert_no_personal_data(history.to_json().encode())
        assert_no_personal_data(b"".join(e.SerializeToString() for e in history.events))

        started = history.events[0].workflow_execution_started_event_attributes
        [encrypted_input] = started.input.payloads
        assert encrypted_input.metadata["encoding"] == ENCODING
        assert await converter.decode([encrypted_input], [Applicant]) == [PERSON]
        scheduled = [e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
        assert scheduled and all(
            p.metadata["encoding"] == ENCODING
            for e in scheduled
            for p in e.activity_task_scheduled_event_attributes.input.payloads
        )


@pytest.mark.parametrize(
    "content, says",
    [(b"\xff\xfe not text", "is not UTF-8 text"), (b"[" * 100_000 + b"]" * 100_000, "nests too deep")],
)
def test_the_keys_cli_answers_an_unreadable_key_file_with_one_line(tmp_path, capsys, content, says):
    from data_protection.keys import main as keys_main

    path = tmp_path / "keys.json"
    path.write_bytes(content)
    assert keys_main(["list", "--file", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
