"""The codec server: lets the Temporal Web UI and CLI show encrypted payloads in clear text.

Temporal's remote codec protocol: `POST /decode` and `POST /encode` take and return
`{"payloads": [...]}` in protobuf JSON form (bytes fields base64), with the namespace in the
`X-Namespace` header. The same routes are also served under a namespace segment
(`/{namespace}/decode`), for endpoints templated as `http://host:8888/{namespace}`.

    ONBOARDING_ENCRYPTION_KEY_FILE=keys.json ONBOARDING_CODEC_TOKEN=... \\
        python -m codec_server --port 8888

Pointing Temporal at it:

* Web UI: the codec server setting (the "Data Encoder" icon in the top bar), endpoint
  `http://127.0.0.1:8888`; the local dev server can preset it with
  `temporal server start-dev --ui-codec-endpoint http://127.0.0.1:8888`. Turn on "Include
  cross-origin credentials" when a proxy in front of this server authenticates with cookies.
* CLI: `temporal workflow show -w onboarding-ID --codec-endpoint http://127.0.0.1:8888
  --codec-auth 'Bearer TOKEN'` (or `TEMPORAL_CODEC_ENDPOINT` / `TEMPORAL_CODEC_AUTH`).

Configuration (`CodecServerSettings`, read once at start; anything unusable is one line on
stderr, `configuration: <VARIABLE>: <what is wrong>`, and exit code 7): the encryption keys (see `data_protection.keys`); `ONBOARDING_CODEC_TOKEN`
(comma-separated bearer tokens, several at once for rotation, each at least
`MIN_TOKEN_LENGTH` (32) characters: `python -c "import secrets; print(secrets.token_urlsafe(32))"`);
`ONBOARDING_CODEC_CORS_ORIGINS` (comma-separated, default the local UI at http://127.0.0.1:8233
and http://localhost:8233); `ONBOARDING_CODEC_NAMESPACES` (comma-separated; empty serves any
namespace); `ONBOARDING_CODEC_ALLOWED_HOSTS` (the `Host` names answered without a token,
default `127.0.0.1` and `localhost`); `ONBOARDING_CODEC_HEADER_TIMEOUT_SECONDS` (10) and
`ONBOARDING_CODEC_BODY_TIMEOUT_SECONDS` (30), within which a request's head and body must
arrive; `ONBOARDING_CODEC_SHUTDOWN_GRACE_SECONDS` (30), how long SIGTERM lets requests in flight
finish before the server exits 0.

Anyone who can call `/decode` can read every payload they can fetch from Temporal, so a token is
required unless the server only listens on loopback (the local Web UI, without single sign-on,
cannot send one). Tokenless, it answers only requests whose `Host` header names an allowed
loopback host, so a web page that rebinds its own DNS name to 127.0.0.1 cannot reach it from
the operator's browser. CORS preflight needs no token; responses carry CORS headers only for
the configured origins. There is no access log: a request line can carry a credential (a token
pasted into a query string), and each failure is answered, not logged with its request.
"""

from __future__ import annotations

from contracts.quoting import quoted

import argparse
import asyncio
import hmac
import ipaddress
from collections.abc import Iterable, Sequence

from google.protobuf import json_format
from pydantic import Field, field_validator
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from data_protection.keys import DataProtectionError
from runtime.http_server import DEFAULT_HEADER_TIMEOUT_SECONDS, DEFAULT_SHUTDOWN_GRACE_SECONDS
from runtime.settings import CommaList, ProcessSettings, split_list as _split

ENV_TOKENS = "ONBOARDING_CODEC_TOKEN"
ENV_CORS_ORIGINS = "ONBOARDING_CODEC_CORS_ORIGINS"
ENV_NAMESPACES = "ONBOARDING_CODEC_NAMESPACES"
ENV_ALLOWED_HOSTS = "ONBOARDING_CODEC_ALLOWED_HOSTS"
ENV_HEADER_TIMEOUT = "ONBOARDING_CODEC_HEADER_TIMEOUT_SECONDS"
ENV_BODY_TIMEOUT = "ONBOARDING_CODEC_BODY_TIMEOUT_SECONDS"
ENV_SHUTDOWN_GRACE = "ONBOARDING_CODEC_SHUTDOWN_GRACE_SECONDS"
DEFAULT_CORS_ORIGINS = ("http://127.0.0.1:8233", "http://localhost:8233")
DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost")
DEFAULT_PORT = 8888
# A payload is at most 2 MB and the UI decodes an event's payloads in one call; leave room.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
# The whole body must arrive within this (slow senders hold a connection for no longer).
DEFAULT_BODY_TIMEOUT_SECONDS = 30.0
ALLOWED_HEADERS = ("content-type", "x-namespace", "authorization")
# `secrets.token_urlsafe(24)` is 32 characters (192 bits): nothing shorter is a token worth the name.
MIN_TOKEN_LENGTH = 32


def split_list(value: str | None) -> list[str]:
    return list(_split(value))


def check_tokens(tokens: Iterable[str]) -> list[str]:
    """The tokens, or ValueError when one is shorter than `MIN_TOKEN_LENGTH` (never echoed)."""
    token_list = [t for t in tokens if t]
    for token in token_list:
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"every codec token must be at least {MIN_TOKEN_LENGTH} characters long")
    return token_list


class CodecServerSettings(ProcessSettings):
    """The codec server's configuration: keys (from `ProcessSettings`), tokens, CORS, hosts."""

    tokens: CommaList = Field((), repr=False, validation_alias=ENV_TOKENS)
    cors_origins: CommaList = Field(DEFAULT_CORS_ORIGINS, validation_alias=ENV_CORS_ORIGINS)
    namespaces: CommaList = Field((), validation_alias=ENV_NAMESPACES)
    allowed_hosts: CommaList = Field(DEFAULT_ALLOWED_HOSTS, validation_alias=ENV_ALLOWED_HOSTS)
    # Read deadlines (runtime/http_server.py) and how long SIGTERM lets requests in flight finish.
    header_timeout_seconds: float = Field(
        DEFAULT_HEADER_TIMEOUT_SECONDS, ge=0.1, le=120, allow_inf_nan=False, validation_alias=ENV_HEADER_TIMEOUT
    )
    body_timeout_seconds: float = Field(
        DEFAULT_BODY_TIMEOUT_SECONDS, ge=0.1, le=600, allow_inf_nan=False, validation_alias=ENV_BODY_TIMEOUT
    )
    shutdown_grace_seconds: float = Field(
        DEFAULT_SHUTDOWN_GRACE_SECONDS, ge=0, le=600, allow_inf_nan=False, validation_alias=ENV_SHUTDOWN_GRACE
    )

    @field_validator("tokens")
    @classmethod
    def _long_enough(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_tokens(value))


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class _TokenChecker:
    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [t.encode("utf-8") for t in tokens]

    def allows(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, credential = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            return False
        presented = credential.strip().encode("utf-8")
        # Compare against every token, without stopping early, so timing says nothing.
        matches = [hmac.compare_digest(presented, token) for token in self._tokens]
        return any(matches)


def create_app(
    codec: PayloadCodec,
    tokens: Iterable[str] | None,
    origins: Iterable[str] | None = None,
    *,
    namespaces: Iterable[str] | None = None,
    allow_unauthenticated: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    allowed_hosts: Iterable[str] | None = None,
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS,
) -> Starlette:
    """The codec server as an ASGI app.

    `tokens`: accepted bearer tokens, each at least `MIN_TOKEN_LENGTH` characters; an empty
    list is refused unless `allow_unauthenticated`. `origins`: browser origins allowed by CORS
    (None: the local Web UI's). `namespaces`: the namespaces served (None or empty: any).
    `allowed_hosts`: without tokens, the only `Host` headers answered (None: loopback names);
    with tokens, any host unless given.
    """
    token_list = check_tokens(tokens or [])
    if not token_list and not allow_unauthenticated:
        raise ValueError("the codec server needs at least one token (or allow_unauthenticated=True)")
    checker = _TokenChecker(token_list) if token_list else None
    allowed_namespaces = frozenset(namespaces or ())
    origin_list = list(DEFAULT_CORS_ORIGINS if origins is None else origins)

    async def convert(request: Request) -> Response:
        if checker is not None and not checker.allows(request.headers.get("authorization")):
            return _error(401, "missing or invalid bearer token", **{"WWW-Authenticate": 'Bearer realm="codec"'})
        namespace = request.path_params.get("namespace") or request.headers.get("x-namespace") or ""
        if allowed_namespaces and namespace not in allowed_namespaces:
            return _error(403, f"namespace {quoted(namespace)} is not served by this codec server")

        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            return _error(413, f"request body larger than {max_body_bytes} bytes")
        body = bytearray()
        try:
            async with asyncio.timeout(body_timeout_seconds):  # the ASGI receive channel only
                async for chunk in request.stream():
                    body.extend(chunk)
                    if len(body) > max_body_bytes:
                        return _error(413, f"request body larger than {max_body_bytes} bytes")
        except TimeoutError:
            return _error(408, f"request body not received within {body_timeout_seconds:g}s")

        payloads = Payloads()
        try:
            json_format.Parse(bytes(body) or b"{}", payloads, ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError, RecursionError, ValueError, TypeError):
            # The parser's message can quote the body (a payload in clear): not echoed.
            return _error(400, 'body must be {"payloads": [...]} in protobuf JSON form')

        operation = request.url.path.rsplit("/", 1)[-1]
        try:
            if operation == "encode":
                converted = await codec.encode(payloads.payloads)
            else:
                converted = await codec.decode(payloads.payloads)
        except DataProtectionError as exc:  # an unknown key id or a tampered payload
            return _error(422, str(exc))

        result = json_format.MessageToDict(Payloads(payloads=converted))
        result.setdefault("payloads", [])
        return JSONResponse(result)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/encode", convert, methods=["POST"]),
        Route("/decode", convert, methods=["POST"]),
        Route("/{namespace}/encode", convert, methods=["POST"]),
        Route("/{namespace}/decode", convert, methods=["POST"]),
    ]
    hosts = list(allowed_hosts) if allowed_hosts is not None else (None if token_list else list(DEFAULT_ALLOWED_HOSTS))
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=origin_list,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=list(ALLOWED_HEADERS),
            allow_credentials=True,
            max_age=600,
        )
    ]
    if hosts:
        # Outside CORS, so a refused host gets no CORS headers either. Answers 400 "Invalid host header".
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False))
    return Starlette(routes=routes, middleware=middleware)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codec_server",
        description="Temporal remote codec server for the onboarding's encrypted payloads.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help=f"serve without {ENV_TOKENS} on a non-loopback address (not recommended)",
    )
    args = parser.parse_args(argv)

    from runtime.logging import get_logger
    from data_protection.keys import ENV_KEY_FILE, ENV_KEYS
    from runtime.process import exit_on_configuration, load_or_exit

    program = "codec_server"
    # The codec server's one settings object, read once, before anything is served.
    settings = load_or_exit(CodecServerSettings.load)
    settings.configure_logging()
    log = get_logger("codec_server")
    codec = load_or_exit(settings.codec)
    if codec is None:
        exit_on_configuration(
            ENV_KEY_FILE, f"not set, nor {ENV_KEYS}: the codec server decrypts with the keys the worker encrypts with"
        )
    tokens = list(settings.tokens)
    unauthenticated = not tokens
    if unauthenticated and not (_is_loopback(args.host) or args.allow_unauthenticated):
        exit_on_configuration(
            ENV_TOKENS, f"not set, and {quoted(args.host)} is not loopback: without a token anyone who reaches it can decrypt payloads"
        )
    origins = list(settings.cors_origins)
    namespaces = list(settings.namespaces)
    hosts = list(settings.allowed_hosts) if unauthenticated else None
    app = create_app(
        codec, tokens, origins, namespaces=namespaces, allow_unauthenticated=unauthenticated, allowed_hosts=hosts,
        body_timeout_seconds=settings.body_timeout_seconds,
    )
    log.info(
        "codec server starting",
        url=f"http://{args.host}:{args.port}",
        key_ids=list(codec.keyring.key_ids),
        current_key_id=codec.keyring.current_key_id,
        cors_origins=origins,
        namespaces=namespaces or "any",
        authentication="bearer" if tokens else "none",
        allowed_hosts=hosts or "any",
    )

    from runtime.http_server import serve

    # No access log (a request line may hold a credential); uvicorn's own lines go through the
    # redacting JSON logging. Read deadlines, and SIGTERM's clean exit 0: runtime/http_server.py.
    return serve(
        app, host=args.host, port=args.port, program=program,
        header_timeout_seconds=settings.header_timeout_seconds,
        body_timeout_seconds=settings.body_timeout_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
    )
