"""Course tooling: labs generated from solutions, drift detection, clean notebooks, reference answers."""

import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from conftest import KIT
from llmops_helpers.course import labs as course
from llmops_helpers.course.exercises import check_first_call
from llmops_helpers.errors import ExerciseNotDone, NotebookError

PARAMS = 'provider = "local"\nsample_size = 2\noutput_dir = "build/x"\nuse_reference_answers = False'


def make_solution(folder, name="01_demo", body=None):
    params = new_code_cell(PARAMS, metadata={"tags": ["parameters"]})
    exercise = new_code_cell(body or "x = ...\n### BEGIN SOLUTION double\nx = 21 * 2\n### END SOLUTION\nprint(x)")
    note = new_markdown_cell("Only instructors see this.", metadata={"tags": ["solution-only"]})
    nb = new_notebook(cells=[new_markdown_cell("# Demo"), params, exercise, note],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / f"{name}.ipynb"))
    return folder / f"{name}.ipynb"


def test_lab_replaces_solution_with_stub_and_drops_solution_only_cells(tmp_path):
    make_solution(tmp_path / "solutions")
    assert course.build_labs(tmp_path / "solutions", tmp_path / "labs") == ["01_demo.ipynb"]
    lab = nbformat.read(str(tmp_path / "labs" / "01_demo.ipynb"), 4)
    sources = [c.source for c in lab.cells]
    assert len(lab.cells) == 3 and not any("Only instructors" in s for s in sources)
    exercise = sources[2]
    assert "21 * 2" not in exercise and "TODO (exercise 'double')" in exercise
    assert "load_reference_answer('01_demo', 'double')" in exercise
    assert exercise.startswith("x = ...") and exercise.endswith("print(x)")


def test_check_mode_detects_drift_and_writes_nothing(tmp_path):
    solution = make_solution(tmp_path / "solutions")
    course.build_labs(tmp_path / "solutions", tmp_path / "labs")
    assert course.build_labs(tmp_path / "solutions", tmp_path / "labs", check=True) == []
    nb = nbformat.read(str(solution), 4)
    nb.cells[0].source += "\nEdited."
    nbformat.write(nb, str(solution))
    before = (tmp_path / "labs" / "01_demo.ipynb").read_text()
    assert course.build_labs(tmp_path / "solutions", tmp_path / "labs", check=True) == ["01_demo.ipynb"]
    assert (tmp_path / "labs" / "01_demo.ipynb").read_text() == before


def test_stray_lab_without_solution_is_drift(tmp_path):
    make_solution(tmp_path / "solutions")
    course.build_labs(tmp_path / "solutions", tmp_path / "labs")
    (tmp_path / "labs" / "09_orphan.ipynb").write_text((tmp_path / "labs" / "01_demo.ipynb").read_text())
    assert course.build_labs(tmp_path / "solutions", tmp_path / "labs", check=True) == [
        "09_orphan.ipynb (no solution; remove it)"]


@pytest.mark.parametrize("body, problem", [
    ("### BEGIN SOLUTION a\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a matching BEGIN"),
    ("def f():\n    ### BEGIN SOLUTION a\n    return 1\n    ### END SOLUTION", "left margin"),
    ("### BEGIN SOLUTION a\n### END SOLUTION\n### BEGIN SOLUTION a\n### END SOLUTION", "used twice"),
])
def test_malformed_blocks_name_notebook_and_cell(tmp_path, body, problem):
    make_solution(tmp_path / "solutions", body=body)
    with pytest.raises(NotebookError, match=problem) as info:
        course.build_labs(tmp_path / "solutions", tmp_path / "labs")
    assert "01_demo, cell 3" in str(info.value)


def test_reference_answer_runs_in_the_given_namespace(tmp_path, monkeypatch):
    make_solution(tmp_path / "solutions")
    monkeypatch.setenv("LLMOPS_KIT_ROOT", str(tmp_path))
    namespace = {}
    course.load_reference_answer("01_demo", "double", namespace)
    assert namespace["x"] == 42
    with pytest.raises(NotebookError, match="no exercise named 'triple'"):
        course.reference_code("01_demo", "triple")


def test_lint_finds_outputs_and_missing_parameters(tmp_path):
    path = make_solution(tmp_path / "solutions")
    nb = nbformat.read(str(path), 4)
    nb.cells[2].outputs = [new_output("stream", name="stdout", text="42\n")]
    nb.cells[1].metadata = {}
    nbformat.write(nb, str(path))
    problems = course.lint_notebook(path)
    assert any("cell 3 has outputs" in p for p in problems) and any("tagged 'parameters'" in p for p in problems)
    course.clean_notebooks([path])
    assert not any("has outputs" in p for p in course.lint_notebook(path))


def test_repository_labs_are_in_sync_and_clean():
    assert course.build_labs(KIT / "solutions", KIT / "labs", check=True) == []
    for path in sorted((KIT / "solutions").glob("*.ipynb")) + sorted((KIT / "labs").glob("*.ipynb")):
        assert course.lint_notebook(path) == [], path


def test_build_labs_check_command_fails_after_a_solution_edit(tmp_path):
    root = tmp_path / "kit"
    make_solution(root / "solutions")
    env = {"LLMOPS_KIT_ROOT": str(root), "PATH": ""}
    cmd = [sys.executable, "-m", "llmops_helpers.cli", "build-labs"]
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    assert subprocess.run(cmd + ["--check"], env=env, capture_output=True).returncode == 0
    path = root / "solutions" / "01_demo.ipynb"
    path.write_text(path.read_text().replace("21 * 2", "2 * 21"))
    result = subprocess.run(cmd + ["--check"], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "01_demo.ipynb" in result.stderr and "llmops build-labs" in result.stderr


class _Fake:
    """A stand-in for a ChatCompletion, only to exercise the check's branches."""


def test_exercise_check_gives_hints():
    with pytest.raises(ExerciseNotDone, match="define `messages`"):
        check_first_call(..., ...)
    with pytest.raises(ExerciseNotDone, match="start `messages` with a system message"):
        check_first_call([{"role": "user", "content": "hi"}], _Fake())
    with pytest.raises(ExerciseNotDone, match="customer-support agent"):
        check_first_call([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], _Fake())
    with pytest.raises(ExerciseNotDone, match="client.chat.completions.create"):
        check_first_call([{"role": "system", "content": "You are a support agent."},
                          {"role": "user", "content": "hi"}], _Fake())


def test_custom_evaluator_check_accepts_the_reference_and_explains_mistakes():
    import re

    import pytest

    from llmops_helpers.course.exercises import check_custom_evaluator
    from llmops_helpers.errors import ExerciseNotDone

    def reference(row, output):
        answer = (output.get("answer") or "").lower()
        if not re.search(r"\b(human|person|colleague|our team)\b", answer):
            return 1.0
        return float(bool(re.search(r"\b(chat|call|phone|app|store|0800|2000)\b", answer)))

    passed = check_custom_evaluator(reference)
    assert passed.startswith("✅") and passed._ipython_display_() is None  # printed once, not echoed as the value
    with pytest.raises(ExerciseNotDone, match="define `mentions_channel`"):
        check_custom_evaluator(...)
    with pytest.raises(ExerciseNotDone, match="expected 0.0, got 1.0"):
        check_custom_evaluator(lambda row, output: 1.0)
    with pytest.raises(ExerciseNotDone, match="from 0 to 1"):
        check_custom_evaluator(lambda row, output: True)
    with pytest.raises(ExerciseNotDone, match="raised KeyError"):
        check_custom_evaluator(lambda row, output: output["text"])


def test_the_canary_exercise_text_its_check_and_its_reference_answer_agree():
    """Lab 06 asks for 'at most 5% errors' and 'at least half of the sampled answers good'; the reference answer
    must state exactly those limits and pass its own check."""
    from llmops_helpers.course.exercises import CANARY_MAX_ERROR_RATE, CANARY_MIN_QUALITY, check_canary_slo
    from llmops_helpers.release.rollouts import CanarySLO

    nb = course.read(KIT / "solutions" / "06_automate.ipynb")
    cells = ["".join(c.source) for c in nb.cells]
    asked = next(text for text in cells if text.startswith("## 6. Canary"))
    assert f"at most {CANARY_MAX_ERROR_RATE:.0%} errors" in asked and CANARY_MIN_QUALITY == 0.5
    assert "at least half of the sampled answers good" in asked
    namespace = {"CanarySLO": CanarySLO}
    exec(course.reference_code("06_automate", "canary_slo"), namespace)  # noqa: S102 (the kit's own answer)
    slo = namespace["slo"]
    assert (slo.max_error_rate, slo.min_quality) == (CANARY_MAX_ERROR_RATE, CANARY_MIN_QUALITY)
    assert check_canary_slo(slo).startswith("✅")
    with pytest.raises(ExerciseNotDone, match="at most 5%"):
        check_canary_slo(CanarySLO(max_error_rate=0.1))
    with pytest.raises(ExerciseNotDone, match="at least half"):
        check_canary_slo(CanarySLO(max_error_rate=0.05, min_quality=0.4))


def test_labs_that_do_not_exist_yet_are_marked_coming_wherever_they_are_named():
    """The course map, the README and every lab may name Lab 04 or 07 only as 'coming' until its notebook exists."""
    import re

    from llmops_helpers.course.figures import COURSE, coming_labs

    coming = coming_labs()
    assert coming == [lab for lab, _, _ in COURSE if not list((KIT / "solutions").glob(f"{lab}_*.ipynb"))]
    texts = {str(path.relative_to(KIT)): path.read_text(encoding="utf-8") for path in
             [KIT / "README.md", KIT / "data" / "README.md", KIT / "llmops_helpers" / "README.md",
              *(KIT / "llmops_helpers").rglob("*.py")]}
    for path in sorted((KIT / "solutions").glob("*.ipynb")):
        texts[str(path.relative_to(KIT))] = "\n".join("".join(c.source) for c in course.read(path).cells)
    unmarked = []
    for lab in coming:
        for name, text in texts.items():
            for match in re.finditer(rf"Labs? (?:\d\d[–-])?{lab}\b", text):
                if "coming" not in text[match.start(): match.end() + 40]:
                    unmarked.append(f"{name}: ...{text[match.start(): match.end() + 40]!r}")
        row = re.search(rf"^\| {lab} [^|]+\|[^|]+\| (.*)$", texts["README.md"], re.M)
        assert row and row.group(1).startswith("*coming*"), f"README's table row for Lab {lab}"
    assert not unmarked, "name a lab that does not exist yet as 'Lab NN (coming)':\n" + "\n".join(unmarked)


def test_the_false_promises_exercise_check_accepts_the_reference_answer_and_hints_otherwise():
    import pytest

    from llmops_helpers.course.exercises import check_no_false_promises
    from llmops_helpers.course.labs import reference_code
    from llmops_helpers.errors import ExerciseNotDone

    namespace: dict = {}
    exec(reference_code("04_augment_responsible", "no_false_promises"), namespace)  # the solution's own answer
    assert check_no_false_promises(namespace["claims_action"]).startswith("✅")
    with pytest.raises(ExerciseNotDone, match="define `claims_action`"):
        check_no_false_promises(...)
    with pytest.raises(ExerciseNotDone, match="expected True, got False"):
        check_no_false_promises(lambda answer: False)
    with pytest.raises(ExerciseNotDone, match="True or False"):
        check_no_false_promises(lambda answer: "credit" in answer and 1)
    with pytest.raises(ExerciseNotDone, match="raised ZeroDivisionError"):
        check_no_false_promises(lambda answer: 1 / 0)
