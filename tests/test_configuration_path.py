"""One configuration path: every process loads its settings once, at start, in its entry point,
and passes values down; the libraries below take values, never the environment. One
configuration error, one exit-code table, one page that documents both."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import contracts.configuration as table
from tests.conftest import REPO_ROOT
from tests.readme import DOCS, README, section

PRODUCT_PACKAGES = (
    "contracts", "workflows", "activities", "webhook_receiver", "runtime", "data_protection",
    "codec_server", "operations", "iron_client",
)
PRODUCT_SCRIPTS = ("worker.py", "starter.py")
# Where the environment may be read: the settings modules, and the processes' entry points.
SETTINGS_MODULES = {"runtime/settings.py", "runtime/events_settings.py"}
ENTRY_POINTS = {"worker.py", "starter.py", "webhook_receiver/__main__.py", "codec_server/__main__.py"}
# A product module that must read the environment itself, with the reason: none today.
ALLOWED_ELSEWHERE: dict[str, str] = {}

ENVIRONMENT_NAMES = {"environ", "environb", "getenv", "getenvb"}


def product_files() -> list[str]:
    found = [script for script in PRODUCT_SCRIPTS if (REPO_ROOT / script).exists()]
    for package in PRODUCT_PACKAGES:
        found += sorted(str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / package).rglob("*.py"))
    return found


def environment_reads(source: str) -> list[int]:
    """The lines of `source` that reach the process environment through `os`: `os.environ`,
    `os.getenv` (under any name `os` is imported as), or those names imported from `os`."""
    tree = ast.parse(source)
    os_names = {"os"} | {
        alias.asname or alias.name
        for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names if alias.name == "os"
    }
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_NAMES:
            if isinstance(node.value, ast.Name) and node.value.id in os_names:
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in ENVIRONMENT_NAMES for alias in node.names):
                lines.append(node.lineno)
    return sorted(lines)


def test_the_scan_sees_every_way_of_reading_the_environment():
    source = (
        "import os\nimport os as system\nfrom os import getenv\n"
        "a = os.environ['A']\nb = os.getenv('B')\nc = system.environ.get('C')\nd = os.path.join('x')\n"
    )
    assert environment_reads(source) == [3, 4, 5, 6]


def test_no_library_reads_the_environment():
    """Libraries (operations, activities, the Iron client, data protection...) take values or
    settings objects: only the settings modules and the processes' entry points read it."""
    permitted = SETTINGS_MODULES | ENTRY_POINTS | set(ALLOWED_ELSEWHERE)
    readers = {}
    for path in product_files():
        lines = environment_reads((REPO_ROOT / path).read_text(encoding="utf-8"))
        if lines and path not in permitted:
            readers[path] = lines
    assert readers == {}, f"read the environment outside the settings modules (file: lines): {readers}"


def test_the_allow_list_names_modules_that_still_need_it():
    for path, reason in ALLOWED_ELSEWHERE.items():
        assert reason.strip(), f"{path}: say why it reads the environment"
        assert environment_reads((REPO_ROOT / path).read_text(encoding="utf-8")), f"{path} no longer reads it: drop it"


# --- every variable declared once ---------------------------------------------------------------

# A variable two settings models declare, with the reason.
DECLARED_TWICE = {
    "ONBOARDING_EVENTS_URL": "ProcessSettings (every process: do onboardings send events) and EventsSettings "
                             "(the worker's delivery, built with the URL the worker's settings read)",
}


def declared_variables() -> dict[str, list[str]]:
    """Every `validation_alias="VARIABLE"` of the product's settings models: the modules
    declaring it."""
    found: dict[str, list[str]] = {}
    for path in product_files():
        for node in ast.walk(ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "validation_alias":
                value = node.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found.setdefault(value.value, []).append(path)
                elif isinstance(value, ast.Name):  # a module constant: resolved below
                    found.setdefault(f"${value.id}", []).append(path)
    return found


def resolved_variables() -> dict[str, list[str]]:
    import importlib

    resolved: dict[str, list[str]] = {}
    for name, paths in declared_variables().items():
        for path in paths:
            variable = name
            if name.startswith("$"):
                module = importlib.import_module(path.removesuffix(".py").replace("/", ".").removesuffix(".__init__"))
                variable = getattr(module, name[1:])
            resolved.setdefault(variable, []).append(path)
    return resolved


def test_iron_settings_are_read_by_one_settings_model():
    """`IRON_*` are parsed once: by `ProcessSettings`, which hands them to the Iron client."""
    from iron_client import IronSettings

    receiver_only = {"IRON_WEBHOOK_SECRETS", "IRON_SUB_PARTNER_IDS"}  # the receiver's own settings
    shared = {name: paths for name, paths in resolved_variables().items() if name.startswith("IRON_") and name not in receiver_only}
    assert set(shared) == {"IRON_BASE_URL", "IRON_API_KEY", "IRON_SUB_PARTNER_ID", "IRON_API_VERSION", "IRON_TIMEOUT_SECONDS"}
    assert all(paths == ["runtime/settings.py"] for paths in shared.values()), shared
    assert not hasattr(IronSettings, "from_env"), "the Iron client reads no environment of its own"


def test_every_variable_is_declared_once():
    twice = {name: paths for name, paths in resolved_variables().items() if len(paths) > 1}
    assert set(twice) == set(DECLARED_TWICE), twice


# --- one document -------------------------------------------------------------------------------


CONFIGURATION_PAGE = DOCS / "configuration.md"


def test_the_configuration_page_documents_every_variable():
    documented = CONFIGURATION_PAGE.read_text()
    missing = sorted(name for name in resolved_variables() if f"`{name}`" not in documented)
    assert missing == [], f"not in docs/configuration.md: {missing}"


def test_the_exit_codes_are_one_table_in_one_place():
    codes = {name: value for name, value in vars(table).items() if name.startswith("EXIT_")}
    exit_codes = section("Exit codes", level=3)
    assert exit_codes in CONFIGURATION_PAGE.read_text()
    rows = dict(re.findall(r"^\| (\d+) \| (.+)$", exit_codes, re.M))
    assert {str(value) for value in codes.values()} == set(rows), rows
    for page in [README, *DOCS.glob("*.md")]:
        if page != CONFIGURATION_PAGE:
            repeated = re.findall(r"^\| 7 \| configuration", page.read_text(), re.M)
            assert not repeated, f"{page.name} repeats the exit-code table: point to docs/configuration.md"


# --- what loading does --------------------------------------------------------------------------


def test_loaded_settings_keep_their_secrets_out_of_logs():
    from codec_server.app import CodecServerSettings
    from data_protection.redaction import REDACTED, clear_registered_secrets, redact_text

    token = "codec-token-" + "t" * 32
    try:
        CodecServerSettings.load({"ONBOARDING_CODEC_TOKEN": token, "IRON_API_KEY": "iron_sk_configured_1234"})
        assert redact_text(f"token {token} key iron_sk_configured_1234") == f"token {REDACTED} key {REDACTED}"
    finally:
        clear_registered_secrets()


def test_the_backend_api_reads_its_settings_once_unless_a_process_gives_them(monkeypatch):
    import operations.onboardings as onboardings
    from runtime.settings import ProcessSettings

    monkeypatch.setattr(onboardings, "_settings_from_environment", None)
    monkeypatch.setenv("ONBOARDING_TASK_QUEUE", "first")
    first = onboardings.api_settings()
    monkeypatch.setenv("ONBOARDING_TASK_QUEUE", "second")
    assert onboardings.api_settings() is first and first.task_queue == "first"
    given = ProcessSettings.load({"ONBOARDING_TASK_QUEUE": "given"})
    with onboardings.using_settings(given):
        assert onboardings.api_settings() is given
    assert onboardings.api_settings() is first


PROCESSES = {
    "worker": [sys.executable, "worker.py"],
    "starter": [sys.executable, "starter.py", "status", "cust-42"],
    "webhook_receiver": [sys.executable, "-m", "webhook_receiver", "--port", "0"],
    "webhook_check": [sys.executable, "-m", "webhook_receiver", "check", "--public-url", "http://127.0.0.1:9/webhooks/iron"],
    "codec_server": [sys.executable, "-m", "codec_server", "--port", "0"],
}


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_every_process_reads_the_logging_settings_at_start(process):
    """`LOG_LEVEL` is a setting like any other: read once by the process's settings, an
    unusable one the same line and exit code in every process, the starter's included."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONBOARDING_", "IRON_", "TEMPORAL_", "LOG_"))}
    env.update(IRON_API_KEY="k", IRON_WEBHOOK_SECRETS="s", TEMPORAL_ADDRESS="127.0.0.1:1", LOG_LEVEL="loud")
    done = subprocess.run(PROCESSES[process], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == table.EXIT_CONFIGURATION, done.stderr
    assert done.stderr.strip().splitlines() == [
        'configuration: LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (got "loud")'
    ]


def test_the_key_tool_answers_with_the_table(tmp_path):
    from data_protection.keys import main as keys_main

    keys = tmp_path / "keys.json"
    assert keys_main(["generate", "--file", str(keys)]) == table.EXIT_OK
    assert keys_main(["generate", "--file", str(keys)]) == table.EXIT_BAD_INPUT
    assert keys_main(["activate", "--file", str(keys), "--key-id", "k9"]) == table.EXIT_NOT_FOUND
    assert keys_main(["list", "--file", str(Path(tmp_path / "none.json"))]) == table.EXIT_BAD_INPUT
