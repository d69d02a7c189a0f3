"""`python -m iron_sandbox [--host H] [--port P] [--api-key K] [--webhook-url U ...]
[--webhook-secret S] [--autopilot]`; each flag falls back to its environment variable
(IRON_SANDBOX_HOST, IRON_SANDBOX_PORT, IRON_API_KEY, IRON_SANDBOX_WEBHOOK_URLS,
IRON_WEBHOOK_SECRET or the first of IRON_WEBHOOK_SECRETS, IRON_SANDBOX_AUTOPILOT=1). A variable
it cannot use stops it like every process of the project: one line,
`configuration: <VARIABLE>: <what is wrong>`, and the configuration exit code (7)."""

from __future__ import annotations

import argparse
import logging
import sys

import structlog
import uvicorn

from iron_sandbox.app import create_app
from iron_sandbox.config import SandboxConfig, SandboxConfigurationError


def parse_args(argv: list[str] | None = None) -> SandboxConfig:
    config = SandboxConfig.from_env()
    parser = argparse.ArgumentParser(prog="python -m iron_sandbox", description="A local stand-in for Iron's onboarding API.")
    parser.add_argument("--host", default=config.host)
    parser.add_argument("--port", type=int, default=config.port)
    parser.add_argument("--api-key", default=None, help="the X-API-Key to accept (default: $IRON_API_KEY or sandbox-key)")
    parser.add_argument("--webhook-url", action="append", default=None, help="a webhook target; repeatable")
    parser.add_argument("--webhook-secret", default=None, help="the webhook signing secret")
    parser.add_argument("--autopilot", action="store_true", default=config.autopilot,
                        help="simulated customers complete hosted KYC on their own")
    parser.add_argument("--autopilot-after", type=float, default=config.autopilot_after_seconds, metavar="SECONDS")
    parser.add_argument("--public-url", default=config.public_url, help="base of the hosted KYC and document urls")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    config.host = args.host
    config.port = args.port
    if args.api_key:
        config.api_key = args.api_key
    if args.webhook_url:
        config.webhook_urls = args.webhook_url
    if args.webhook_secret:
        config.webhook_secret = args.webhook_secret
    config.autopilot = args.autopilot
    config.autopilot_after_seconds = args.autopilot_after
    config.public_url = args.public_url
    config._log_level = args.log_level  # type: ignore[attr-defined]
    return config


def configure_logging(level: str) -> None:
    numeric = getattr(logging, level.upper())
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def main(argv: list[str] | None = None) -> None:
    try:
        config = parse_args(argv)
    except SandboxConfigurationError as exc:
        from runtime.process import exit_on_configuration_error

        exit_on_configuration_error(exc)
    configure_logging(getattr(config, "_log_level", "info"))
    log = structlog.get_logger("iron_sandbox")
    # Never the API key or the webhook secret: only where the sandbox listens and what it sends.
    log.info("starting", base_url=f"http://{config.host}:{config.port}/api", webhook_targets=config.webhook_urls,
             autopilot=config.autopilot)
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
