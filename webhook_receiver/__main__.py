"""`python -m webhook_receiver [--host H] [--port P]`, or `python -m webhook_receiver check ...`
(see `webhook_receiver/check.py`).

Secrets from `IRON_WEBHOOK_SECRETS`, Iron from `IRON_*`, Temporal from Temporal's environment
configuration. Starts even while Temporal is down (deliveries get 503 until it is back).
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from runtime.logging import configure_logging, get_logger
from webhook_receiver.app import create_app
from webhook_receiver.settings import DEFAULT_HOST, DEFAULT_PORT, ReceiverSettings, SettingsError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        from webhook_receiver.check import main as check_main

        return check_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m webhook_receiver",
        description="Receive Iron's webhooks on POST /webhooks/iron and signal the customer's onboarding workflow.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    args = parser.parse_args(argv)

    configure_logging()
    # One line per delivery comes from the receiver itself; the HTTP client's per-request lines
    # (every customer lookup) would only double it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log = get_logger("webhook_receiver")
    try:
        settings = ReceiverSettings.from_env()
    except SettingsError as exc:
        log.error("cannot start", error=str(exc))
        print(f"webhook_receiver: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings)
    log.info("listening", host=args.host, port=args.port)
    # Our own log line per delivery replaces the access log; uvicorn logs through the root logger.
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_config=None, server_header=False)
    return 0


if __name__ == "__main__":
    from starter import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())
