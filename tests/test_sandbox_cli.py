"""`python -m iron_sandbox`: flags, their environment fallbacks, and a real process end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from demo.stack import free_port
from iron_client.webhooks import verify
from iron_sandbox.__main__ import parse_args
from iron_sandbox.config import DEFAULT_API_KEY, SandboxConfig
from iron_sandbox.testing import WebhookCollector

REPO = Path(__file__).resolve().parent.parent
ENV_NAMES = ("IRON_SANDBOX_HOST", "IRON_SANDBOX_PORT", "IRON_API_KEY", "IRON_SANDBOX_WEBHOOK_URLS",
             "IRON_WEBHOOK_SECRET", "IRON_WEBHOOK_SECRETS", "IRON_SANDBOX_AUTOPILOT", "IRON_SANDBOX_PUBLIC_URL")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(clean_env) -> None:
    config = parse_args([])
    assert (config.host, config.port, config.api_key) == ("127.0.0.1", 8090, DEFAULT_API_KEY)
    assert config.webhook_urls == [] and config.autopilot is False


def test_environment_fallbacks(clean_env) -> None:
    clean_env.setenv("IRON_SANDBOX_HOST", "0.0.0.0")
    clean_env.setenv("IRON_SANDBOX_PORT", "9001")
    clean_env.setenv("IRON_API_KEY", "env-key")
    clean_env.setenv("IRON_SANDBOX_WEBHOOK_URLS", "http://a/hook, http://b/hook,")
    clean_env.setenv("IRON_WEBHOOK_SECRETS", " first , second")
    clean_env.setenv("IRON_SANDBOX_AUTOPILOT", "1")
    config = parse_args([])
    assert (config.host, config.port, config.api_key) == ("0.0.0.0", 9001, "env-key")
    assert config.webhook_urls == ["http://a/hook", "http://b/hook"]
    assert config.webhook_secret == "first" and config.autopilot is True
    clean_env.setenv("IRON_WEBHOOK_SECRET", "single")
    assert SandboxConfig.from_env().webhook_secret == "single"


def test_flags_win_over_the_environment(clean_env) -> None:
    clean_env.setenv("IRON_API_KEY", "env-key")
    clean_env.setenv("IRON_SANDBOX_WEBHOOK_URLS", "http://env/hook")
    config = parse_args(["--port", "9100", "--api-key", "flag-key", "--webhook-url", "http://x/1",
                         "--webhook-url", "http://x/2", "--webhook-secret", "flag-secret", "--autopilot"])
    assert (config.port, config.api_key, config.webhook_secret) == (9100, "flag-key", "flag-secret")
    assert config.webhook_urls == ["http://x/1", "http://x/2"] and config.autopilot
    assert "flag-key" not in repr(config) and "flag-secret" not in repr(config)




def test_the_process_serves_the_api_and_sends_signed_webhooks() -> None:
    port = free_port()
    with WebhookCollector() as collector:
        env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
        env["IRON_SANDBOX_AUTOPILOT"] = "1"
        process = subprocess.Popen(
            [sys.executable, "-m", "iron_sandbox", "--port", str(port), "--api-key", "cli-key-5e1d",
             "--webhook-url", collector.url, "--webhook-secret", "cli-secret-77"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(base + "/_sim/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.1)
            assert httpx.get(base + "/api/customers", headers={"X-API-Key": DEFAULT_API_KEY}).status_code == 401
            created = httpx.post(base + "/api/customers", json={"customer_type": "Person", "email": "c@example.com"},
                                 headers={"X-API-Key": "cli-key-5e1d", "IDEMPOTENCY-KEY": "cli-1"})
            assert created.status_code == 201
            assert httpx.get(base + "/_sim/autopilot").json()["enabled"] is True
            deadline = time.monotonic() + 10
            while not collector.received:
                assert time.monotonic() < deadline, "no webhook arrived"
                time.sleep(0.05)
            delivery = collector.received[0]
            verify(delivery["body"], delivery["headers"], ["cli-secret-77"])
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=10)
    text = output.decode()
    assert "starting" in text and "/api/customers" in text  # structured logs of what happened
    assert "cli-key-5e1d" not in text and "cli-secret-77" not in text
