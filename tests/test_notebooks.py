"""Every solution notebook executes headless with CI parameters (papermill), with no secret in its outputs.
The generated labs run under nbval via `llmops test` (see llmops_helpers.course.commands.cmd_test)."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import CANARY_KEY, KIT
from llmops_helpers.course.runner import CI_PARAMETERS, ci_parameters, execute_notebook, notebooks
from llmops_helpers.flow.pf_setup import service_running
from llmops_helpers.paths import build_dir

pytestmark = pytest.mark.notebook
SOLUTIONS = notebooks("solutions")
EXECUTED = build_dir() / "executed"  # git-ignored; CI uploads it as an artifact


def outputs_text(path: Path) -> str:
    nb = json.loads(path.read_text())
    return json.dumps([c.get("outputs", []) for c in nb["cells"]])


def test_there_are_notebooks():
    assert [p.stem for p in SOLUTIONS][:1] == ["00_setup"]


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_executes_with_ci_parameters(path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)  # present in the kernel's environment, must never show
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", CANARY_KEY)
    result = execute_notebook(path, EXECUTED / "solutions", ci_parameters(path))
    text = outputs_text(result.output)
    assert '"output_type": "error"' not in text
    assert CANARY_KEY not in text
    assert not service_running(), "promptflow's service is running after the notebook"


def test_lab00_against_an_openai_compatible_server_with_a_canary_key(monkeypatch, external_server):
    monkeypatch.setenv("OPENAI_BASE_URL", external_server)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    result = execute_notebook(KIT / "solutions" / "00_setup.ipynb", EXECUTED / "solutions-openai-compatible",
                              {**CI_PARAMETERS, "provider": "openai"})
    text = outputs_text(result.output)
    assert "provider='openai'" in text and external_server in text
    assert CANARY_KEY not in text


def test_headless_main_job_leaves_an_executed_lab_with_a_real_answer():
    output = EXECUTED / "rehearsal-labs"
    run = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "rehearse", "--ci", "--only", "00",
                          "--output", str(output)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 0 failed" in run.stdout
    nb = nbformat.read(str(output / "00_setup.ipynb"), 4)
    first_call = next(c for c in nb.cells if "In one sentence, what does a SIM card do?" in c.source)
    answer = "".join(o.get("text", "") for o in first_call.outputs if o.output_type == "stream").strip()
    assert len(answer.split()) >= 3  # a real generated sentence, whatever its quality


def test_a_failing_cell_is_named_with_its_error(tmp_path):
    from nbformat.v4 import new_code_cell, new_notebook

    from llmops_helpers.errors import NotebookError

    nb = new_notebook(cells=[new_code_cell('provider = "local"', metadata={"tags": ["parameters"]}),
                             new_code_cell("1 / 0")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, str(path))
    with pytest.raises(NotebookError, match=r"99_broken.ipynb: cell 2 .*ZeroDivisionError: division by zero"):
        execute_notebook(path, tmp_path / "out", {})


def test_unfinished_exercise_stops_with_a_hint_not_a_stack_trace():
    """What a learner sees: the lab as generated, without reference answers, stops at the check cell."""
    from llmops_helpers.errors import NotebookError

    output = EXECUTED / "unfinished-lab"
    with pytest.raises(NotebookError, match=r"ExerciseNotDone: Not yet: define `messages` and `response`"):
        execute_notebook(KIT / "labs" / "00_setup.ipynb", output, {**CI_PARAMETERS, "use_reference_answers": False})
    nb = nbformat.read(str(output / "00_setup.ipynb"), 4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(errors) == 1 and len(errors[0].traceback) <= 2  # one paragraph, no stack-trace soup
