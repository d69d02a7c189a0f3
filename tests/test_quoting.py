"""The one way to quote input (contracts/quoting.py), and each door that quotes input through it:
the starter, the codec server, the settings of every process and the console log renderer (the
receiver's door is in tests/test_webhook_receiver.py, beside its other answers)."""

from __future__ import annotations

import io
import json
import logging
import os

import httpx
import pytest
import structlog

import starter
from contracts.quoting import escaped, one_line, printable, quoted
from data_protection.codec import EncryptionCodec
from data_protection.codec_server import create_app
from data_protection.keys import KeyRing
from runtime.logging import escape_for_console
from runtime.settings import ConfigurationError, parse_flag

HOSTILE = "a\x1b[31mred\nsecond\x85third\u2028"
HOSTILE_SHOWN = "a\\x1b[31mred\\x0asecond\\x85third\\u2028"
RAW = ("\x1b", "\n", "\x85", "\u2028")


def assert_one_printable_line(text: str) -> None:
    assert text.isprintable(), repr(text)
    assert not any(ch in text for ch in RAW), repr(text)


# --- the helper ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (HOSTILE, f'"{HOSTILE_SHOWN}"'),
        ("tab\there\rcr\x00nul\x7fdel", '"tab\\x09here\\x0dcr\\x00nul\\x7fdel"'),
        ("c1\x80\x9f and \u2029 paragraph", '"c1\\x80\\x9f and \\u2029 paragraph"'),
        ('back\\slash and "quotes"', '"back\\\\slash and \\"quotes\\""'),
        ("plain words, accents é and 漢字", '"plain words, accents é and 漢字"'),
        (42, '"42"'),
        (None, '"None"'),
    ],
)
def test_quoted_shows_every_non_printable_character_escaped(value, shown):
    assert quoted(value) == shown
    assert_one_printable_line(quoted(value))


def test_quoted_is_bounded_and_says_how_long_the_input_was():
    text = quoted("x" * 5000, limit=10)
    assert text == '"xxxxxxxxxx... (5000 characters)"'
    assert len(quoted("\x1b" * 5000)) < 1000  # bounded before escaping grows it
    assert escaped("\U0001f600\U000e0001") == "\U0001f600\\U000e0001"  # an emoji prints; a tag does not


def test_one_line_folds_line_breaks_and_escapes_the_rest():
    assert one_line("first\nsecond\u2028third\x85fourth  \x1b[0m") == "first second third fourth \\x1b[0m"
    assert one_line("y" * 600).endswith("...") and len(one_line("y" * 600)) == 503


def test_printable_changes_nothing_but_non_printable_characters():
    assert printable('a "quoted" \\ value') == 'a "quoted" \\ value'
    assert printable(HOSTILE) == HOSTILE_SHOWN


# --- the doors -----------------------------------------------------------------------------------


def test_the_starter_quotes_a_hostile_field_name_of_an_identification_file(tmp_path, monkeypatch):
    async def refuse(*args, **kwargs):
        raise AssertionError("a bad file is refused before anything connects")

    monkeypatch.setattr(starter, "connect", refuse)
    monkeypatch.delenv("ONBOARDING_ENCRYPTION_KEY_FILE", raising=False)
    monkeypatch.delenv("ONBOARDING_ENCRYPTION_KEYS", raising=False)
    path = tmp_path / "F.json"
    path.write_text(json.dumps({HOSTILE: 1}))
    out, err = io.StringIO(), io.StringIO()
    code = starter.main(
        ["start", "c-1", "--email", "a@example.com", "--identification", "business", "--identification-file", str(path)],
        out=out, err=err,
    )
    assert code == starter.EXIT_BAD_INPUT
    lines = err.getvalue().splitlines()
    assert len(lines) == 1, err.getvalue()
    assert f'"{HOSTILE_SHOWN}": Extra inputs are not permitted' in lines[0]
    assert_one_printable_line(lines[0])


async def test_the_codec_server_quotes_a_hostile_namespace():
    app = create_app(EncryptionCodec(KeyRing({"k1": os.urandom(32)})), ["codec-token-" + "a1" * 16], namespaces=["default"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec.test") as client:
        # A header cannot carry control characters; the path form of the namespace can.
        response = await client.post(
            "/a%1B%5B31mred%0Asecond%C2%85third%E2%80%A8/decode", json={"payloads": []},
            headers={"Authorization": "Bearer codec-token-" + "a1" * 16},
        )
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert f'namespace "{HOSTILE_SHOWN}" is not served' in error
    assert_one_printable_line(error)


def test_a_settings_error_quotes_the_value_it_refuses():
    with pytest.raises(ConfigurationError) as refused:
        parse_flag(HOSTILE, "ONBOARDING_FLEET_SCHEDULE")
    message = str(refused.value)
    assert message.startswith("ONBOARDING_FLEET_SCHEDULE must be one of") and HOSTILE_SHOWN in message
    assert_one_printable_line(message)


def test_the_console_log_renderer_shows_a_hostile_value_escaped():
    renderer = structlog.dev.ConsoleRenderer(colors=False)
    event = escape_for_console(None, "info", {"event": "webhook_refused", "event_type": HOSTILE, "count": 3})
    line = renderer(None, "info", event)
    assert HOSTILE_SHOWN in line and "count=3" in line
    assert_one_printable_line(line)


def test_the_console_log_configuration_escapes_before_it_renders(monkeypatch):
    import runtime.logging as logging_setup

    monkeypatch.setattr(logging_setup, "_configured", False)  # undone after the test
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        logging_setup.configure_logging(json=False)
        processors = structlog.get_config()["processors"]
        assert processors.index(escape_for_console) == len(processors) - 2  # just before the renderer
    finally:
        structlog.configure(**saved)
        root.handlers, root.level = handlers, level
