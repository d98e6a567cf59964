"""The package's layering, checked from its source: one direction, no cycles.

spec (YAML → model; no Airflow/Kubernetes/MLflow) → DAG builder → operators and
runtimes → tracking. An import cycle or a heavy import in the spec layer is a bug
a reviewer would otherwise have to catch by eye.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import REPO

PACKAGE = REPO / "airflow_kfx"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module this file imports when it runs (``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_spec_layer_imports_no_airflow_kubernetes_or_mlflow() -> None:
    pure = [p for p in PACKAGE.rglob("*.py") if p.parent.name == "spec"]
    pure += [PACKAGE / name for name in ("placeholders.py", "task_io.py", "plan.py", "values.py", "params.py")]
    # What the UI plugin shows and how it stores uploads are pure too; only its app and store touch Airflow.
    pure += [PACKAGE / "ui" / name for name in ("outputs.py", "charts.py", "pages.py", "upload.py")]
    offenders = {
        _module_name(path): sorted(m for m in _imports(path) if m.split(".")[0] in ("airflow", "kubernetes", "mlflow"))
        for path in pure
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_nothing_below_the_ui_plugin_imports_it() -> None:
    """The plugin sits on top: the DAG builder, operators and runtimes never load FastAPI."""
    graph = _graph()
    upward = {name: sorted(t for t in targets if t.startswith("airflow_kfx.ui"))
              for name, targets in graph.items() if not name.startswith("airflow_kfx.ui")}
    assert {name: found for name, found in upward.items() if found} == {}


def test_every_public_name_resolves() -> None:
    """``from airflow_kfx import X`` works for every name the package advertises."""
    import airflow_kfx

    missing = []
    for name in airflow_kfx.__all__:
        try:
            getattr(airflow_kfx, name)
        except (AttributeError, ImportError) as err:
            missing.append(f"{name}: {err}")
    assert missing == []
