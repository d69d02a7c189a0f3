"""The one way to quote input (contracts/quoting.py), and each door that quotes input through it:
the starter, the codec server, the settings of every process and the console log renderer (the
receiver's door is in tests/test_webhook_receiver.py, beside its other answers)."""

from __future__ import annotations

import base64
import io
import logging
import os
import subprocess
import sys

import httpx
import pytest
import structlog

from contracts.quoting import quoted
from data_protection.codec import EncryptionCodec
from codec_server.app import create_app
from data_protection.keys import KeyRing
from runtime.settings import ConfigurationError, ProcessSettings, parse_flag
from tests.conftest import REPO_ROOT

HOSTILE = "a\x1b[31mred\nsecond\x85third\u2028"
HOSTILE_SHOWN = "a\\x1b[31mred\\nsecond\\x85third\\u2028"
RAW = ("\x1b", "\n", "\x85", "\u2028")


def assert_one_printable_line(text: str) -> None:
    assert text.isprintable(), repr(text)  # False for any C0, C1, DEL or line separator
    assert not any(ch in text for ch in RAW), repr(text)


# --- the helper ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (HOSTILE, f'"{HOSTILE_SHOWN}"'),
        ("tab\there\rcr\x00nul\x7fdel\x1fus", '"tab\\there\\rcr\\x00nul\\x7fdel\\x1fus"'),
        ("c1\x80\x9b and \u2029 paragraph", '"c1\\x80\\x9b and \\u2029 paragraph"'),
        ('back\\slash and "quotes"', '"back\\\\slash and \\"quotes\\""'),
        ("plain words, accents é and 漢字", '"plain words, accents é and 漢字"'),
        ("\U0001f600 prints, a tag \U000e0001 does not", '"\U0001f600 prints, a tag \\U000e0001 does not"'),
        ("", '""'),
    ],
)
def test_quoted_shows_every_character_that_does_not_print_escaped(value, shown):
    assert quoted(value) == shown
    assert_one_printable_line(quoted(value))


@pytest.mark.parametrize(("value", "shown"), [(42, '"42"'), (None, '"None"'), (b"a\n", '"b\'a\\\\n\'"'), (["x\ny"], '"[\'x\\\\ny\']"')])
def test_quoted_renders_a_value_that_is_not_text_as_its_str(value, shown):
    assert quoted(value) == shown


def test_quoted_is_bounded_and_says_how_long_the_input_was():
    assert quoted("x" * 5000, limit=10) == '"xxxxxxxxxx... (5000 characters)"'
    assert quoted("x" * 80) == f'"{"x" * 80}"'  # up to the limit, nothing is cut
    assert len(quoted("\x1b" * 5000)) < 500  # cut before escaping, which makes it longer
    assert_one_printable_line(quoted(HOSTILE * 1000))


# --- the doors -----------------------------------------------------------------------------------


def test_the_starter_quotes_a_hostile_field_name_of_an_identification_file(tmp_path):
    path = tmp_path / "F.json"
    path.write_text('{"a\\u001b[31mred\\nsecond\\u0085third\\u2028": 1}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_ENCRYPTION_")}
    env["TEMPORAL_ADDRESS"] = "127.0.0.1:9"  # nothing listens there: the file must be refused before
    result = subprocess.run(
        [sys.executable, "starter.py", "start", "c-1", "--email", "a@example.com",
         "--identification", "business", "--identification-file", str(path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr  # EXIT_BAD_INPUT
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, repr(result.stderr)
    line = result.stderr[:-1]
    assert f'"{HOSTILE_SHOWN}": Extra inputs are not permitted' in line, line
    assert "\\x1b" in line
    assert_one_printable_line(line)


def test_the_starter_quotes_a_message_that_embeds_a_hostile_path(tmp_path, monkeypatch):
    import starter

    async def refuse(*args, **kwargs):
        raise AssertionError("a file that cannot be read is refused before anything connects")

    monkeypatch.setattr(starter, "connect", refuse)
    missing = tmp_path / f"{HOSTILE}.json"
    out, err = io.StringIO(), io.StringIO()
    argv = ["start", "c-1", "--email", "a@example.com", "--identification", "business", f"--identification-file={missing}"]
    assert starter.main(argv, out=out, err=err) == starter.EXIT_BAD_INPUT
    line = err.getvalue().removesuffix("\n")
    assert line.startswith('error: --identification-file: "') and f"{HOSTILE_SHOWN}.json does not exist\"" in line, line
    assert_one_printable_line(line)


CODEC_TOKEN = "codec-token-" + "a1" * 16


async def codec_server_answer(path: str, body: dict, **headers: str) -> httpx.Response:
    app = create_app(EncryptionCodec(KeyRing({"k1": os.urandom(32)})), [CODEC_TOKEN], namespaces=["default"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec.test") as client:
        return await client.post(path, json=body, headers={"Authorization": f"Bearer {CODEC_TOKEN}", **headers})


async def test_the_codec_server_quotes_a_hostile_namespace():
    # A header cannot carry control characters; the path form of the namespace can.
    response = await codec_server_answer("/a%1B%5B31mred%0Asecond%C2%85third%E2%80%A8/decode", {"payloads": []})
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert f'namespace "{HOSTILE_SHOWN}" is not served' in error
    assert_one_printable_line(error)

    response = await codec_server_answer(f"/{'n' * 5000}/decode", {"payloads": []})
    assert response.status_code == 403 and "... (5000 characters)" in response.json()["error"]
    assert len(response.json()["error"]) < 200


async def test_the_codec_server_quotes_a_hostile_key_id_of_a_payload():
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    payload = {"metadata": {"encoding": b64(b"binary/encrypted"), "encryption-key-id": b64(HOSTILE.encode())}, "data": b64(b"x" * 40)}
    response = await codec_server_answer("/decode", {"payloads": [payload]}, **{"X-Namespace": "default"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error.startswith(f'encryption key "{HOSTILE_SHOWN}" is not in the configured key ring'), error
    assert_one_printable_line(error)


def test_a_settings_error_quotes_the_value_it_refuses():
    with pytest.raises(ConfigurationError) as refused:
        ProcessSettings.load({"IRON_TIMEOUT_SECONDS": HOSTILE})
    message = str(refused.value)
    assert message.startswith("IRON_TIMEOUT_SECONDS: ") and message.endswith(f'(got "{HOSTILE_SHOWN}")'), message
    assert_one_printable_line(message)

    with pytest.raises(ConfigurationError) as refused:
        parse_flag(HOSTILE, "ONBOARDING_FLEET_SCHEDULE")
    assert str(refused.value).endswith(f'got "{HOSTILE_SHOWN}"'), str(refused.value)


@pytest.fixture
def console_logging(monkeypatch):
    """`configure_logging(json=False)` for one test, the configuration before it restored after."""
    import runtime.logging as logging_setup

    monkeypatch.setattr(logging_setup, "_configured", False)
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        logging_setup.configure_logging(level="INFO", json=False)
        yield
    finally:
        structlog.configure(**saved)
        root.handlers, root.level = handlers, level


def test_the_console_log_renderer_shows_a_hostile_value_escaped(console_logging, capsys):
    structlog.get_logger("door").warning("webhook", event_type=HOSTILE, count=3, plain="as-it-was")
    logging.getLogger("stdlib.door").warning("refused %s", HOSTILE)  # the Temporal SDK's, uvicorn's records
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    ours, theirs = lines
    assert f'event_type="{HOSTILE_SHOWN}"' in ours and "count=3" in ours, ours
    assert "plain=as-it-was" in ours, ours  # a value that prints is left to the renderer
    assert f'"refused {HOSTILE_SHOWN}"' in theirs, theirs
    for line in lines:
        assert_one_printable_line(line)


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_the_http_clients_line_per_request_shows_only_at_debug(monkeypatch, capsys, level, shown):
    import runtime.logging as logging_setup

    monkeypatch.setattr(logging_setup, "_configured", False)
    saved, root, httpx_logger = structlog.get_config(), logging.getLogger(), logging.getLogger("httpx")
    handlers, root_level, httpx_level = list(root.handlers), root.level, httpx_logger.level
    try:
        logging_setup.configure_logging(level=level, json=False)
        httpx_logger.info("HTTP Request: GET http://iron/api/customers/1 \"HTTP/1.1 200 OK\"")
        httpx_logger.warning("connection pool full")
    finally:
        structlog.configure(**saved)
        root.handlers, root.level = handlers, root_level
        httpx_logger.setLevel(httpx_level)
    err = capsys.readouterr().err
    assert ("HTTP Request: GET" in err) is shown
    assert "connection pool full" in err
