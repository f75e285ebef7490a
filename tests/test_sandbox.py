"""The branching lab's sandbox: a real repository with a bare origin, never the kit's own; the same history
gives the same shas; the graph assigns commits to the branches they were made on."""

import matplotlib

from llmops_helpers.paths import git_output, kit_root
from llmops_helpers.release.sandbox import SandboxError, create_sandbox, git_graph, plot_git_graph, plot_pipeline_runs

matplotlib.use("Agg")


def _walk(folder):
    sandbox = create_sandbox(folder)
    sandbox.branch("feature/two-articles")
    sandbox.edit("flows/support_agent/config.yaml", lambda t: t.replace("top_k: 3 ", "top_k: 2 "), "Two articles")
    sandbox.merge("feature/two-articles", "develop")
    sandbox.branch("release/1.0.0")
    sandbox.edit("CHANGELOG.md", "# 1.0.0\n", "Release 1.0.0")
    sandbox.merge("release/1.0.0", "main")
    return sandbox


def test_a_sandbox_walk_through_the_branching_model(tmp_path):
    kit_head = git_output("rev-parse", "HEAD", cwd=kit_root())
    sandbox = _walk(tmp_path / "one")
    assert git_output("rev-parse", "HEAD", cwd=kit_root()) == kit_head  # the kit's own repository is untouched
    remote = git_output("branch", "--list", "--format=%(refname:short)", cwd=sandbox.origin).split()
    assert set(remote) == {"main", "develop", "feature/two-articles", "release/1.0.0"}
    assert len(sandbox.git("rev-list", "--parents", "-n", "1", "main").split()) == 3  # a merge commit
    assert "top_k: 2 " in sandbox.git("show", "main:flows/support_agent/config.yaml")
    commits = {c["subject"]: c for c in git_graph(sandbox)}
    assert commits["Two articles"]["branch"] == "feature/two-articles"
    assert commits["Merge feature/two-articles into develop"]["branch"] == "develop"
    assert commits["Release 1.0.0"]["branch"] == "release/1.0.0"
    assert commits["Merge release/1.0.0 into main"]["tips"] == ["main"]
    again = _walk(tmp_path / "two")
    assert again.git("rev-parse", "main") == sandbox.git("rev-parse", "main")  # same steps, same shas
    assert plot_git_graph(sandbox).get_title() and plot_pipeline_runs([]).get_title()


def test_a_no_op_edit_is_refused(tmp_path):
    sandbox = create_sandbox(tmp_path / "s")
    try:
        sandbox.edit("gates.yaml", lambda text: text, "nothing")
    except SandboxError as exc:
        assert "nothing to commit" in str(exc)
    else:
        raise AssertionError("a no-op edit was committed")


def test_release_branch_exercise_check(tmp_path):
    import pytest

    from llmops_helpers.course.exercises import check_release_branch
    from llmops_helpers.errors import ExerciseNotDone

    sandbox = create_sandbox(tmp_path / "s")
    with pytest.raises(ExerciseNotDone, match="no branch release/1.0.0"):
        check_release_branch(sandbox)
    sandbox.branch("release/1.0.0", "develop")
    with pytest.raises(ExerciseNotDone, match="no commit of its own"):
        check_release_branch(sandbox)
    sandbox.edit("CHANGELOG.md", "# 1.0.0\n", "Release notes")
    assert "✅" in check_release_branch(sandbox)
