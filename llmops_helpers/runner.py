"""Execute notebooks headless with papermill: for CI (small samples), for an instructor's rehearsal,
and to prepare parameterised copies that nbval then runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import NotebookError
from .paths import build_dir, kit_root

#: What CI passes to every notebook (only the names a notebook declares are injected).
CI_PARAMETERS: dict[str, Any] = {"provider": "local", "sample_size": 2, "use_reference_answers": True, "ci": True}
REHEARSAL_PARAMETERS: dict[str, Any] = {"use_reference_answers": True}


@dataclass
class NotebookResult:
    notebook: str
    output: Path
    seconds: float
    ok: bool
    error: str | None = None


def declared_parameters(path: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(path)).keys())


def _parameters_for(path: Path, parameters: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    declared = declared_parameters(path)
    chosen = {k: v for k, v in parameters.items() if k in declared}
    if "output_dir" in declared:
        chosen.setdefault("output_dir", str(output_dir / f"{path.stem}_artifacts"))
    return chosen


def execute_notebook(
    path: Path, output_dir: Path, parameters: dict[str, Any] | None = None, *, timeout: int = 1800,
    progress: bool = False,
) -> NotebookResult:
    """Run ``path`` with papermill into ``output_dir``; raise :class:`NotebookError` naming the notebook,
    the cell and the error if a cell fails (the partly executed copy is still written for inspection)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / path.name
    chosen = _parameters_for(path, parameters or {}, output_dir)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(path), str(output), parameters=chosen, cwd=str(path.parent), kernel_name="python3",
            progress_bar=progress, execution_timeout=timeout, log_output=False,
        )
    except PapermillExecutionError as exc:
        raise NotebookError(
            f"{path.relative_to(kit_root()) if path.is_relative_to(kit_root()) else path}: cell "
            f"{exc.cell_index + 1} (execution {exc.exec_count}) failed with {exc.ename}: {exc.evalue.rstrip('.')}. "
            f"The executed copy with the full traceback is at {output}."
        ) from None
    return NotebookResult(path.stem, output, time.perf_counter() - started, True)


def prepare_notebook(path: Path, output_dir: Path, parameters: dict[str, Any]) -> Path:
    """Write a parameterised but unexecuted copy (papermill ``prepare_only``), for nbval to run."""
    import papermill

    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / path.name
    papermill.execute_notebook(
        str(path), str(output), parameters=_parameters_for(path, parameters, output_dir), prepare_only=True,
        kernel_name="python3", progress_bar=False,
    )
    return output


def notebooks(folder: str) -> list[Path]:
    return sorted((kit_root() / folder).glob("[0-9][0-9]_*.ipynb"))


def rehearse(
    folder: str = "labs", output_dir: Path | None = None, *, ci: bool = False, only: list[str] | None = None,
) -> list[NotebookResult]:
    """Execute every notebook of ``folder`` in order, keep going past failures, and return the results
    (the headless form of the workshop, for instructors and CI)."""
    from tqdm.auto import tqdm

    output_dir = output_dir or build_dir() / "rehearsal" / folder
    parameters = {**(CI_PARAMETERS if ci else {}), **REHEARSAL_PARAMETERS}
    results = []
    chosen = [p for p in notebooks(folder) if not only or p.stem in only or p.stem[:2] in only]
    if not chosen:
        raise NotebookError(f"No notebook in {folder}/ matches {only}; names look like 00_setup (or just 00).")
    for path in tqdm(chosen, desc=f"executing {folder}", unit="notebook", disable=None):
        started = time.perf_counter()
        try:
            results.append(execute_notebook(path, output_dir, parameters))
        except NotebookError as exc:
            elapsed = time.perf_counter() - started
            results.append(NotebookResult(path.stem, output_dir / path.name, elapsed, False, str(exc)))
    return results


def listening_sockets() -> set[tuple[str, int, int | None]]:
    """(address, port, pid) of every listening TCP socket on this machine."""
    import psutil

    return {(c.laddr.ip, c.laddr.port, c.pid) for c in psutil.net_connections(kind="tcp") if c.status == "LISTEN"}


def describe_listener(pid: int | None) -> str:
    import psutil

    try:
        return " ".join(psutil.Process(pid).cmdline())[:160] if pid else "?"
    except psutil.Error:
        return "(gone)"
