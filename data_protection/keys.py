"""Encryption keys: a key ring built from configuration, and the tooling to create and rotate keys.

Keys never live in code. A deployment gives them in one of two ways:

* `ONBOARDING_ENCRYPTION_KEYS`: comma-separated `keyid:base64(32 bytes)` entries. The first is
  the current (encrypting) key unless `ONBOARDING_ENCRYPTION_CURRENT_KEY_ID` names another.
* `ONBOARDING_ENCRYPTION_KEY_FILE`: path to a JSON file
  `{"current": "k2", "keys": {"k1": "<base64>", "k2": "<base64>"}}`, mode 0600.

Every key in the ring can decrypt; only the current one encrypts. Rotation therefore never
breaks old data: add a new key everywhere first (`rotate --no-activate`), then make it current
(`activate`), and keep the old key for as long as histories or documents written with it exist.

    python -m data_protection.keys generate --file keys.json
    python -m data_protection.keys rotate --file keys.json [--key-id k2] [--no-activate]
    python -m data_protection.keys activate --file keys.json --key-id k2
    python -m data_protection.keys list --file keys.json

Exit codes are every process's (docs/configuration.md): 0 done, 2 a file or key id on the command
line that cannot be used, 3 no such key id.

Nothing here logs, prints or puts key material into an error message.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import os
import re
import secrets
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from contracts.configuration import EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_OK, ConfigurationError
from contracts.quoting import quoted

ENV_KEYS = "ONBOARDING_ENCRYPTION_KEYS"
ENV_CURRENT_KEY_ID = "ONBOARDING_ENCRYPTION_CURRENT_KEY_ID"
ENV_KEY_FILE = "ONBOARDING_ENCRYPTION_KEY_FILE"

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM standard nonce
TAG_BYTES = 16

# Key ids travel in payload metadata and file headers: keep them short and unambiguous.
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

_log = logging.getLogger(__name__)


class DataProtectionError(Exception):
    """Base class for every error this package raises on purpose."""


class KeyConfigurationError(DataProtectionError, ConfigurationError):
    """The configured keys are missing, malformed or contradictory: a configuration error like
    any other, which every process answers with one line and exit code 7."""


class KeyNotFoundError(DataProtectionError, LookupError):
    """Data names a key id that the configured key ring does not hold."""

    def __init__(self, key_id: str, known: tuple[str, ...] = ()) -> None:
        self.key_id = key_id
        self.known = known
        known_text = ", ".join(known) if known else "none"
        super().__init__(
            f"encryption key {quoted(key_id)} is not in the configured key ring (known key ids: {known_text}); "
            f"add it to {ENV_KEYS} or the {ENV_KEY_FILE} file to read data written with it"
        )


class DecryptionError(DataProtectionError):
    """Ciphertext failed authentication: it was altered, truncated or encrypted with another key."""


def validate_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not _KEY_ID_RE.fullmatch(key_id):
        raise KeyConfigurationError(
            f"invalid key id {quoted(key_id)}: use 1-64 characters from A-Z a-z 0-9 . _ - (starting with a letter or digit)"
        )
    return key_id


def decode_key(key_id: str, encoded: str) -> bytes:
    """Decode one base64 key, naming the key id (never the value) when it is wrong."""
    text = (encoded or "").strip()
    raw: bytes | None = None
    for decoder in (_b64_strict, _b64_urlsafe):
        try:
            raw = decoder(text)
            break
        except (binascii.Error, ValueError):
            continue
    if raw is None:
        raise KeyConfigurationError(f"key {quoted(key_id)} is not valid base64")
    if len(raw) != KEY_BYTES:
        raise KeyConfigurationError(f"key {quoted(key_id)} must decode to {KEY_BYTES} bytes (AES-256), got {len(raw)}")
    return raw


def _b64_strict(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _b64_urlsafe(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not urlsafe base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_key(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class KeyRing:
    """A set of AES-256-GCM keys by id: encrypts with the current key, decrypts with any.

    The ciphertext format is `nonce (12 bytes) || ciphertext || tag (16 bytes)`. The key id is
    always part of the associated data, so a ciphertext relabelled with another key id fails
    authentication instead of decrypting to garbage; callers may bind more context (a document
    reference, for example) through `context`.
    """

    __slots__ = ("_keys", "_aead", "_current")

    def __init__(self, keys: Mapping[str, bytes], current: str | None = None) -> None:
        if not keys:
            raise KeyConfigurationError("a key ring needs at least one key")
        cleaned: dict[str, bytes] = {}
        for key_id, raw in keys.items():
            validate_key_id(key_id)
            if not isinstance(raw, (bytes, bytearray)) or len(raw) != KEY_BYTES:
                raise KeyConfigurationError(f"key {quoted(key_id)} must be {KEY_BYTES} raw bytes (AES-256)")
            cleaned[key_id] = bytes(raw)
        current = current or next(iter(cleaned))
        if current not in cleaned:
            raise KeyConfigurationError(
                f"current key id {quoted(current)} is not among the configured keys ({', '.join(cleaned)})"
            )
        self._keys = cleaned
        self._aead = {key_id: AESGCM(raw) for key_id, raw in cleaned.items()}
        self._current = current

    # -- construction from configuration --------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: str, current: str | None = None) -> KeyRing:
        """Parse `keyid:base64,keyid:base64` (the `ONBOARDING_ENCRYPTION_KEYS` format)."""
        keys: dict[str, bytes] = {}
        for position, entry in enumerate(part.strip() for part in spec.split(",")):
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not sep or not key_id:
                raise KeyConfigurationError(f"entry #{position + 1} must look like 'keyid:base64key'")
            validate_key_id(key_id)
            if key_id in keys:
                raise KeyConfigurationError(f"key id {quoted(key_id)} appears twice")
            keys[key_id] = decode_key(key_id, encoded)
        if not keys:
            raise KeyConfigurationError("set, but holds no keys")
        return cls(keys, current=(current or "").strip() or None)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], current: str | None = None) -> KeyRing:
        """Read a key file `{"current": "k2", "keys": {"k1": "b64", "k2": "b64"}}`."""
        path = Path(path)
        data = _read_key_file(path)
        keys = {key_id: decode_key(key_id, encoded) for key_id, encoded in data["keys"].items()}
        return cls(keys, current=current or data.get("current"))

    @classmethod
    def from_configuration(
        cls, *, keys: str | None = None, key_file: str | None = None, current_key_id: str | None = None
    ) -> KeyRing | None:
        """The key ring the configuration gives (`keys`: the `ONBOARDING_ENCRYPTION_KEYS` value,
        `key_file`: `ONBOARDING_ENCRYPTION_KEY_FILE`'s, `current_key_id`:
        `ONBOARDING_ENCRYPTION_CURRENT_KEY_ID`'s), or None when no keys are configured. A
        KeyConfigurationError's message starts with the variable at fault (`ONBOARDING_...: `)."""
        spec = (keys or "").strip()
        key_file = (key_file or "").strip()
        current = (current_key_id or "").strip() or None
        if spec and key_file:
            raise KeyConfigurationError(f"{ENV_KEYS}: set either it or {ENV_KEY_FILE}, not both")
        if spec:
            ring = _configured_by(ENV_KEYS, lambda: cls.from_spec(spec))
        elif key_file:
            ring = _configured_by(ENV_KEY_FILE, lambda: cls.from_file(key_file))
        elif current:
            raise KeyConfigurationError(f"{ENV_CURRENT_KEY_ID}: set, but no keys are configured")
        else:
            return None
        return _configured_by(ENV_CURRENT_KEY_ID, lambda: ring.with_current(current)) if current else ring

    # -- use ------------------------------------------------------------------------------------

    @property
    def current_key_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __repr__(self) -> str:  # never the key material
        return f"KeyRing(current={self._current!r}, key_ids={list(self._keys)!r})"

    __str__ = __repr__

    def with_current(self, key_id: str) -> KeyRing:
        """The same keys with another current key."""
        return KeyRing(self._keys, current=key_id)

    @staticmethod
    def associated_data(key_id: str, context: bytes = b"") -> bytes:
        aad = key_id.encode("utf-8")
        return aad + b"\x00" + context if context else aad

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> tuple[str, bytes]:
        """Encrypt with the current key; returns `(key_id, nonce || ciphertext || tag)`."""
        key_id = self._current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[key_id].encrypt(nonce, plaintext, self.associated_data(key_id, context))
        return key_id, nonce + sealed

    def decrypt(self, key_id: str, blob: bytes, *, context: bytes = b"") -> bytes:
        """Decrypt a blob `encrypt` produced with key `key_id`.

        Raises KeyNotFoundError for an unknown key id and DecryptionError when the blob fails
        authentication.
        """
        aead = self._aead.get(key_id)
        if aead is None:
            raise KeyNotFoundError(key_id, self.key_ids)
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(
                f"ciphertext for key {quoted(key_id)} is {len(blob)} bytes, shorter than nonce and tag: it was truncated"
            )
        try:
            return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], self.associated_data(key_id, context))
        except InvalidTag:
            raise DecryptionError(
                f"ciphertext labelled with key {quoted(key_id)} failed authentication: "
                "it was altered or truncated, or was not encrypted with that key"
            ) from None


def _configured_by(variable: str, build):
    """`build()`, a KeyConfigurationError it raises naming `variable` first: the setting an
    operator fixes, whatever part of it was wrong."""
    try:
        return build()
    except KeyConfigurationError as exc:
        raise KeyConfigurationError(f"{variable}: {exc}") from None


# -- key files ------------------------------------------------------------------------------------


def _read_key_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyConfigurationError(f"key file {path} does not exist") from None
    except UnicodeDecodeError:
        raise KeyConfigurationError(f"key file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise KeyConfigurationError(f"key file {path} cannot be read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyConfigurationError(f"key file {path} is not valid JSON (line {exc.lineno})") from None
    except RecursionError:
        raise KeyConfigurationError(f"key file {path} nests too deep to be a key file") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict) or not data["keys"]:
        raise KeyConfigurationError(f'key file {path} must hold {{"current": "<id>", "keys": {{"<id>": "<base64>"}}}}')
    if "current" in data and not isinstance(data["current"], str):
        raise KeyConfigurationError(f'key file {path}: "current" must be a key id string')
    for key_id, encoded in data["keys"].items():
        validate_key_id(key_id)
        if not isinstance(encoded, str):
            raise KeyConfigurationError(f"key file {path}: key {quoted(key_id)} must be a base64 string")
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0
    if mode & 0o077:
        _log.warning("key file %s is readable by other users (mode %o); chmod 600 it", path, mode)
    return data


def _write_key_file(path: Path, data: dict) -> None:
    """Write atomically with mode 0600: a reader never sees a half-written key file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


def _next_key_id(existing: Mapping[str, object]) -> str:
    numbers = [int(m.group(1)) for key_id in existing if (m := re.fullmatch(r"k(\d+)", key_id))]
    candidate = max(numbers, default=0) + 1
    while f"k{candidate}" in existing:
        candidate += 1
    return f"k{candidate}"


def generate_key_file(
    path: str | os.PathLike[str],
    key_id: str | None = None,
    *,
    make_current: bool = True,
) -> str:
    """Add a new random AES-256 key to the key file at `path`, creating the file if needed.

    A new file gets the key as its current key. In an existing file (the rotation path) the key
    becomes current when `make_current` is true; with `make_current=False` it is only added, so
    every reader can learn it before any writer uses it. Returns the new key id. The file is
    written atomically with mode 0600.
    """
    path = Path(path)
    if path.exists():
        data = _read_key_file(path)
        keys = dict(data["keys"])
        current = data.get("current") or next(iter(keys))
    else:
        keys, current = {}, None
    new_id = validate_key_id(key_id) if key_id else _next_key_id(keys)
    if new_id in keys:
        raise KeyConfigurationError(f"key id {quoted(new_id)} already exists in {path}")
    keys[new_id] = encode_key(secrets.token_bytes(KEY_BYTES))
    if current is None or make_current:
        current = new_id
    _write_key_file(path, {"current": current, "keys": keys})
    return new_id


def activate_key(path: str | os.PathLike[str], key_id: str) -> None:
    """Make an existing key in the key file the current (encrypting) key."""
    path = Path(path)
    data = _read_key_file(path)
    if key_id not in data["keys"]:
        raise KeyNotFoundError(key_id, tuple(data["keys"]))
    data["current"] = key_id
    _write_key_file(path, data)


# -- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_protection.keys",
        description="Create and rotate the payload and document encryption keys (a JSON key file, mode 0600).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="create a new key file holding one fresh key")
    gen.add_argument("--file", required=True, type=Path)
    gen.add_argument("--key-id")
    rot = sub.add_parser("rotate", help="add a fresh key to an existing key file and make it current")
    rot.add_argument("--file", required=True, type=Path)
    rot.add_argument("--key-id")
    rot.add_argument(
        "--no-activate",
        action="store_true",
        help="only add the key; make it current later with `activate` once every reader has it",
    )
    act = sub.add_parser("activate", help="make an existing key the current one")
    act.add_argument("--file", required=True, type=Path)
    act.add_argument("--key-id", required=True)
    lst = sub.add_parser("list", help="show the key ids and which one is current (never the keys)")
    lst.add_argument("--file", required=True, type=Path)
    args = parser.parse_args(argv)

    # The exit codes of every process (docs/configuration.md, "Exit codes"): what is named on the
    # command line and cannot be used is bad input; an unknown key id is not found.
    try:
        if args.command == "generate":
            if args.file.exists():
                print(f"error: --file: {args.file} already exists; use `rotate` to add a key to it", file=sys.stderr)
                return EXIT_BAD_INPUT
            new_id = generate_key_file(args.file, args.key_id)
            print(f"created {args.file} with key {new_id} (current)")
            print(f"use it with: export {ENV_KEY_FILE}={args.file.resolve()}")
        elif args.command == "rotate":
            if not args.file.exists():
                print(f"error: --file: {args.file} does not exist; use `generate` first", file=sys.stderr)
                return EXIT_BAD_INPUT
            new_id = generate_key_file(args.file, args.key_id, make_current=not args.no_activate)
            state = "added (not current yet)" if args.no_activate else "added and made current"
            print(f"key {new_id} {state} in {args.file}; keep the older keys to read existing data")
        elif args.command == "activate":
            activate_key(args.file, args.key_id)
            print(f"key {args.key_id} is now current in {args.file}")
        elif args.command == "list":
            ring = KeyRing.from_file(args.file)
            for key_id in ring.key_ids:
                marker = " (current)" if key_id == ring.current_key_id else ""
                print(f"{key_id}{marker}")
    except KeyNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except DataProtectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK

if __name__ == "__main__":
    sys.exit(main())
