"""The package's shape, checked from its source: layers only import downwards, no import cycle
(lazy imports inside functions included), no module over 400 lines. docs/architecture.md
describes the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reid"

# low -> high; a module may import its own layer or a lower one, never a higher one
LAYERS = [
    {"reid", "reid.errors", "reid.registry", "reid.protocols", "reid.atomic", "reid.configs"},
    {"reid.weighting"},
    {"reid.data"},
    {"reid.models"},
    {"reid.losses"},
    {"reid.eval"},
    {"reid.engine"},
    {"reid.studies", "reid.benchmarks"},
    {"reid.cli"},  # the command-line front ends (tools/*.py are wrappers over it)
]
MAX_LINES = 400


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every ``reid`` module ``path`` imports, at any depth of the file (lazy imports count)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            # the longest known module that prefixes the target (``reid.data.build.X`` -> ``reid.data.build``)
            parts = target.split(".")
            for n in range(len(parts), 0, -1):
                cand = ".".join(parts[:n])
                if cand in known and cand != name:
                    out.add(cand)
                    break
    return {m for m in out if m == "reid" or m.startswith("reid.")}


def _layer(module: str) -> int:
    best, depth = None, -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = i, len(prefix)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS and docs/architecture.md"
    return best


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def test_no_import_from_a_lower_layer_to_a_higher_one(graph):
    bad = [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
           for a, deps in graph.items() for b in sorted(deps)
           if b != "reid" and _layer(b) > _layer(a)]
    assert not bad, "\n".join(bad)


def test_no_import_cycle(graph):
    # package __init__ files re-export their children; an edge parent -> child is not a cycle
    def edges(a):
        return {b for b in graph[a] if not b.startswith(a + ".") and b != "reid"}

    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(a: str) -> None:
        state[a] = 1
        stack.append(a)
        for b in sorted(edges(a)):
            if state.get(b) == 1:
                cycles.append(" -> ".join(stack[stack.index(b):] + [b]))
            elif b not in state:
                visit(b)
        stack.pop()
        state[a] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "\n".join(cycles)


def test_no_module_over_the_size_limit():
    big = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    over = {k: v for k, v in big.items() if v > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("from .heads import BNNeck\n\ndef f():\n    from reid.data.build import build_data\n")
    known = {"reid.models.heads", "reid.data.build", "reid.data", "reid.models.video_model"}
    assert _imports("reid.models.video_model", source, known) == {"reid.models.heads", "reid.data.build"}
    package = tmp_path / "__init__.py"
    package.write_text("from .video_model import VideoReIDModel\n")
    assert _imports("reid.models", package, known) == {"reid.models.video_model"}
