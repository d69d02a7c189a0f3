"""The document store that keeps identification data (and its 10 MB documents) out of history."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import stat
import time
import uuid
from pathlib import Path

import pytest

from data_protection.documents import (
    MAX_DOCUMENT_BYTES,
    DocumentNotFound,
    DocumentStore,
    DocumentTooLarge,
    FilesystemDocumentStore,
    IdentificationFileError,
    InvalidDocumentReference,
    store_identification_file,
)
from data_protection.keys import ENV_KEYS, DecryptionError, KeyNotFoundError, KeyRing

SECRET_TEXT = b'{"first_name": "Cordelia", "date_of_birth": "1968-02-29"}'


def ring(**keys: bytes) -> KeyRing:
    return KeyRing(keys or {"k1": os.urandom(32)})


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_put_get_exists_delete(tmp_path):
    store = FilesystemDocumentStore(tmp_path / "docs")
    assert isinstance(store, DocumentStore)
    ref = await store.put(SECRET_TEXT)
    assert ref.startswith("fs:") and uuid.UUID(ref[3:])
    assert await store.exists(ref)
    assert await store.get(ref) == SECRET_TEXT

    [path] = stored_files(tmp_path / "docs")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "docs").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    assert await store.delete(ref) is True
    assert await store.delete(ref) is False
    assert not await store.exists(ref)
    with pytest.raises(DocumentNotFound, match=ref):
        await store.get(ref)


async def test_concurrent_puts_get_distinct_references(tmp_path):
    store = FilesystemDocumentStore(tmp_path)
    bodies = [f"document {i}".encode() * 100 for i in range(30)]
    refs = await asyncio.gather(*(store.put(body) for body in bodies))
    assert len(set(refs)) == 30
    assert await asyncio.gather(*(store.get(ref) for ref in refs)) == bodies
    assert not [p for p in stored_files(tmp_path) if p.name.startswith(".tmp-")]


@pytest.mark.parametrize(
    "ref",
    [
        "fs:../../etc/passwd",
        "fs:../" + str(uuid.uuid4()),
        f"fs:{uuid.uuid4()}/../../x",
        f"fs:{uuid.uuid4()}\n",
        f"fs:{str(uuid.uuid4()).upper()}",
        "fs:/etc/passwd",
        "fs:",
        "../../etc/passwd",
        f"s3:{uuid.uuid4()}",
        str(uuid.uuid4()),
        "",
    ],
)
async def test_references_that_could_escape_the_root_are_rejected(tmp_path, ref):
    store = FilesystemDocumentStore(tmp_path / "docs")
    for operation in (store.get, store.delete, store.exists):
        with pytest.raises(InvalidDocumentReference):
            await operation(ref)
    # callers that handle a missing document handle a malformed reference the same way
    with pytest.raises(DocumentNotFound):
        await store.get(ref)


async def test_non_string_reference_is_rejected(tmp_path):
    with pytest.raises(InvalidDocumentReference):
        await FilesystemDocumentStore(tmp_path).get(None)  # type: ignore[arg-type]


async def test_purge_removes_only_old_documents(tmp_path):
    store = FilesystemDocumentStore(tmp_path)
    assert await store.purge_older_than(0) == 0  # nothing there yet
    old_ref, new_ref = await store.put(b"old"), await store.put(b"new")
    old_path = next(p for p in stored_files(tmp_path) if p.stem == old_ref[3:])
    long_ago = time.time() - 8 * 24 * 3600
    os.utime(old_path, (long_ago, long_ago))
    stale_tmp = old_path.parent / ".tmp-crashed-write"
    stale_tmp.write_bytes(b"partial")
    os.utime(stale_tmp, (long_ago, long_ago))

    assert await store.purge_older_than(7 * 24 * 3600) == 1
    assert not await store.exists(old_ref)
    assert not stale_tmp.exists()
    assert await store.get(new_ref) == b"new"
    with pytest.raises(ValueError):
        await store.purge_older_than(-1)


async def test_encrypted_at_rest_with_a_key_ring(tmp_path):
    keys = ring()
    store = FilesystemDocumentStore(tmp_path, keyring=keys)
    assert store.encrypted
    ref = await store.put(SECRET_TEXT)
    [path] = stored_files(tmp_path)
    raw = path.read_bytes()
    assert b"Cordelia" not in raw and b"1968-02-29" not in raw
    assert await store.get(ref) == SECRET_TEXT

    # without the keys the document cannot be read, and says which key it needs
    with pytest.raises(KeyNotFoundError, match='"k1"'):
        await FilesystemDocumentStore(tmp_path).get(ref)
    # other key material under the same id fails authentication
    with pytest.raises(DecryptionError):
        await FilesystemDocumentStore(tmp_path, keyring=ring(k1=os.urandom(32))).get(ref)
    # the reference is bound in: a file copied under another reference does not decrypt
    other_ref = f"fs:{uuid.uuid4()}"
    other_path = tmp_path / other_ref[3:5] / f"{other_ref[3:]}.doc"
    other_path.parent.mkdir(exist_ok=True)
    shutil.copy(path, other_path)
    with pytest.raises(DecryptionError, match=other_ref):
        await store.get(other_ref)
    # a flipped bit is caught
    tampered = bytearray(raw)
    tampered[-5] ^= 1
    path.write_bytes(bytes(tampered))
    with pytest.raises(DecryptionError):
        await store.get(ref)


async def test_rotation_and_documents_written_before_encryption(tmp_path):
    k1, k2 = os.urandom(32), os.urandom(32)
    plain_ref = await FilesystemDocumentStore(tmp_path).put(b"written before encryption")
    old_ref = await FilesystemDocumentStore(tmp_path, keyring=KeyRing({"k1": k1})).put(b"written under k1")
    rotated = FilesystemDocumentStore(tmp_path, keyring=KeyRing({"k1": k1, "k2": k2}, current="k2"))
    new_ref = await rotated.put(b"written under k2")
    assert await rotated.get(plain_ref) == b"written before encryption"
    assert await rotated.get(old_ref) == b"written under k1"
    assert await rotated.get(new_ref) == b"written under k2"
    new_path = next(p for p in stored_files(tmp_path) if p.stem == new_ref[3:])
    assert b'"key_id": "k2"' in new_path.read_bytes().split(b"\n")[1]


def test_the_store_the_settings_name(tmp_path):
    from runtime.settings import DocumentStoreSettings

    def store_from(environ: dict[str, str]):
        settings = DocumentStoreSettings.load(environ)  # as the worker and the starter load it
        return settings.documents(settings.keyring())

    directory = {"ONBOARDING_DOCUMENT_DIR": str(tmp_path / "store")}
    store = store_from(directory)
    assert store.root == tmp_path / "store" and not store.encrypted
    assert store_from({**directory, ENV_KEYS: f"k1:{base64.b64encode(os.urandom(32)).decode()}"}).encrypted
    assert store_from({}).root == Path(".data/documents")


# -- identification files -----------------------------------------------------------------------


def b64(size: int) -> str:
    return base64.b64encode(b"\x89PNG" + b"\0" * (size - 4)).decode()


def person_params(**identity) -> dict:
    return {
        "type": "Person",
        "sharing_consent": True,
        "consent_collected_at": "2025-01-01T00:00:00Z",
        "first_name": "Cordelia",
        "last_name": "Ashworth",
        "full_name": "Cordelia Ashworth",
        "date_of_birth": "1968-02-29",
        "phone_number": "+4915112345678",
        "email_address": "cordelia@example.org",
        "address": {"street_1": "1 Main St", "city": "Berlin", "zip_code": "10115", "country": "DE"},
        "identity": {
            "identity_country_code": "DE",
            "identity_document_type": "Passport",
            "identity_document_front": b64(2048),
            "selfie": b64(1024),
            "selfie_collected_at": "2025-01-01T00:00:00Z",
            "ip_address": "203.0.113.9",
            "nationality": "DE",
            **identity,
        },
    }


def business_params(document: str) -> dict:
    return {
        "type": "Business",
        "phone": "+4930123456",
        "ip_address": "203.0.113.9",
        "questionnaire": {},
        "company_data": {
            "company_info": {"name": "Ashworth GmbH"},
            "beneficiaries": [],
            "documents": [
                {"type": "IncorporationArticles", "country": "DE", "file": b64(100)},
                {"type": "ProofOfAddress", "country": "DE", "file": document},
            ],
        },
    }


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


async def test_identification_file_is_stored_by_reference(tmp_path):
    store = FilesystemDocumentStore(tmp_path / "docs", keyring=ring())
    source = write_json(tmp_path / "person.json", person_params())
    ref = await store_identification_file(store, source)
    assert await store.get(ref) == source.read_bytes()
    assert json.loads(await store.get(ref))["identity"]["selfie"] == person_params()["identity"]["selfie"]


async def test_ten_megabyte_limit_per_document(tmp_path):
    store = FilesystemDocumentStore(tmp_path / "docs")
    at_limit = write_json(tmp_path / "at-limit.json", person_params(selfie=b64(MAX_DOCUMENT_BYTES)))
    assert await store_identification_file(store, at_limit)

    over = write_json(tmp_path / "over.json", person_params(identity_document_back=b64(MAX_DOCUMENT_BYTES + 1)))
    with pytest.raises(DocumentTooLarge, match=r"identity\.identity_document_back") as caught:
        await store_identification_file(store, over)
    assert str(MAX_DOCUMENT_BYTES + 1) in str(caught.value)

    nested = write_json(tmp_path / "business.json", business_params(b64(MAX_DOCUMENT_BYTES + 3)))
    with pytest.raises(DocumentTooLarge, match=r"company_data\.documents\[1\]\.file"):
        await store_identification_file(store, nested)
    assert len(stored_files(tmp_path / "docs")) == 1  # nothing stored for the rejected files

    small = write_json(tmp_path / "small-business.json", business_params(b64(5000)))
    assert await store_identification_file(store, small)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"type": "Link"}), "carries no documents"),
        (json.dumps(person_params(selfie="not*base64!")), r"identity\.selfie is not valid base64"),
        (json.dumps(person_params(selfie="data:image/png;base64," + b64(10))), "data: URL prefix"),
        (json.dumps(person_params(selfie=12345)), "must be a base64 string"),
        (json.dumps(person_params(selfie="")), "is empty"),
    ],
)
async def test_bad_identification_files_are_refused_clearly(tmp_path, content, message):
    store = FilesystemDocumentStore(tmp_path / "docs")
    source = tmp_path / "params.json"
    source.write_text(content)
    with pytest.raises(IdentificationFileError, match=message):
        await store_identification_file(store, source)
    assert not (tmp_path / "docs").exists() or not stored_files(tmp_path / "docs")


async def test_missing_identification_file(tmp_path):
    with pytest.raises(IdentificationFileError, match="does not exist"):
        await store_identification_file(FilesystemDocumentStore(tmp_path), tmp_path / "nope.json")
