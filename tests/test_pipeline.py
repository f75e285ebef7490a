"""The local pipeline runner: triggers, job order, GitHub-only steps skipped with a reason, expressions, event
context, and stopping at the first failure — on workflow files written for the test."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from llmops_helpers.paths import kit_root
from llmops_helpers.release.pipeline import (
    PipelineError,
    evaluate,
    is_triggered,
    job_order,
    load_workflow,
    run_pipeline,
)

WORKFLOW = """
name: demo
on:
  push:
    branches: [develop, "release/**"]
  pull_request:
    branches: [main]
permissions:
  contents: read
env:
  GREETING: hello
jobs:
  second:
    needs: first
    runs-on: ubuntu-latest
    steps:
      - run: echo "second saw $GREETING on $GITHUB_REF_NAME" > second.txt
  first:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - name: where am I
        run: echo "${{ github.event_name }} ${{ github.ref_name }} base=${{ github.base_ref }}" > first.txt
      - name: only on pull requests
        if: github.event_name == 'pull_request'
        run: echo pr > pr.txt
      - name: comment
        uses: actions/github-script@v7
"""


@pytest.fixture
def repo(tmp_path):
    subprocess.run(["git", "init", "-q", "-b", "develop", str(tmp_path)], check=True)
    (tmp_path / "wf.yml").write_text(WORKFLOW)
    return tmp_path


def test_triggers_and_branch_filters(repo):
    workflow = load_workflow(repo / "wf.yml")
    assert is_triggered(workflow, "push", "develop")[0] and is_triggered(workflow, "push", "release/1.0.0")[0]
    assert not is_triggered(workflow, "push", "feature/x")[0]
    assert is_triggered(workflow, "pull_request", "feature/x", base="main")[0]
    assert not is_triggered(workflow, "pull_request", "feature/x", base="develop")[0]
    assert "runs on push, pull_request" in is_triggered(workflow, "schedule", "main")[1]
    assert job_order(workflow["jobs"]) == ["first", "second"]


def test_runs_steps_in_order_with_the_event_context_and_skips_github_only_steps(repo):
    run = run_pipeline(repo / "wf.yml", "push", workdir=repo, branch="develop", echo=False)
    assert run.passed, str(run)
    assert (repo / "first.txt").read_text().strip() == "push develop base="
    assert (repo / "second.txt").read_text().strip() == "second saw hello on develop"
    assert not (repo / "pr.txt").exists()
    statuses = [(s.job, s.status) for s in run.steps]
    assert statuses == [("first", "skipped"), ("first", "passed"), ("first", "skipped"), ("first", "skipped"),
                        ("second", "passed")]
    assert "already checked out" in run.steps[0].detail and "posts the PR comment" in run.steps[3].detail
    pr = run_pipeline(repo / "wf.yml", "pull_request", workdir=repo, branch="feature/x", base="main", echo=False)
    assert pr.passed and (repo / "pr.txt").exists()
    assert (repo / "first.txt").read_text().strip() == "pull_request feature/x base=main"


def test_stops_at_the_first_failing_step(repo):
    (repo / "wf.yml").write_text(WORKFLOW.replace('echo "${{ github.event_name }}', 'exit 3; echo "'))
    run = run_pipeline(repo / "wf.yml", "push", workdir=repo, branch="develop", echo=False)
    assert not run.passed
    failed = [s for s in run.steps if s.status == "failed"]
    assert len(failed) == 1 and failed[0].detail == "exit code 3"
    assert not (repo / "second.txt").exists()
    assert [(s.job, s.status, s.detail) for s in run.steps if s.job == "second"] == [
        ("second", "skipped", "a job it needs failed")]
    assert "FAILED" in str(run)


HANGING = """
on: push
jobs:
  stuck:
    runs-on: ubuntu-latest
    timeout-minutes: JOB
    steps:
      - name: hangs
        timeout-minutes: STEP
        run: (sleep 300; echo late > child.txt) & echo $! > child.pid; sleep 300
      - name: after
        run: echo never > after.txt
"""


@pytest.mark.parametrize(("job", "step", "reached"), [(30, 0.02, "the step's timeout-minutes (0.02)"),
                                                      (0.02, 5, "job stuck's timeout-minutes (0.02)")])
def test_a_hanging_step_is_stopped_at_its_timeout_with_what_it_started(repo, job, step, reached):
    (repo / "wf.yml").write_text(HANGING.replace("JOB", str(job)).replace("STEP", str(step)))
    started = time.monotonic()
    run = run_pipeline(repo / "wf.yml", "push", workdir=repo, branch="develop", echo=False)
    assert time.monotonic() - started < 20  # 1.2 s, not 300
    assert not run.passed and [(s.status, s.detail) for s in run.steps] == [("failed", "timed out"),
                                                                             ("skipped", "an earlier step failed")]
    assert f"it reached {reached}" in run.steps[0].output and "Raise timeout-minutes" in run.steps[0].output
    child = int((repo / "child.pid").read_text())
    time.sleep(0.2)
    assert not _alive(child)  # the step's background child went with it
    assert not (repo / "child.txt").exists()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that never reaps, as in some containers, is not running)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_a_bad_timeout_minutes_is_named(repo):
    (repo / "wf.yml").write_text(HANGING.replace("JOB", "ten").replace("STEP", "1"))
    with pytest.raises(PipelineError, match="stuck: timeout-minutes is 'ten'; give a positive number"):
        run_pipeline(repo / "wf.yml", "push", workdir=repo, branch="develop", echo=False)


def test_not_triggered_is_reported_not_run(repo):
    run = run_pipeline(repo / "wf.yml", "push", workdir=repo, branch="feature/x", echo=False)
    assert not run.triggered and not run.steps and "not in" in str(run)


def test_expressions():
    context = {"github": {"event_name": "push", "ref_name": "release/1.2.0"}, "env": {"X": "1"}}
    assert evaluate("github.event_name == 'push' && startsWith(github.ref_name, 'release/')", context) is True
    assert evaluate("${{ !(github.event_name == 'push') || env.X == '2' }}", context) is False
    assert evaluate("failure()", context, status="failure") is True
    with pytest.raises(PipelineError, match="cannot evaluate"):
        evaluate("fromJSON(github.event)", context)
    with pytest.raises(PipelineError, match="cycle"):
        job_order({"a": {"needs": "b"}, "b": {"needs": ["a"]}})


def test_kit_commands_run_in_the_current_environment(tmp_path):
    workflow = tmp_path / "check.yml"
    workflow.write_text(textwrap.dedent("""
        on: [workflow_dispatch]
        jobs:
          data:
            runs-on: ubuntu-latest
            steps:
              - run: python3 kit.py llmops validate-data
    """))
    cli = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "pipeline", "run", str(workflow), "--event",
                          "workflow_dispatch", "--workdir", str(kit_root())], capture_output=True, text=True,
                         check=False)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "✅ data › python3 kit.py llmops validate-data" in cli.stdout
    assert "golden.jsonl: 160 good rows, 0 problem(s)" in cli.stdout


PROMOTION = """
on:
  workflow_run:
    workflows: [ci]
    types: [completed]
    branches: [develop, "release/**"]
permissions: {}
jobs:
  build:
    runs-on: ubuntu-latest
    outputs:
      digest: ${{ steps.make.outputs.digest }}
    steps:
      - id: make
        run: echo "digest=sha256:abc" >> "$GITHUB_OUTPUT"
  prod:
    needs: build
    environment: prod
    runs-on: ubuntu-latest
    steps:
      - run: >-
          echo "${{ needs.build.outputs.digest }} by ${{ github.actor }} from
          ${{ github.event.workflow_run.head_branch }} ${{ vars.LLMOPS_PROVIDER || 'local' }} $EVAL_SAMPLE" > prod.txt
      - run: exit 1
  report:
    needs: prod
    if: always()
    runs-on: ubuntu-latest
    steps:
      - run: echo "${{ needs.prod.result }}" > report.txt
  after:
    needs: prod
    runs-on: ubuntu-latest
    steps:
      - run: touch after.txt
"""


def test_outputs_approvals_and_always_jobs(repo):
    (repo / "cd.yml").write_text(PROMOTION)
    unapproved = run_pipeline(repo / "cd.yml", "workflow_run", workdir=repo, branch="release/1.0.0", echo=False)
    skipped = [s for s in unapproved.steps if s.job == "prod"]
    assert skipped[0].status == "skipped" and "needs an approval: pass --approve NAME" in skipped[0].detail
    assert not (repo / "prod.txt").exists()
    run = run_pipeline(repo / "cd.yml", "workflow_run", workdir=repo, branch="release/1.0.0", approve="ana",
                       env={"EVAL_SAMPLE": "2"}, echo=False)
    assert (repo / "prod.txt").read_text().strip() == "sha256:abc by ana from release/1.0.0 local 2"
    assert not run.passed and (repo / "report.txt").read_text().strip() == "failure"
    assert not (repo / "after.txt").exists()
    assert not run_pipeline(repo / "cd.yml", "workflow_run", workdir=repo, branch="feature/x", echo=False).triggered


def test_secrets_come_from_the_environment_and_are_masked(repo, monkeypatch, capsys):
    monkeypatch.setenv("DEMO_API_KEY", "sk-canary-0123456789")
    (repo / "s.yml").write_text('on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n'
                                '    steps:\n      - run: echo "key=${{ secrets.DEMO_API_KEY }}"\n')
    run = run_pipeline(repo / "s.yml", "push", workdir=repo, branch="develop")
    assert run.passed and run.steps[0].output.strip() == "key=***"
    assert "sk-canary-0123456789" not in capsys.readouterr().out


MASKED = """
on: push
permissions: {}
jobs:
  a:
    runs-on: ubuntu-latest
    outputs:
      token: ${{ steps.s.outputs.t }}
    steps:
      - id: s
        run: |
          echo "t=$OPENAI_API_KEY" >> "$GITHUB_OUTPUT"
          echo "key $OPENAI_API_KEY pat $GH_PAT sample $EVAL_SAMPLE"
          echo "db ${{ secrets.DB_URL }}"
  b:
    needs: a
    runs-on: ubuntu-latest
    steps:
      - run: echo "got ${{ needs.a.outputs.token }}" > b.txt
      - run: echo "$OPENAI_API_KEY" >&2; exit 1
"""
KEY, PAT, DB = "sk-test-0123456789abcdefXYZ", "ghp_shortpat", "postgres://learner:pw123@db/x"


def test_set_values_and_secrets_are_masked_wherever_they_appear(repo, monkeypatch, capsys):
    import tempfile

    monkeypatch.setenv("DB_URL", DB)  # not a secret-looking name, but the workflow reads it as secrets.DB_URL
    scratch = []
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **kw: scratch.append(real_mkdtemp(**kw)) or scratch[-1])
    (repo / "m.yml").write_text(MASKED)
    run = run_pipeline(repo / "m.yml", "push", workdir=repo, branch="develop",
                       env={"OPENAI_API_KEY": KEY, "GH_PAT": PAT, "EVAL_SAMPLE": "2"})
    printed = capsys.readouterr()
    recorded = str(run) + "".join(s.output + s.detail + s.name for s in run.steps)
    for secret in (KEY, PAT, DB, "pw123"):
        assert secret not in printed.out + printed.err and secret not in recorded, secret
    assert "key *** pat *** sample 2" in run.steps[0].output and "db ***" in run.steps[0].output
    assert (repo / "b.txt").read_text().strip() == "got ***"  # a job output holding a secret arrives masked
    assert not run.passed and run.steps[-1].output.strip() == "***"
    assert scratch and not os.path.exists(scratch[0])  # the step-output files are gone


def test_pipeline_command_masks_set_values_and_rejects_a_bare_value(repo):
    (repo / "m.yml").write_text(MASKED)
    cli = [sys.executable, "-m", "llmops_helpers.cli", "pipeline", "run", str(repo / "m.yml"), "--event", "push",
           "--branch", "develop", "--workdir", str(repo)]
    done = subprocess.run([*cli, "--set", f"OPENAI_API_KEY={KEY}", "--set", f"GH_PAT={PAT}"], capture_output=True,
                          text=True, check=False, timeout=120)
    assert done.returncode == 1 and "$ echo \"t=$OPENAI_API_KEY\"" in done.stdout
    assert KEY not in done.stdout + done.stderr and PAT not in done.stdout + done.stderr
    bare = subprocess.run([*cli, "--set", KEY], capture_output=True, text=True, check=False, timeout=120)
    assert bare.returncode == 2 and "--set number 1 is not NAME=VALUE" in bare.stderr
    assert KEY not in bare.stdout + bare.stderr and "Traceback" not in bare.stderr


def test_an_error_does_not_reveal_a_secret(repo, monkeypatch):
    monkeypatch.setenv("DEMO_API_KEY", KEY)
    (repo / "e.yml").write_text("on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                                "      - run: echo hi\n        working-directory: ${{ secrets.DEMO_API_KEY }}\n")
    with pytest.raises(PipelineError, match=r"cannot start the step in .*\*\*\*.*working-directory") as error:
        run_pipeline(repo / "e.yml", "push", workdir=repo, branch="develop", echo=False)
    assert KEY not in str(error.value)
