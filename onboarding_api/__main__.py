"""`python -m onboarding_api [--host H] [--port P] [--metrics-port M]`: the onboarding HTTP API.

    python -m onboarding_api new-key --name N [--sub-partner ID] [--file F]
    python -m onboarding_api openapi [--output F]

`new-key` prints a new API key (first line: give it to the caller, it is shown this once) and
its line for `ONBOARDING_API_KEYS_FILE` (second line); `--file F` also adds the line to F.
`openapi` prints the contract the API serves at `/openapi.json` (`make api-spec` commits it).

The service reads its settings once at start (`onboarding_api/settings.py`): a configuration it
cannot use is one line, `configuration: <VARIABLE>: <what is wrong>`, and exit code 7. It starts
while Temporal is away (requests answer 503 until it is back). Its metrics are recorded on the
Temporal runtime's exporter like every process's: on `ONBOARDING_METRICS_PORT` when set, on a
private loopback port otherwise, and served on the API's own port at `GET /metrics` either way.
SIGTERM or SIGINT: no new connections, the requests in flight are answered (for up to
`ONBOARDING_API_SHUTDOWN_GRACE_SECONDS`), exit code 0.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path

from runtime.process import EXIT_BAD_INPUT, EXIT_OK, exit_now, load_or_exit

PROGRAM = "onboarding_api"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["new-key"]:
        return new_key_command(argv[1:])
    if argv[:1] == ["openapi"]:
        return openapi_command(argv[1:])
    from onboarding_api.settings import DEFAULT_HOST, DEFAULT_PORT

    parser = argparse.ArgumentParser(prog="python -m onboarding_api",
                                     description="Serve the onboarding HTTP API (commands: new-key, openapi).")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve Prometheus metrics on this port too (default: $ONBOARDING_METRICS_PORT, else GET /metrics only)")
    args = parser.parse_args(argv)
    return serve_api(args.host, args.port, args.metrics_port)


def serve_api(host: str, port: int, metrics_port: int | None) -> int:
    from onboarding_api.app import create_app
    from runtime.temporal import TemporalClientProvider
    from onboarding_api.auth import ApiKeyRing
    from onboarding_api.settings import ApiSettings
    from runtime.http_server import serve
    from runtime.logging import get_logger
    from runtime.metrics import prometheus_runtime, runtime_for

    # The one settings object, read once; keys, the key file and the document store are built
    # now, so a bad one stops the start, not each request.
    settings = load_or_exit(ApiSettings.load)
    settings.configure_logging()
    log = get_logger(PROGRAM)
    converter = load_or_exit(settings.data_converter)
    default = settings.iron_sub_partner_id
    keys = load_or_exit(lambda: ApiKeyRing.from_file(settings.keys_file, default_scope=lambda s: None if s == default else s))
    documents = load_or_exit(lambda: settings.documents(settings.keyring()))
    exported_port = metrics_port or settings.metrics_port
    if exported_port is not None:
        runtime = load_or_exit(lambda: runtime_for(settings, exported_port))
        scrape_host = "127.0.0.1" if settings.metrics_host in ("0.0.0.0", "::") else settings.metrics_host
    else:  # exported on loopback only, for GET /metrics
        exported_port, scrape_host = _free_loopback_port(), "127.0.0.1"
        runtime = prometheus_runtime(scrape_host, exported_port)
    scrape = f"http://{'[' + scrape_host + ']' if ':' in scrape_host else scrape_host}:{exported_port}/metrics"
    app = create_app(
        settings, TemporalClientProvider(data_converter=converter, runtime=runtime), keys, documents=documents,
        metric_meter=runtime.metric_meter, metrics_url=scrape,
    )
    log.info("listening", host=host, port=port, keys=len(keys.keys), metrics_port=exported_port)
    return serve(
        app, host=host, port=port, program=PROGRAM,
        header_timeout_seconds=settings.header_timeout_seconds,
        body_timeout_seconds=settings.body_timeout_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
    )


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_key_command(argv: list[str]) -> int:
    from onboarding_api.auth import KEY_NAME_MAX_LENGTH, key_sha256, new_key
    from contracts.messages import canonical_sub_partner_id

    parser = argparse.ArgumentParser(prog="python -m onboarding_api new-key",
                                     description="Make an API key: prints the key, then its line for ONBOARDING_API_KEYS_FILE.")
    parser.add_argument("--name", required=True, help="what the key is for (logs name it)")
    parser.add_argument("--sub-partner", metavar="ID", help="limit the key to this Iron sub-partner's customers")
    parser.add_argument("--file", type=Path, help="add the line to this keys file (created if missing)")
    args = parser.parse_args(argv)
    name = args.name.strip()
    if not name or len(name) > KEY_NAME_MAX_LENGTH or not name.isprintable():
        print(f"error: --name: must be 1 to {KEY_NAME_MAX_LENGTH} printable characters", file=sys.stderr)
        return EXIT_BAD_INPUT
    sub_partner = None
    if args.sub_partner is not None:
        try:
            sub_partner = canonical_sub_partner_id(args.sub_partner)
        except ValueError as exc:
            print(f"error: --sub-partner: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    key = new_key()
    entry = {"name": name, "sha256": key_sha256(key), "sub_partner_id": sub_partner}
    if args.file is not None:
        try:
            document = json.loads(args.file.read_text()) if args.file.exists() else {"keys": []}
            if any(k.get("name") == name for k in document["keys"]):
                print(f"error: --name: {args.file} has a key named {name!r} already", file=sys.stderr)
                return EXIT_BAD_INPUT
            document["keys"].append(entry)
            args.file.write_text(json.dumps(document, indent=2) + "\n")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            print(f"error: --file: {args.file} cannot be updated ({type(exc).__name__})", file=sys.stderr)
            return EXIT_BAD_INPUT
    print(key)
    print(json.dumps(entry))
    return EXIT_OK


def openapi_command(argv: list[str]) -> int:
    from onboarding_api.app import openapi_text

    parser = argparse.ArgumentParser(prog="python -m onboarding_api openapi",
                                     description="Print the OpenAPI document the API serves at /openapi.json.")
    parser.add_argument("--output", type=Path, help="write it to this file instead")
    args = parser.parse_args(argv)
    text = openapi_text()
    if args.output is not None:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


if __name__ == "__main__":
    exit_now(main())  # no interpreter finalization under the Temporal client's threads
