"""Public names that load on first use (PEP 562), so ``from llmops_helpers.evaluate import compare_runs`` imports
only the module that defines it: a stage's heavy modules (pandas, matplotlib, the openai client, promptflow) cost
nothing until a notebook or a command uses them."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

Hooks = tuple[Callable[[str], Any], Callable[[], list[str]]]


def lazy_names(package: str, exports: dict[str, str] | Callable[[], dict[str, str]]) -> Hooks:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public name ``name`` lives in the submodule
    ``exports[name]`` (relative to the package); ``exports`` may be a function that builds the table on first use."""
    namespace = importlib.import_module(package).__dict__
    table: dict[str, str] = {}

    def names() -> dict[str, str]:
        if not table:
            table.update(exports() if callable(exports) else exports)
        return table

    folder = Path(namespace["__file__"]).parent

    def __getattr__(name: str) -> Any:
        # dunders, and submodules that the import system asks for before importing them (``from .llm import
        # local``), are not names of the table: answering them never needs it built
        if name.startswith("__") or (folder / f"{name}.py").is_file() or name not in names():
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{names()[name]}"), name)
        namespace[name] = value  # the next lookup is an ordinary attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names()))

    return __getattr__, __dir__


def public_names(source: Path) -> list[str]:
    """The names a module defines at its top level (functions, classes, constants), but not private ones
    (``_x``) or its ``main``; read from the source, without importing the module."""
    found = []
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append(node.name)
        elif isinstance(node, ast.Assign):
            found += [target.id for target in node.targets if isinstance(target, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.append(node.target.id)
    return [name for name in found if not name.startswith("_") and name not in ("main", "log")]


def stage_exports(package: str, modules: tuple[str, ...]) -> Hooks:
    """``__getattr__`` and ``__dir__`` for a stage: every public name of its ``modules`` (a name defined in two
    of them comes from the first listed), indexed from their source on first use."""
    folder = Path(importlib.import_module(package).__file__).parent

    def index() -> dict[str, str]:
        table: dict[str, str] = {}
        for module in modules:
            for name in public_names(folder / f"{module}.py"):
                table.setdefault(name, module)
        return table

    return lazy_names(package, index)
