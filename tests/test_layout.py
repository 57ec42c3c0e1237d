"""The package's house rules, read from the source: every import of `modeling/` (lazy ones inside
functions included) follows the floors below, nothing imports in a circle, and no function is long."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "modeling"
# floor of each room: a module may import modules on its own floor or below, never above
FLOORS = {
    0: ("labels", "system", "run_folder", "metrics", "images", "processing", "degradations", "config", "extras",
        "provenance"),
    1: ("calibration", "augment", "model"),
    2: ("data",),
    3: ("inference",),
    4: ("evaluation",),
    5: ("release",),
    6: ("app",),
    7: ("training",),
}
FACES = ("modeling", "modeling.predictor")  # the package and the `modeling.predictor` alias re-export from above
NEVER = {  # importer prefix -> imported prefixes it must not reach, even on a floor that would allow it
    "modeling.release": ("modeling.evaluation", "modeling.training", "modeling.config", "modeling.data.demo"),
    "modeling.inference": ("modeling.evaluation", "modeling.training"),
}
MAX_FUNCTION_LINES = 50


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str) -> set[str]:
    """The modules of this package that `name` imports anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from modeling import calibration` imports the module modeling.calibration, not the package
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            targets = [t if t in MODULES else node.module for t in submodules]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def floor(name: str) -> int | None:
    room = name.split(".")[1] if "." in name else None
    return next((level for level, rooms in FLOORS.items() if room in rooms), None)


GRAPH = {name: imported_modules(name) for name in MODULES}


def test_every_module_has_a_floor() -> None:
    assert [n for n in MODULES if n not in FACES and floor(n) is None] == []


def test_no_import_runs_upward() -> None:
    upward = [f"{a} (floor {floor(a)}) -> {b} (floor {floor(b)})" for a in GRAPH if a not in FACES
              for b in sorted(GRAPH[a]) if b in FACES or floor(b) > floor(a)]
    assert upward == []


def test_forbidden_arrows() -> None:
    broken = [f"{a} -> {b}" for a in GRAPH for b in sorted(GRAPH[a]) for src, banned in NEVER.items()
              if a.startswith(src) and b.startswith(banned)]
    assert broken == []


def test_the_library_never_imports_the_lab() -> None:
    """benchmarks/ and scripts/ stand beside the package and are not in the wheel: nothing in it may import them."""
    lab = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            else:
                continue
            lab += [f"{name} -> {t}" for t in targets if t.split(".")[0] in ("benchmarks", "scripts")]
    assert lab == []


def test_no_import_circle() -> None:
    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(GRAPH[start])
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(GRAPH[node])
        return False

    circles = sorted({tuple(sorted((a, b))) for a in GRAPH for b in GRAPH[a] if reaches(b, a)})
    assert circles == []


LAB = {str(p.relative_to(PACKAGE.parent)): p for folder in ("benchmarks", "scripts")
       for p in sorted((PACKAGE.parent / folder).rglob("*.py"))}


@pytest.mark.parametrize("name", sorted(MODULES) + sorted(LAB))
def test_no_function_is_long(name: str) -> None:
    """In the package and in the lab beside it (benchmarks/, scripts/)."""
    tree = ast.parse((MODULES.get(name) or LAB[name]).read_text())
    long = [f"{node.name}: {node.end_lineno - node.lineno + 1} lines" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_the_walker_sees_lazy_and_from_imports() -> None:
    """The rules above are only as good as the import reader: check it on modules known to import."""
    assert "modeling.inference.predictor" in GRAPH["modeling"]  # lazy, inside __getattr__
    assert "modeling.calibration" in GRAPH["modeling.evaluation.evaluate"]  # `from modeling import calibration`
    assert "modeling.metrics" in GRAPH["modeling.labels"] or "modeling.labels" in GRAPH["modeling.metrics"]


def test_the_architecture_page_names_every_module() -> None:
    """docs/architecture.md has a line for each module of the package."""
    layout = (PACKAGE.parent / "docs" / "architecture.md").read_text().split("## The package", 1)[1]
    missing = [name for name, path in MODULES.items() if path.name != "__init__.py"
               and f"`{path.relative_to(PACKAGE).as_posix()}`" not in layout]
    assert missing == []
