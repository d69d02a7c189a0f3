"""The document store on S3-compatible object storage (`ONBOARDING_DOCUMENT_STORE=s3://bucket/prefix`).

The S3 API is played by moto's standalone server (`moto.server.ThreadedMotoServer`), started by
these tests on 127.0.0.1 with a free port: a test double of the S3 API speaking real HTTP, so the
store's own client (obstore) signs and sends the same requests it sends to AWS S3, MinIO or R2.

The last test is the reason the store exists: a Person identification started on one "machine"
(its own directory, environment and document directory) is submitted to the Iron sandbox by a
worker on another; the two share nothing but the bucket.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import obstore
import pytest
from obstore.store import S3Store

from data_protection.documents import (
    ENV_DOCUMENT_STORE,
    DocumentNotFound,
    DocumentStore,
    DocumentStoreConfigurationError,
    DocumentStoreUnavailable,
    FilesystemDocumentStore,
    InvalidDocumentReference,
    S3DocumentStore,
    document_store_for,
)
from data_protection.keys import DecryptionError, KeyRing
from demo.stack import Process, Stack, StackConfig
from runtime.process import EXIT_CONFIGURATION
from runtime.settings import ConfigurationError, DocumentStoreSettings
from tests.conftest import REPO_ROOT
from worker import WorkerSettings

SAMPLE = REPO_ROOT / "samples" / "person_identification.json"
SECRET_TEXT = b'{"first_name": "Cordelia", "date_of_birth": "1968-02-29"}'


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()  # returns once the server listens
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint) -> str:
    name = f"documents-{uuid.uuid4().hex[:12]}"
    created = httpx.put(f"{s3_endpoint}/{name}")
    assert created.status_code == 200, created.text
    return name


def aws_environ(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "test-access-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key",
        "AWS_REGION": "eu-central-1",
        "AWS_ENDPOINT_URL": endpoint,
    }


def store_configured_by(environ: dict[str, str]) -> DocumentStore:
    """The store `environ` configures, built as the worker and the starter build theirs: the
    settings loaded once, the key ring and the store from them."""
    settings = DocumentStoreSettings.load(environ)
    return settings.documents(settings.keyring())


def key_spec() -> str:
    return f"s3-test-key:{base64.b64encode(os.urandom(32)).decode()}"


def store_environ(endpoint: str, url: str, keys: str | None = None) -> dict[str, str]:
    return {**aws_environ(endpoint), ENV_DOCUMENT_STORE: url, "ONBOARDING_ENCRYPTION_KEYS": keys or key_spec()}


def raw_objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    """Every object in the bucket, read with the S3 client directly (no store, no key ring)."""
    s3 = S3Store(
        bucket,
        config={"access_key_id": "x", "secret_access_key": "x", "region": "eu-central-1", "endpoint": endpoint},
        client_options={"allow_http": True},
    )
    paths = [meta["path"] for batch in obstore.list(s3) for meta in batch]
    return {path: bytes(obstore.get(s3, path).bytes()) for path in paths}


# --- the store ----------------------------------------------------------------------------------


async def test_put_get_forget_round_trip_is_encrypted_at_rest(s3_endpoint, bucket):
    store = store_configured_by(store_environ(s3_endpoint, f"s3://{bucket}/onboarding/documents"))
    assert isinstance(store, S3DocumentStore) and isinstance(store, DocumentStore) and store.encrypted

    ref = await store.put(SECRET_TEXT)
    assert ref.startswith("s3:") and uuid.UUID(ref[3:])
    assert await store.exists(ref)
    assert await store.get(ref) == SECRET_TEXT

    [(key, stored)] = raw_objects(s3_endpoint, bucket).items()
    assert key == f"onboarding/documents/{ref[3:]}.doc"
    assert SECRET_TEXT not in stored and b"Cordelia" not in stored and b"1968-02-29" not in stored
    assert b'"key_id": "s3-test-key"' in stored, "the header names the key that encrypted the body"

    assert await store.delete(ref) is True
    assert await store.delete(ref) is False, "forgetting twice finds nothing the second time"
    assert not await store.exists(ref)
    assert raw_objects(s3_endpoint, bucket) == {}
    with pytest.raises(DocumentNotFound, match=ref):
        await store.get(ref)


async def test_only_the_key_ring_that_wrote_a_document_reads_it(s3_endpoint, bucket):
    url = f"s3://{bucket}/docs"
    ref = await store_configured_by(store_environ(s3_endpoint, url)).put(SECRET_TEXT)
    with pytest.raises(DecryptionError):
        await store_configured_by(store_environ(s3_endpoint, url, keys=key_spec())).get(ref)


async def test_a_missing_object_and_a_reference_of_the_wrong_kind_get_the_clear_errors(s3_endpoint, bucket, tmp_path):
    store = store_configured_by(store_environ(s3_endpoint, f"s3://{bucket}"))
    missing = f"s3:{uuid.uuid4()}"
    with pytest.raises(DocumentNotFound, match=f"document {missing} not found: it was never stored here"):
        await store.get(missing)
    assert await store.exists(missing) is False and await store.delete(missing) is False

    local_ref = await FilesystemDocumentStore(tmp_path).put(SECRET_TEXT)
    for method in (store.get, store.exists, store.delete):
        with pytest.raises(InvalidDocumentReference, match=r"is not a document reference of this store \(s3:<uuid>\)"):
            await method(local_ref)
    with pytest.raises(InvalidDocumentReference, match=f"stored in a local directory.*the same {ENV_DOCUMENT_STORE}"):
        await store.get(local_ref)
    with pytest.raises(InvalidDocumentReference, match=r"\(s3:<uuid>\)$"):
        await store.get("s3:../../etc/passwd")

    s3_ref = await store.put(SECRET_TEXT)
    with pytest.raises(InvalidDocumentReference, match=r"\(fs:<uuid>\): it was stored in S3 object storage"):
        await FilesystemDocumentStore(tmp_path).get(s3_ref)


async def test_a_missing_bucket_is_the_store_unavailable_not_a_missing_document(s3_endpoint):
    store = store_configured_by(store_environ(s3_endpoint, f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}"))
    with pytest.raises(DocumentStoreUnavailable, match=f"check {ENV_DOCUMENT_STORE}") as caught:
        await store.get(f"s3:{uuid.uuid4()}")
    assert not isinstance(caught.value, DocumentNotFound), "retried by the activity, never NeedsAttention"
    with pytest.raises(DocumentStoreUnavailable, match="could not store"):
        await store.put(SECRET_TEXT)


async def test_purge_deletes_old_documents_and_leaves_other_objects(s3_endpoint, bucket):
    environ = store_environ(s3_endpoint, f"s3://{bucket}/docs")
    store = store_configured_by(environ)
    ref = await store.put(SECRET_TEXT)
    s3 = S3Store(bucket, prefix="docs", config={"endpoint": s3_endpoint, "access_key_id": "x", "secret_access_key": "x"},
                 client_options={"allow_http": True})
    await obstore.put_async(s3, "README.txt", b"not a document")

    assert await store.purge_older_than(3600) == 0
    assert await store.exists(ref)
    assert await store.purge_older_than(0) == 1
    assert not await store.exists(ref)
    assert list(raw_objects(s3_endpoint, bucket)) == ["docs/README.txt"]


# --- configuration ------------------------------------------------------------------------------

BAD_STORES = {
    "s3://": "names no bucket",
    "s3:///documents": "names no bucket",
    "gs://bucket/documents": "unknown scheme \"gs\"",
    "/var/lib/onboarding/documents": "not a store URL",
    "s3://Documents_Bucket": "is not a bucket name",
    "s3://bucket/a//b": "has an empty, '.' or '..' part",
    "s3://AKIAEXAMPLE:hunter2@bucket/documents": "credentials come from AWS_ACCESS_KEY_ID",
}


@pytest.mark.parametrize("value", sorted(BAD_STORES))
def test_a_bad_store_url_is_a_configuration_error_naming_the_variable(value):
    with pytest.raises(DocumentStoreConfigurationError) as caught:
        document_store_for(value, keyring=KeyRing.from_spec(key_spec()))
    assert isinstance(caught.value, ConfigurationError)
    message = str(caught.value)
    assert message.startswith(f"{ENV_DOCUMENT_STORE}: ") and BAD_STORES[value] in message, message
    assert "\n" not in message and "hunter2" not in message

    with pytest.raises(ConfigurationError) as at_start:
        WorkerSettings.load({ENV_DOCUMENT_STORE: value})
    assert f"{ENV_DOCUMENT_STORE}: " in str(at_start.value) and BAD_STORES[value] in str(at_start.value)
    assert "hunter2" not in str(at_start.value)


def test_an_s3_store_without_encryption_keys_is_a_configuration_error(s3_endpoint):
    with pytest.raises(DocumentStoreConfigurationError, match=f"{ENV_DOCUMENT_STORE}: .*needs encryption keys"):
        store_configured_by({**aws_environ(s3_endpoint), ENV_DOCUMENT_STORE: "s3://documents/onboarding"})


def test_unset_or_blank_is_the_local_directory(tmp_path):
    for value in (None, "", "  "):
        environ = {"ONBOARDING_DOCUMENT_DIR": str(tmp_path)}
        if value is not None:
            environ[ENV_DOCUMENT_STORE] = value
        store = store_configured_by(environ)
        assert isinstance(store, FilesystemDocumentStore) and store.root == tmp_path


def _environ_without_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ONBOARDING_", "IRON_", "TEMPORAL_", "AWS_"))}


def test_worker_and_starter_stop_at_start_on_a_bad_store_url():
    env = {
        **_environ_without_settings(),
        "IRON_API_KEY": "k", "TEMPORAL_ADDRESS": "127.0.0.1:1", "LOG_LEVEL": "WARNING",
        ENV_DOCUMENT_STORE: "s3://",
    }
    worker = subprocess.run([sys.executable, str(REPO_ROOT / "worker.py")], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert worker.returncode == EXIT_CONFIGURATION, worker.stderr
    assert worker.stderr.strip() == (
        f"configuration: {ENV_DOCUMENT_STORE}: names no bucket: use s3://bucket/prefix (got \"s3://\")"
    )

    starter = subprocess.run([sys.executable, str(REPO_ROOT / "starter.py"), "status", "anyone"], cwd=REPO_ROOT,
                             env={**env, ENV_DOCUMENT_STORE: "gs://bucket"}, capture_output=True, text=True, timeout=60)
    assert starter.returncode == EXIT_CONFIGURATION, starter.stderr
    assert starter.stderr.startswith(f"configuration: {ENV_DOCUMENT_STORE}: unknown scheme \"gs\""), starter.stderr
    assert len(starter.stderr.strip().splitlines()) == 1 and "Traceback" not in starter.stderr


# --- two machines, one bucket -------------------------------------------------------------------


@pytest.fixture(scope="module")
def temporal_and_iron(tmp_path_factory):
    """A dev server and the Iron sandbox (no autopilot: an identification stays pending where
    it was created), each its own process; no worker, no receiver."""
    config = StackConfig.ephemeral(tmp_path_factory.mktemp("stack"), events=False, autopilot=False)
    with Stack(config) as stack:
        stack.start_temporal()
        stack.start_sandbox()
        yield stack


def machine(stack: Stack, root: Path, s3_endpoint: str, store_url: str) -> dict[str, str]:
    """The environment of one machine: its own directory, documents directory and copy of the
    key file (the same keys, as every starter and worker of a deployment has), and the bucket."""
    root.mkdir()
    key_file = root / "encryption-keys.json"
    shutil.copy2(stack.ensure_encryption_key(), key_file)
    inherited = {k: v for k, v in stack.env().items() if not k.startswith("AWS_")}
    return {
        **inherited,
        **aws_environ(s3_endpoint),
        "ONBOARDING_ENCRYPTION_KEY_FILE": str(key_file),
        "ONBOARDING_DOCUMENT_DIR": str(root / "documents"),
        ENV_DOCUMENT_STORE: store_url,
    }


def wait_for_log_line(process: Process, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = process.log_path.read_text(errors="replace") if process.log_path.exists() else ""
        if text in log:
            return
        if not process.running:
            pytest.fail(f"{process.name} exited with {process.popen.returncode} before {text!r}:\n{log[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"{process.name} logged no {text!r} within {timeout:.0f}s:\n{log[-3000:]}")


def test_a_person_identification_started_on_one_machine_is_submitted_by_a_worker_on_another(
    temporal_and_iron, s3_endpoint, bucket, tmp_path
):
    stack = temporal_and_iron
    store_url = f"s3://{bucket}/onboarding"
    starter_machine, worker_machine = tmp_path / "starter-machine", tmp_path / "worker-machine"
    starter_env = machine(stack, starter_machine, s3_endpoint, store_url)
    worker_env = machine(stack, worker_machine, s3_endpoint, store_url)
    (starter_machine / "samples").mkdir()
    shutil.copy(SAMPLE, starter_machine / "samples" / "person_identification.json")

    worker = Process("worker-on-another-machine", [sys.executable, str(REPO_ROOT / "worker.py")], worker_env,
                     worker_machine / "worker.log", cwd=worker_machine)
    stack.processes[worker.name] = worker  # stopped with the stack
    worker.start(wait=False)
    wait_for_log_line(worker, "worker_started", timeout=60)

    def starter(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO_ROOT / "starter.py"), *args], cwd=starter_machine,
                              env=starter_env, capture_output=True, text=True, timeout=120)

    external_id = f"two-machines-{uuid.uuid4().hex[:8]}"
    started = starter("start", external_id, "--email", "cordelia@example.com", "--name", "Cordelia Quince",
                      "--identification", "person", "--identification-file", "samples/person_identification.json")
    assert started.returncode == 0, started.stderr

    waited = starter("wait", external_id, "--phase", "AwaitingIdentification", "--phase", "NeedsAttention",
                     "--timeout", "90", "--json")
    assert waited.returncode == 0, (waited.stdout, waited.stderr, worker.log_path.read_text()[-3000:])
    state = json.loads(waited.stdout)
    assert state["phase"] == "AwaitingIdentification", state.get("needs_attention")
    assert state["identification_id"] and state["identification_kind"] == "Person", state

    # The document and the contact went through the bucket alone, encrypted, and neither machine
    # kept a copy.
    objects = raw_objects(s3_endpoint, bucket)
    assert len(objects) == 2 and all(k.startswith("onboarding/") and k.endswith(".doc") for k in objects), sorted(objects)
    person = json.loads(SAMPLE.read_text())
    for stored in objects.values():
        assert person["first_name"].encode() not in stored and person["date_of_birth"].encode() not in stored
        assert b"cordelia@example.com" not in stored and b"Cordelia Quince" not in stored
    for root in (starter_machine, worker_machine):
        assert not (root / "documents").exists() and not (root / ".data").exists(), f"{root.name} stored locally"
