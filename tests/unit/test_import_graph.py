"""The broker's modules import each other without a cycle.

A cycle is what import-time registration used to create (subsystems appended themselves to a
list in embedded.py, which imports the core, which loads the handlers, which import the
subsystems). kafkito.broker.assembly now builds the core and attaches each subsystem
explicitly; this test keeps it so. An import inside a function is an edge too (it runs when
the function does); one under `if TYPE_CHECKING:` is not. The handler modules are imported by
name through importlib (dispatch.load_handlers), which this static graph does not see: they
import dispatch, and dispatch finds them by scanning their package.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGES = ("kafkito.broker", "kafkito.storage", "kafkito.protocol", "kafkito.errors")
CYCLE_FREE = ("kafkito.broker", "kafkito.protocol", "kafkito.errors")
"""Where no cycle is allowed. storage/ is left out: its cleaner imports its child-process
runner lazily, which imports the cleaner (a deliberate, function-level pair); the layering
test below keeps storage from importing the broker, so no cycle can pass through it."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Modules this module imports, at its top or in a function; relative imports resolved."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import):
                found.update(alias.name for alias in sub.names)
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - sub.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in sub.names)
    return found


def graph() -> dict[str, set[str]]:
    modules: dict[str, tuple[ast.Module, bool]] = {}
    for path in (SRC / "kafkito").rglob("*.py"):
        name = module_name(path)
        if name.startswith(PACKAGES):
            modules[name] = (ast.parse(path.read_text()), path.name == "__init__.py")
    edges: dict[str, set[str]] = {}
    for name, (tree, is_package) in modules.items():
        edges[name] = {m for m in imports(tree, name, is_package) if m in modules and m != name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_graph_sees_known_edges() -> None:
    edges = graph()
    assert "kafkito.broker.core" in edges["kafkito.broker.assembly"]
    assert "kafkito.broker.dispatch" in edges["kafkito.broker.core"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_broker_has_no_import_cycle() -> None:
    edges = graph()
    inside = {
        name: {m for m in targets if m.startswith(CYCLE_FREE)}
        for name, targets in edges.items()
        if name.startswith(CYCLE_FREE)
    }
    cycle = find_cycle(inside)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_storage_and_protocol_do_not_import_the_broker() -> None:
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in graph().items()
        if name.startswith(("kafkito.storage", "kafkito.protocol"))
        for target in targets
        if target.startswith("kafkito.broker")
    )
    assert not upward, f"imports up into the broker: {upward}"
