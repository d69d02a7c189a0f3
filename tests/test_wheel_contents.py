"""The installed package is the product and nothing else.

The wheel built from the repository holds every module of the product (and Iron's spec, which
the client reads at run time) and none of the tooling: the Iron sandbox, the demo, the benchmarks
and the tests stay in the repository and run from its root. Installed on its own, with only the
project's dependencies beside it, every product module imports: nothing of the product needs the
tooling. The documented `python -m` commands find their modules from the repository root, and
the editable install (`make install`) draws the same line as the wheel.

The wheel is built offline with the venv's setuptools (`make install` installs it), from a copy
of the work tree, so no build/ or egg-info of an earlier build leaks in or is left behind.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from tests.conftest import REPO_ROOT
from tests.readme import pages

PRODUCT_PACKAGES = (
    "activities", "codec_server", "contracts", "data_protection", "iron_client", "onboarding_api", "operations",
    "runtime", "webhook_receiver", "workflows",
)
PRODUCT_MODULES = ("worker", "starter")
TOOLING = ("iron_sandbox", "bench", "demo", "tests")
# Read by the product at run time (iron_client/spec), or its published contract: the wheel must carry them.
PACKAGE_DATA = ("iron_client/spec/openapi-onboarding.yml", "onboarding_api/openapi.json")

# What a copy of the work tree leaves out: caches, earlier builds, local state.
NOT_COPIED = (".git", ".venv", "build", "dist", "*.egg-info", ".hypothesis", ".pytest_cache", ".data", ".demo",
              "test-output", "site", "node_modules")


def product_files_in_repository() -> set[str]:
    files = {f"{module}.py" for module in PRODUCT_MODULES}
    for package in PRODUCT_PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            if "__pycache__" not in path.parts:
                files.add(path.relative_to(REPO_ROOT).as_posix())
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    try:
        from setuptools.command import bdist_wheel  # noqa: F401  (in setuptools from 70.1 on)
    except ImportError:
        pytest.fail("the venv's setuptools cannot build a wheel offline: `make install` installs setuptools>=70.1")
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*NOT_COPIED))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--wheel-dir", str(work / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"the wheel did not build: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    (built,) = (work / "dist").glob("iron_onboarding-*.whl")
    return built


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}


def test_the_wheel_holds_every_product_module_and_its_data(wheel):
    files = wheel_files(wheel)
    missing = product_files_in_repository() - files
    assert not missing, f"product files not in the wheel: {sorted(missing)}"
    assert set(PACKAGE_DATA) <= files


def test_the_wheel_holds_nothing_but_the_product(wheel):
    files = wheel_files(wheel)
    tooling = sorted(f for f in files if PurePosixPath(f).parts[0] in TOOLING)
    assert not tooling, f"tooling in the wheel: {tooling}"
    product_tops = set(PRODUCT_PACKAGES) | {f"{module}.py" for module in PRODUCT_MODULES}
    others = sorted(f for f in files if PurePosixPath(f).parts[0] not in product_tops and ".dist-info/" not in f)
    assert not others, f"neither product nor metadata in the wheel: {others}"
    assert not [f for f in files if f.endswith(".pyc") or "__pycache__" in f]
    # Read by tools that map an import name to its distribution.
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith(".dist-info/top_level.txt"):
                assert set(archive.read(name).decode().split()) <= set(PRODUCT_PACKAGES) | set(PRODUCT_MODULES)


def test_no_product_module_imports_the_tooling(wheel):
    """Also the imports inside functions, which importing the modules would not run."""
    found = []
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.endswith(".py"):
                continue
            for node in ast.walk(ast.parse(archive.read(name), name)):
                if isinstance(node, ast.Import):
                    imported = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported = [node.module]
                else:
                    continue
                found += [f"{name}:{node.lineno} {module}" for module in imported if module.split(".")[0] in TOOLING]
    assert not found, f"the product imports the tooling: {found}"


def test_the_installed_wheel_imports_without_the_repository(wheel, tmp_path):
    """Installed into a directory of its own; the interpreter started without site (so no .pth
    of the editable install maps the repository back in) and with the project venv's
    site-packages appended for the dependencies only."""
    target = tmp_path / "installed"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    modules = sorted(
        ".".join(path.relative_to(target).with_suffix("").parts).removesuffix(".__init__")
        for top in (*PRODUCT_PACKAGES, *PRODUCT_MODULES)
        for path in ([target / f"{top}.py"] if top in PRODUCT_MODULES else (target / top).rglob("*.py"))
        if path.stem != "__main__"  # runs its process when imported
    )
    assert {"worker", "starter", "workflows.onboarding", "iron_client.spec"} <= set(modules)
    dependencies = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    script = (
        "import importlib, sys\n"
        f"sys.path[:] = [{str(target)!r}] + [p for p in sys.path if p] + {dependencies!r}\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(target)!r}), (name, module.__file__)\n"
        f"for name in {TOOLING!r}:\n"
        "    assert importlib.util.find_spec(name) is None, name + ' is importable beside the product'\n"
        "from iron_client.spec import SPEC_PATH\n"
        f"assert SPEC_PATH.is_file() and SPEC_PATH.is_relative_to({str(target)!r})\n"
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def documented_modules() -> set[str]:
    """Every project module the README, the docs and the Makefile run with `python -m`."""
    text = "\n".join(page.read_text() for page in [*pages(), REPO_ROOT / "iron_sandbox" / "README.md"])
    text += (REPO_ROOT / "Makefile").read_text().replace("$(PY) -m", "python -m")
    named = set(re.findall(r"\bpython3? -m ([A-Za-z_][\w.]*)", text))
    return {name for name in named if (REPO_ROOT / name.split(".")[0]).is_dir() or (REPO_ROOT / f"{name}.py").is_file()}


def find_specs(modules: list[str], cwd: Path) -> dict[str, bool]:
    """Which modules this venv's interpreter finds, started in `cwd` as `python -m` would be."""
    script = (
        "import importlib.util, json, sys\n"
        "def found(name):\n"
        "    try:\n"
        "        return importlib.util.find_spec(name) is not None\n"
        "    except ModuleNotFoundError:  # its parent package is not found\n"
        "        return False\n"
        "print(json.dumps({name: found(name) for name in sys.argv[1:]}))\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script, *modules], cwd=cwd, env=environ, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_documented_tooling_runs_from_the_repository_root_only(tmp_path):
    modules = sorted(documented_modules())
    tooling = [m for m in modules if m.split(".")[0] in TOOLING]
    assert {"iron_sandbox", "demo", "bench.chaos", "bench.benchmark", "demo.partner_backend"} <= set(tooling)
    assert all(find_specs(modules, REPO_ROOT).values()), find_specs(modules, REPO_ROOT)
    # Elsewhere the editable install offers the product alone, as the wheel does.
    elsewhere = find_specs(modules, tmp_path)
    assert {m for m, found in elsewhere.items() if found} == set(modules) - set(tooling), (
        f"{elsewhere}: is the editable install older than pyproject.toml? (make install)"
    )
