"""The import graph keeps the boxes of ARCHITECTURE.md: `stack` -> services -> `apps` ->
`protocol`, services never import each other, nothing imports `stack`, and no package circle.
Inside the indexer's API, no route module imports another route module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = "protocol"
APPS = "apps"
STACK = "stack"
SERVICES = ("device_bridge", "oracle", "indexer", "rewards", "triggers")
BOXES = (PROTOCOL, APPS, *SERVICES, STACK)


def _box(module: str) -> str | None:
    top = module.split(".", 1)[0]
    return top if top in BOXES else None


def _imports(path: Path, module: str, *, names: bool = False) -> Iterator[tuple[str, int]]:
    """Every module `path` imports, absolute, with its line; also those under TYPE_CHECKING
    (a type-only import still ties the boxes together). With `names`, `from a import b` also
    yields `a.b` (b may be a module)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno
            if names:
                for alias in node.names:
                    yield f"{target}.{alias.name}", node.lineno


def _edges() -> list[tuple[str, str, str]]:
    """(importing box, imported box, where) for each import that crosses from one box to
    another."""
    edges = []
    for box in BOXES:
        for path in sorted((ROOT / box).rglob("*.py")):
            rel = path.relative_to(ROOT)
            module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            for target, line in _imports(path, module):
                other = _box(target)
                if other is not None and other != box:
                    edges.append((box, other, f"{rel}:{line} imports {target}"))
    return edges


EDGES = _edges()

# Which boxes each box may import.
ALLOWED: dict[str, set[str]] = {
    PROTOCOL: set(),
    APPS: {PROTOCOL},
    **{service: {PROTOCOL, APPS} for service in SERVICES},
    STACK: {PROTOCOL, APPS, *SERVICES},
}


@pytest.mark.parametrize("box", BOXES)
def test_each_box_imports_only_the_boxes_below_it(box: str) -> None:
    wrong = [where for src, dst, where in EDGES if src == box and dst not in ALLOWED[box]]
    assert wrong == []


def test_nothing_imports_stack() -> None:
    assert [where for _, dst, where in EDGES if dst == STACK] == []


def test_the_boxes_form_no_circle() -> None:
    graph: dict[str, set[str]] = {box: set() for box in BOXES}
    for src, dst, _ in EDGES:
        graph[src].add(dst)
    done: set[str] = set()

    def visit(box: str, path: tuple[str, ...]) -> None:
        assert box not in path, f"import circle: {' -> '.join((*path, box))}"
        if box in done:
            return
        for dst in sorted(graph[box]):
            visit(dst, (*path, box))
        done.add(box)

    for box in BOXES:
        visit(box, ())


def test_the_scan_sees_the_imports_it_checks() -> None:
    """The scan finds the edges the platform is built on (a scan that saw nothing would pass
    every check above)."""
    pairs = {(src, dst) for src, dst, _ in EDGES}
    assert {("indexer", APPS), ("oracle", PROTOCOL), (STACK, "device_bridge")} <= pairs


ROUTES = "indexer.api.routes"


def _route_imports(path: Path) -> list[str]:
    """The route modules `path` imports (`from indexer.api.routes import x` included)."""
    rel = path.relative_to(ROOT)
    module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
    found = {
        (line, ".".join(target.split(".")[:4]))
        for target, line in _imports(path, module, names=True)
        if target.startswith(ROUTES + ".")
    }
    return [f"{rel}:{line} imports {target}" for line, target in sorted(found) if target != module]


ROUTE_MODULES = sorted(
    p for p in (ROOT / "indexer" / "api" / "routes").glob("*.py") if p.name != "__init__.py"
)


@pytest.mark.parametrize("path", ROUTE_MODULES, ids=lambda p: p.stem)
def test_no_route_module_imports_another_route_module(path: Path) -> None:
    """Route modules share only `deps`, `access`, `models`, `params`, `problems` and the
    domain, as in full-stack-fastapi-template."""
    assert _route_imports(path) == []


def test_the_route_scan_sees_route_imports() -> None:
    """The app imports its route modules, and the scan finds those imports (a scan that saw
    nothing would pass the check above)."""
    assert len(ROUTE_MODULES) >= 10
    seen = _route_imports(ROOT / "indexer" / "api" / "main.py")
    assert any(w.endswith(f"imports {ROUTES}.telemetry") for w in seen)
    assert any(w.endswith(f"imports {ROUTES}.apps_energy") for w in seen)
