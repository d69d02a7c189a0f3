"""No two modules of the product import each other, directly or through others: a newcomer can
read any module knowing only what it imports. Tooling (tests, bench, demo, the Iron sandbox) is
left out; imports under `if TYPE_CHECKING:` and inside functions count as well."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLING = {"tests", "bench", "demo", "iron_sandbox", "docs", "deploy", "build", "dist", "site"}


def product_modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if parts[0] in TOOLING or any(p.startswith(".") or p.endswith(".egg-info") for p in parts):
            continue
        name = ".".join(parts)[: -len(".py")]
        found[name.removesuffix(".__init__")] = path
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # `pkg.module.name` is `pkg.module`
                    target = target.rpartition(".")[0]
                # A package and its own modules are one unit: `pkg/__init__` re-exports `pkg.x`.
                if target and target != name and not name.startswith(target + ".") and not target.startswith(name + "."):
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, each as the path that closes it (depth-first, iterative)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(step) == 1:
                found.append(path[path.index(step):] + [step])
            elif step not in state:
                state[step] = 1
                path.append(step)
                stack.append(iter(sorted(graph[step])))
    return found


def test_no_two_product_modules_import_each_other():
    modules = product_modules(REPO_ROOT)
    assert {"starter", "worker", "contracts.messages", "operations.onboardings"} <= modules.keys()
    found = circles(import_graph(modules))
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_no_two_folders_import_each_other():
    """Floors: a folder (package) either stands on another or holds it up, never both; the codec
    server, a process, is a folder beside the receiver rather than inside `data_protection`."""
    graph = import_graph(product_modules(REPO_ROOT))
    folders: dict[str, set[str]] = {}
    for module, targets in graph.items():
        folders.setdefault(module.split(".")[0], set()).update(t.split(".")[0] for t in targets)
    for folder in folders:
        folders[folder].discard(folder)
    found = circles(folders)
    assert not found, "folders importing each other: " + "; ".join(" -> ".join(c) for c in found)


def test_the_check_finds_a_circle_through_a_function_level_import(tmp_path):
    """The check itself: a circle closed by an import inside a function, as `contracts.events`
    once closed one with `contracts.messages`, is found; a one-way import is not."""
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "__init__.py").write_text("")
    (tmp_path / "contracts" / "messages.py").write_text("from contracts.outbox import Outbox\n")
    (tmp_path / "contracts" / "outbox.py").write_text("from contracts import events\n")
    (tmp_path / "contracts" / "events.py").write_text("def f():\n    from contracts.messages import x\n")
    (tmp_path / "starter.py").write_text("import contracts.messages\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("import starter\n")
    graph = import_graph(product_modules(tmp_path))
    assert "tests.test_x" not in graph
    assert circles(graph) == [["contracts.events", "contracts.messages", "contracts.outbox", "contracts.events"]]
    (tmp_path / "contracts" / "events.py").write_text("X = 1\n")
    assert circles(import_graph(product_modules(tmp_path))) == []
