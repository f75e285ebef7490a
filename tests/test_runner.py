"""The headless runner: a lost kernel wake-up costs one poll slice (not the whole cell timeout), and a stuck
cell fails within the per-cell limit with the notebook and cell named."""

import asyncio
import time
from queue import Empty

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from llmops_helpers.course.runner import (
    CI_CELL_TIMEOUT_S,
    POLL_SLICE_S,
    cell_timeout,
    execute_notebook,
    kernel_manager_class,
)
from llmops_helpers.errors import NotebookError
from llmops_helpers.paths import kit_root

KIT = kit_root()


class LosesFirstWakeUp:
    """A socket whose message is already waiting, but whose first poll never wakes up (nbclient issue 312): it
    sleeps out its timeout (at most 1 s here) and reports nothing, as pyzmq's edge-triggered poll did."""

    def __init__(self):
        self.polls: list[int] = []

    async def poll(self, timeout_ms):
        self.polls.append(timeout_ms)
        if len(self.polls) == 1:
            await asyncio.sleep(min(timeout_ms, 1000) / 1000)
            return 0
        return 1


def channel_with(socket):
    channel_class = kernel_manager_class().poll_channel_class
    channel = channel_class.__new__(channel_class)
    channel.socket = socket

    async def recv():
        return {"msg_type": "execute_reply"}

    channel._recv = recv
    return channel


def test_a_lost_wake_up_costs_one_slice_not_the_whole_timeout():
    socket = LosesFirstWakeUp()
    started = time.monotonic()
    message = asyncio.run(channel_with(socket).get_msg(timeout=30))
    assert message["msg_type"] == "execute_reply"
    assert socket.polls[0] <= POLL_SLICE_S * 1000
    assert time.monotonic() - started < POLL_SLICE_S + 1


def test_waiting_with_no_message_still_ends_at_the_deadline():
    class Silent:
        async def poll(self, timeout_ms):
            await asyncio.sleep(timeout_ms / 1000)
            return 0

    started = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(channel_with(Silent()).get_msg(timeout=1.2))
    assert 1.1 < time.monotonic() - started < 2.5


def test_papermill_uses_the_sliced_clients():
    client = kernel_manager_class()(kernel_name="python3").client()
    assert client.shell_channel_class is kernel_manager_class().poll_channel_class
    assert client.iopub_channel_class is kernel_manager_class().poll_channel_class


def test_cell_timeout_defaults_and_override(monkeypatch):
    monkeypatch.delenv("LLMOPS_CELL_TIMEOUT", raising=False)
    assert cell_timeout({"ci": True}) == CI_CELL_TIMEOUT_S
    assert cell_timeout({}) > CI_CELL_TIMEOUT_S
    monkeypatch.setenv("LLMOPS_CELL_TIMEOUT", "42")
    assert cell_timeout({"ci": True}) == 42
    monkeypatch.setenv("LLMOPS_CELL_TIMEOUT", "soon")
    with pytest.raises(NotebookError, match="LLMOPS_CELL_TIMEOUT='soon' is not a positive number"):
        cell_timeout({})


def test_a_stuck_cell_fails_at_the_limit_naming_notebook_and_cell(tmp_path):
    nb = new_notebook(cells=[new_code_cell("x = 1"), new_code_cell("import time\ntime.sleep(120)")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "98_stuck.ipynb"
    nbformat.write(nb, str(path))
    started = time.monotonic()
    with pytest.raises(NotebookError, match=r"98_stuck.ipynb: cell 2 \('import time'\) was still running after 3 s"):
        execute_notebook(path, tmp_path / "out", {}, timeout=3)
    assert time.monotonic() - started < 60


def test_the_suite_runs_two_workers_on_two_cores_and_a_bad_setting_is_one_paragraph(monkeypatch):
    from llmops_helpers.course.commands import parallel_workers
    from llmops_helpers.errors import ConfigError

    monkeypatch.delenv("LLMOPS_TEST_WORKERS", raising=False)
    assert [parallel_workers(cores=c) for c in (1, 2, 8)] == [1, 2, 2]
    assert parallel_workers(1, cores=8) == 1
    monkeypatch.setenv("LLMOPS_TEST_WORKERS", "3")
    assert parallel_workers(cores=2) == 3
    for bad in ("two", "0"):
        monkeypatch.setenv("LLMOPS_TEST_WORKERS", bad)
        with pytest.raises(ConfigError, match="LLMOPS_TEST_WORKERS=.*Set it to 1"):
            parallel_workers(cores=2)


def test_parallel_workers_keep_a_group_on_one_worker(tmp_path):
    """What `llmops test` relies on to keep a notebook's cells in one kernel: --dist loadgroup really groups
    (pytest 9.2 with pytest-xdist 3.8 silently does not: pytest-xdist issue 1386)."""
    import subprocess
    import sys

    (tmp_path / "test_grouped.py").write_text(
        "import os, pytest\n"
        "@pytest.mark.xdist_group(name='notebook')\n"
        "@pytest.mark.parametrize('cell', range(6))\n"
        "def test_cell(cell):\n"
        "    with open('workers.txt', 'a') as f:\n"
        "        f.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n"
        "@pytest.mark.parametrize('other', range(6))\n"
        "def test_other(other):\n"
        "    pass\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:nbval", "-n", "2",
                          "--dist", "loadgroup", "test_grouped.py"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    workers = (tmp_path / "workers.txt").read_text().split()
    assert len(workers) == 6 and len(set(workers)) == 1, workers


def test_ci_overrides_name_parameters_their_notebooks_declare():
    from llmops_helpers.course.runner import CI_OVERRIDES, ci_parameters, declared_parameters, notebooks

    assert ci_parameters(KIT / "labs" / "01_ideate_explore.ipynb")["sample_size"] == 1
    assert ci_parameters(KIT / "solutions" / "05_branching.ipynb")["sample_size"] == 2
    for folder in ("solutions", "labs"):
        by_lab = {path.name[:2]: path for path in notebooks(folder)}
        for lab, overrides in CI_OVERRIDES.items():
            assert set(overrides) <= declared_parameters(by_lab[lab]), f"{folder}/{by_lab[lab].name}"
