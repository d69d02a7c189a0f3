"""Who may call the HTTP API: bearer keys, configured by their SHA-256 only.

    ONBOARDING_API_KEYS_FILE=api-keys.json
    {"keys": [{"name": "backend", "sha256": "<hex SHA-256 of the key>", "sub_partner_id": null},
              {"name": "brand-a", "sha256": "...", "sub_partner_id": "0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f"}]}

`python -m onboarding_api new-key --name N [--sub-partner ID]` makes a key and prints it with
its line for the file; the key itself is never stored, so a leaked file grants nothing. Several
keys may be valid at once (rotation: add the new one, move callers over, remove the old one).

A key with `sub_partner_id` sees and starts only that Iron sub-partner's customers: an onboarding
of another scope answers 404, as one that does not exist. A key without one is the partner's:
it reaches the default scope, and any sub-partner's customers by naming the sub-partner.

Each presented key is hashed and compared with every configured hash by `hmac.compare_digest`,
all of them every time, so neither the answer's time nor its content says which hash came close.
The key never reaches a log line: requests log the key's `name`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from contracts.configuration import ConfigurationError
from contracts.messages import canonical_sub_partner_id
from contracts.quoting import quoted

KEY_PREFIX = "oak_"  # an onboarding API key: recognisable in a secret scanner's findings
KEY_NAME_MAX_LENGTH = 100
# A bearer token longer than this is no key of ours: refused without hashing it.
PRESENTED_KEY_MAX_LENGTH = 512
_HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def new_key() -> str:
    """A fresh API key: 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_sha256(key: str) -> str:
    """What the keys file holds for `key`: the hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its name (for logs), its hash, and its scope. `sub_partner_id` is
    the scope's canonical id (None: the default scope); `scoped` says the key is limited to it."""

    name: str
    sha256: str
    sub_partner_id: str | None = None
    scoped: bool = False

    def entry(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "sub_partner_id": self.sub_partner_id if self.scoped else None}


class ApiKeyRing:
    """The configured keys; `caller(authorization)` is the key a request presents, or None."""

    def __init__(self, keys: list[ApiKey]) -> None:
        if not keys:
            raise ValueError("no key")
        self.keys = tuple(keys)
        self._digests = tuple(bytes.fromhex(k.sha256) for k in self.keys)

    @classmethod
    def from_document(cls, document: Any, *, default_scope: Callable[[str], str | None] = lambda s: s,
                      variable: str = "ONBOARDING_API_KEYS_FILE") -> "ApiKeyRing":
        """Keys from the parsed file. `default_scope` maps a canonical sub-partner id to the scope
        it names (the deployment's own `IRON_SUB_PARTNER_ID` is the default scope, None).
        Raises ConfigurationError naming `variable` and the entry at fault."""

        def refuse(problem: str) -> ConfigurationError:
            return ConfigurationError(f"{variable}: {problem}")

        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise refuse('must be a JSON object {"keys": [{"name": ..., "sha256": ..., "sub_partner_id": ...}]}')
        keys: list[ApiKey] = []
        for position, entry in enumerate(document["keys"], start=1):
            where = f"key {position}"
            if not isinstance(entry, dict):
                raise refuse(f"{where} must be an object with name, sha256 and sub_partner_id")
            unknown = set(entry) - {"name", "sha256", "sub_partner_id"}
            if unknown:
                raise refuse(f"{where} has unknown fields {', '.join(sorted(map(str, unknown)))}")
            name = entry.get("name")
            if not isinstance(name, str) or not name.strip() or len(name) > KEY_NAME_MAX_LENGTH or not name.isprintable():
                raise refuse(f"{where}: name must be 1 to {KEY_NAME_MAX_LENGTH} printable characters")
            where = f"key {quoted(name)}"
            digest = entry.get("sha256")
            if not isinstance(digest, str) or not _HEX_SHA256.match(digest):
                raise refuse(f"{where}: sha256 must be the 64 hex digits of the key's SHA-256, never the key itself")
            sub_partner = entry.get("sub_partner_id")
            if sub_partner is not None:
                try:
                    sub_partner = default_scope(canonical_sub_partner_id(sub_partner))
                except (ValueError, TypeError):
                    raise refuse(f"{where}: sub_partner_id must be an Iron sub-partner id (a UUID) or null") from None
            keys.append(ApiKey(name=name.strip(), sha256=digest.lower(), sub_partner_id=sub_partner,
                               scoped=entry.get("sub_partner_id") is not None))
        if not keys:
            raise refuse("lists no key: nobody could call the API (python -m onboarding_api new-key makes one)")
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise refuse(f"two keys are named {quoted(next(n for n in names if names.count(n) > 1))}: names tell them apart in logs")
        digests = [k.sha256 for k in keys]
        if len(set(digests)) != len(digests):
            raise refuse("two entries hold the same sha256")
        return cls(keys)

    @classmethod
    def from_file(cls, path: str | Path, *, default_scope: Callable[[str], str | None] = lambda s: s,
                  variable: str = "ONBOARDING_API_KEYS_FILE") -> "ApiKeyRing":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigurationError(f"{variable}: {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{variable}: {path} cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ConfigurationError(f"{variable}: {path} is not JSON ({type(exc).__name__})") from None
        return cls.from_document(document, default_scope=default_scope, variable=variable)

    def caller(self, authorization: str | None) -> ApiKey | None:
        """The key an `Authorization: Bearer <key>` header presents, or None."""
        if not authorization:
            return None
        scheme, _, presented = authorization.strip().partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented or len(presented) > PRESENTED_KEY_MAX_LENGTH:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found: ApiKey | None = None
        for key, expected in zip(self.keys, self._digests):
            if hmac.compare_digest(digest, expected):  # every key compared, whichever matches
                found = key
        return found
