"""The image, built with a container engine (podman or docker) and started: each command of
its entrypoint against a dev server and the Iron sandbox, a customer taken through the
containerised worker and receiver, and SIGTERM answered by each process. The product image
carries none of the tooling; the sandbox's own stage (which deploy/compose.yaml runs) starts.

Run by `make image-test` (ONBOARDING_IMAGE_TEST=1), not by `make test`: it needs a container
engine, and a base image when no registry can be reached (deploy/debian-python-base.sh makes one
from Debian's packages). Without an engine it fails, it does not skip: it was asked for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from demo.stack import free_port
from tests.test_deployment_manifests import DOCKERFILE, REPO_ROOT, SANDBOX_STAGE, get, search_attribute_flags

# --- the image, built and started -----------------------------------------------------------------


def container_engine() -> str | None:
    for name in ("podman", "docker"):
        path = shutil.which(name)
        if path and subprocess.run([path, "info"], capture_output=True, timeout=120).returncode == 0:
            return path
    return None


def python_base_image(engine: str) -> str:
    """ONBOARDING_PYTHON_IMAGE, else the Dockerfile's default when the engine has it, else the
    base deploy/debian-python-base.sh makes from Debian's packages, else the default (pulled)."""
    if os.environ.get("ONBOARDING_PYTHON_IMAGE"):
        return os.environ["ONBOARDING_PYTHON_IMAGE"]
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M).group(1)
    for candidate in (default, "localhost/debian-python:3.11-bookworm"):
        if subprocess.run([engine, "image", "inspect", candidate], capture_output=True, timeout=60).returncode == 0:
            return candidate
    return default


def run_options(engine: str, image: str) -> list[str]:
    """The first way this engine starts a container here: with its default OCI runtime, or runc
    (crun cannot create containers under a hybrid cgroup hierarchy). The open-files and process
    limits are lowered to what any host allows a container to set."""
    limits = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096", "--network", "host"]
    attempts = [[]] + ([["--runtime", "runc"]] if "podman" in engine and shutil.which("runc") else [])
    errors = []
    for runtime in attempts:
        result = subprocess.run([engine, "run", "--rm", *runtime, *limits, image, "no-such-command"], capture_output=True, text=True, timeout=120)
        if result.returncode == 2 and "usage:" in result.stderr:
            return [*runtime, *limits]
        errors.append(f"{runtime or 'default runtime'}: exit {result.returncode}: {result.stderr.strip()[-300:]}")
    pytest.fail("no container starts: " + "; ".join(errors))


def wait_for(check, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except OSError as error:
            last = error
        time.sleep(0.5)
    pytest.fail(f"{what} within {timeout} s (last: {last!r})")


def build_image(engine: str, tag: str, *target: str) -> None:
    build = [engine, "build", "--network", "host", "--build-arg", f"PYTHON_IMAGE={python_base_image(engine)}", "-t", tag, *target]
    if "podman" in engine:
        build += ["--isolation", "chroot"]  # RUN steps without an OCI runtime (see run_options)
    result = subprocess.run([*build, str(REPO_ROOT)], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"image build failed: {result.stdout[-2000:]}{result.stderr[-2000:]}"


@pytest.fixture(scope="module")
def image():
    """The product image: what a build without --target makes."""
    engine = container_engine()
    if engine is None:
        pytest.fail("no container engine answers here (podman info / docker info): make image-test needs one")
    tag = f"localhost/iron-onboarding:test-{uuid.uuid4().hex[:8]}"
    build_image(engine, tag)
    try:
        yield engine, tag, run_options(engine, tag)
    finally:
        subprocess.run([engine, "rmi", "-f", tag], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def sandbox_image(image):
    """The Iron sandbox's stage, built after the product image so it reuses its layers."""
    engine, _, options = image
    tag = f"localhost/iron-onboarding-sandbox:test-{uuid.uuid4().hex[:8]}"
    build_image(engine, tag, "--target", SANDBOX_STAGE)
    try:
        yield engine, tag, options
    finally:
        subprocess.run([engine, "rmi", "-f", tag], capture_output=True, timeout=120)


def test_the_product_image_carries_no_tooling(image):
    engine, tag, options = image
    check = (
        "import importlib.util, sys\n"
        "import worker, starter, workflows.onboarding, webhook_receiver.app, codec_server.app, onboarding_api.app\n"
        "tooling = [m for m in ('iron_sandbox', 'bench', 'demo', 'tests') if importlib.util.find_spec(m)]\n"
        "sys.exit(f'tooling in the product image: {tooling}' if tooling else 0)\n"
    )
    result = subprocess.run([engine, "run", "--rm", *options, "--entrypoint", "python", tag, "-c", check],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(600)
def test_the_sandbox_image_serves_iron_and_stops_on_sigterm(sandbox_image):
    engine, tag, options = sandbox_image
    port = free_port()
    name = f"onboarding-test-sandbox-{uuid.uuid4().hex[:6]}"
    environment = ["-e", "IRON_SANDBOX_HOST=127.0.0.1", "-e", f"IRON_SANDBOX_PORT={port}", "-e", "IRON_API_KEY=image-test-key"]
    try:
        subprocess.run([engine, "run", "-d", "--name", name, *options, *environment, tag],
                       check=True, capture_output=True, timeout=120)
        wait_for(lambda: get(f"http://127.0.0.1:{port}/")[0] == 200, "the sandbox answering")
        customers = f"http://127.0.0.1:{port}/api/customers"
        assert get(urllib.request.Request(customers, headers={"X-API-Key": "wrong"}))[0] == 401
        assert get(urllib.request.Request(customers, headers={"X-API-Key": "image-test-key"}))[0] == 200
        began = time.monotonic()
        subprocess.run([engine, "stop", "-t", "30", name], check=True, capture_output=True, timeout=120)
        assert time.monotonic() - began < 30, "the sandbox ignored SIGTERM"
    finally:
        subprocess.run([engine, "rm", "-f", name], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def dev_server(temporal_cli_path, tmp_path_factory):
    port = free_port()
    command = [temporal_cli_path, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless", "--log-level", "error",
               "--ui-port", str(free_port())]
    command += [f"--search-attribute={name}={kind}" for name, kind in search_attribute_flags().items()]
    log = (tmp_path_factory.mktemp("temporal") / "temporal.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: subprocess.run([temporal_cli_path, "operator", "cluster", "health", "--address", f"127.0.0.1:{port}"],
                                   capture_output=True, timeout=30).returncode == 0,
            "the dev server answering",
        )
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


@pytest.mark.timeout(1800)
def test_image_builds_and_each_command_starts(image, dev_server, tmp_path):
    from iron_sandbox.testing import SandboxServer

    engine, tag, options = image
    ports = {name: free_port() for name in ("receiver", "codec", "api", "worker_metrics", "receiver_metrics")}
    api_key = "oak_image-test-" + uuid.uuid4().hex
    keys_file = tmp_path / "api-keys.json"
    keys_file.write_text(json.dumps({"keys": [{"name": "image-test", "sha256": hashlib.sha256(api_key.encode()).hexdigest(),
                                               "sub_partner_id": None}]}))
    keys_file.chmod(0o644)
    token = base64.urlsafe_b64encode(os.urandom(32)).decode()
    with SandboxServer() as sandbox:
        env = {
            "TEMPORAL_ADDRESS": dev_server,
            **sandbox.env(),
            "ONBOARDING_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
            "ONBOARDING_CODEC_TOKEN": token,
            "ONBOARDING_METRICS_HOST": "127.0.0.1",
            "ONBOARDING_FLEET_SCHEDULE": "false",
        }
        env_file = tmp_path / "container.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        started = {
            "worker": ["-e", f"ONBOARDING_METRICS_PORT={ports['worker_metrics']}"],
            "receiver": ["-e", f"ONBOARDING_METRICS_PORT={ports['receiver_metrics']}"],
            "codec-server": [],
            "api": ["-v", f"{keys_file}:/tmp/api-keys.json:ro", "-e", "ONBOARDING_API_KEYS_FILE=/tmp/api-keys.json"],
        }
        arguments = {"worker": [], "receiver": ["--port", str(ports["receiver"])], "codec-server": ["--port", str(ports["codec"])],
                     "api": ["--port", str(ports["api"])]}
        names = {command: f"onboarding-test-{command}-{uuid.uuid4().hex[:6]}" for command in started}
        try:
            for command, extra in started.items():
                subprocess.run([engine, "run", "-d", "--name", names[command], *options, "--env-file", str(env_file), *extra,
                                tag, command, *arguments[command]], check=True, capture_output=True, timeout=120)

            def logs(command: str) -> str:
                result = subprocess.run([engine, "logs", names[command]], capture_output=True, text=True, timeout=60)
                return result.stdout + result.stderr

            wait_for(lambda: "worker_started" in logs("worker"), "the worker logging worker_started")
            assert get(f"http://127.0.0.1:{ports['worker_metrics']}/metrics")[0] == 200
            wait_for(lambda: get(f"http://127.0.0.1:{ports['receiver']}/readyz")[0] == 200, "the receiver ready")
            assert get(f"http://127.0.0.1:{ports['receiver']}/healthz")[0] == 200
            assert get(f"http://127.0.0.1:{ports['receiver_metrics']}/metrics")[0] == 200
            wait_for(lambda: get(f"http://127.0.0.1:{ports['codec']}/healthz")[0] == 200, "the codec server answering")
            request = urllib.request.Request(
                f"http://127.0.0.1:{ports['codec']}/decode", data=b'{"payloads": []}', method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            assert get(request)[0] == 200

            # The containerised API starts a customer, which the containerised worker runs.
            wait_for(lambda: get(f"http://127.0.0.1:{ports['api']}/readyz")[0] == 200, "the API ready")
            api_start = urllib.request.Request(
                f"http://127.0.0.1:{ports['api']}/v1/onboardings?wait=identification_url&timeout=60", method="POST",
                data=json.dumps({"external_id": f"image-api-{uuid.uuid4().hex[:8]}", "email": "ada@example.com"}).encode(),
                headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            )
            status, body = get(api_start, timeout=90)
            assert status == 201 and json.loads(body)["onboarding"]["identification_url"], body

            # The containerised worker runs a customer's workflow and its Iron calls.
            result = subprocess.run(
                [sys.executable, str(REPO_ROOT / "starter.py"), "start", f"image-{uuid.uuid4().hex[:8]}",
                 "--email", "ada@example.com", "--wait", "--timeout", "60", "--json"],
                env={**os.environ, **env}, capture_output=True, text=True, timeout=120, cwd=tmp_path,
            )
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["identification_url"]

            for command in started:  # SIGTERM: each stops well within its pod's grace
                began = time.monotonic()
                subprocess.run([engine, "stop", "-t", "30", names[command]], check=True, capture_output=True, timeout=120)
                assert time.monotonic() - began < 30, f"{command} ignored SIGTERM"
                state = subprocess.run([engine, "inspect", names[command], "--format", "{{.State.ExitCode}}"],
                                       capture_output=True, text=True, timeout=60).stdout.strip()
                assert state in ("0", "143"), f"{command} exited {state}: {logs(command)[-2000:]}"
            assert "worker_stopped" in logs("worker")
        finally:
            for name in names.values():
                subprocess.run([engine, "rm", "-f", name], capture_output=True, timeout=120)
