"""Metrics are off unless a port is given, bind loopback unless told otherwise, and a port or
host that cannot be used stops the worker and the receiver at start with one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.metrics import bind_address, runtime_for
from runtime.process import EXIT_CONFIGURATION
from runtime.settings import ConfigurationError
from webhook_receiver.settings import ReceiverSettings
from worker import WorkerSettings, parse_args

REPO_ROOT = Path(__file__).resolve().parent.parent
PROCESSES = {
    "webhook_receiver": [sys.executable, "-m", "webhook_receiver", "--port", "0"],
    "worker": [sys.executable, str(REPO_ROOT / "worker.py")],
}


def test_metrics_are_off_by_default_and_bind_loopback():
    worker = WorkerSettings.load({})
    receiver = ReceiverSettings.load({"IRON_WEBHOOK_SECRETS": "s"})
    for settings in (worker, receiver):
        assert settings.metrics_port is None and runtime_for(settings) is None
        assert settings.metrics_host == "127.0.0.1"
    assert parse_args([], worker).metrics_port is None
    assert parse_args(["--metrics-port", "9464"], worker).metrics_port == 9464
    assert WorkerSettings.load({"ONBOARDING_METRICS_PORT": "9464"}).metrics_port == 9464


@pytest.mark.parametrize(
    "environ, named",
    [
        ({"ONBOARDING_METRICS_PORT": "nine"}, "ONBOARDING_METRICS_PORT"),
        ({"ONBOARDING_METRICS_PORT": "70000"}, "ONBOARDING_METRICS_PORT"),
        ({"ONBOARDING_METRICS_PORT": "9464", "ONBOARDING_METRICS_HOST": "metrics.example.com"}, "ONBOARDING_METRICS_HOST"),
    ],
)
def test_a_metrics_setting_that_cannot_be_used_is_refused_naming_it(environ, named):
    for load in (lambda: WorkerSettings.load(environ), lambda: ReceiverSettings.load({"IRON_WEBHOOK_SECRETS": "s", **environ})):
        with pytest.raises(ConfigurationError, match=named):
            load()


def test_an_ipv6_host_is_bracketed_for_the_exporter():
    settings = WorkerSettings.load({"ONBOARDING_METRICS_HOST": "::1"})
    assert bind_address(settings.metrics_host, 9464) == "[::1]:9464"
    assert bind_address("0.0.0.0", 9464) == "0.0.0.0:9464"


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_a_metrics_port_in_use_stops_the_process_with_one_line(process):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ONBOARDING_", "IRON_", "TEMPORAL_"))}
        env.update(IRON_API_KEY="k", IRON_WEBHOOK_SECRETS="s", ONBOARDING_METRICS_PORT=str(port),
                   TEMPORAL_ADDRESS="127.0.0.1:1", LOG_LEVEL="WARNING")
        done = subprocess.run(PROCESSES[process], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_CONFIGURATION, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"configuration: ONBOARDING_METRICS_PORT: cannot serve metrics on 127.0.0.1:{port}")
    assert "Address already in use" in lines[0]
