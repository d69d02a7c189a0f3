"""The document store: where Person and Business identification data lives instead of history.

Identification parameters carry personal data and base64 images of up to 10 MB each; a Temporal
payload is capped at 2 MB and history is kept for long. So the identification parameters are
stored here and the workflow input carries only an opaque reference (`fs:<uuid>`) that the
activity reads just before calling Iron, and that can be deleted once it is no longer needed
(`purge_older_than` enforces a retention period).

`FilesystemDocumentStore` keeps one file per document, written atomically with mode 0600 under
a 0700 directory, and encrypts documents at rest with the payload `KeyRing` when one is given
(`document_store_from_env` does so whenever encryption keys are configured).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as _dt
import json
import os
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from data_protection.keys import DecryptionError, KeyNotFoundError, KeyRing

ENV_DOCUMENT_DIR = "ONBOARDING_DOCUMENT_DIR"
DEFAULT_DOCUMENT_DIR = ".data/documents"

# Iron's limit for each base64 document (identity images, selfie, company and EDD documents).
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
# The fields of Person and Business identification params that hold a base64 document.
DOCUMENT_FIELDS = frozenset(
    {"identity_document_front", "identity_document_back", "selfie", "file", "source_of_funds_proof"}
)
IDENTIFICATION_TYPES = ("Person", "Business")


class DocumentStoreError(Exception):
    """Base class for document store errors."""


class DocumentNotFound(DocumentStoreError, LookupError):
    """No document exists under this reference (never stored, deleted, or purged)."""

    def __init__(self, ref: str, message: str | None = None) -> None:
        self.ref = ref
        super().__init__(message or f"document {ref} not found: it was never stored here, or was deleted or purged")


class InvalidDocumentReference(DocumentNotFound, ValueError):
    """The reference is not one this store issues (so no document can exist under it)."""


class CorruptDocument(DocumentStoreError):
    """The stored file is not a document this store wrote."""


class IdentificationFileError(DocumentStoreError, ValueError):
    """An identification params file is unreadable or breaks Iron's rules."""


class DocumentTooLarge(IdentificationFileError):
    """A base64 document in an identification file is above Iron's 10 MB limit."""


# The contract every document store keeps. References are opaque strings with a scheme prefix
# (`fs:` here), so stores can be swapped without touching workflows. An S3-compatible store
# implements it directly: put = PutObject under a fresh random key, returning `s3:<key>` (with
# server-side or the same client-side encryption); get = GetObject, mapping NoSuchKey to
# DocumentNotFound; delete = HeadObject then DeleteObject (S3 deletes are idempotent, the head
# tells whether something was there); exists = HeadObject; purge_older_than = ListObjectsV2
# filtered on LastModified plus DeleteObjects, or simply a bucket lifecycle expiration rule.
@runtime_checkable
class DocumentStore(Protocol):
    async def put(self, data: bytes, *, content_type: str = "application/json") -> str: ...

    async def get(self, ref: str) -> bytes: ...

    async def delete(self, ref: str) -> bool: ...

    async def exists(self, ref: str) -> bool: ...

    async def purge_older_than(self, seconds: float) -> int: ...


_FS_PREFIX = "fs:"
_REF_RE = re.compile(r"^fs:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_MAGIC = b"ONBDOC1\n"
_SUFFIX = ".doc"
_TMP_PREFIX = ".tmp-"


class FilesystemDocumentStore:
    """Documents as files under `root/<2 hex>/<uuid>.doc`.

    Each file is a one-line JSON header (content type, creation time, size, and the key id when
    encrypted) after a magic line, then the body. Encrypted bodies are AES-256-GCM under the
    key ring's current key, with the reference bound in as associated data, so a file copied
    under another reference fails to decrypt. Documents written without encryption stay
    readable after a key ring is configured.
    """

    def __init__(self, root: str | os.PathLike[str], *, keyring: KeyRing | None = None) -> None:
        self._root = Path(root)
        self._keyring = keyring

    @property
    def root(self) -> Path:
        return self._root

    @property
    def encrypted(self) -> bool:
        return self._keyring is not None

    def __repr__(self) -> str:
        return f"FilesystemDocumentStore(root={str(self._root)!r}, encrypted={self.encrypted})"

    # -- references -----------------------------------------------------------------------------

    def _path(self, ref: str) -> Path:
        if not isinstance(ref, str):
            raise InvalidDocumentReference(
                repr(ref), f"document reference must be a string, got {type(ref).__name__}"
            )
        match = _REF_RE.fullmatch(ref)
        if not match:
            shown = ref if len(ref) <= 80 else ref[:80] + "..."
            raise InvalidDocumentReference(shown, f"{shown!r} is not a document reference of this store (fs:<uuid>)")
        name = match.group(1)
        return self._root / name[:2] / f"{name}{_SUFFIX}"

    # -- the store ------------------------------------------------------------------------------

    async def put(self, data: bytes, *, content_type: str = "application/json") -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"document data must be bytes, got {type(data).__name__}")
        ref = f"{_FS_PREFIX}{uuid.uuid4()}"
        await asyncio.to_thread(self._write, ref, bytes(data), str(content_type))
        return ref

    async def get(self, ref: str) -> bytes:
        path = self._path(ref)
        return await asyncio.to_thread(self._read, ref, path)

    async def delete(self, ref: str) -> bool:
        path = self._path(ref)
        return await asyncio.to_thread(_unlink, path)

    async def exists(self, ref: str) -> bool:
        path = self._path(ref)
        return await asyncio.to_thread(path.is_file)

    async def purge_older_than(self, seconds: float) -> int:
        """Delete documents stored more than `seconds` ago; returns how many were deleted."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        return await asyncio.to_thread(self._purge, time.time() - seconds)

    # -- blocking parts, run in a thread -------------------------------------------------------

    def _write(self, ref: str, data: bytes, content_type: str) -> None:
        path = self._path(ref)
        header: dict[str, Any] = {
            "content_type": content_type,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "size": len(data),
        }
        if self._keyring is not None:
            key_id, body = self._keyring.encrypt(data, context=ref.encode("ascii"))
            header["key_id"] = key_id
        else:
            body = data
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)  # created 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_MAGIC)
                handle.write(json.dumps(header, sort_keys=True).encode("utf-8"))
                handle.write(b"\n")
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            _unlink(Path(tmp_name))
            raise
        _fsync_dir(path.parent)

    def _read(self, ref: str, path: Path) -> bytes:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DocumentNotFound(ref) from None
        if not raw.startswith(_MAGIC):
            raise CorruptDocument(f"document {ref} is not in this store's format")
        end = raw.find(b"\n", len(_MAGIC))
        try:
            header = json.loads(raw[len(_MAGIC) : end]) if end > 0 else None
        except ValueError:
            header = None
        if not isinstance(header, dict):
            raise CorruptDocument(f"document {ref} has an unreadable header")
        body = raw[end + 1 :]
        key_id = header.get("key_id")
        if not key_id:
            return body
        if self._keyring is None:
            raise KeyNotFoundError(str(key_id))
        try:
            return self._keyring.decrypt(str(key_id), body, context=ref.encode("ascii"))
        except KeyNotFoundError:
            raise
        except DecryptionError as exc:
            raise DecryptionError(f"document {ref} cannot be decrypted: {exc}") from None

    def _purge(self, cutoff: float) -> int:
        if not self._root.is_dir():
            return 0
        deleted = 0
        for shard in self._root.iterdir():
            if not shard.is_dir() or len(shard.name) != 2:
                continue
            for entry in shard.iterdir():
                name = entry.name
                is_document = name.endswith(_SUFFIX) and not name.startswith(".")
                if not (is_document or name.startswith(_TMP_PREFIX)):
                    continue
                try:
                    if entry.stat().st_mtime >= cutoff:
                        continue
                except FileNotFoundError:
                    continue
                if _unlink(entry) and is_document:
                    deleted += 1
        return deleted


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def document_store_from_env() -> FilesystemDocumentStore:
    """The store in `ONBOARDING_DOCUMENT_DIR` (default `.data/documents`), encrypted at rest
    whenever payload encryption keys are configured."""
    root = Path(os.environ.get(ENV_DOCUMENT_DIR) or DEFAULT_DOCUMENT_DIR)
    return FilesystemDocumentStore(root, keyring=KeyRing.from_env())


# -- identification params files --------------------------------------------------------------


def check_identification_params(params: Any, *, source: str = "identification params",
                                max_document_bytes: int = MAX_DOCUMENT_BYTES) -> None:
    """Check Person/Business identification params before they are stored.

    Every base64 document field must be valid base64 without a `data:` prefix and decode to at
    most `max_document_bytes`. Raises IdentificationFileError (DocumentTooLarge for size).
    """
    if not isinstance(params, dict):
        raise IdentificationFileError(f"{source} must be a JSON object")
    kind = params.get("type")
    if kind is not None and kind not in IDENTIFICATION_TYPES:
        raise IdentificationFileError(
            f"{source}: type {kind!r} carries no documents to store; expected one of {', '.join(IDENTIFICATION_TYPES)}"
        )
    for field_path, value in _document_fields(params, ""):
        _check_document(source, field_path, value, max_document_bytes)


def _document_fields(node: Any, prefix: str):
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key in DOCUMENT_FIELDS and not isinstance(value, (dict, list)):
                yield path, value
            else:
                yield from _document_fields(value, path)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _document_fields(value, f"{prefix}[{index}]")


def _check_document(source: str, field_path: str, value: Any, limit: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise IdentificationFileError(f"{source}: {field_path} must be a base64 string")
    if not value:
        raise IdentificationFileError(f"{source}: {field_path} is empty")
    if value.startswith("data:"):
        raise IdentificationFileError(
            f"{source}: {field_path} has a data: URL prefix; Iron expects the bare base64 content"
        )
    padding = len(value) - len(value.rstrip("="))
    decoded_size = len(value) * 3 // 4 - padding
    if decoded_size > limit:
        raise DocumentTooLarge(
            f"{source}: {field_path} is {decoded_size} bytes decoded, above Iron's limit of {limit} bytes (10 MB)"
        )
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise IdentificationFileError(f"{source}: {field_path} is not valid base64") from None


async def store_identification_file(
    store: DocumentStore,
    path: str | os.PathLike[str],
    *,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
) -> str:
    """Check a Person or Business identification params JSON file and store it; returns the ref."""
    path = Path(path)
    try:
        raw = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise IdentificationFileError(f"identification file {path} does not exist") from None
    except OSError as exc:
        raise IdentificationFileError(f"identification file {path} cannot be read: {exc.strerror}") from None
    try:
        params = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise IdentificationFileError(f"identification file {path} is not valid JSON{where}") from None
    check_identification_params(params, source=str(path), max_document_bytes=max_document_bytes)
    return await store.put(raw, content_type="application/json")
