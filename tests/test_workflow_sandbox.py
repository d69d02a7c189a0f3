"""What the sandbox no longer checks for the workflow modules it passes through
(`runtime/workflow_sandbox.py`): no call that differs between a run and its replay, and no
state kept at module level, which every workflow instance of a worker would share."""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import pkgutil
import types
import typing
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

import workflows
from runtime.workflow_sandbox import PASSED_THROUGH

# Modules whose use in a workflow differs between a run and its replay (time, randomness, the
# machine) or does I/O.
FORBIDDEN_MODULES = frozenset({
    "random", "secrets", "time", "os", "socket", "subprocess", "threading", "multiprocessing",
    "requests", "httpx", "aiohttp", "urllib", "http", "sqlite3", "shutil", "tempfile", "pathlib",
})
# Calls of the same kind reached through an allowed module; `workflow.now()` is the deterministic one.
FORBIDDEN_MEMBERS = frozenset({"now", "utcnow", "today", "uuid1", "uuid4", "getrandbits"})
FORBIDDEN_BUILT_INS = frozenset({"open", "input", "print", "exec", "eval", "breakpoint"})


def nondeterministic_uses(source: str) -> list[str]:
    """Each import, call or member in `source` that a workflow must not use, as `line: what`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        found += [(node.lineno, f"import {n}") for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_MEMBERS:
            if not (isinstance(node.value, ast.Name) and node.value.id == "workflow"):
                found.append((node.lineno, f".{node.attr}"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_BUILT_INS:
            found.append((node.lineno, f"{node.func.id}()"))
    return [f"{line}: {what}" for line, what in sorted(found)]


IMMUTABLE = (int, float, str, bytes, bool, type(None), uuid.UUID, enum.Enum, timedelta, date, datetime)
SHARED_DEFINITIONS = (
    types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.UnionType,
    typing.TypeVar, type(typing.Union[int, str]), type(typing.Any), type(typing.Callable), type(typing.Awaitable),
)


def is_immutable(value: object) -> bool:
    if isinstance(value, IMMUTABLE + SHARED_DEFINITIONS):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(is_immutable(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value).__dataclass_params__.frozen and all(
            is_immutable(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def module_state(module: types.ModuleType) -> list[str]:
    """Module-level names of `module` that hold a value an instance could change."""
    return [
        name for name, value in vars(module).items()
        if not (name.startswith("__") and name.endswith("__"))
        and not (name == "annotations" and value.__class__.__name__ == "_Feature")
        and not is_immutable(value)
    ]


def workflow_modules() -> list[str]:
    assert PASSED_THROUGH == ("workflows",)
    return sorted(f"workflows.{m.name}" for m in pkgutil.iter_modules(workflows.__path__))


@pytest.mark.parametrize("name", workflow_modules())
def test_a_workflow_module_calls_nothing_that_differs_on_replay(name):
    source = Path(importlib.import_module(name).__file__).read_text()
    assert nondeterministic_uses(source) == []


@pytest.mark.parametrize("name", workflow_modules())
def test_a_workflow_module_keeps_no_state_at_module_level(name):
    assert module_state(importlib.import_module(name)) == []


def test_the_source_check_finds_each_kind_of_use():
    source = "\n".join([
        "import random", "from time import monotonic", "import os.path", "from datetime import datetime",
        "x = datetime.now()", "y = uuid.uuid4()", "z = open('f')", "w = workflow.now()",
    ])
    assert nondeterministic_uses(source) == [
        "1: import random", "2: import time", "3: import os.path", "5: .now", "6: .uuid4", "7: open()",
    ]


def test_the_state_check_finds_mutable_values():
    module = types.ModuleType("some_workflow_module")
    module.SEEN, module.LIMITS, module.PHASES = [], {"a": 1}, {"x"}
    module.FROZEN, module.PAIR, module.NESTED = frozenset({"x"}), ("a", 1), ("a", [])
    module.f = lambda: None
    assert module_state(module) == ["SEEN", "LIMITS", "PHASES", "NESTED"]
