"""The shape of the package (docs/contributing/layout): the rules that keep
each room findable, checked on every run so that they do not erode.

- no import circle, except Django's own ``models -> backends.db`` (the lazy
  import of ``Session.get_session_store_class``);
- no module over 500 lines, except the database store;
- ``policy.py`` is pure: it imports nothing of the package but the settings;
- nothing imports helpers from ``middleware.py`` (the installation check
  names its class).
"""

from __future__ import annotations

import ast
from pathlib import Path

import django_sessionkit

PACKAGE = Path(django_sessionkit.__file__).parent
NAME = PACKAGE.name
ALLOWED_EDGES = {(f"{NAME}.models", f"{NAME}.backends.db")}
MAX_LINES = 500
LONG_MODULES = {f"{NAME}.backends.db"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts
    }


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for imported in names:
            parts = imported.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts and ".".join(parts) != name:
                found.add(".".join(parts))
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, set(known)) for name, path in known.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle() -> None:
    edges = {
        source: {target for target in targets if (source, target) not in ALLOWED_EDGES}
        for source, targets in graph().items()
    }
    assert circles(edges) == []


def test_allowed_edge_is_the_only_one_that_closes_a_circle() -> None:
    # The allowance is needed (else the test above proves nothing about it).
    assert circles(graph()) != []


def test_no_oversized_module() -> None:
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in modules().items()
        if name not in LONG_MODULES
    }
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}


def test_policy_is_pure() -> None:
    assert graph()[f"{NAME}.policy"] <= {f"{NAME}.conf"}


def test_nothing_imports_from_the_middleware() -> None:
    importers = {
        source for source, targets in graph().items() if f"{NAME}.middleware" in targets
    }
    # The installation check names the class, to find it in MIDDLEWARE.
    assert importers == {f"{NAME}.checks.installation"}
