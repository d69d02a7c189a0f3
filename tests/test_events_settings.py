"""`ONBOARDING_EVENTS_URL` and `ONBOARDING_EVENTS_SECRET`: checked at start, one clear line, no secret in it."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.events_settings import EventsSettingsError, load_events_settings
from runtime.process import EXIT_CONFIGURATION

REPO = Path(__file__).resolve().parent.parent
GOOD = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 24).decode()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("ONBOARDING_EVENTS_"):
            monkeypatch.delenv(name)


def test_unset_means_no_events():
    settings = load_events_settings()
    assert not settings.enabled and settings.secrets == []


def test_url_and_rotation_secrets(monkeypatch):
    monkeypatch.setenv("ONBOARDING_EVENTS_URL", "https://backend.example/onboarding/events")
    monkeypatch.setenv("ONBOARDING_EVENTS_SECRET", f" {GOOD} , {OTHER},")
    monkeypatch.setenv("ONBOARDING_EVENTS_TIMEOUT_SECONDS", "4.5")
    settings = load_events_settings()
    assert settings.enabled and str(settings.url) == "https://backend.example/onboarding/events"
    assert settings.secrets == [GOOD, OTHER]
    assert settings.timeout_seconds == 4.5
    assert GOOD not in repr(settings) and GOOD not in str(settings)


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("not-a-whsec-" + "a" * 40, "secret 1 of 1 must start with 'whsec_'"),
        ("whsec_***not*base64***aaaaaaaaaaaaaaaaaaaaaaaa", "secret 1 of 1 is not whsec_<base64>"),
        ("whsec_" + base64.b64encode(b"short").decode(), "secret 1 of 1 must hold 24 to 64 bytes, holds 5"),
        (f"{GOOD},whsec_%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%", "secret 2 of 2 is not whsec_<base64>"),
        ("", "ONBOARDING_EVENTS_SECRET: empty while ONBOARDING_EVENTS_URL is set"),
    ],
)
def test_unusable_secrets_are_one_line_naming_the_variable(monkeypatch, secret, expected):
    monkeypatch.setenv("ONBOARDING_EVENTS_URL", "http://127.0.0.1:9/events")
    monkeypatch.setenv("ONBOARDING_EVENTS_SECRET", secret)
    with pytest.raises(EventsSettingsError) as failed:
        load_events_settings()
    message = str(failed.value)
    assert expected in message and message.startswith("ONBOARDING_EVENTS_")
    assert "\n" not in message
    for part in secret.split(","):
        if part:
            assert part not in message and part[6:] not in message


def test_unusable_url_and_timeout(monkeypatch):
    monkeypatch.setenv("ONBOARDING_EVENTS_SECRET", GOOD)
    monkeypatch.setenv("ONBOARDING_EVENTS_URL", "backend.example/events")
    with pytest.raises(EventsSettingsError, match="^ONBOARDING_EVENTS_URL: "):
        load_events_settings()
    monkeypatch.setenv("ONBOARDING_EVENTS_URL", "http://127.0.0.1:9/events")
    monkeypatch.setenv("ONBOARDING_EVENTS_TIMEOUT_SECONDS", "soon")
    with pytest.raises(EventsSettingsError, match="^ONBOARDING_EVENTS_TIMEOUT_SECONDS: "):
        load_events_settings()
    # Longer than a delivery attempt may last (the activity's 30 s): every attempt would time out.
    monkeypatch.setenv("ONBOARDING_EVENTS_TIMEOUT_SECONDS", "60")
    with pytest.raises(EventsSettingsError, match="^ONBOARDING_EVENTS_TIMEOUT_SECONDS: "):
        load_events_settings()


def test_partner_backend_refuses_to_start_on_a_bad_secret():
    env = {**os.environ, "ONBOARDING_EVENTS_SECRET": "whsec_tooshort"}
    done = subprocess.run(
        [sys.executable, "-m", "demo.partner_backend", "--port", "0"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == EXIT_CONFIGURATION
    lines = done.stderr.strip().splitlines()
    assert lines == ["configuration: ONBOARDING_EVENTS_SECRET: secret 1 of 1 must hold 24 to 64 bytes, holds 6"]


async def test_the_worker_s_delivery_reads_the_same_settings(monkeypatch):
    from activities.events import EventDelivery

    monkeypatch.setenv("ONBOARDING_EVENTS_URL", "http://127.0.0.1:9/events")
    monkeypatch.setenv("ONBOARDING_EVENTS_SECRET", f"{GOOD},{OTHER}")
    delivery = EventDelivery(load_events_settings())
    try:
        assert delivery.settings.enabled and delivery.secrets == [GOOD, OTHER]
    finally:
        await delivery.aclose()
    monkeypatch.setenv("ONBOARDING_EVENTS_SECRET", "whsec_")
    with pytest.raises(EventsSettingsError, match="^ONBOARDING_EVENTS_SECRET: secret 1 of 1"):
        EventDelivery(load_events_settings())
