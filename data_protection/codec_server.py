"""The codec server: lets the Temporal Web UI and CLI show encrypted payloads in clear text.

Temporal's remote codec protocol: `POST /decode` and `POST /encode` take and return
`{"payloads": [...]}` in protobuf JSON form (bytes fields base64), with the namespace in the
`X-Namespace` header. The same routes are also served under a namespace segment
(`/{namespace}/decode`), for endpoints templated as `http://host:8888/{namespace}`.

    ONBOARDING_ENCRYPTION_KEY_FILE=keys.json ONBOARDING_CODEC_TOKEN=... \\
        python -m data_protection.codec_server --port 8888

Pointing Temporal at it:

* Web UI: the codec server setting (the "Data Encoder" icon in the top bar), endpoint
  `http://127.0.0.1:8888`; the local dev server can preset it with
  `temporal server start-dev --ui-codec-endpoint http://127.0.0.1:8888`. Turn on "Include
  cross-origin credentials" when a proxy in front of this server authenticates with cookies.
* CLI: `temporal workflow show -w onboarding-ID --codec-endpoint http://127.0.0.1:8888
  --codec-auth 'Bearer TOKEN'` (or `TEMPORAL_CODEC_ENDPOINT` / `TEMPORAL_CODEC_AUTH`).

Configuration: the encryption keys (see `data_protection.keys`); `ONBOARDING_CODEC_TOKEN`
(comma-separated bearer tokens, several at once for rotation); `ONBOARDING_CODEC_CORS_ORIGINS`
(comma-separated, default the local UI at http://127.0.0.1:8233 and http://localhost:8233);
`ONBOARDING_CODEC_NAMESPACES` (comma-separated; empty serves any namespace).

Anyone who can call `/decode` can read every payload they can fetch from Temporal, so a token is
required unless the server only listens on loopback (the local Web UI, without single sign-on,
cannot send one). CORS preflight needs no token; responses carry CORS headers only for the
configured origins.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
import sys
from collections.abc import Iterable, Sequence

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from data_protection.keys import DataProtectionError

ENV_TOKENS = "ONBOARDING_CODEC_TOKEN"
ENV_CORS_ORIGINS = "ONBOARDING_CODEC_CORS_ORIGINS"
ENV_NAMESPACES = "ONBOARDING_CODEC_NAMESPACES"
DEFAULT_CORS_ORIGINS = ("http://127.0.0.1:8233", "http://localhost:8233")
DEFAULT_PORT = 8888
# A payload is at most 2 MB and the UI decodes an event's payloads in one call; leave room.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
ALLOWED_HEADERS = ("content-type", "x-namespace", "authorization")


def split_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


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
) -> Starlette:
    """The codec server as an ASGI app.

    `tokens`: accepted bearer tokens; an empty list is refused unless `allow_unauthenticated`.
    `origins`: browser origins allowed by CORS (None: the local Web UI's). `namespaces`: the
    namespaces served (None or empty: any).
    """
    token_list = [t for t in (tokens or []) if t]
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
            return _error(403, f"namespace {namespace!r} is not served by this codec server")

        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            return _error(413, f"request body larger than {max_body_bytes} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > max_body_bytes:
                return _error(413, f"request body larger than {max_body_bytes} bytes")

        payloads = Payloads()
        try:
            json_format.Parse(bytes(body) or b"{}", payloads, ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            return _error(400, f'body must be {{"payloads": [...]}} in protobuf JSON form: {exc}')

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
        prog="python -m data_protection.codec_server",
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

    from data_protection.codec import codec_from_env
    from runtime.logging import configure_logging, get_logger

    configure_logging()
    log = get_logger("codec_server")
    try:
        codec = codec_from_env()
    except DataProtectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if codec is None:
        print(
            "error: no encryption keys configured; set ONBOARDING_ENCRYPTION_KEYS or ONBOARDING_ENCRYPTION_KEY_FILE",
            file=sys.stderr,
        )
        return 2
    tokens = split_list(os.environ.get(ENV_TOKENS))
    unauthenticated = not tokens
    if unauthenticated and not (_is_loopback(args.host) or args.allow_unauthenticated):
        print(
            f"error: set {ENV_TOKENS} to serve on {args.host}: without a token anyone who reaches it can decrypt payloads",
            file=sys.stderr,
        )
        return 2
    origins = split_list(os.environ.get(ENV_CORS_ORIGINS)) or list(DEFAULT_CORS_ORIGINS)
    namespaces = split_list(os.environ.get(ENV_NAMESPACES))
    app = create_app(codec, tokens, origins, namespaces=namespaces, allow_unauthenticated=unauthenticated)
    log.info(
        "codec server starting",
        url=f"http://{args.host}:{args.port}",
        key_ids=list(codec.keyring.key_ids),
        current_key_id=codec.keyring.current_key_id,
        cors_origins=origins,
        namespaces=namespaces or "any",
        authentication="bearer" if tokens else "none",
    )

    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level=os.environ.get("LOG_LEVEL", "info").lower())
    return 0


if __name__ == "__main__":
    sys.exit(main())
