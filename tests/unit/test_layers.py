"""The layering of `src/drum`: imports point down (cli -> servers -> serving -> model | observability ->
config -> errors/streams), the two backends never import each other, and no module imports itself back
through others. Every import counts, also those inside functions and under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "drum"
#: The layer of each part of the package; a module may import only its own part or lower layers.
LAYERS = {"cli": 6, "servers": 5, "serving": 4, "model": 3, "observability": 3, "config": 2, "base": 1}
#: The package's face and `python -m drum`: they may import anything.
EXEMPT = {"drum", "drum.__main__"}


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of the `drum` package under `src`, by dotted name."""
    found = {}
    for path in (src / "drum").rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(known: dict[str, Path]) -> set[tuple[str, str]]:
    """(importer, imported) for every import of a drum module (a `from a import b` of a module b counts as b)."""
    edges = set()
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known] or [base]
            for target in targets:
                while target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in known and target != name and target.startswith("drum"):
                    edges.add((name, target))
    return edges


def part(name: str, package: Path = PACKAGE) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (package / parts[1]).is_dir()) else "base"


def backend(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "servers" else None


def upward_imports(src: Path = SRC) -> list[str]:
    def rank(name: str) -> tuple[int, str]:
        where = part(name, src / "drum")
        return LAYERS[where], where

    return [
        f"{a} ({rank(a)[1]}) imports {b} ({rank(b)[1]})"
        for a, b in sorted(imports(modules(src)))
        if a not in EXEMPT and b not in EXEMPT
        and (rank(b)[0] > rank(a)[0] or (rank(b)[0] == rank(a)[0] and rank(a)[1] != rank(b)[1]))
    ]


def cycles(src: Path = SRC) -> list[list[str]]:
    known = modules(src)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for a, b in imports(known):
        if a not in EXEMPT and b not in EXEMPT:
            graph[a].add(b)
    return [sorted(component) for component in strongly_connected(graph) if len(component) > 1]


def test_imports_point_down_the_layers():
    assert upward_imports() == []


def test_the_backends_never_import_each_other():
    crossing = [
        f"{a} imports {b}"
        for a, b in sorted(imports(modules()))
        if backend(b) is not None and backend(a) != backend(b)
        and not a.startswith("drum.cli.")  # the command line chooses a backend
    ]
    assert crossing == []


def test_no_import_cycle():
    assert cycles() == []


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def test_the_checks_see_an_upward_import_and_a_cycle(tmp_path):
    """The checks themselves, on a fake package with `serving -> cli` and `model.a <-> model.b`."""
    fake = tmp_path / "drum"
    for folder in ("cli", "serving", "model"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "cli" / "main.py").write_text("")
    (fake / "serving" / "up.py").write_text("from drum.cli.main import x\n")
    (fake / "model" / "a.py").write_text("def f():\n    from drum.model import b\n")
    (fake / "model" / "b.py").write_text("from . import a\n")
    assert upward_imports(tmp_path) == ["drum.serving.up (serving) imports drum.cli.main (cli)"]
    assert cycles(tmp_path) == [["drum.model.a", "drum.model.b"]]
