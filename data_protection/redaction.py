"""Keeping secrets and personal data out of logs.

`redact_processor` is a structlog processor; `redact_text` cleans one string (an error message
from Iron that echoes the request, say). Both remove:

* the values of sensitive keys (credentials, contact and identity data, documents), wherever
  they sit: top-level fields, nested dicts and lists, and `key: value` / `key=value` /
  `"key": "value"` fragments inside strings such as exception texts;
* literal secret values registered at start-up with `register_secret` and
  `register_sensitive_values`, plus those of the settings a process loaded (`IRON_API_KEY`,
  `IRON_WEBHOOK_SECRETS`, `ONBOARDING_CODEC_TOKEN`, the encryption keys...), which the settings
  hand over with `use_configured_secrets` when they are loaded, and again when reloaded;
* patterns: email addresses, bearer tokens, and base64 blobs longer than 200 characters
  (document images).

The processor also renders `exc_info` itself before redacting, so a traceback cannot carry an
unredacted exception message past it whatever the processor order. `RedactingFilter` does the
same for records that go through the standard `logging` module (Temporal's own loggers).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import logging
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

REDACTED = "[REDACTED]"

# Normalized (lower case, `-` and spaces as `_`) key names whose values are always redacted.
SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        # credentials
        "api_key",
        "apikey",
        "x_api_key",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "secret",
        "secrets",
        "client_secret",
        "webhook_secret",
        "webhook_secrets",
        "token",
        "tokens",
        "access_token",
        "refresh_token",
        "id_token",
        "share_token",
        "codec_token",
        "password",
        "passwd",
        "private_key",
        "encryption_key",
        "encryption_keys",
        "signature",
        "webhook_signature",
        # contact and identity data
        "email",
        "emails",
        "email_address",
        "active_email",
        "name",
        "full_name",
        "first_name",
        "last_name",
        "middle_name",
        "given_name",
        "family_name",
        "legal_name",
        "customer_name",
        "date_of_birth",
        "dob",
        "birth_date",
        "birthdate",
        "birth_place",
        "place_of_birth",
        "phone",
        "phone_number",
        "mobile",
        "address",
        "street",
        "street_1",
        "street_2",
        "zip_code",
        "postal_code",
        "ip_address",
        "tax_identification_number",
        "tax_id",
        "tin",
        "ssn",
        "identity_number",
        "national_id",
        "passport_number",
        # documents
        "selfie",
        "identity_document_front",
        "identity_document_back",
        "file",
        "source_of_funds_proof",
    }
)

# Any key containing one of these is sensitive too (`iron_api_key`, `old_webhook_secret`, ...).
_SENSITIVE_MARKERS = ("secret", "password", "passwd", "api_key", "apikey", "private_key", "authorization")
_SENSITIVE_SUFFIXES = ("_token", "_email", "_email_address", "_phone_number")

# Shorter literals would redact ordinary words; such values are not secrets worth the name.
MIN_SECRET_LENGTH = 4
_MAX_DEPTH = 32


def _normalize_key(key: object) -> str:
    return str(key).strip().lower().replace("-", "_").replace(" ", "_")


def is_sensitive_key(key: object) -> bool:
    name = _normalize_key(key)
    if name in SENSITIVE_KEYS:
        return True
    return any(marker in name for marker in _SENSITIVE_MARKERS) or name.endswith(_SENSITIVE_SUFFIXES)


# -- text patterns --------------------------------------------------------------------------------


def _key_pattern(name: str) -> str:
    # `first_name` also matches `first-name`, `First Name` and `firstname` (not camelCase).
    return r"[-_ ]?".join(re.escape(part) for part in name.split("_"))


_TEXT_KEYS = sorted(SENSITIVE_KEYS, key=len, reverse=True)
_TEXT_KEY_ALTERNATION = "|".join(_key_pattern(k) for k in _TEXT_KEYS)
# `key` then an optional closing quote (plain or JSON-escaped), `:` or `=`, then the value:
# a quoted string (plain, JSON-escaped or Python bytes), or an unquoted run. After `=` the run
# stops at whitespace (`key=value` log lines); after `:` it runs to the end of the clause
# (`Name: John Smith`). Values opening a nested object or list are left to the inner keys.
_KV_RE = re.compile(
    r"""(?P<key>(?<![\w.-])(?:[\w-]*(?:secret|password|passwd|api[-_]?key|private[-_]key)[\w-]*|"""
    + _TEXT_KEY_ALTERNATION
    + r"""))(?![\w-])"""
    r"""(?P<sep>(?:\\?["'])?\s*(?:(?P<eq>=)|:)\s*)"""
    r"""(?P<value>"""
    r"""\\"(?:[^"\\]|\\[^"])*\\\""""
    r"""|b?"(?:[^"\\\n]|\\.)*\""""
    r"""|b?'(?:[^'\\\n]|\\.)*'"""
    r"""|(?(eq)"""
    r"""(?:(?:bearer|basic|digest|token)\s+)?[^\s,;&'"<>{}\[\]()]+"""
    r"""|(?![\[{(])(?:(?:bearer|basic|digest|token)\s+)?[^\s,;&'"<>{}\[\]()](?:[^\n\r,;&'"<>{}\[\]()]*[^\s,;&'"<>{}\[\]()])?"""
    r"""))""",
    re.IGNORECASE,
)

_BEARER_RE = re.compile(r"\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_BASE64_BLOB_RE = re.compile(r"[A-Za-z0-9+/_-]{201,}={0,2}")


def _redact_kv(match: re.Match[str]) -> str:
    value = match.group("value")
    if value == REDACTED or value.strip('"\'\\b') == REDACTED:
        return match.group(0)
    quote = ""
    if value.startswith('\\"'):
        quote = '\\"'
    elif value[:1] in "\"'":
        quote = value[0]
    elif value[:2] in ('b"', "b'"):
        quote = value[1]
    return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{quote}"


# -- registered literal values ----------------------------------------------------------------


class _SecretRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._explicit: set[str] = set()
        # Per settings model: loading it again replaces its values (a rotated key).
        self._configured: dict[str, frozenset[str]] = {}
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            before = len(self._explicit)
            self._explicit.update(_worth_redacting(values))
            if len(self._explicit) != before:
                self._pattern = self._compile()

    def configure(self, owner: str, values: Iterable[str]) -> None:
        with self._lock:
            self._configured[owner] = frozenset(_worth_redacting(values))
            self._pattern = self._compile()

    def clear(self) -> None:
        with self._lock:
            self._explicit.clear()
            self._configured.clear()
            self._pattern = self._compile()

    def pattern(self) -> re.Pattern[str] | None:
        return self._pattern

    def _compile(self) -> re.Pattern[str] | None:
        values = sorted(self._explicit.union(*self._configured.values()), key=len, reverse=True)
        if not values:
            return None
        return re.compile("|".join(re.escape(v) for v in values))


def _worth_redacting(values: Iterable[str | None]) -> set[str]:
    return {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}


_registry = _SecretRegistry()


def register_secret(value: str | None) -> None:
    """Redact this literal value wherever it appears in a log line from now on."""
    if value:
        _registry.add([value])


def register_sensitive_values(*values: str | Iterable[str] | None) -> None:
    """Register several literal values at once (strings or iterables of strings)."""
    flat: list[str] = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, str):
            flat.append(value)
        else:
            flat.extend(v for v in value if isinstance(v, str))
    _registry.add(flat)


def use_configured_secrets(owner: str, values: Iterable[str | None]) -> None:
    """Redact the secrets a settings model holds (`owner`, its name): called when the settings
    are loaded. A later call for the same owner replaces its values, so after a reload with a
    rotated key the new one is redacted and the old one no longer is."""
    _registry.configure(owner, values)


def clear_registered_secrets() -> None:
    """Forget every registered and configured value (tests)."""
    _registry.clear()


# -- redaction ------------------------------------------------------------------------------------


def redact_text(text: str) -> str:
    """Remove secrets, sensitive `key: value` fragments, emails, bearer tokens and base64 blobs."""
    if not text:
        return text
    pattern = _registry.pattern()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _KV_RE.sub(_redact_kv, text)
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _EMAIL_RE.sub(REDACTED, text)
    text = _BASE64_BLOB_RE.sub(REDACTED, text)
    return text


_SAFE_SCALARS = (bool, int, float, type(None), _dt.datetime, _dt.date, _dt.time, _dt.timedelta, uuid.UUID, decimal.Decimal, PurePath)


def redact_value(value: Any, _depth: int = 0) -> Any:
    """A redacted copy of `value`: containers walked, strings cleaned, objects turned into text."""
    if _depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(value, enum.Enum):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, _SAFE_SCALARS):
        return value
    if isinstance(value, Mapping):
        return {
            key: (REDACTED if is_sensitive_key(key) else redact_value(item, _depth + 1))
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        items = [redact_value(item, _depth + 1) for item in value]
        return tuple(items) if isinstance(value, tuple) and not hasattr(value, "_fields") else items
    if isinstance(value, (set, frozenset)):
        return [redact_value(item, _depth + 1) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return redact_text(repr(bytes(value)))
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    dumped = _as_plain(value)
    if dumped is not None:
        return redact_value(dumped, _depth + 1)
    try:
        return redact_text(repr(value))
    except Exception:  # a broken __repr__ must not break logging
        return f"<{type(value).__name__}>"


def _as_plain(value: Any) -> Any:
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        try:
            return model_dump(mode="json")
        except Exception:
            return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return dataclasses.asdict(value)
        except Exception:
            return None
    return None


def redact_event_dict(event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in list(event_dict):
        if isinstance(key, str) and key.startswith("_"):
            continue  # structlog's own plumbing (`_record`, `_from_structlog`)
        if is_sensitive_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(event_dict[key])
    return event_dict


def redact_processor(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: redacts secrets and personal data from the event dict."""
    if "exc_info" in event_dict:
        import structlog

        event_dict = structlog.processors.format_exc_info(logger, method_name, event_dict)
    return redact_event_dict(event_dict)


class RedactingFilter(logging.Filter):
    """A `logging` filter for handlers: redacts the message, its args and the traceback text.

    Attach it to handlers (not loggers) so records propagated from library loggers pass it:
    `for h in logging.getLogger().handlers: h.addFilter(RedactingFilter())`.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def install_logging_filter(logger: logging.Logger | None = None) -> None:
    """Add a `RedactingFilter` to every handler of `logger` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
