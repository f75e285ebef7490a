"""The code mirrors the course: one subpackage per stage, and a stage imports only earlier stages.

llm ← ideate ← flow ← evaluate ← release ← responsible ← operate ← course ← cli. ``errors``, ``paths`` and
``_lazy`` are shared by all and import no stage. Imports inside functions count too: a lazy import is still a
dependency."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import ModuleType

import pytest

from llmops_helpers.paths import kit_root

PACKAGE = kit_root() / "llmops_helpers"
STAGES = ("llm", "ideate", "flow", "evaluate", "release", "responsible", "operate", "course")
SHARED = ("errors", "paths", "_lazy")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``llmops_helpers`` module ``path`` imports, at any depth of the file."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("llmops_helpers"):
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names
                             if (PACKAGE.parent / f"{module}.{a.name}".replace(".", "/")).with_suffix(".py").is_file())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("llmops_helpers"))
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _rank(module: str) -> int | None:
    """The stage's place in the course (-1 shared, len(STAGES) the CLI); None for the package itself."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    if parts[1] in SHARED:
        return -1
    if parts[1] == "cli":
        return len(STAGES)
    return STAGES.index(parts[1])


def test_every_module_lives_in_a_stage_or_is_shared():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.stem not in (*SHARED, "cli", "__init__")]
    assert not loose, f"modules outside a stage: {loose}; put each in the stage of the course it serves"
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()) == sorted(STAGES)


def test_no_stage_imports_a_later_stage():
    upward = [f"{module} (stage {_rank(module)}) imports {target} (stage {_rank(target)})"
              for module, targets in _graph().items() if _rank(module) is not None
              for target in targets if _rank(target) is not None and _rank(target) > _rank(module)]
    assert not upward, "\n".join(upward)


def test_the_shared_modules_import_no_stage():
    graph = _graph()
    assert all(_rank(t) == -1 for m in graph if _rank(m) == -1 for t in graph[m]), graph


def test_there_is_no_import_cycle():
    full = _graph()
    # the package's own __init__ runs before any submodule, so an import of it is not an edge
    graph = {m: {t for t in targets if t in full and t != "llmops_helpers"} for m, targets in full.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_notebooks_import_one_place_per_stage():
    """``from llmops_helpers.evaluate import ...``, never a stage's inner module: the stage is the lab's API."""
    deep = []
    for notebook in sorted((kit_root() / "solutions").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            for line in "".join(cell["source"]).splitlines():
                words = line.split()
                if cell["cell_type"] == "code" and words[:1] == ["from"] and words[1].startswith("llmops_helpers."):
                    if words[1].count(".") > 1 or words[1].split(".")[1] not in (*STAGES, "cli"):
                        deep.append(f"{notebook.name}: {line.strip()}")
    assert not deep, "\n".join(deep)


def test_each_stage_offers_the_public_names_of_its_modules():
    """A stage's names are every public name its modules define (read from their source), each importable."""
    import importlib

    for stage in STAGES:
        package = importlib.import_module(f"llmops_helpers.{stage}")
        modules = {p.stem for p in (PACKAGE / stage).glob("*.py")} - {"__init__", "commands"}
        names = [n for n in dir(package) if not n.startswith("_") and not isinstance(getattr(package, n), ModuleType)]
        assert len(names) >= 4 * len(modules), (stage, names)  # each module gives some, and each one loads
    from llmops_helpers.evaluate import compare_runs
    from llmops_helpers.evaluate.compare import compare_runs as defined
    from llmops_helpers.release import deploy

    assert callable(deploy)  # the function, not a module of that name: see the next test

    assert compare_runs is defined


def test_no_stage_name_is_also_the_name_of_one_of_its_modules():
    """``from llmops_helpers.release import deploy`` must give the function. If a module were called ``deploy``
    too, the import system would bind the package's ``deploy`` to that module as soon as anything imported it,
    and a lab would get a module where it expects a function."""
    from llmops_helpers._lazy import public_names

    clashes = [f"{stage}: {name} in {path.stem}.py" for stage in STAGES for path in (PACKAGE / stage).glob("*.py")
               for name in public_names(path) if (PACKAGE / stage / f"{name}.py").is_file()]
    assert not clashes, clashes
