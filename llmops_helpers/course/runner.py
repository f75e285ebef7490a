"""Execute notebooks headless with papermill: for CI (small samples), for an instructor's rehearsal,
and to prepare parameterised copies that nbval then runs."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_helpers.errors import NotebookError
from llmops_helpers.paths import build_dir, kit_root

#: What CI passes to every notebook (only the names a notebook declares are injected).
CI_PARAMETERS: dict[str, Any] = {"provider": "local", "sample_size": 2, "use_reference_answers": True, "ci": True}
#: Labs whose CI run takes fewer rows than CI_PARAMETERS: one question shows their mechanics (Lab 01's four
#: prompts, Lab 02's batch runs); their comparisons are read on the full sample in class, not in CI.
CI_OVERRIDES: dict[str, dict[str, Any]] = {"01": {"sample_size": 1}, "02": {"sample_size": 1},
                                           "04": {"routing_rows": 6, "redteam_per_attack": 1}}
REHEARSAL_PARAMETERS: dict[str, Any] = {"use_reference_answers": True}


def ci_parameters(path: str | Path) -> dict[str, Any]:
    """What CI passes to the notebook ``path`` (a lab or its solution): :data:`CI_PARAMETERS` and its overrides."""
    return {**CI_PARAMETERS, **CI_OVERRIDES.get(Path(path).name[:2], {})}
#: Per-cell limits in seconds (see :func:`cell_timeout`), sized from measured cell times with headroom for a slow
#: laptop; a stuck cell fails in minutes instead of waiting out papermill's default half hour.
CI_CELL_TIMEOUT_S = 300
CELL_TIMEOUT_S = 1200


#: How long one wait for a kernel message may sleep before it looks again (see :func:`kernel_manager_class`).
POLL_SLICE_S = 0.5


@functools.cache
def kernel_manager_class() -> type:
    """A kernel manager whose clients never miss a message that has already arrived.

    papermill (through nbclient) waits for the kernel's reply with pyzmq's asyncio ``socket.poll(timeout)``. That
    wake-up is edge-triggered and is sometimes lost when a burst of messages arrives at once, as when a cell opens
    a dozen ipywidgets comms: the reply sits in the socket and the client sleeps until its whole timeout runs out
    (nbclient issue 312; measured here: 2 of 102 runs of a widget cell waited the full timeout, then completed;
    with these clients 0 of 80, benchmarks/widget_hang_loop.py).
    These clients poll in slices of :data:`POLL_SLICE_S`, and each slice ends with a non-blocking check, so a lost
    wake-up costs at most half a second. nbval uses the blocking client (``zmq_poll``), which is not affected."""
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.channels import AsyncZMQSocketChannel
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Type

    class SlicedPollChannel(AsyncZMQSocketChannel):
        async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = POLL_SLICE_S if deadline is None else max(0.0, min(POLL_SLICE_S, deadline - time.monotonic()))
                if await self.socket.poll(int(left * 1000)):
                    return await self._recv()
                if deadline is not None and time.monotonic() >= deadline:
                    raise Empty

    class SlicedPollKernelClient(AsyncKernelClient):
        shell_channel_class = Type(SlicedPollChannel)
        iopub_channel_class = Type(SlicedPollChannel)
        stdin_channel_class = Type(SlicedPollChannel)
        control_channel_class = Type(SlicedPollChannel)

    class SlicedPollKernelManager(AsyncKernelManager):
        # client_factory, not client_class: AsyncKernelManager redeclares client_factory, so client_class is ignored.
        client_factory = Type(SlicedPollKernelClient)
        poll_channel_class = SlicedPollChannel  # for the tests

    return SlicedPollKernelManager


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


def cell_timeout(parameters: dict[str, Any] | None = None) -> int:
    """Seconds one cell may run before it counts as stuck: ``LLMOPS_CELL_TIMEOUT`` if set, else
    :data:`CI_CELL_TIMEOUT_S` with CI's small samples, else :data:`CELL_TIMEOUT_S`."""
    value = os.environ.get("LLMOPS_CELL_TIMEOUT", "").strip()
    if value:
        try:
            seconds = int(float(value))
        except ValueError:
            seconds = 0
        if seconds <= 0:
            raise NotebookError(f"LLMOPS_CELL_TIMEOUT={value!r} is not a positive number of seconds. "
                                "Set it to the seconds one notebook cell may run, e.g. LLMOPS_CELL_TIMEOUT=900, "
                                "or unset it to use the kit's defaults.")
        return seconds
    return CI_CELL_TIMEOUT_S if (parameters or {}).get("ci") else CELL_TIMEOUT_S


def _display_path(path: Path) -> str:
    return str(path.relative_to(kit_root()) if path.is_relative_to(kit_root()) else path)


def _running_cell(output: Path) -> tuple[int, str]:
    """(1-based number, first line) of the last cell papermill started in the executed copy ``output``."""
    import nbformat

    try:
        cells = nbformat.read(str(output), as_version=4).cells
    except (OSError, ValueError):
        return 0, ""
    started = [i for i, c in enumerate(cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return 0, ""
    source = cells[started[-1]].source.strip()
    return started[-1] + 1, source.splitlines()[0][:80] if source else ""


def execute_notebook(
    path: Path, output_dir: Path, parameters: dict[str, Any] | None = None, *, timeout: int | None = None,
    progress: bool = False,
) -> NotebookResult:
    """Run ``path`` with papermill into ``output_dir``; raise :class:`NotebookError` naming the notebook,
    the cell and the error if a cell fails or runs longer than ``timeout`` seconds (default
    :func:`cell_timeout`); the partly executed copy is still written for inspection."""
    import papermill
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / path.name
    chosen = _parameters_for(path, parameters or {}, output_dir)
    timeout = timeout or cell_timeout(parameters)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(path), str(output), parameters=chosen, cwd=str(path.parent), kernel_name="python3",
            progress_bar=progress, execution_timeout=timeout, log_output=False,
            kernel_manager_class=kernel_manager_class(),
        )
    except PapermillExecutionError as exc:
        raise NotebookError(
            f"{_display_path(path)}: cell {exc.cell_index + 1} (execution {exc.exec_count}) failed with "
            f"{exc.ename}: {exc.evalue.rstrip('.')}. The executed copy with the full traceback is at {output}."
        ) from None
    except CellTimeoutError:
        number, first_line = _running_cell(output)
        cell = f"cell {number} ({first_line!r})" if number else "a cell"
        raise NotebookError(
            f"{_display_path(path)}: {cell} was still running after {timeout} s, the per-cell limit, so it was "
            f"stopped. Run the notebook in JupyterLab to see where it waits. If the cell is only slow on this "
            f"machine, raise the limit, e.g. LLMOPS_CELL_TIMEOUT={timeout * 3}. The executed copy is at {output}."
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
    results = []
    chosen = [p for p in notebooks(folder) if not only or p.stem in only or p.stem[:2] in only]
    if not chosen:
        raise NotebookError(f"No notebook in {folder}/ matches {only}; names look like 00_setup (or just 00).")
    for path in tqdm(chosen, desc=f"executing {folder}", unit="notebook", disable=None):
        started = time.perf_counter()
        try:
            parameters = {**(ci_parameters(path) if ci else {}), **REHEARSAL_PARAMETERS}
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
