"""Every import points down: `grounding_gym` names no `agents` module (not even in a string),
and neither package has an import cycle between its modules or between its folders (a cycle is
what an import running back up a layer makes)."""

from __future__ import annotations

import ast
import graphlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("grounding_gym", "agents")
AGENTS_NAME = re.compile(r"\bagents[.:][a-z_]|\bimport agents\b|\bfrom agents\b")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def imported(path: Path, package: str, known: set[str]) -> set[str]:
    """Modules of `package` that `path` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] == package and name in known:
                found.add(name)
    return found


def node_of(name: str, known: dict[str, Path], depth: int) -> str:
    """The folder (`depth` names deep) holding module `name`, or the module itself when it lies
    directly in a shallower folder."""
    parts = name.split(".")
    folder = ".".join(parts[:depth])
    if len(parts) > depth or known[folder].name == "__init__.py" and len(parts) == depth:
        return folder
    return name


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("depth", [0, 2, 3], ids=["modules", "folders", "subfolders"])
def test_no_import_cycles(package, depth):
    known = modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        if path.name == "__init__.py":
            continue  # a package's face hands names on; its own imports are its modules'
        src = name if depth == 0 else node_of(name, known, depth)
        for target in imported(path, package, set(known)):
            dst = target if depth == 0 else node_of(target, known, depth)
            face = known[dst].name == "__init__.py"  # modules: a face is no node of its own
            if dst != src and (depth or not face):
                graph.setdefault(src, set()).add(dst)
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"{package}: import cycle (an import runs back up): {' -> '.join(err.args[1])}")


def test_grounding_gym_names_no_agents_module():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "grounding_gym").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if AGENTS_NAME.search(line)
    ]
    assert not offenders, "grounding_gym names agents:\n" + "\n".join(offenders)
