"""Process settings read from the environment, with the names operators set.

Every process (worker, webhook receiver, codec server, starter) reads its configuration through
one pydantic-settings model, a subclass of `ProcessSettings`, built once at start:

    settings = WorkerSettings.load()          # raises ConfigurationError, one line naming the variable
    converter = settings.data_converter()     # keys read and checked now, not at the first payload

`runtime.process.load_or_exit(WorkerSettings.load)` turns a `ConfigurationError` into one line on
stderr, `configuration: <VARIABLE>: <what is wrong>`, and `runtime.process.EXIT_CONFIGURATION`,
with no traceback.

The environment is parsed the same way in every process:

* flags (`Flag`): `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`, any case; anything else is
  an error naming the variable;
* lists (`CommaList`): comma-separated, blanks ignored;
* an empty variable is the same as an unset one (its default applies).

`load(environ)` takes a mapping instead of `os.environ` (tests, or a process that prepared its
own environment). Subclasses declare each field with `validation_alias="ENV_NAME"` so the error
message and the documentation use the name an operator sets.
"""

from __future__ import annotations

from contracts.quoting import quoted

import contextvars
import os
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Mapping, TypeVar

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from contracts.configuration import ConfigurationError  # noqa: F401 - what every settings error is
from contracts.messages import DEFAULT_TASK_QUEUE, canonical_sub_partner_id

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_flag(value: Any, name: str = "value") -> bool:
    """`1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off` (any case) -> bool; anything else raises
    `ConfigurationError` naming `name`. The one definition of a boolean setting."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ConfigurationError(f"{name}: must be one of on/off, true/false, 1/0, yes/no, got {quoted(value, limit=40)}")


def http_url(value: str) -> str:
    """`value` when it is an absolute http or https URL with a host; ValueError otherwise."""
    parts = urllib.parse.urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL with a host, such as https://api.iron.xyz/api")
    return value.strip()


def split_list(value: Any) -> tuple[str, ...]:
    """Comma-separated text (or any iterable of strings) -> tuple, blanks dropped."""
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(p).strip() for p in parts if p is not None and str(p).strip())


def _flag(value: Any) -> bool:
    try:
        return parse_flag(value)
    except ConfigurationError:
        # pydantic puts the variable's name in front of this message
        raise ValueError("must be one of on/off, true/false, 1/0, yes/no") from None


Flag = Annotated[bool, BeforeValidator(_flag)]
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(split_list)]

_environ: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("settings_environ", default=None)


class _EnvironSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading the mapping given to `load` if any."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = _environ.get()
        return parse_env_vars(os.environ if env is None else env, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


S = TypeVar("S", bound="ProcessSettings")


def _one_line(exc: ValidationError, settings_cls: type) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error.get("loc", ())]
        field = settings_cls.model_fields.get(loc[0]) if loc else None
        if field is not None and isinstance(field.validation_alias, str):
            loc[0] = field.validation_alias  # the name an operator sets
        where = ".".join(loc) or settings_cls.__name__
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        given = error.get("input")
        shown = "" if isinstance(given, (dict, SecretStr)) or given is None or error.get("type") == "missing" else f" (got {quoted(given, limit=40)})"
        if any(word in where.upper() for word in ("SECRET", "KEY", "TOKEN")) or "@" in str(given):
            shown = ""  # never echo a credential, nor a URL that may carry one
        problems.append(f"{where}: {message}{shown}")
    return "; ".join(problems).replace("\n", " ")


class ProcessSettings(BaseSettings):
    """What every process shares: the task queue, Iron, and the payload encryption keys.

    Fields are named in Python and read from the variable in their `validation_alias`;
    keyword arguments by field name override the environment (tests).
    """

    model_config = SettingsConfigDict(
        case_sensitive=False,
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    task_queue: str = Field(DEFAULT_TASK_QUEUE, min_length=1, validation_alias="ONBOARDING_TASK_QUEUE")

    iron_base_url: str = Field("https://api.sandbox.iron.xyz/api", validation_alias="IRON_BASE_URL")
    iron_api_key: SecretStr = Field(SecretStr(""), repr=False, validation_alias="IRON_API_KEY")
    iron_sub_partner_id: str | None = Field(None, validation_alias="IRON_SUB_PARTNER_ID")
    iron_api_version: str | None = Field(None, validation_alias="IRON_API_VERSION")
    iron_timeout_seconds: float = Field(20.0, gt=0, allow_inf_nan=False, validation_alias="IRON_TIMEOUT_SECONDS")

    encryption_keys: SecretStr | None = Field(None, repr=False, validation_alias="ONBOARDING_ENCRYPTION_KEYS")
    encryption_key_file: str | None = Field(None, validation_alias="ONBOARDING_ENCRYPTION_KEY_FILE")
    encryption_current_key_id: str | None = Field(None, validation_alias="ONBOARDING_ENCRYPTION_CURRENT_KEY_ID")

    @field_validator("iron_base_url")
    @classmethod
    def _iron_base_url_is_http(cls, value: str) -> str:
        # Otherwise every Iron call fails, one by one, long after the start.
        return http_url(value)

    @field_validator("iron_sub_partner_id")
    @classmethod
    def _default_sub_partner_is_a_uuid(cls, value: str | None) -> str | None:
        # Iron refuses any other `X-SUB-PARTNER-ID`: better one line at start than every call refused.
        return None if value is None else canonical_sub_partner_id(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _EnvironSource(settings_cls))

    @classmethod
    def load(cls: type[S], environ: Mapping[str, str] | None = None, **overrides: Any) -> S:
        """Read and check the settings from `environ` (default `os.environ`); `overrides` by
        field name win. Raises `ConfigurationError` with one line naming each bad variable."""
        token = _environ.set(environ)
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigurationError(_one_line(exc, cls)) from None
        finally:
            _environ.reset(token)

    # --- what the settings build ---------------------------------------------------------------

    def keyring(self):
        """The payload key ring, or None when no keys are configured. A key file that is
        missing, unreadable or malformed raises `ConfigurationError`."""
        from data_protection.keys import ENV_CURRENT_KEY_ID, ENV_KEY_FILE, ENV_KEYS, DataProtectionError, KeyRing

        env = {
            ENV_KEYS: self.encryption_keys.get_secret_value() if self.encryption_keys else "",
            ENV_KEY_FILE: self.encryption_key_file or "",
            ENV_CURRENT_KEY_ID: self.encryption_current_key_id or "",
        }
        try:
            return KeyRing.from_env(env)
        except DataProtectionError as exc:
            raise ConfigurationError(str(exc).replace("\n", " ")) from None

    def codec(self):
        """The payload codec for the configured keys, or None (no encryption, development)."""
        from data_protection.codec import EncryptionCodec

        keyring = self.keyring()
        return EncryptionCodec(keyring) if keyring is not None else None

    def data_converter(self):
        """The data converter every process uses (pydantic, plus the codec when keys exist)."""
        from runtime.temporal import converter_with_codec

        return converter_with_codec(self.codec())

    def iron_settings(self):
        from iron_client import IronSettings

        optional = {"api_version": self.iron_api_version.strip()} if (self.iron_api_version or "").strip() else {}
        return IronSettings(  # without IRON_API_VERSION, the client's own pinned version
            base_url=self.iron_base_url,
            api_key=self.iron_api_key,
            sub_partner_id=self.iron_sub_partner_id,
            timeout_seconds=self.iron_timeout_seconds,
            **optional,
        )


# --- small readers kept for callers that need one value -----------------------------------------


def task_queue() -> str:
    return os.environ.get("ONBOARDING_TASK_QUEUE") or DEFAULT_TASK_QUEUE


def document_store_dir() -> Path:
    """Where the filesystem document store keeps identification data (`ONBOARDING_DOCUMENT_DIR`)."""
    return Path(os.environ.get("ONBOARDING_DOCUMENT_DIR", ".data/documents"))


def temporal_ui_url() -> str:
    return os.environ.get("TEMPORAL_UI_URL", "http://127.0.0.1:8233")


def workflow_ui_link(workflow_id: str, namespace: str | None = None) -> str:
    """The Temporal UI's list filtered to one workflow ID: stable across continue-as-new,
    where a run's own page (it needs the run ID) is not."""
    ns = namespace or os.environ.get("TEMPORAL_NAMESPACE", "default")
    query = urllib.parse.quote(f'WorkflowId="{workflow_id}"')
    return f"{temporal_ui_url().rstrip('/')}/namespaces/{ns}/workflows?query={query}"
