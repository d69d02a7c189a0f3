"""The deployment files (Dockerfile, deploy/) checked against the code they deploy.

* Every Kubernetes document under deploy/kubernetes, the base and each overlay rendered with its
  patches, validates against the Kubernetes JSON schemas of `KUBERNETES_VERSIONS`, offline and
  strict (no unknown field): the schemas come with `kubernetes-validate`.
* The worker's pod waits longer for it than the worker waits for its tasks on SIGTERM.
* Every probe (and compose health check) names a port and path its process really serves: the
  routes of the receiver's, the HTTP API's and the codec server's apps, and the metrics exporter's
  `/metrics`.
* Every environment variable the manifests, the compose file, the secrets template and the
  Dockerfile set is one the code reads.
* The image's entrypoint starts modules that exist (the HTTP API's `api` among them), and refuses
  what it does not offer.
* The image itself is built and started by tests/test_image.py (`make image-test`), which needs
  a container engine.
"""

from __future__ import annotations

import ast
import base64
import copy
import inspect
import importlib.util
import os
import re
import shutil
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from demo.stack import free_port
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY = REPO_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = sorted(p.parent for p in (KUBERNETES / "overlays").glob("*/kustomization.yaml"))
ENTRYPOINT = DEPLOY / "entrypoint.sh"
COMPOSE = DEPLOY / "compose.yaml"
SECRETS_TEMPLATE = DEPLOY / "secrets.env.example"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DEPLOYMENT_DOC = REPO_ROOT / "docs" / "deployment.md"

# The oldest minor the manifests claim and the newest whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")

# Set in the Dockerfile for the interpreter and pip, which read them; not the project's settings.
INTERPRETER_VARIABLES = {"PATH", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
                         "PIP_DISABLE_PIP_VERSION_CHECK"}

# The Dockerfile's stage of the Iron sandbox, which compose runs in Iron's place: tooling, not product.
SANDBOX_STAGE = "iron-sandbox"

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")

# Strategic-merge keys of the lists the overlays patch (as Kubernetes' own patch strategy).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort"}


# --- rendering the kustomizations ---------------------------------------------------------------


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def strategic_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            strategic_merge(target[key], value)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(target.get(key), list):
            merge_key = MERGE_KEYS[key]
            for item in value:
                match = next((t for t in target[key] if t.get(merge_key) == item.get(merge_key)), None)
                if match is None:
                    target[key].append(copy.deepcopy(item))
                else:
                    strategic_merge(match, item)
        else:
            target[key] = copy.deepcopy(value)


def kustomization(directory: Path) -> dict[str, Any]:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def render(directory: Path) -> list[dict[str, Any]]:
    """What `kubectl kustomize directory` gives for the features these kustomizations use:
    resources (files and directories), strategic-merge patches, images and the namespace."""
    spec = kustomization(directory)
    documents: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = (directory / resource).resolve()
        documents += render(path) if path.is_dir() else load_documents(path)
    for entry in spec.get("patches", []):
        for patch in load_documents(directory / entry["path"]):
            targets = [d for d in documents if d["kind"] == patch["kind"] and d["metadata"]["name"] == patch["metadata"]["name"]]
            assert len(targets) == 1, f"{entry['path']}: patch of {patch['kind']}/{patch['metadata']['name']} matches {len(targets)} resources"
            strategic_merge(targets[0], patch)
    for image in spec.get("images", []):
        for container in containers(documents):
            if container["image"] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    if "namespace" in spec:
        for document in documents:
            if document["kind"] != "Namespace":
                document["metadata"]["namespace"] = spec["namespace"]
    return documents


def deployments(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == "Deployment"]


def containers(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for d in deployments(documents) for c in d["spec"]["template"]["spec"]["containers"]]


def config_map(documents: list[dict[str, Any]]) -> dict[str, str]:
    (found,) = [d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "onboarding-config"]
    return found["data"]


RENDERED = {directory.relative_to(KUBERNETES).as_posix(): render(directory) for directory in [BASE, *OVERLAYS]}


# --- the schemas --------------------------------------------------------------------------------


def test_every_yaml_file_under_deploy_kubernetes_is_part_of_a_kustomization():
    """So none escapes the schema check below: each file is a resource or a patch of one."""
    used = {BASE / "kustomization.yaml", *(o / "kustomization.yaml" for o in OVERLAYS)}
    for directory in [BASE, *OVERLAYS]:
        spec = kustomization(directory)
        assert spec["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and spec["kind"] == "Kustomization"
        assert set(spec) <= {"apiVersion", "kind", "namespace", "labels", "resources", "patches", "images"}
        for resource in spec.get("resources", []):
            path = (directory / resource).resolve()
            assert path.exists(), f"{directory}: resource {resource} does not exist"
            used.add(path / "kustomization.yaml" if path.is_dir() else path)
        for entry in spec.get("patches", []):
            assert set(entry) == {"path"}, "only strategic-merge patches from files are rendered here"
            used.add((directory / entry["path"]).resolve())
    found = {p.resolve() for p in KUBERNETES.rglob("*.y*ml")}
    assert found == {p.resolve() for p in used}, f"not in any kustomization: {sorted(map(str, found - used))}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_every_document_validates_against_the_kubernetes_schemas(variant, version):
    documents = RENDERED[variant]
    kinds = sorted({d["kind"] for d in documents})
    assert kinds == ["ConfigMap", "Deployment", "Namespace", "PodDisruptionBudget", "Service"]
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{variant}: {document['kind']}/{document['metadata']['name']} at {'.'.join(map(str, error.path))}: {error.message}")


def in_merge_key_order(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: in_merge_key_order(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [in_merge_key_order(v) for v in value]
        return sorted(items, key=lambda item: str(item.get(MERGE_KEYS[key]))) if key in MERGE_KEYS else items
    return value


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (its kustomize) is not installed")
@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_kubectl_kustomize_renders_what_this_module_validates(variant):
    """The render above against kustomize's own, where kubectl is installed: the same documents
    (list order aside) once the `labels` kustomize adds are set aside, and its output validates."""
    result = subprocess.run(["kubectl", "kustomize", str(KUBERNETES / variant)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    theirs = [d for d in yaml.safe_load_all(result.stdout) if d]
    for document in theirs:
        kubernetes_validate.validate(document, KUBERNETES_VERSIONS[0], strict=True)
        document["metadata"].pop("labels", None)
    ours = copy.deepcopy(RENDERED[variant])
    for document in ours:
        document["metadata"].pop("labels", None)

    def by_name(documents):
        return {(d["kind"], d["metadata"]["name"]): in_merge_key_order(d) for d in documents}

    assert by_name(theirs) == by_name(ours)


def test_each_patch_changes_the_base_it_names():
    for overlay in OVERLAYS:
        rendered = RENDERED[overlay.relative_to(KUBERNETES).as_posix()]
        assert rendered != RENDERED["base"], overlay
        assert config_map(rendered)["TEMPORAL_NAMESPACE"] != config_map(RENDERED["base"])["TEMPORAL_NAMESPACE"]


def test_the_mtls_overlay_mounts_the_files_its_configuration_names():
    rendered = RENDERED["overlays/temporal-cloud-mtls"]
    settings = config_map(rendered)
    paths = {settings["TEMPORAL_TLS_CLIENT_CERT_PATH"], settings["TEMPORAL_TLS_CLIENT_KEY_PATH"]}
    for deployment in deployments(rendered):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        if container["args"][0] == "codec-server":
            continue  # never connects to Temporal
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        assert all(any(p.startswith(m.rstrip("/") + "/") for m in mounts) for p in paths), deployment["metadata"]["name"]


def test_the_api_key_overlay_requires_the_key_where_temporal_is_called():
    rendered = RENDERED["overlays/temporal-cloud-api-key"]
    for container in containers(rendered):
        refs = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef", {}) for e in container.get("env", [])}
        if container["args"][0] != "codec-server":
            assert refs["TEMPORAL_API_KEY"].get("optional") is False


def test_every_deployment_runs_as_the_images_user_with_a_disruption_budget_for_each_but_the_codec_server():
    uid = int(re.search(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.M).group(1))
    documents = RENDERED["base"]
    budgets = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for d in documents if d["kind"] == "PodDisruptionBudget"}
    for deployment in deployments(documents):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
        (container,) = pod["containers"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
        if container["args"][0] in ("worker", "receiver", "api"):
            assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] in budgets


# --- graceful shutdown --------------------------------------------------------------------------


def worker_shutdown_grace_seconds(settings: dict[str, str]) -> float:
    """How long the worker lets running tasks finish on SIGTERM: a setting of `WorkerSettings`
    named for it (as `settings` sets it, else its default), else what `build_worker` passes
    Temporal's `Worker` as `graceful_shutdown_timeout`."""
    import worker

    for field in worker.WorkerSettings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str) and ("SHUTDOWN" in alias or "GRACE" in alias):
            value = settings.get(alias, field.default)
            return value.total_seconds() if isinstance(value, timedelta) else float(value)
    source = inspect.getsource(worker.build_worker)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "graceful_shutdown_timeout":
            value = node.value
            if isinstance(value, ast.Name):
                resolved = getattr(worker, value.id)
                return resolved.total_seconds() if isinstance(resolved, timedelta) else float(resolved)
            resolved = eval(compile(ast.Expression(value), "worker.py", "eval"), {"timedelta": timedelta})
            return resolved.total_seconds()
    raise AssertionError("the worker's shutdown grace is neither a WorkerSettings field nor a graceful_shutdown_timeout in build_worker")


def pre_stop_seconds(container: dict[str, Any]) -> float:
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    return float(command[1]) if command[:1] == ["sleep"] else 0.0


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_the_worker_pod_waits_longer_than_the_worker_drains(variant):
    documents = RENDERED[variant]
    for deployment in deployments(documents):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        if container["args"][0] != "worker":
            continue
        env = {**config_map(documents), **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e}}
        grace = worker_shutdown_grace_seconds(env)
        assert pod["terminationGracePeriodSeconds"] > grace + pre_stop_seconds(container), (
            f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} must exceed the worker's {grace} s"
        )
        compose_worker = yaml.safe_load(COMPOSE.read_text())["services"]["worker"]
        assert float(compose_worker["stop_grace_period"].rstrip("s")) > grace


def test_every_pre_stop_fits_in_its_grace_period():
    for deployment in deployments(RENDERED["base"]):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pre_stop_seconds(container) < pod.get("terminationGracePeriodSeconds", 30)


# --- probes -------------------------------------------------------------------------------------


def entrypoint_commands() -> dict[str, tuple[str, list[str]] | None]:
    """command -> (module, default arguments), or None for a command that runs nothing."""
    text = ENTRYPOINT.read_text()
    body = text[text.index('case "$command" in'):text.index("esac")]
    commands: dict[str, tuple[str, list[str]] | None] = {}
    for name, arm in re.findall(r"^\s{4}([a-z*-]+)\)\n(.*?);;", body, re.M | re.S):
        if name == "*":
            continue
        run = re.search(r'^\s*exec python -m (\S+)(.*?)"\$@"\s*$', arm, re.M)
        commands[name] = (run.group(1), run.group(2).split()) if run else None
    return commands


def last_flag(arguments: list[str], flag: str) -> str | None:
    values = [arguments[i + 1] for i, a in enumerate(arguments[:-1]) if a == flag]
    values += [a.split("=", 1)[1] for a in arguments if a.startswith(flag + "=")]
    return values[-1] if values else None




def get(url: str, **kwargs: Any) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=kwargs.pop("timeout", 5), **kwargs) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def app_get_routes(app) -> set[str]:
    return {route.path for route in app.routes if "GET" in (route.methods or ())}


def receiver_routes() -> set[str]:
    from webhook_receiver.app import create_app
    from webhook_receiver.settings import ReceiverSettings

    async def no_temporal():  # the routes exist before any connection
        raise RuntimeError("not connected")

    settings = ReceiverSettings.load({"IRON_WEBHOOK_SECRETS": "whsec_" + base64.b64encode(os.urandom(32)).decode()})
    return app_get_routes(create_app(settings, no_temporal))


def api_routes() -> set[str]:
    from onboarding_api.app import openapi_document

    return set(openapi_document()["paths"]) | {"/openapi.json"}


def codec_server_routes() -> set[str]:
    from data_protection.codec import EncryptionCodec
    from codec_server.app import create_app
    from data_protection.keys import KeyRing

    codec = EncryptionCodec(KeyRing.from_spec("k1:" + base64.b64encode(os.urandom(32)).decode()))
    return app_get_routes(create_app(codec, ["t" * 32]))


@pytest.fixture(scope="module")
def metrics_paths() -> set[str]:
    """The paths the processes' metrics exporter (runtime.metrics) answers with 200."""
    from runtime.metrics import prometheus_runtime

    port = free_port()
    runtime = prometheus_runtime("127.0.0.1", port)  # serves while referenced
    deadline = time.monotonic() + 10
    while True:
        try:
            status, body = get(f"http://127.0.0.1:{port}/metrics")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert status == 200
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 404  # /metrics is its only path
    yield {"/metrics"}
    del runtime


def served_endpoints(process: str, arguments: list[str], env: dict[str, str], metrics_paths: set[str]) -> set[tuple[int, str]]:
    """(port, path) pairs a process answers GET on, started with `arguments` and `env`."""
    module, defaults = entrypoint_commands()[process]
    arguments = defaults + arguments
    endpoints: set[tuple[int, str]] = set()
    if module == "webhook_receiver":
        port = int(last_flag(arguments, "--port") or 8081)
        endpoints |= {(port, path) for path in receiver_routes() if "{" not in path}
    if module == "codec_server":
        port = int(last_flag(arguments, "--port") or 8888)
        endpoints |= {(port, path) for path in codec_server_routes() if "{" not in path}
    if module == "onboarding_api":
        port = int(last_flag(arguments, "--port") or 8082)
        endpoints |= {(port, path) for path in api_routes() if "{" not in path}
    if module in ("worker", "webhook_receiver", "onboarding_api"):  # the processes that export metrics
        metrics_port = last_flag(arguments, "--metrics-port") or env.get("ONBOARDING_METRICS_PORT")
        if metrics_port:
            assert env.get("ONBOARDING_METRICS_HOST") == "0.0.0.0", "metrics must bind beyond loopback for probes and Prometheus"
            endpoints |= {(int(metrics_port), path) for path in metrics_paths}
    return endpoints


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_every_probe_names_an_endpoint_its_process_serves(variant, metrics_paths):
    documents = RENDERED[variant]
    for container in containers(documents):
        process, *arguments = container["args"]
        env = {**config_map(documents), **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e}}
        served = served_endpoints(process, arguments, env, metrics_paths)
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        assert set(ports.values()) <= {port for port, _ in served}, f"{process}: a declared port nobody listens on"
        probes = [container[k] for k in ("livenessProbe", "readinessProbe", "startupProbe") if k in container]
        assert len(probes) >= 2, f"{process}: liveness and readiness probes"
        for probe in probes:
            port = probe["httpGet"]["port"]
            port = ports[port] if isinstance(port, str) else port
            assert (port, probe["httpGet"]["path"]) in served, f"{process}: nothing serves {probe['httpGet']} (serves {sorted(served)})"


def test_every_receiver_and_api_has_liveness_and_readiness_apart():
    for process in ("receiver", "api"):
        (container,) = [c for c in containers(RENDERED["base"]) if c["args"][0] == process]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_api_pod_mounts_the_keys_file_its_configuration_names():
    (deployment,) = [d for d in deployments(RENDERED["base"]) if d["spec"]["template"]["spec"]["containers"][0]["args"][0] == "api"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    keys_file = config_map(RENDERED["base"])["ONBOARDING_API_KEYS_FILE"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    (mount,) = [path for path in mounts if keys_file.startswith(path.rstrip("/") + "/")]
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mounts[mount]]
    assert volume["secret"]["secretName"] == "onboarding-api-keys"
    compose_api = yaml.safe_load(COMPOSE.read_text())["services"]["api"]
    assert any(v.endswith(":" + compose_api["environment"]["ONBOARDING_API_KEYS_FILE"] + ":ro") for v in compose_api["volumes"])


def test_every_compose_health_check_names_an_endpoint_its_process_serves(metrics_paths):
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, service in services.items():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        url = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", test)
        if url is None:
            continue
        process, *arguments = service["command"]
        served = served_endpoints(process, arguments, service.get("environment", {}), metrics_paths)
        assert (int(url.group(1)), url.group(2)) in served, f"compose {name}: {url.group(0)}"


# --- environment variables ----------------------------------------------------------------------


def product_sources() -> list[Path]:
    """The Python files the package installs (pyproject's packages and modules)."""
    setuptools = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    files = [REPO_ROOT / f"{module}.py" for module in setuptools["py-modules"]]
    for pattern in setuptools["packages"]["find"]["include"]:
        files += sorted((REPO_ROOT / pattern.rstrip("*")).rglob("*.py"))
    return files


def sandbox_sources() -> list[Path]:
    return sorted((REPO_ROOT / "iron_sandbox").rglob("*.py"))


def variable_names_in(sources: list[Path]) -> set[str]:
    """Every variable-shaped string constant of these files (settings aliases, `ENV_*` names,
    `os.environ` look-ups)."""
    names: set[str] = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(node.value):
                names.add(node.value)
    return names


def variables_the_code_reads() -> set[str]:
    """Every variable the installed code names, and the `TEMPORAL_*` variables the SDK's
    environment configuration reads (its source ships in the wheel)."""
    names = variable_names_in(product_sources())
    import temporalio

    envconfig = Path(temporalio.__file__).parent / "bridge" / "sdk-core" / "crates" / "common" / "src" / "envconfig.rs"
    temporal = set(re.findall(r'"(TEMPORAL_[A-Z_]+)"', envconfig.read_text()))
    assert {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS_CLIENT_CERT_PATH"} <= temporal
    return names | temporal


def variables_the_deployment_sets() -> dict[str, set[str]]:
    """variable -> where it is set."""
    found: dict[str, set[str]] = {}

    def note(name: str, where: str) -> None:
        found.setdefault(name, set()).add(where)

    for variant, documents in RENDERED.items():
        for name in config_map(documents):
            note(name, f"{variant} ConfigMap")
        for container in containers(documents):
            for entry in container.get("env", []):
                note(entry["name"], f"{variant} {container['name']}")
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    note(ref["key"], f"{variant} Secret key")
    for path in KUBERNETES.rglob("*.yaml"):  # settings suggested in comments
        for name in re.findall(r"^\s*#\s*([A-Z][A-Z0-9_]+):\s", path.read_text(), re.M):
            note(name, f"{path.relative_to(REPO_ROOT)} comment")
    for name, service in yaml.safe_load(COMPOSE.read_text())["services"].items():
        if service.get("build", {}).get("target") == SANDBOX_STAGE:
            continue  # the sandbox's own settings (test_compose_sets_only_variables_the_sandbox_reads)
        for variable in service.get("environment", {}):
            note(variable, f"compose {name}")
    for name in re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", SECRETS_TEMPLATE.read_text(), re.M):
        note(name, "secrets.env.example")
    dockerfile = DOCKERFILE.read_text().replace("\\\n", " ")
    for line in re.findall(r"^ENV (.*)$", dockerfile, re.M):
        for name in re.findall(r"([A-Z][A-Z0-9_]*)=", line):
            note(name, "Dockerfile")
    return found


def test_every_variable_the_deployment_sets_is_one_the_code_reads():
    known = variables_the_code_reads()
    unknown = {
        name: sorted(where)
        for name, where in variables_the_deployment_sets().items()
        if name not in known and name not in INTERPRETER_VARIABLES and not name.startswith("TEMPORAL_GRPC_META_")
    }
    assert not unknown, f"set but never read by the code: {unknown}"


def test_compose_sets_only_variables_the_sandbox_reads():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    (sandbox,) = [s for s in services.values() if s.get("build", {}).get("target") == SANDBOX_STAGE]
    unknown = set(sandbox["environment"]) - variable_names_in(sandbox_sources())
    assert not unknown, f"compose sets for the sandbox what it never reads: {sorted(unknown)}"


def test_the_variable_check_catches_a_misspelt_name():
    known = variables_the_code_reads()
    assert "ONBOARDING_METRICS_PORT" in known and "IRON_WEBHOOK_SECRETS" in known
    assert "ONBOARDING_METRIC_PORT" not in known and "TEMPORAL_APIKEY" not in known


def test_every_secret_the_manifests_reference_is_in_the_secrets_template():
    template = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", SECRETS_TEMPLATE.read_text(), re.M))
    for variant, documents in RENDERED.items():
        for container in containers(documents):
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "onboarding-secrets" and ref["key"] == entry["name"], entry
                    assert ref["key"] in template, f"{variant}: {ref['key']} is not in {SECRETS_TEMPLATE.name}"
    # Secrets only by reference: the Deployments write no value of their own.
    assert all("valueFrom" in e and "value" not in e for c in containers(RENDERED["base"]) for e in c.get("env", []))


def test_no_secret_is_written_into_a_manifest():
    # A variable naming a file (`ONBOARDING_API_KEYS_FILE`) holds a path, not the secret.
    settings = {name for documents in RENDERED.values() for name in config_map(documents) if not name.endswith(("_FILE", "_PATH"))}
    assert not {n for n in settings if any(word in n for word in ("SECRET", "TOKEN", "API_KEY", "ENCRYPTION_KEYS", "ACCESS_KEY"))}
    for line in SECRETS_TEMPLATE.read_text().splitlines():
        if not line.startswith("#") and "=" in line:
            assert line.endswith("="), f"the template holds no value: {line}"


# --- the image's entrypoint and Dockerfile ------------------------------------------------------


def test_the_entrypoint_offers_the_processes_that_exist():
    commands = entrypoint_commands()
    assert {name for name, run in commands.items() if run} == {"worker", "receiver", "codec-server", "api"}
    for name, run in commands.items():
        if run is None:
            continue
        module = run[0]
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"{name}: python -m {module} finds no module"
        if spec.submodule_search_locations is not None:
            assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{name}: {module} has no __main__"
        else:
            assert 'if __name__ == "__main__":' in Path(spec.origin).read_text(), f"{name}: {module} runs nothing as a script"
    assert commands["api"][0] == "onboarding_api"


@pytest.mark.parametrize(
    "arguments, message",
    [([], "usage:"), (["starter"], "usage:"), (["webhook_receiver"], "usage:")],
)
def test_the_entrypoint_refuses_what_it_does_not_run(arguments, message):
    result = subprocess.run(["sh", str(ENTRYPOINT), *arguments], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and message in result.stderr


def test_every_deployment_and_compose_service_runs_an_entrypoint_command():
    commands = {name for name, run in entrypoint_commands().items() if run}
    for documents in RENDERED.values():
        assert {c["args"][0] for c in containers(documents)} == commands
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {s["command"][0] for s in services.values() if s.get("build", {}).get("target") == "app" and "entrypoint" not in s} == commands


def test_the_dockerfile_installs_the_product_without_test_extras_and_compiles_it():
    text = DOCKERFILE.read_text()
    assert "[test]" not in text and "['project']['dependencies']" in text and "--no-deps ." in text
    app_stage = text[text.index("AS app"):]
    assert app_stage.index("COPY --from=build") < app_stage.index("compileall") < app_stage.index("USER 10001")
    assert "COPY deploy/entrypoint.sh" in app_stage and 'ENTRYPOINT ["tini", "--", "onboarding-entrypoint"]' in app_stage
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", ".data", ".demo", "test-output", "tests"} <= set(ignored)


def dockerfile_stages() -> dict[str, str]:
    """Each build stage's name -> its instructions, in the Dockerfile's order."""
    parts = re.split(r"^FROM \S+ AS (\S+)\n", DOCKERFILE.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_product_image_is_the_default_target_and_carries_no_tooling():
    stages = dockerfile_stages()
    assert list(stages)[-1] == "app", "a build without --target makes the last stage: the product image"
    assert re.findall(r"^COPY .*$", stages["app"], re.M) == [
        "COPY --from=build /opt/onboarding /opt/onboarding", "COPY deploy/entrypoint.sh /usr/local/bin/onboarding-entrypoint",
    ]
    # The build stage installs the wheel, which holds the product only (tests/test_wheel_contents.py).
    assert "--no-deps .\n" in stages["build"]
    ignored = {line for line in (REPO_ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")}
    assert {"bench", "demo", "tests"} <= ignored and "iron_sandbox" not in ignored


def test_compose_runs_the_sandbox_from_its_own_stage():
    stage = dockerfile_stages()[SANDBOX_STAGE]
    assert "COPY iron_sandbox /opt/iron-sandbox/iron_sandbox" in stage and "PYTHONPATH=/opt/iron-sandbox" in stage
    assert 'ENTRYPOINT ["tini", "--", "python", "-m", "iron_sandbox"]' in stage
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    sandbox = services["iron-sandbox"]
    assert sandbox["build"]["target"] == SANDBOX_STAGE and "entrypoint" not in sandbox
    assert all(s["build"]["target"] in ("app", "temporal-dev-server", SANDBOX_STAGE) for s in services.values())
    # Every service built from the product image runs one of its entrypoint's commands.
    assert all("entrypoint" not in s for s in services.values() if s["build"]["target"] == "app")


# --- search attributes --------------------------------------------------------------------------


def search_attribute_flags() -> dict[str, str]:
    from contracts import search_attributes

    return {key.name: key.indexed_value_type.name.title() for key in search_attributes.ALL}


def test_the_compose_dev_server_registers_every_search_attribute():
    command = yaml.safe_load(COMPOSE.read_text())["services"]["temporal"]["command"]
    registered = dict(a.removeprefix("--search-attribute=").split("=") for a in command if a.startswith("--search-attribute="))
    assert registered == search_attribute_flags()


def test_the_deployment_page_creates_every_search_attribute():
    text = DEPLOYMENT_DOC.read_text()
    command = text[text.index("temporal operator search-attribute create"):]
    command = command[: command.index("```")]
    assert dict(re.findall(r"--name (\w+) --type (\w+)", command)) == search_attribute_flags()
