"""The house's arrows, read from the source (ast, nothing imported): no import cycles between
modules, the ground floor imports no domain, no domain imports the entry points, and the core
never imports Slicer or its GUI toolkits.  CONTRIBUTING.md states the same rules for people."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "NACResponse" / "NACResponseLib"
PACKAGE = "NACResponseLib"

ENTRY = {"cli", "commands", "demo"}
# reporting reads every other domain (the per-case report); it is a domain all the same
DOMAINS = {"study", "readers", "radiomics", "segmentation", "deep", "mc", "modelling", "reporting"}
GROUND = {"runner", "errors", "atomic", "filelock", "provenance", "progress", "geometry", "imageio", "imageheaders",
          "paths", "columns", "stage", "resources"}
FORBIDDEN_TOP = {"slicer", "vtk", "qt", "ctk", "NACResponseSlicerLib", "PythonQt", "mrml", "vtkmodules"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(LIB.rglob("*.py"))}


MODULES = _modules()


def _resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Absolute names a statement imports (a ``from X import name`` of a submodule names the submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        out.append(sub if sub in MODULES else target)
    return out


def _imports() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.update(_resolve(name, path.name == "__init__.py", node))
        graph[name] = found
    return graph


GRAPH = _imports()


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _internal(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Module -> the project modules it imports; a module importing its own package's
    ``__init__`` (the package re-exports it) is not an edge of its own."""
    out = {}
    for m, targets in graph.items():
        out[m] = {t for t in targets if t in MODULES and t != m and not m.startswith(t + ".")}
    return out


def test_the_scan_sees_the_house():
    assert len(MODULES) > 80 and "NACResponseLib.columns" in MODULES and "NACResponseLib.mc.cohort" in MODULES
    assert "NACResponseLib.stage" in GRAPH["NACResponseLib.mc.cohort"]  # lazy and top-level imports both count
    assert "NACResponseLib.runner" in GRAPH["NACResponseLib.mc.cohort"]
    rooms = {_room(m) for m in MODULES} - {""}
    assert rooms == ENTRY | DOMAINS | (GROUND - {"resources"}), rooms - (ENTRY | DOMAINS | GROUND)


def test_no_import_cycles():
    graph = _internal(GRAPH)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("room,forbidden", [("ground", DOMAINS | ENTRY), ("domain", ENTRY)])
def test_arrows_point_down(room, forbidden):
    rooms = GROUND if room == "ground" else DOMAINS
    bad = []
    for m, targets in _internal(GRAPH).items():
        if _room(m) in rooms or (room == "ground" and m == PACKAGE):
            bad += [f"{m} imports {t}" for t in sorted(targets) if _room(t) in forbidden]
    assert not bad, "\n".join(bad)


def test_core_never_imports_slicer_or_its_toolkits():
    bad = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in sorted(targets)
           if t.split(".")[0] in FORBIDDEN_TOP]
    assert not bad, "\n".join(bad)
