"""`python -m webhook_receiver [--host H] [--port P] [--metrics-port M]`, or `python -m webhook_receiver check ...`
(see `webhook_receiver/check.py`).

Secrets from `IRON_WEBHOOK_SECRETS`, Iron from `IRON_*`, Temporal from Temporal's environment
configuration. Starts even while Temporal is down (deliveries get 503 until it is back), but
not with a configuration it cannot use (a missing secret, a malformed key file): that is one
line on stderr, `configuration: <VARIABLE>: <what is wrong>`, and exit code 7. SIGTERM or
SIGINT: no new connections, the deliveries in flight are answered (for up to
`ONBOARDING_WEBHOOK_SHUTDOWN_GRACE_SECONDS`), exit code 0.
"""

from __future__ import annotations

import argparse
import logging
import sys

from runtime.http_server import serve
from runtime.logging import get_logger
from runtime.process import exit_now, load_or_exit
from runtime.metrics import runtime_for
from webhook_receiver.app import create_app
from runtime.temporal import TemporalClientProvider
from webhook_receiver.settings import DEFAULT_HOST, DEFAULT_PORT, ReceiverSettings

PROGRAM = "webhook_receiver"


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
    parser.add_argument(
        "--metrics-port", type=int, default=None,
        help="serve Prometheus metrics on this port (default: $ONBOARDING_METRICS_PORT, else off)",
    )
    args = parser.parse_args(argv)

    # The receiver's one settings object, read once; keys, secrets and the converter are built
    # now, so a bad one stops the start, not each delivery.
    settings = load_or_exit(ReceiverSettings.load)
    settings.configure_logging()
    # One line per delivery comes from the receiver itself; the HTTP client's per-request lines
    # (every customer lookup) would only double it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log = get_logger("webhook_receiver")
    converter = load_or_exit(settings.data_converter)
    # The client reports to the runtime serving the metrics, so its requests are counted too.
    metrics_runtime = load_or_exit(lambda: runtime_for(settings, args.metrics_port))
    runtime_option = {"runtime": metrics_runtime} if metrics_runtime is not None else {}
    app = create_app(
        settings,
        TemporalClientProvider(data_converter=converter, **runtime_option),
        metric_meter=metrics_runtime.metric_meter if metrics_runtime is not None else None,
    )
    if metrics_runtime is not None:
        log.info("metrics_served", host=settings.metrics_host, port=args.metrics_port or settings.metrics_port)
    log.info("listening", host=args.host, port=args.port)
    # Our own log line per delivery replaces the access log. A request head must arrive within
    # the header timeout and a body within the body timeout (the app answers 408); SIGTERM
    # answers the deliveries in flight and exits 0 (runtime/http_server.py).
    return serve(
        app, host=args.host, port=args.port, program=PROGRAM,
        header_timeout_seconds=settings.header_timeout_seconds,
        body_timeout_seconds=settings.body_timeout_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
    )


if __name__ == "__main__":
    exit_now(main())  # no interpreter finalization under the Temporal client's threads
