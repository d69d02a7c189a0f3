"""Payload encryption for everything the onboarding writes to Temporal.

Workflow inputs and results, signals, queries, updates, activity arguments and results, and memo
values hold personal data (names, emails, dates of birth), and Temporal keeps history for a long
time. The
`EncryptionCodec` encrypts each payload with AES-256-GCM before it leaves the process:

* the whole original `Payload` protobuf (its metadata included, so even the encoding and the
  message type are hidden) is serialized and encrypted under a fresh 12-byte random nonce;
* the result is a new payload with metadata `encoding: binary/encrypted` and
  `encryption-key-id: <key id>`, whose data is `nonce || ciphertext || tag`;
* the key id is the associated data, so relabelling a payload with another key fails loudly.

Decoding picks the key the payload names, so rotating the current key never strands old
histories, and payloads without the encrypted encoding pass through unchanged, so histories
written before encryption was switched on still read.

What the codec does not cover: search attributes (keep personal data out of them) and, unless
the failure converter encodes common attributes, failure messages (pass Iron's error texts
through `data_protection.redaction.redact_text`).
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from contracts.quoting import quoted
from data_protection.keys import (
    DecryptionError,
    KeyConfigurationError,
    KeyNotFoundError,
    KeyRing,
)

ENCODING = b"binary/encrypted"
METADATA_ENCODING = "encoding"
METADATA_KEY_ID = "encryption-key-id"

__all__ = [
    "ENCODING",
    "METADATA_KEY_ID",
    "EncryptionCodec",
    "KeyConfigurationError",
    "KeyNotFoundError",
    "KeyRing",
    "PayloadDecryptionError",
]


class PayloadDecryptionError(DecryptionError):
    """An encrypted payload could not be decrypted: altered, truncated or malformed."""


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM payload codec over a `KeyRing` (encrypt with current, decrypt with any)."""

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    def __repr__(self) -> str:
        return f"EncryptionCodec({self._keyring!r})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt_payload(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt_payload(p) for p in payloads]

    def encrypt_payload(self, payload: Payload) -> Payload:
        key_id, blob = self._keyring.encrypt(payload.SerializeToString(deterministic=True))
        return Payload(
            metadata={METADATA_ENCODING: ENCODING, METADATA_KEY_ID: key_id.encode("utf-8")},
            data=blob,
        )

    def decrypt_payload(self, payload: Payload) -> Payload:
        if payload.metadata.get(METADATA_ENCODING) != ENCODING:
            return payload
        raw_key_id = payload.metadata.get(METADATA_KEY_ID)
        if not raw_key_id:
            raise PayloadDecryptionError(f"encrypted payload carries no {METADATA_KEY_ID!r} metadata")
        try:
            key_id = raw_key_id.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadDecryptionError(f"encrypted payload has a malformed {METADATA_KEY_ID!r}") from None
        try:
            plaintext = self._keyring.decrypt(key_id, payload.data)
        except KeyNotFoundError:
            raise
        except DecryptionError as exc:
            raise PayloadDecryptionError(f"encrypted payload cannot be decrypted: {exc}") from None
        inner = Payload()
        try:
            inner.ParseFromString(plaintext)
        except DecodeError:
            raise PayloadDecryptionError(
                f"payload decrypted with key {quoted(key_id)} is not a serialized Payload"
            ) from None
        return inner

