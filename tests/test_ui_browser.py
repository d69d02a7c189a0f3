"""The Temporal Web UI, in a real browser (Debian's Chromium driven by Playwright), on a live
stack: a KYC decided by hand on the sandbox's hosted page as the README says, the customer
found by `OnboardingPhase`, the Onboarding column added, and its page showing the decoded
input, the summary and details, and the decoded `state` query.

Screenshots go to `test-output/ui/` (or `$UI_TEST_OUTPUT`), for a person to look at.
Chromium is `/usr/bin/chromium` (`.ci/install-browser` installs it); without it the test skips
on a developer's machine and fails in CI (`CI=true`), where it must run. `make ui-test` runs it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from demo.stack import Stack, StackConfig
from tests.conftest import REPO_ROOT
from tests.readme import commands, documented_shell, section, sh_blocks

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
OUTPUT = Path(os.environ.get("UI_TEST_OUTPUT") or REPO_ROOT / "test-output" / "ui")
UI_TIMEOUT_MS = 30_000


def _browser_or_skip() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium, or .ci/install-browser)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (make install)")
    if not missing:
        return
    message = "the browser test needs " + " and ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + ": CI must run it")
    pytest.skip(message)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    _browser_or_skip()
    config = StackConfig.ephemeral(tmp_path_factory.mktemp("ui"), autopilot_seconds=1.0, ui=True)
    with Stack(config) as running:
        running.start_all()
        running.write_env_file()
        yield running


@pytest.fixture
def page(stack):
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        from playwright.sync_api import expect

        expect.set_options(timeout=UI_TIMEOUT_MS)
        try:
            yield context.new_page()
        finally:
            context.close()


def shot(page, name: str) -> Path:
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def run_documented(stack: Stack, line: str):
    run = documented_shell(stack.config.state_dir / "env.sh", line)
    assert run.returncode == 0 and "Traceback" not in run.stderr, (line, run.stdout, run.stderr)
    return run


def wait_for_state(stack: Stack, external_id: str, predicate, what: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        run = documented_shell(stack.config.state_dir / "env.sh", f"python starter.py status {external_id} --json")
        if run.returncode == 0:
            state = json.loads(run.stdout)
            if predicate(state):
                return state
        time.sleep(0.5)
    raise AssertionError(f"{external_id}: {what} never came (last phase {state.get('phase')})")


def test_an_operator_decides_a_kyc_by_hand_and_finds_the_customer_in_the_ui(stack, page):
    from playwright.sync_api import expect

    # The README's "by hand" commands, as written: autopilot off, a customer started, its status.
    by_hand = [c.line for block in sh_blocks(section("Approving or declining a KYC by hand", level=3)) for c in commands(block)]
    assert any("_sim/autopilot" in line for line in by_hand), by_hand
    for line in by_hand:
        run_documented(stack, line)
    external_id = next(line.split()[3] for line in by_hand if line.startswith("python starter.py start "))
    state = wait_for_state(stack, external_id, lambda s: s["identification_url"], "the hosted KYC url")
    time.sleep(3)  # longer than the autopilot would take: it is off, so nothing decides but us
    assert wait_for_state(stack, external_id, lambda s: True, "a state")["identification_status"] == "Pending"

    # The hosted page, with its two buttons; decline.
    page.goto(state["identification_url"])
    expect(page.get_by_role("button", name="Complete and approve")).to_be_visible()
    expect(page.get_by_role("button", name="Complete and decline")).to_be_visible()
    shot(page, "1-hosted-kyc-page")
    page.get_by_role("button", name="Complete and decline").click()
    expect(page.get_by_text("Identification declined.")).to_be_visible()
    wait_for_state(stack, external_id, lambda s: s["phase"] == "Declined", "Declined")

    # The README's operator query finds it.
    query = 'OnboardingPhase = "Declined" AND ExecutionStatus = "Running"'
    assert query in section("In the Temporal UI and the Temporal CLI", level=3)
    page.goto(f"{stack.ui_url}/namespaces/default/workflows?query={urllib.parse.quote(query)}")
    row_link = page.get_by_role("link", name=f"onboarding-{external_id}", exact=True)
    deadline = time.monotonic() + 30
    while not row_link.is_visible():  # visibility is eventually consistent: reload as a person would
        assert time.monotonic() < deadline, "the Declined customer never showed in the list"
        page.wait_for_timeout(1000)
        page.reload()
        page.wait_for_load_state("networkidle")
    # The Onboarding columns, added the way the README says.
    page.get_by_role("button", name="Configure Columns").click()
    page.get_by_role("button", name="Add OnboardingPhase column").click()
    for _ in range(4):  # from after End to beside Workflow ID, so the screenshot shows it
        page.get_by_role("button", name="Move OnboardingPhase column up").click()
    page.get_by_role("button", name="Close Workflows Table configuration").click()
    expect(page.get_by_role("columnheader", name="OnboardingPhase")).to_be_visible()
    expect(page.get_by_role("cell", name="Declined", exact=True)).to_be_visible()
    shot(page, "2-list-by-onboarding-phase")

    # Its page: the decoded input on the first tab (through the codec server: encrypted in history).
    row_link.click()
    expect(page.get_by_text(f'"external_id": "{external_id}"')).to_be_visible()
    expect(page.get_by_text("binary/encrypted")).to_have_count(0)
    shot(page, "3-workflow-timeline-decoded-input")

    # The summary, details and current details.
    page.get_by_role("tab", name="User Metadata").click()
    # The UI renders each of them as markdown in its own frame.
    summary = page.frame_locator("iframe#user-metadata-summary")
    details = page.frame_locator("iframe#user-metadata-details")
    current = page.frame_locator("iframe#user-metadata-current-details")
    expect(summary.get_by_text(f"Onboarding {external_id}: Person, Link identification")).to_be_visible()
    expect(details.get_by_text(f"python starter.py restart {external_id}", exact=False)).to_be_visible()
    expect(current.get_by_text("Declined: waiting for an operator", exact=False)).to_be_visible()
    for frame in (summary, details):
        text = frame.locator("body").inner_text()
        assert "grace" not in text.lower() and "hopper" not in text.lower(), text
    shot(page, "4-user-metadata-summary")

    # The decoded state query.
    page.get_by_role("tab", name="Queries").click()
    page.get_by_role("button", name="Run Query").click()
    expect(page.get_by_text(f'"external_id": "{external_id}"').first).to_be_visible()
    expect(page.get_by_text('"phase": "Declined"').first).to_be_visible()
    expect(page.get_by_text('"identification_status": "Declined"').first).to_be_visible()
    shot(page, "5-state-query-decoded")
