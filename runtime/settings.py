"""Process settings read from the environment, with the names operators set.

Every process (worker, webhook receiver and its check, codec server, starter) reads its
configuration through one pydantic-settings model, a subclass of `ProcessSettings`, loaded once
at start in its entry point, and passes values down: the libraries below it (operations,
activities, the Iron client, data protection) take values or settings objects, never the
environment.

    settings = WorkerSettings.load()          # raises ConfigurationError, one line naming the variable
    converter = settings.data_converter()     # keys read and checked now, not at the first payload

`runtime.process.load_or_exit(WorkerSettings.load)` turns a `ConfigurationError` into one line on
stderr, `configuration: <VARIABLE>: <what is wrong>`, and `EXIT_CONFIGURATION`, with no traceback.
Loading hands the settings' secrets to log redaction (`data_protection.redaction`).

The environment is parsed the same way in every process:

* flags (`Flag`): `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`, any case; anything else is
  an error naming the variable;
* lists (`CommaList`): comma-separated, blanks ignored;
* URLs (`http_url`): absolute http or https with a host;
* an empty variable is the same as an unset one (its default applies).

`load(environ)` takes a mapping instead of `os.environ` (tests, or a process that prepared its
own environment). Subclasses declare each field with `validation_alias="ENV_NAME"` so the error
message and the documentation use the name an operator sets. docs/configuration.md lists every
variable and the processes that read it.
"""

from __future__ import annotations

import contextvars
import os
import urllib.parse
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Mapping, TypeVar

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from contracts.configuration import ConfigurationError
from contracts.messages import DEFAULT_TASK_QUEUE, canonical_sub_partner_id
from contracts.quoting import quoted
from data_protection.documents import DEFAULT_DOCUMENT_DIR, ENV_DOCUMENT_DIR, ENV_DOCUMENT_STORE, parse_document_store_url

if TYPE_CHECKING:
    from data_protection.documents import DocumentStore
    from data_protection.keys import KeyRing

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_TEMPORAL_UI_URL = "http://127.0.0.1:8233"


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
    """`value` when it is an absolute http or https URL with a host (and a port, if any, that
    is one); ValueError otherwise. The one URL check of every setting."""
    text = value.strip()
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # raises for a port that is none
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
        raise ValueError("must be an http or https URL with a host, such as https://host.example/path")
    return text


def optional_http_url(value: str | None) -> str | None:
    """`http_url`, with None (or blank) for an unset setting."""
    return None if value is None or not value.strip() else http_url(value)


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


def validation_message(exc: ValidationError, settings_cls: type[BaseModel]) -> str:
    """A settings model's ValidationError as one line: each problem `<VARIABLE>: <what is
    wrong> (got <value>)`, the name an operator sets first, and a problem of the whole model as
    its own message (its validator names the variables). Never a secret, nor a URL that may
    carry one. The one such message of every settings model."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error.get("loc", ())]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if not loc:
            problems.append(message)
            continue
        field = settings_cls.model_fields.get(loc[0])
        if field is not None and isinstance(field.validation_alias, str):
            loc[0] = field.validation_alias  # the name an operator sets
        where = ".".join(loc)
        given = error.get("input")
        shown = "" if isinstance(given, (dict, SecretStr)) or given is None or error.get("type") == "missing" else f" (got {quoted(given, limit=40)})"
        if any(word in where.upper() for word in ("SECRET", "KEY", "TOKEN")) or "@" in str(given):
            shown = ""  # never echo a credential, nor a URL that may carry one
        problems.append(f"{where}: {message}{shown}")
    return "; ".join(problems).replace("\n", " ")


S = TypeVar("S", bound="EnvironmentSettings")


class EnvironmentSettings(BaseSettings):
    """How every settings model of the project reads the environment: the variable names of
    `validation_alias`, empty as unset, `load` with its one-line error, and the secrets handed
    to log redaction. Keyword arguments by field name override the environment (tests)."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    # What `load` raises: a subclass of the one ConfigurationError.
    configuration_error: ClassVar[type[ConfigurationError]] = ConfigurationError

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
        field name win. Raises `configuration_error` with one line naming each bad variable.
        From then on log lines never show the settings' secrets."""
        from data_protection.redaction import use_configured_secrets

        token = _environ.set(environ)
        try:
            settings = cls(**overrides)
        except ValidationError as exc:
            raise cls.configuration_error(validation_message(exc, cls)) from None
        finally:
            _environ.reset(token)
        use_configured_secrets(cls.__name__, settings.secret_values())
        return settings

    def secret_values(self) -> list[str]:
        """The text of every secret setting (a `SecretStr` field, or one kept out of the repr),
        and of each part of one that lists several (`a,b`, `keyid:key`)."""
        found: list[str] = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if not isinstance(value, SecretStr) and field.repr:
                continue
            values = value if isinstance(value, (tuple, list)) else [value]
            for item in values:
                text = item.get_secret_value() if isinstance(item, SecretStr) else item
                if not isinstance(text, str):
                    continue
                found.append(text.strip())
                for part in text.split(","):
                    found.extend((part.strip(), part.partition(":")[2].strip()))
        return [text for text in dict.fromkeys(found) if text]


class ProcessSettings(EnvironmentSettings):
    """What every process shares: the task queue, Iron, the payload encryption keys, whether
    onboardings send events, the Temporal UI's address and the logs.

    Fields are named in Python and read from the variable in their `validation_alias`;
    keyword arguments by field name override the environment (tests).
    """

    task_queue: str = Field(DEFAULT_TASK_QUEUE, min_length=1, validation_alias="ONBOARDING_TASK_QUEUE")

    # The one reader of `IRON_*` (`iron_settings()` hands them to the Iron client).
    iron_base_url: str = Field("https://api.sandbox.iron.xyz/api", validation_alias="IRON_BASE_URL")
    iron_api_key: SecretStr = Field(SecretStr(""), repr=False, validation_alias="IRON_API_KEY")
    iron_sub_partner_id: str | None = Field(None, validation_alias="IRON_SUB_PARTNER_ID")
    iron_api_version: str | None = Field(None, validation_alias="IRON_API_VERSION")
    iron_timeout_seconds: float = Field(20.0, gt=0, allow_inf_nan=False, validation_alias="IRON_TIMEOUT_SECONDS")

    encryption_keys: SecretStr | None = Field(None, repr=False, validation_alias="ONBOARDING_ENCRYPTION_KEYS")
    encryption_key_file: str | None = Field(None, validation_alias="ONBOARDING_ENCRYPTION_KEY_FILE")
    encryption_current_key_id: str | None = Field(None, validation_alias="ONBOARDING_ENCRYPTION_CURRENT_KEY_ID")

    # Set: onboardings started here send events to the partner's backend (the worker delivers
    # them, with the secrets of `runtime.events_settings`).
    events_url: str | None = Field(None, validation_alias="ONBOARDING_EVENTS_URL")
    # Where the links printed to an operator point.
    temporal_ui_url: str = Field(DEFAULT_TEMPORAL_UI_URL, validation_alias="TEMPORAL_UI_URL")

    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["json", "console"] = Field("json", validation_alias="LOG_FORMAT")

    @field_validator("iron_base_url", "temporal_ui_url")
    @classmethod
    def _is_http_url(cls, value: str) -> str:
        # Otherwise every Iron call (or every link) fails, one by one, long after the start.
        return http_url(value)

    @field_validator("events_url")
    @classmethod
    def _events_url_is_http(cls, value: str | None) -> str | None:
        return optional_http_url(value)

    @field_validator("iron_sub_partner_id")
    @classmethod
    def _default_sub_partner_is_a_uuid(cls, value: str | None) -> str | None:
        # Iron refuses any other `X-SUB-PARTNER-ID`: better one line at start than every call refused.
        return None if value is None else canonical_sub_partner_id(value)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_in_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    # --- what the settings build ---------------------------------------------------------------

    def keyring(self) -> "KeyRing | None":
        """The payload key ring, or None when no keys are configured. A key file that is
        missing, unreadable or malformed raises `ConfigurationError`."""
        from data_protection.keys import DataProtectionError, KeyRing

        try:
            return KeyRing.from_configuration(
                keys=self.encryption_keys.get_secret_value() if self.encryption_keys else None,
                key_file=self.encryption_key_file,
                current_key_id=self.encryption_current_key_id,
            )
        except ConfigurationError:
            raise  # KeyConfigurationError: one line, naming the variable
        except DataProtectionError as exc:
            raise ConfigurationError(str(exc).replace("\n", " ")) from None

    def codec(self):
        """The payload codec for the configured keys, or None (no encryption, development)."""
        from data_protection.codec import EncryptionCodec

        keyring = self.keyring()
        return EncryptionCodec(keyring) if keyring is not None else None

    def data_converter(self):
        """The data converter every process uses (pydantic, plus the codec when keys exist)."""
        from runtime.converter import converter_with_codec

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

    def configure_logging(self) -> None:
        """Logs at `LOG_LEVEL`, as `LOG_FORMAT` says (`runtime.logging`)."""
        from runtime.logging import configure_logging

        configure_logging(self.log_level, json=self.log_format == "json")


class DocumentStoreSettings(ProcessSettings):
    """The settings of a process that stores or reads identification documents (the worker and
    the starter): where the document store is, and the AWS settings of an `s3://` one."""

    document_dir: str = Field(DEFAULT_DOCUMENT_DIR, min_length=1, validation_alias=ENV_DOCUMENT_DIR)
    # Unset: the local directory above. `s3://bucket/prefix`: S3-compatible object storage, which
    # starters and workers on other machines can share (data_protection/documents.py).
    document_store: str | None = Field(None, validation_alias=ENV_DOCUMENT_STORE)
    # With an `s3://` store. Unset ones are left to the S3 client, which then finds credentials
    # the usual AWS ways (web identity, container or instance credentials).
    aws_access_key_id: str | None = Field(None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(None, repr=False, validation_alias="AWS_SECRET_ACCESS_KEY")
    aws_session_token: SecretStr | None = Field(None, repr=False, validation_alias="AWS_SESSION_TOKEN")
    aws_region: str | None = Field(None, validation_alias="AWS_REGION")
    aws_default_region: str | None = Field(None, validation_alias="AWS_DEFAULT_REGION")
    aws_endpoint_url_s3: str | None = Field(None, validation_alias="AWS_ENDPOINT_URL_S3")
    aws_endpoint_url: str | None = Field(None, validation_alias="AWS_ENDPOINT_URL")

    @field_validator("document_store")
    @classmethod
    def _document_store_url(cls, value: str | None) -> str | None:
        parse_document_store_url(value)  # a ValueError names what is wrong
        return value

    @field_validator("aws_endpoint_url_s3", "aws_endpoint_url")
    @classmethod
    def _endpoint_is_http(cls, value: str | None) -> str | None:
        return optional_http_url(value)

    def s3_config(self) -> dict[str, str]:
        """The S3 client's settings (its own names) that these AWS settings give."""
        secret = {
            "secret_access_key": self.aws_secret_access_key,
            "session_token": self.aws_session_token,
        }
        given = {
            "access_key_id": self.aws_access_key_id,
            **{key: value.get_secret_value() if value else None for key, value in secret.items()},
            "region": self.aws_region or self.aws_default_region,
            "endpoint": self.aws_endpoint_url_s3 or self.aws_endpoint_url,
        }
        return {key: value.strip() for key, value in given.items() if value and value.strip()}

    def documents(self, keyring: "KeyRing | None") -> "DocumentStore":
        """The document store these settings name, encrypted at rest with `keyring` (this
        process's, from `keyring()`). A store that cannot be used raises `ConfigurationError`
        naming the variable."""
        from data_protection.documents import document_store_for

        return document_store_for(
            self.document_store, document_dir=self.document_dir, keyring=keyring, s3_config=self.s3_config()
        )


# --- links for a person ------------------------------------------------------------------------


def workflow_ui_link(workflow_id: str, namespace: str = "default", ui_url: str = DEFAULT_TEMPORAL_UI_URL) -> str:
    """The Temporal UI's list filtered to one workflow ID: stable across continue-as-new,
    where a run's own page (it needs the run ID) is not. `ui_url`: the settings'
    `temporal_ui_url`; `namespace`: the client's."""
    query = urllib.parse.quote(f'WorkflowId="{workflow_id}"')
    return f"{ui_url.rstrip('/')}/namespaces/{namespace or 'default'}/workflows?query={query}"
