"""The document store: where Person and Business identification data lives instead of history.

Identification parameters carry personal data and base64 images of up to 10 MB each; a Temporal
payload is capped at 2 MB and history is kept for long. So the identification parameters are
stored here and the workflow input carries only an opaque reference (`fs:<uuid>` or
`s3:<uuid>`) that the activity reads just before calling Iron, and that can be deleted once it
is no longer needed (`purge_older_than` enforces a retention period).

Two stores keep the same contract (`DocumentStore`) and the same stored format:

* `FilesystemDocumentStore`, the default: one file per document under `ONBOARDING_DOCUMENT_DIR`,
  written atomically with mode 0600 under a 0700 directory. Only processes on the same machine
  (or sharing the directory) see its documents.
* `S3DocumentStore`, chosen by `ONBOARDING_DOCUMENT_STORE=s3://bucket/prefix`: one object per
  document in S3-compatible object storage, which starters and workers on different machines
  share. Credentials, region and endpoint are the standard AWS variables, which the process's
  settings read and pass in (`runtime.settings.DocumentStoreSettings`).

Both encrypt documents with the payload `KeyRing` before they are written (`document_store_for`
does so whenever it is given a key ring; the S3 store requires one, so documents never leave
the machine in clear).
"""

from __future__ import annotations

from contracts.quoting import quoted

import asyncio
import contextlib
import base64
import binascii
import datetime as _dt
import json
import os
import re
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from data_protection.keys import DecryptionError, KeyNotFoundError, KeyRing
from contracts.configuration import ConfigurationError

ENV_DOCUMENT_DIR = "ONBOARDING_DOCUMENT_DIR"
ENV_DOCUMENT_STORE = "ONBOARDING_DOCUMENT_STORE"
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


class DocumentStoreUnavailable(DocumentStoreError):
    """The store could not be reached or refused the request (network, credentials, a missing
    bucket). Never a missing document: the activity retries it until the store is fixed."""


class DocumentStoreConfigurationError(ConfigurationError):
    """`ONBOARDING_DOCUMENT_STORE` cannot be used; the message is one line naming it."""


class IdentificationFileError(DocumentStoreError, ValueError):
    """An identification params file is unreadable or breaks Iron's rules."""


class DocumentTooLarge(IdentificationFileError):
    """A base64 document in an identification file is above Iron's 10 MB limit."""


# The contract every document store keeps. References are opaque strings with a scheme prefix
# (`fs:`, `s3:`) naming the kind of store that issued them, so stores can be swapped without
# touching workflows, and a reference given to the wrong kind of store says so.
@runtime_checkable
class DocumentStore(Protocol):
    async def put(self, data: bytes, *, content_type: str = "application/json") -> str: ...

    async def get(self, ref: str) -> bytes: ...

    async def delete(self, ref: str) -> bool: ...

    async def exists(self, ref: str) -> bool: ...

    async def purge_older_than(self, seconds: float) -> int: ...


_FS_SCHEME = "fs"
_S3_SCHEME = "s3"
_STORE_KINDS = {_FS_SCHEME: "a local directory (ONBOARDING_DOCUMENT_DIR)", _S3_SCHEME: "S3 object storage"}
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_REF_RE = re.compile(rf"^([a-z0-9]+):({_UUID})$")
_MAGIC = b"ONBDOC1\n"
_SUFFIX = ".doc"
_TMP_PREFIX = ".tmp-"


async def forget_document(documents: "DocumentStore | None", ref: str | None) -> None:
    """Delete a document no onboarding will read (its start attached, or failed); the store's
    retention removes it anyway, so a failure here is not the caller's."""
    if documents is not None and ref:
        with contextlib.suppress(Exception):
            await documents.delete(ref)


def _document_id(ref: Any, scheme: str) -> str:
    """The uuid inside `<scheme>:<uuid>`, or InvalidDocumentReference saying why not."""
    if not isinstance(ref, str):
        raise InvalidDocumentReference(repr(ref), f"document reference must be a string, got {type(ref).__name__}")
    match = _REF_RE.fullmatch(ref)
    if match and match.group(1) == scheme:
        return match.group(2)
    shown = ref if len(ref) <= 80 else ref[:80] + "..."
    message = f"{quoted(ref)} is not a document reference of this store ({scheme}:<uuid>)"
    if match and match.group(1) in _STORE_KINDS:
        message += (
            f": it was stored in {_STORE_KINDS[match.group(1)]}, and this process uses {_STORE_KINDS[scheme]};"
            f" starters and workers need the same {ENV_DOCUMENT_STORE}"
        )
    raise InvalidDocumentReference(shown, message)


def _encode(ref: str, data: bytes, content_type: str, keyring: KeyRing | None) -> bytes:
    """A stored document: a magic line, a one-line JSON header (content type, creation time,
    size, and the key id when encrypted), then the body. The reference is bound in as
    associated data, so a document copied under another reference fails to decrypt."""
    header: dict[str, Any] = {
        "content_type": content_type,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "size": len(data),
    }
    if keyring is not None:
        key_id, body = keyring.encrypt(data, context=ref.encode("ascii"))
        header["key_id"] = key_id
    else:
        body = data
    return b"".join((_MAGIC, json.dumps(header, sort_keys=True).encode("utf-8"), b"\n", body))


def _decode(ref: str, raw: bytes, keyring: KeyRing | None) -> bytes:
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
    if keyring is None:
        raise KeyNotFoundError(str(key_id))
    try:
        return keyring.decrypt(str(key_id), body, context=ref.encode("ascii"))
    except KeyNotFoundError:
        raise
    except DecryptionError as exc:
        raise DecryptionError(f"document {ref} cannot be decrypted: {exc}") from None


def _check_data(data: Any) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"document data must be bytes, got {type(data).__name__}")
    return bytes(data)


class FilesystemDocumentStore:
    """Documents as files under `root/<2 hex>/<uuid>.doc`, in the format of `_encode`.

    Encrypted bodies are AES-256-GCM under the key ring's current key. Documents written
    without encryption stay readable after a key ring is configured.
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

    def _path(self, ref: str) -> Path:
        name = _document_id(ref, _FS_SCHEME)
        return self._root / name[:2] / f"{name}{_SUFFIX}"

    # -- the store ------------------------------------------------------------------------------

    async def put(self, data: bytes, *, content_type: str = "application/json") -> str:
        data = _check_data(data)
        ref = f"{_FS_SCHEME}:{uuid.uuid4()}"
        await asyncio.to_thread(self._write, ref, data, str(content_type))
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
        stored = _encode(ref, data, content_type, self._keyring)
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)  # created 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(stored)
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
        return _decode(ref, raw, self._keyring)

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


# -- S3-compatible object storage ----------------------------------------------------------------

# S3's rule for bucket names, which MinIO and R2 follow too.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_S3_OBJECT_RE = re.compile(rf"^({_UUID}){re.escape(_SUFFIX)}$")
# Failures are retried a few times within a bound the activity's timeout and a person running the
# starter can wait for; Temporal retries the activity after that, so no longer loop is needed here.
_S3_RETRIES = {"max_retries": 3, "retry_timeout": _dt.timedelta(seconds=20)}
_S3_TIMEOUTS = {"connect_timeout": "5s", "timeout": "30s"}


@dataclass(frozen=True)
class S3Location:
    """Where an S3 document store keeps its objects: `s3://bucket/prefix`."""

    bucket: str
    prefix: str = ""

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def parse_document_store_url(value: str | None) -> S3Location | None:
    """An `ONBOARDING_DOCUMENT_STORE` value: None when unset or blank (the local directory),
    the S3 location for `s3://bucket[/prefix]`. Anything else raises ValueError saying what is
    wrong (the caller names the variable)."""
    text = (value or "").strip()
    if not text:
        return None
    local = f"leave it unset for the local directory ({ENV_DOCUMENT_DIR})"
    if not text.lower().startswith(f"{_S3_SCHEME}://"):
        scheme = text.split("://", 1)[0] if "://" in text else None
        what = f"unknown scheme {quoted(scheme, limit=20)}" if scheme else "not a store URL"
        raise ValueError(f"{what}: use s3://bucket/prefix for S3-compatible object storage, or {local}")
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid s3://bucket/prefix URL") from None
    if "@" in parts.netloc or port is not None or parts.query or parts.fragment:
        raise ValueError(
            "takes a bucket and a prefix only: credentials come from AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, another S3-compatible service from AWS_ENDPOINT_URL"
        )
    bucket = parts.netloc
    if not bucket:
        raise ValueError("names no bucket: use s3://bucket/prefix")
    if not _BUCKET_RE.fullmatch(bucket):
        raise ValueError(f"bucket {quoted(bucket, limit=63)} is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)")
    prefix = parts.path.strip("/")
    if prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")):
        raise ValueError(f"prefix {quoted(prefix, limit=60)} has an empty, '.' or '..' part")
    return S3Location(bucket, prefix)


def _s3_client_options(config: Mapping[str, str]) -> dict[str, Any]:
    """The S3 client's options for `config`: its timeouts, and plain HTTP for an endpoint given
    as http:// (a deliberate choice: MinIO on a private network, a local test server); without
    one only HTTPS is used."""
    client_options: dict[str, Any] = dict(_S3_TIMEOUTS)
    if config.get("endpoint", "").lower().startswith("http://"):
        client_options["allow_http"] = True
    return client_options


def _s3_reason(exc: BaseException) -> str:
    """The S3 client's message, first line only (the rest is a debug dump), shortened."""
    text = str(exc).split("\n", 1)[0].strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


class S3DocumentStore:
    """Documents as objects `<prefix>/<uuid>.doc` in an S3-compatible bucket, in the format of
    `_encode`, always encrypted: the key ring is required.

    The client is `obstore` (Python bindings of the Rust `object_store` crate, maintained under
    the Apache Arrow project): native async, one small wheel without botocore's weight, and it
    reads the standard AWS variables and credential chains for AWS S3, MinIO, R2 and others.
    """

    def __init__(self, location: S3Location, *, keyring: KeyRing, config: Mapping[str, str] | None = None) -> None:
        """`config`: the S3 client's settings by its own names (`access_key_id`,
        `secret_access_key`, `session_token`, `region`, `endpoint`); what it leaves out the
        client finds the usual AWS ways (web identity, container or instance credentials)."""
        from obstore.store import S3Store

        if keyring is None:
            raise ValueError("an S3 document store needs a key ring: documents never leave the machine in clear")
        self._location = location
        self._keyring = keyring
        config = {key: value for key, value in (config or {}).items() if value}
        self._s3 = S3Store(
            location.bucket,
            prefix=location.prefix or None,
            config=config,
            client_options=_s3_client_options(config),
            retry_config=_S3_RETRIES,
        )

    @property
    def location(self) -> S3Location:
        return self._location

    @property
    def encrypted(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"S3DocumentStore({self._location.url!r})"

    def _key(self, ref: str) -> str:
        return f"{_document_id(ref, _S3_SCHEME)}{_SUFFIX}"

    def _unavailable(self, action: str, exc: BaseException) -> DocumentStoreUnavailable:
        return DocumentStoreUnavailable(
            f"document store {self._location.url} could not {action}: {_s3_reason(exc)}"
            f" (check {ENV_DOCUMENT_STORE} and the AWS_* variables)"
        )

    # -- the store ------------------------------------------------------------------------------

    async def put(self, data: bytes, *, content_type: str = "application/json") -> str:
        import obstore

        data = _check_data(data)
        ref = f"{_S3_SCHEME}:{uuid.uuid4()}"
        stored = _encode(ref, data, str(content_type), self._keyring)
        try:
            # One PutObject: a document is tens of MB at most, and the object then appears
            # whole or not at all.
            await obstore.put_async(self._s3, self._key(ref), stored, use_multipart=False)
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise self._unavailable(f"store {ref}", exc) from None
        return ref

    async def get(self, ref: str) -> bytes:
        import obstore

        key = self._key(ref)
        try:
            result = await obstore.get_async(self._s3, key)
            raw = bytes(await result.bytes_async())
        except FileNotFoundError as exc:
            # A missing bucket is a 404 too: that is the store's configuration, not the document.
            if "NoSuchBucket" in str(exc):
                raise self._unavailable(f"read {ref}", exc) from None
            raise DocumentNotFound(ref) from None
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise self._unavailable(f"read {ref}", exc) from None
        return _decode(ref, raw, self._keyring)

    async def delete(self, ref: str) -> bool:
        import obstore

        key = self._key(ref)
        # S3 deletes succeed whether or not the object exists: the head says whether it did.
        if not await self._exists(key, f"delete {ref}"):
            return False
        try:
            await obstore.delete_async(self._s3, key)
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise self._unavailable(f"delete {ref}", exc) from None
        return True

    async def exists(self, ref: str) -> bool:
        return await self._exists(self._key(ref), f"look up {ref}")

    async def purge_older_than(self, seconds: float) -> int:
        """Delete documents stored more than `seconds` ago; returns how many were deleted.
        Other objects under the prefix are left alone. (A bucket lifecycle rule that expires
        objects under the prefix does the same without any process listing the bucket.)"""
        import obstore

        if seconds < 0:
            raise ValueError("seconds must not be negative")
        cutoff = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=seconds)
        deleted = 0
        try:
            async for batch in obstore.list(self._s3, chunk_size=1000):
                stale = [
                    meta["path"] for meta in batch
                    if _S3_OBJECT_RE.fullmatch(meta["path"]) and meta["last_modified"] < cutoff
                ]
                if stale:
                    await obstore.delete_async(self._s3, stale)
                    deleted += len(stale)
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise self._unavailable("purge old documents", exc) from None
        return deleted

    async def _exists(self, key: str, action: str) -> bool:
        import obstore

        try:
            await obstore.head_async(self._s3, key)
        except FileNotFoundError:
            return False
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise self._unavailable(action, exc) from None
        return True


# -- choosing the store --------------------------------------------------------------------------


def document_store_for(
    location: str | None,
    *,
    document_dir: str | os.PathLike[str] = DEFAULT_DOCUMENT_DIR,
    keyring: KeyRing | None,
    s3_config: Mapping[str, str] | None = None,
) -> DocumentStore:
    """The store an `ONBOARDING_DOCUMENT_STORE` value names: unset or blank, the local
    directory `document_dir`; `s3://bucket/prefix`, S3-compatible object storage configured by
    `s3_config` (see `S3DocumentStore`). Encrypted at rest with `keyring` when there is one (an
    S3 store requires it). A value that cannot be used raises DocumentStoreConfigurationError
    naming the variable."""
    try:
        s3 = parse_document_store_url(location)
    except ValueError as exc:
        shown = (location or "").strip()
        got = "" if "@" in shown else f" (got {quoted(shown, limit=60)})"  # never echo credentials
        raise DocumentStoreConfigurationError(f"{ENV_DOCUMENT_STORE}: {exc}{got}") from None
    if s3 is None:
        return FilesystemDocumentStore(Path(document_dir), keyring=keyring)
    if keyring is None:
        raise DocumentStoreConfigurationError(
            f"{ENV_DOCUMENT_STORE}: an S3 document store needs encryption keys, so documents never leave "
            "this machine in clear: set ONBOARDING_ENCRYPTION_KEY_FILE (or ONBOARDING_ENCRYPTION_KEYS), "
            "the same on every starter and worker"
        )
    return S3DocumentStore(s3, keyring=keyring, config=s3_config)


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
            f"{source}: type {quoted(kind)} carries no documents to store; expected one of {', '.join(IDENTIFICATION_TYPES)}"
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
