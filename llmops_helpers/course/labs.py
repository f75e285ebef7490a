"""Course tooling: solutions are the one source of truth; labs are generated from them.

- In a solution's code cell, lines between ``### BEGIN SOLUTION <name>`` and ``### END SOLUTION`` are the
  reference answer to exercise ``<name>``. The lab gets a TODO stub in their place that can load that answer
  (for a stuck learner, and for CI) with :func:`load_reference_answer`.
- Cells tagged ``solution-only`` (typically markdown that discusses the answer) are dropped from the lab.
- Committed notebooks carry no outputs, and their first code cell is tagged ``parameters``.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_helpers.errors import NotebookError
from llmops_helpers.paths import kit_root

BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN SOLUTION(?:\s+(?P<name>[\w.-]+))?\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
SOLUTION_ONLY_TAG = "solution-only"
PARAMETERS_TAG = "parameters"
REQUIRED_PARAMETERS = ("provider", "sample_size", "output_dir")
NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
KEEP_METADATA = ("kernelspec", "language_info", "llmops")


@dataclass
class SolutionBlock:
    name: str
    cell_index: int
    code: str


def _stub(notebook: str, name: str, indent: str) -> list[str]:
    lines = [
        f"# TODO (exercise '{name}'): write your code here, replacing this comment.",
        "# Stuck? Set use_reference_answers = True in the parameters cell and re-run, or run",
        f"# load_reference_answer({notebook!r}, {name!r}) in a new cell, to continue with the reference answer.",
        "if use_reference_answers:",
        f"    load_reference_answer({notebook!r}, {name!r})",
    ]
    return [indent + line for line in lines]


def solution_blocks(nb: Any, notebook: str) -> list[SolutionBlock]:
    """Every ``### BEGIN/END SOLUTION`` block in ``nb``, checked for pairing, names and indentation."""
    blocks: list[SolutionBlock] = []
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        current: list[str] | None = None
        name = ""
        for line_no, line in enumerate(cell.source.splitlines(), start=1):
            where = f"{notebook}, cell {index + 1}, line {line_no}"
            begin, end = BEGIN.match(line), END.match(line)
            if begin:
                if current is not None:
                    raise NotebookError(
                        f"{where}: BEGIN SOLUTION inside another block; close the first with ### END SOLUTION."
                    )
                if begin.group("indent"):
                    raise NotebookError(
                        f"{where}: solution blocks must start at the left margin (top-level code), so the "
                        "reference answer can be loaded into the notebook's namespace. Move the block out of the "
                        "function or loop."
                    )
                name = begin.group("name") or f"exercise{len(blocks) + 1}"
                if name in seen:
                    raise NotebookError(f"{where}: exercise name {name!r} is used twice; give each block its own name.")
                seen.add(name)
                current = []
            elif end:
                if current is None:
                    raise NotebookError(f"{where}: END SOLUTION without a matching BEGIN SOLUTION.")
                blocks.append(SolutionBlock(name, index, "\n".join(current)))
                current = None
            elif current is not None:
                current.append(line)
        if current is not None:
            raise NotebookError(
                f"{notebook}, cell {index + 1}: BEGIN SOLUTION {name!r} is never closed with ### END SOLUTION."
            )
    return blocks


def _strip_solutions(source: str, notebook: str) -> str:
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        begin = BEGIN.match(line)
        if begin:
            inside = True
            out.extend(_stub(notebook, begin.group("name") or "", begin.group("indent")))
        elif END.match(line):
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _name_unnamed_blocks(source: str, counter: list[int]) -> str:
    lines = []
    for line in source.splitlines():
        m = BEGIN.match(line)
        if m:
            counter[0] += 1
            if not m.group("name"):
                line = f"{m.group('indent')}### BEGIN SOLUTION exercise{counter[0]}"
        lines.append(line)
    return "\n".join(lines)


def clean_notebook(nb: Any) -> Any:
    """A copy without outputs, execution counts or volatile metadata."""
    import nbformat

    nb = copy.deepcopy(nb)
    nb.metadata = nbformat.from_dict({k: nb.metadata[k] for k in KEEP_METADATA if k in nb.metadata})
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        tags = cell.metadata.get("tags")
        cell.metadata = nbformat.from_dict({"tags": tags} if tags else {})
    return nb


def make_lab(solution: Any, notebook: str) -> Any:
    """The learner's version of a solution notebook."""
    solution_blocks(solution, notebook)  # validate first, with a clear error
    lab = clean_notebook(solution)
    # Any edit of the solution (even inside a solution block) changes the lab, so --check catches it.
    digest = hashlib.sha256(render(lab).encode()).hexdigest()[:16]
    lab.metadata["llmops"] = {"generated_from": f"solutions/{notebook}.ipynb", "solution_digest": digest,
                              "note": "Generated by `llmops build-labs`; edit the solution, not this file."}
    counter = [0]
    cells = []
    for cell in lab.cells:
        if SOLUTION_ONLY_TAG in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.source = _strip_solutions(_name_unnamed_blocks(cell.source, counter), notebook)
        cell.id = hashlib.sha1(f"lab:{notebook}:{cell.get('id', len(cells))}".encode()).hexdigest()[:8]
        cells.append(cell)
    lab.cells = cells
    return lab


def render(nb: Any) -> str:
    """Canonical text of a notebook (what gets written and compared)."""
    import nbformat

    return nbformat.writes(nb) + "\n"


def read(path: Path) -> Any:
    """Read a notebook (nbformat 4), with an error that names the file."""
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:  # malformed JSON or schema
        raise NotebookError(f"{path}: cannot be read as a notebook ({exc}). Is it valid .ipynb JSON?") from exc


def build_labs(solutions_dir: Path | None = None, labs_dir: Path | None = None, *, check: bool = False) -> list[str]:
    """Generate ``labs/NN_slug.ipynb`` from ``solutions/NN_slug.ipynb``.

    Returns the names of notebooks that were (or, with ``check=True``, would be) written or removed.
    With ``check=True`` nothing is written.
    """
    root = kit_root()
    solutions_dir = solutions_dir or root / "solutions"
    labs_dir = labs_dir or root / "labs"
    changed: list[str] = []
    expected = set()
    for path in sorted(solutions_dir.glob("*.ipynb")):
        expected.add(path.name)
        text = render(make_lab(read(path), path.stem))
        target = labs_dir / path.name
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            changed.append(path.name)
            if not check:
                labs_dir.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    for stray in sorted(labs_dir.glob("*.ipynb")):
        if stray.name not in expected:
            changed.append(f"{stray.name} (no solution; remove it)")
            if not check:
                stray.unlink()
    return changed


def lint_notebook(path: Path) -> list[str]:
    """Problems that keep a committed notebook from being clean and parameterised (all of them, not the first)."""
    nb = read(path)
    problems = []
    if not NOTEBOOK_NAME.match(path.name):
        problems.append(f"{path.name}: name it NN_slug.ipynb (two digits, lower-case slug)")
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            problems.append(f"{path}: cell {index} has outputs or an execution count; run `llmops clean-notebooks`")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or PARAMETERS_TAG not in code[0].metadata.get("tags", []):
        problems.append(f"{path}: the first code cell must be tagged 'parameters'")
    else:
        missing = [p for p in REQUIRED_PARAMETERS if not re.search(rf"^{p}\s*=", code[0].source, re.M)]
        if missing:
            problems.append(f"{path}: the parameters cell does not set {', '.join(missing)}")
    return problems


def clean_notebooks(paths: Iterable[Path]) -> list[Path]:
    """Strip outputs and volatile metadata in place; returns the files that changed."""
    changed = []
    for path in paths:
        before = path.read_text(encoding="utf-8")
        after = render(clean_notebook(read(path)))
        if after != before:
            path.write_text(after, encoding="utf-8")
            changed.append(path)
    return changed


def reference_code(notebook: str, name: str, solutions_dir: Path | None = None) -> str:
    """The reference answer to exercise ``name`` of ``solutions/<notebook>.ipynb``."""
    path = (solutions_dir or kit_root() / "solutions") / f"{notebook}.ipynb"
    if not path.is_file():
        raise NotebookError(f"No solution notebook at {path}; is the kit's solutions/ folder present?")
    for block in solution_blocks(read(path), notebook):
        if block.name == name:
            return block.code
    raise NotebookError(f"{path} has no exercise named {name!r}.")


def load_reference_answer(notebook: str, name: str, namespace: dict | None = None) -> None:
    """Run the reference answer in the notebook's namespace so a stuck learner (or CI) can carry on."""
    if namespace is None:
        try:
            from IPython import get_ipython

            shell = get_ipython()
            namespace = shell.user_ns if shell is not None else None
        except ImportError:
            namespace = None
    if namespace is None:
        import inspect

        namespace = inspect.currentframe().f_back.f_globals  # type: ignore[union-attr]
    code = reference_code(notebook, name)
    print(f"Loaded the reference answer for exercise '{name}'.")
    exec(compile(code, f"<reference answer {notebook}:{name}>", "exec"), namespace)
