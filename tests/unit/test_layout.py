"""The folder layout is the data path: imports point one way, modules stay readable.

An ``ast`` walk over every project module (imports inside functions and ``TYPE_CHECKING`` blocks
count too: a lazy import is still a dependency) finds import cycles, checks that each folder of the
package imports only the folders below it, and that a long module says why it is long.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "exporter" / "comfyui_exporter"
ROOTS = {"comfyui_exporter": REPO / "exporter", "grafana": REPO, "bench": REPO}
MAX_LINES = 450

# What each folder of the package may import (besides itself and the package's face, __init__).
# Entry points -> wiring -> sources / model / exposition -> config; nothing imports cli.
ALLOWED: dict[str, set[str]] = {
    "cli": {"wiring", "config", "sources", "gpu", "exposition", "model"},
    "wiring": {"sources", "model", "exposition", "gpu", "config", "notify"},
    "notify": {"model", "config"},
    "sources": {"model", "config"},
    "exposition": {"model", "config"},
    "model": set(),
    "config": set(),
    "gpu": {"config"},
    "relay": {"exposition", "config"},
    "sim": set(),
    "comfyui_plugin": set(),
    "stack": {"config"},
    "__main__": {"cli"},
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top, base in ROOTS.items():
        for path in (base / top).rglob("*.py"):
            if "node_modules" in path.parts:
                continue
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from pkg import sub` depends on the submodule when there is one, else on pkg.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: set(_imports(name, path, known)) for name, path in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def _folder(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "comfyui_exporter" or len(parts) == 1:
        return None
    return parts[1]


def test_the_walker_sees_a_cycle_and_a_lazy_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    doctor = _graph()["comfyui_exporter.cli.main"]
    assert "comfyui_exporter.cli.doctor" in doctor  # imported inside a function


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_imports_point_one_way() -> None:
    wrong = []
    for module, targets in _graph().items():
        source = _folder(module)
        if source is None:
            continue
        for target in targets:
            folder = _folder(target)
            if folder is None or folder == source:
                continue
            if folder not in ALLOWED.get(source, set()):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the data path:\n" + "\n".join(sorted(wrong))


def test_the_package_root_is_only_its_face() -> None:
    loose = sorted(
        p.name
        for p in PACKAGE.iterdir()
        if p.is_file() and p.suffix == ".py" and p.name not in ("__init__.py", "__main__.py")
    )
    assert not loose, f"modules at the package root (move them into a folder): {loose}"
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(ALLOWED), f"folders without a place in the import rules: {folders - set(ALLOWED)}"


def _first_docstring_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


@pytest.mark.parametrize("top", ["exporter", "grafana"])
def test_long_modules_say_why(top: str) -> None:
    long_without_reason = []
    for path in sorted((REPO / top).rglob("*.py")):
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines <= MAX_LINES:
            continue
        first = _first_docstring_line(path).lower()
        if "because" not in first or "long" not in first:
            long_without_reason.append(f"{path.relative_to(REPO)} ({lines} lines): {first!r}")
    assert not long_without_reason, (
        f"modules over {MAX_LINES} lines need a first docstring line saying why they are long "
        "(e.g. 'Long because ...'), or a split:\n" + "\n".join(long_without_reason)
    )
