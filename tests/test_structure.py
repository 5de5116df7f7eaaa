"""The package is layered: no import cycle between its parts, and commands only on top.

Every module under neko/ is parsed (not imported) and each import, lazy ones inside functions
included, becomes an edge of the import graph. Command modules (the typer CLIs, the demo command and
the server) sit above everything; of the rest, a module in a subpackage (`neko/data/...`) stands for
that subpackage (`neko.data`) and a top-level module (`neko/tasks.py`) for itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "neko"
COMMAND_NAMES = ("cli", "demo", "serve", "server")
"""A module named so, or any module of a package named so, is a command module."""
BOTTOM = ("neko.moe", "neko.data")
ABOVE_BOTTOM = ("neko.train", "neko.correct", "neko.evaluate")
LAYERS = (
    (
        "neko.errors",
        "neko.tasks",
        "neko.resources",
        "neko.io",
        "neko.schema",
        "neko.cli_support",
        "neko.progress",
        "neko.precision",
    ),
    BOTTOM,
    ("neko.evaluate", "neko"),
    ("neko.correct", "neko.train"),
    ("commands",),
)
"""Bottom first (the README's Layout): a part imports only parts of its own layer or layers below."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_command(module: str) -> bool:
    return any(part in COMMAND_NAMES for part in module.split(".")[1:])


def node(module: str) -> str:
    """The part of the package a module stands for in the package-level graph."""
    if is_command(module):
        return "commands"
    parts = module.split(".")
    is_package = MODULES[module].name == "__init__.py"
    if len(parts) >= 3 or (len(parts) == 2 and is_package):
        return ".".join(parts[:2])
    return module


def resolve(imported: str) -> str | None:
    """The neko module that `imported` names (a module, or a package whose attribute it is)."""
    name = imported
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> Iterator[tuple[str, str, int]]:
    """(imported neko module, imported name or "", line) of every import in `module`."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for statement in ast.walk(tree):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                target = resolve(alias.name)
                if target is not None:
                    yield target, "", statement.lineno
        elif isinstance(statement, ast.ImportFrom):
            base = statement.module or ""
            if statement.level:
                anchor = package.split(".")[: len(package.split(".")) - statement.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in statement.names:
                target = resolve(f"{base}.{alias.name}")
                if target is not None:
                    name = "" if target == f"{base}.{alias.name}" else alias.name
                    yield target, name, statement.lineno


EDGES = [
    (module, target, name, line)
    for module in MODULES
    for target, name, line in imports(module)
    if target != module
]


def where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path of nodes (first == last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(current: str) -> list[str] | None:
        state[current] = "open"
        stack.append(current)
        for successor in sorted(graph.get(current, ())):
            if state.get(successor) == "open":
                return [*stack[stack.index(successor) :], successor]
            if successor not in state:
                found = visit(successor)
                if found:
                    return found
        stack.pop()
        state[current] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def package_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    graph: dict[str, set[str]] = {}
    example: dict[tuple[str, str], str] = {}
    for module, target, _, line in EDGES:
        source, destination = node(module), node(target)
        if source != destination:
            graph.setdefault(source, set()).add(destination)
            example.setdefault((source, destination), where(module, line))
    return graph, example


def test_the_parser_sees_the_package():
    assert {"neko", "neko.tasks", "neko.data.schema", "neko.cli", "neko.data.builders.cli"} <= set(MODULES)
    assert node("neko.data.builders.tec") == "neko.data" and node("neko.data") == "neko.data"
    assert node("neko.tasks") == "neko.tasks" and node("neko.data.cli") == "commands"
    assert ("neko.evaluate.metrics", "neko.data.schema") in {(m, t) for m, t, _, _ in EDGES}


def test_cycles_are_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}}) is None


def test_no_import_cycle_between_parts_of_the_package():
    graph, example = package_graph()
    cycle = find_cycle(graph)
    if cycle:
        steps = [f"{a} -> {b} ({example[a, b]})" for a, b in pairwise(cycle)]
        pytest.fail("import cycle: " + "; ".join(steps))


def test_no_import_cycle_between_modules():
    graph: dict[str, set[str]] = {}
    for module, target, _, _ in EDGES:
        graph.setdefault(module, set()).add(target)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_only_commands_import_commands():
    offenders = [
        f"{where(module, line)} imports {target}"
        for module, target, _, line in EDGES
        if is_command(target) and not is_command(module)
    ]
    assert offenders == []


def test_the_bottom_layer_imports_nothing_above_it():
    offenders = [
        f"{where(module, line)} imports {target}"
        for module, target, _, line in EDGES
        if node(module) in BOTTOM and node(target) in (*ABOVE_BOTTOM, "commands")
    ]
    assert offenders == []


def test_no_module_imports_another_modules_private_names():
    offenders = [
        f"{where(module, line)} imports {target}.{name}"
        for module, target, name, line in EDGES
        if name.startswith("_") and not name.startswith("__")
    ]
    assert offenders == []


def test_every_part_imports_only_its_layer_or_below():
    rank = {part: level for level, parts in enumerate(LAYERS) for part in parts}
    _, example = package_graph()
    unplaced = sorted({part for edge in example for part in edge if part not in rank})
    assert unplaced == [], "add these parts of the package to LAYERS in tests/test_structure.py"
    upward = [f"{a} -> {b} ({where})" for (a, b), where in example.items() if rank[b] > rank[a]]
    assert upward == []
