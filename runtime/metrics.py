"""Prometheus metrics for the worker, the webhook receiver and the HTTP API, through Temporal's runtime.

    ONBOARDING_METRICS_PORT=9464 python worker.py          # or --metrics-port 9464
    curl http://127.0.0.1:9464/metrics

Off unless a port is given. The exporter binds `ONBOARDING_METRICS_HOST` (default `127.0.0.1`,
so nothing is exposed beyond the machine until someone decides to; `0.0.0.0` lets a Prometheus
elsewhere scrape it). The host must be an IP address: the runtime binds it as it is.

One exporter serves both the SDK's own metrics (workflow and activity task latencies, polls,
slots, sticky cache, client requests, all `temporal_...`) and the engine's domain metrics
(`contracts/metrics.py`), recorded through the SDK's metric meters: `workflow.metric_meter()`
(which records nothing while a workflow replays), `activity.metric_meter()`, and in the
receiver `Runtime.metric_meter`. So there is one endpoint per process, one naming scheme, and
no second metrics library. The client must be connected with the runtime for its requests and
its worker to report to it (`connect(runtime=...)`).

Naming (checked against a real scrape by `tests/test_metrics_devserver.py`): counters get
`_total`, durations are reported in seconds with a `_seconds` suffix, and the SDK prefixes its own
metrics with `temporal_` (the runtime's default prefix, kept so Temporal's published dashboards
work as they are).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from contracts import metrics as names
from runtime.settings import ProcessSettings

if TYPE_CHECKING:
    from temporalio.runtime import Runtime

DEFAULT_METRICS_HOST = "127.0.0.1"
ENV_METRICS_PORT = "ONBOARDING_METRICS_PORT"
ENV_METRICS_HOST = "ONBOARDING_METRICS_HOST"


class MetricsSettings(ProcessSettings):
    """The settings of a process that can export metrics (worker, webhook receiver, HTTP API)."""

    metrics_port: int | None = Field(None, ge=1, le=65535, validation_alias=ENV_METRICS_PORT)
    metrics_host: str = Field(DEFAULT_METRICS_HOST, min_length=1, validation_alias=ENV_METRICS_HOST)

    @field_validator("metrics_host")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        import ipaddress

        try:
            ipaddress.ip_address(value.strip().strip("[]"))
        except ValueError:
            raise ValueError("must be an IP address to bind, such as 127.0.0.1 or 0.0.0.0") from None
        return value.strip().strip("[]")


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def prometheus_runtime(host: str, port: int) -> "Runtime":
    """A Temporal runtime serving `/metrics` on host:port. Raises `ValueError` with the
    runtime's reason when it cannot bind (the port is taken, say)."""
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind_address(host, port),
                counters_total_suffix=True,
                unit_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides={
                    names.TIME_IN_PHASE: list(names.TIME_IN_PHASE_BUCKETS),
                    names.WEBHOOK_DURATION: list(names.WEBHOOK_DURATION_BUCKETS),
                    names.API_REQUEST_DURATION: list(names.API_REQUEST_DURATION_BUCKETS),
                },
            )
        )
    )


def runtime_for(settings: MetricsSettings, port: int | None = None) -> "Runtime | None":
    """The runtime for these settings (`port` from a flag wins), or None when metrics are off.
    A port that cannot be bound raises `ConfigurationError` naming the variable."""
    from runtime.settings import ConfigurationError

    port = port if port is not None else settings.metrics_port
    if port is None:
        return None
    try:
        return prometheus_runtime(settings.metrics_host, port)
    except ValueError as exc:
        raise ConfigurationError(
            f"{ENV_METRICS_PORT}: cannot serve metrics on {bind_address(settings.metrics_host, port)}: {exc}"
        ) from None
