"""Run a GitHub Actions workflow's ``run:`` steps locally, from the YAML itself (one source for both).

``llmops pipeline run .github/workflows/ci.yml --event push --branch develop`` checks the workflow's triggers
for the event, orders the jobs by ``needs:``, and runs each ``run:`` step with bash in the working copy, with the
event's context (``github.event_name``, ``github.ref_name``, ``github.base_ref``, ``github.sha`` ...) in ``${{ }}``
expressions and in ``GITHUB_*`` variables. Steps that only make sense on GitHub (``uses:`` actions such as
checkout, setup-python, caches, uploads, PR comments) are shown as skipped with the reason. It stops at the first
failing step, as GitHub does. Commands run in this kit's Python environment (``LLMOPS_KIT_PYTHON``) with the
working copy as the kit root (``LLMOPS_KIT_ROOT``), so a sandbox repository does not install anything."""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_helpers.errors import LLMOpsError
from llmops_helpers.paths import git_output
from llmops_helpers.release.endpoints import signal_tree
from llmops_helpers.release.state import NEEDS_APPROVAL

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SKIP_REASONS = {
    "actions/checkout": "the working copy is already checked out",
    "actions/setup-python": "runs in this kit's Python environment",
    "actions/cache": "local runs keep build/ from one run to the next",
    "actions/upload-artifact": "files stay in the working copy",
    "actions/download-artifact": "files are already in the working copy",
    "actions/github-script": "talks to the GitHub API (e.g. posts the PR comment); the report is in the run folder",
}


class PipelineError(LLMOpsError):
    """A workflow file cannot be read or run."""


@dataclass
class StepResult:
    job: str
    name: str
    status: str  # passed, failed, skipped
    seconds: float = 0.0
    detail: str = ""
    output: str = ""


@dataclass
class PipelineRun:
    workflow: str
    event: str
    steps: list[StepResult] = field(default_factory=list)
    triggered: bool = True
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.triggered and not any(s.status == "failed" for s in self.steps)

    def output_of(self, step_name: str) -> str:
        """The printed output of the first step whose name starts with ``step_name``."""
        step = next((s for s in self.steps if s.name.startswith(step_name)), None)
        if step is None:
            raise PipelineError(f"no step named {step_name!r}; steps: {', '.join(s.name for s in self.steps)}")
        return step.output

    def __str__(self) -> str:
        if not self.triggered:
            return f"{self.workflow}: not triggered by {self.event} ({self.reason})"
        marks = {"passed": "✅", "failed": "❌", "skipped": "⏭️ "}
        lines = [f"{self.workflow} on {self.event}: {'passed' if self.passed else 'FAILED'}"]
        for s in self.steps:
            lines.append(f"  {marks[s.status]} {s.job} › {s.name}  ({s.seconds:.1f} s) {s.detail}".rstrip())
        return "\n".join(lines)


def load_workflow(path: str | Path) -> dict[str, Any]:
    """The workflow as a dict, with PyYAML's ``on: → True`` quirk undone."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PipelineError(f"{path}: cannot read the workflow ({exc}).") from None
    if not isinstance(data, dict) or "jobs" not in data:
        raise PipelineError(f"{path}: not a workflow (no 'jobs').")
    if True in data:
        data["on"] = data.pop(True)
    return data


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    on = workflow.get("on") or {}
    if isinstance(on, str):
        return {on: {}}
    if isinstance(on, list):
        return {name: {} for name in on}
    return {name: (config or {}) for name, config in on.items()}


def _branch_matches(patterns: list[str] | None, branch: str) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(branch, p.replace("**", "*")) for p in patterns)


def is_triggered(workflow: dict[str, Any], event: str, branch: str, base: str = "") -> tuple[bool, str]:
    """Does ``event`` on ``branch`` (for pull requests: into ``base``) start this workflow?"""
    config = triggers(workflow)
    if event not in config:
        return False, f"the workflow runs on {', '.join(config) or 'nothing'}"
    target = base if event.startswith("pull_request") else branch
    if not _branch_matches(config[event].get("branches"), target):
        return False, f"branch {target!r} is not in {config[event].get('branches')}"
    return True, ""


def job_order(jobs: dict[str, Any]) -> list[str]:
    """Jobs sorted so each comes after its ``needs``."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise PipelineError(f"jobs depend on each other in a cycle through {name!r}.")
        if name not in jobs:
            raise PipelineError(f"a job needs {name!r}, which the workflow does not define.")
        visiting.add(name)
        needs = jobs[name].get("needs") or []
        for need in [needs] if isinstance(needs, str) else needs:
            visit(need)
        visiting.discard(name)
        order.append(name)

    for name in jobs:
        visit(name)
    return order


def _lookup(path: str, context: dict[str, Any]) -> Any:
    value: Any = context
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def evaluate(expression: str, context: dict[str, Any], status: str = "success") -> Any:
    """A small subset of GitHub's expression language: contexts, literals, ``== != && || !``, and
    ``success() failure() always() contains() startsWith()``."""
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2].strip()
    names: dict[str, Any] = {}

    def replace(match: re.Match) -> str:
        key = f"_v{len(names)}"
        names[key] = _lookup(match.group(0), context)
        return key

    python = re.sub(r"'([^']*)'", lambda m: repr(m.group(1)), text)
    python = re.sub(r"(?<!['\w])(github|env|secrets|vars|inputs|matrix|steps|needs|runner)(\.[\w-]+)+", replace,
                    python)
    python = python.replace("&&", " and ").replace("||", " or ")
    python = re.sub(r"!(?!=)", " not ", python)
    functions = {"success": lambda: status == "success", "failure": lambda: status == "failure",
                 "always": lambda: True, "cancelled": lambda: False,
                 "contains": lambda a, b: str(b).lower() in (str(a).lower() if not isinstance(a, list) else
                                                             [str(x).lower() for x in a]),
                 "startsWith": lambda a, b: str(a).lower().startswith(str(b).lower()),
                 "true": True, "false": False, "null": None}
    try:
        tree = ast.parse(python.strip(), mode="eval")
        allowed = (ast.Expression, ast.BoolOp, ast.UnaryOp, ast.Compare, ast.Call, ast.Name, ast.Constant,
                   ast.And, ast.Or, ast.Not, ast.Eq, ast.NotEq, ast.Load)
        if not all(isinstance(node, allowed) for node in ast.walk(tree)):
            raise ValueError("unsupported syntax")
        return eval(compile(tree, "<expression>", "eval"), {"__builtins__": {}}, {**functions, **names})  # noqa: S307
    except (SyntaxError, ValueError, TypeError, NameError) as exc:
        raise PipelineError(f"cannot evaluate the expression {expression!r} locally ({exc}).") from None


def substitute(text: str, context: dict[str, Any]) -> str:
    return EXPRESSION.sub(lambda m: "" if (v := evaluate(m.group(1), context)) is None else str(v), text)


#: GitHub's default ``timeout-minutes`` for a job (and so for its steps) when the workflow sets none.
DEFAULT_TIMEOUT_MINUTES = 360.0


def _minutes(value: Any, where: str, context: dict[str, Any]) -> float:
    """A ``timeout-minutes`` value (a number or an expression), or the default when it is absent."""
    if value is None:
        return DEFAULT_TIMEOUT_MINUTES
    text = substitute(str(value), context).strip()
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise PipelineError(f"{where}: timeout-minutes is {text!r}; give a positive number of minutes.")
    return minutes


def _run_step(script: str, cwd: Path, env: dict[str, str], timeout_s: float) -> tuple[int | None, str]:
    """Run one step's script under bash in a process group of its own; at ``timeout_s`` the whole group (the
    script and what it started in the foreground) is stopped, as GitHub cancels a step, and the exit code is None.
    Processes that detach into their own session on purpose (a deployed endpoint) are not the step's to stop."""
    proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
        return proc.returncode, output
    except subprocess.TimeoutExpired:
        for kill in (False, True):  # TERM, then KILL: the group's leader is our own Popen child
            signal_tree(proc.pid, kill=kill)
            try:
                output, _ = proc.communicate(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            output = ""
        return None, output or ""


def _environment_name(job: dict[str, Any]) -> str:
    environment = job.get("environment") or ""
    return str(environment.get("name", "") if isinstance(environment, dict) else environment)


SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|(?:^|_)PAT(?:_|$)", re.IGNORECASE)


class Masker:
    """Hides secret values wherever the runner shows or keeps text, as GitHub masks secrets in its logs: values of
    environment variables and ``--set`` settings whose names look secret (KEY, TOKEN, SECRET, PASSWORD, PAT,
    CREDENTIAL) and of every ``secrets.X`` the workflow names (locally, secrets come from the environment)."""

    def __init__(self, workflow_text: str = "", settings: dict[str, str] | None = None) -> None:
        self.values: set[str] = set()
        for name, value in os.environ.items():
            if SECRET_NAME.search(name):
                self.add(value)
        for name in re.findall(r"secrets\.([\w-]+)", workflow_text):
            self.add(os.environ.get(name, ""))
        for name, value in (settings or {}).items():
            if SECRET_NAME.search(name):
                self.add(value)

    def add(self, value: str) -> None:
        if len(value.strip()) >= 4:  # shorter values would mask ordinary words; GitHub skips them too
            self.values.add(value.strip())

    def __call__(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):  # a longer secret before one it contains
            text = text.replace(value, "***")
        return text


def _read_outputs(path: Path) -> dict[str, str]:
    """``name=value`` lines a step appended to ``$GITHUB_OUTPUT`` (single-line values)."""
    if not path.is_file():
        return {}
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)


def run_pipeline(workflow_path: str | Path, event: str, *, workdir: str | Path | None = None, branch: str = "",
                 base: str = "", jobs: list[str] | None = None, approve: str = "", env: dict[str, str] | None = None,
                 echo: bool = True) -> PipelineRun:
    """Run the workflow's jobs for ``event`` in ``workdir`` (default: the workflow's repository).

    Jobs whose ``environment`` is protected (prod) run only with ``approve`` (who approves; it becomes
    ``github.actor``). ``env`` adds variables to every step, e.g. a smaller evaluation sample. A failed job skips
    the jobs that need it, unless their ``if:`` asks for ``always()`` or ``failure()``."""
    from llmops_helpers.paths import kit_root

    workflow_path = Path(workflow_path)
    workdir = Path(workdir) if workdir else kit_root()
    workflow = load_workflow(workflow_path)
    mask = Masker(workflow_path.read_text(encoding="utf-8"), env)
    branch = branch or git_output("rev-parse", "--abbrev-ref", "HEAD", cwd=workdir) or "main"
    run = PipelineRun(workflow_path.name, event)
    run.triggered, run.reason = is_triggered(workflow, event, branch, base)
    if not run.triggered:
        return run
    sha = git_output("rev-parse", "HEAD", cwd=workdir)
    base_sha = git_output("rev-parse", base, cwd=workdir) if base else ""
    actor = approve or git_output("config", "user.name", cwd=workdir) or os.environ.get("USER", "local")
    github = {"event_name": event, "ref_name": branch, "sha": sha, "repository": "local/sandbox", "actor": actor,
              "base_ref": base if event.startswith("pull_request") else "",
              "head_ref": branch if event.startswith("pull_request") else "",
              "ref": f"refs/heads/{branch}", "workspace": str(workdir), "run_id": "0", "run_number": "0",
              "event": {"pull_request": {"base": {"sha": base_sha, "ref": base},
                                         "head": {"sha": sha, "ref": branch,
                                                  "repo": {"full_name": "local/sandbox"}}},
                        "workflow_run": {"head_branch": branch, "head_sha": sha, "conclusion": "success", "id": 0}}}
    bin_dir = str(Path(sys.executable).parent)
    scratch = Path(tempfile.mkdtemp(prefix="llmops-pipeline-"))
    base_env = {**os.environ, "CI": "true", "GITHUB_ACTIONS": "false", "LLMOPS_PIPELINE_LOCAL": "1",
                "LLMOPS_KIT_PYTHON": sys.executable, "LLMOPS_KIT_ROOT": str(workdir),
                "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
                "GITHUB_EVENT_NAME": event, "GITHUB_REF_NAME": branch, "GITHUB_SHA": sha, "GITHUB_ACTOR": actor,
                "GITHUB_BASE_REF": github["base_ref"], "GITHUB_HEAD_REF": github["head_ref"],
                "GITHUB_WORKSPACE": str(workdir), "GITHUB_STEP_SUMMARY": str(scratch / "summary.md")}
    try:
        _run_jobs(run, workflow, workdir, jobs or [], approve, env or {}, echo, github, base_env, scratch, mask)
    except PipelineError as exc:  # an expression's error may quote a substituted value
        raise PipelineError(mask(str(exc))) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # step outputs may hold secrets: never leave them behind
    return run


def _run_jobs(run: PipelineRun, workflow: dict[str, Any], workdir: Path, jobs: list[str], approve: str,
              env: dict[str, str], echo: bool, github: dict[str, Any], base_env: dict[str, str], scratch: Path,
              mask: Masker) -> None:
    all_jobs = workflow["jobs"]
    results: dict[str, dict[str, Any]] = {}
    for job_name in job_order(all_jobs):
        job = all_jobs[job_name]
        if jobs and job_name not in jobs:
            continue
        needs = job.get("needs") or []
        needs = [needs] if isinstance(needs, str) else list(needs)
        # a need counts as failed when it failed, or was skipped because something it needed failed
        failed_needs = [n for n in needs if results.get(n, {}).get("result") == "failure"
                        or results.get(n, {}).get("failed_upstream")]
        status = "failure" if failed_needs else "success"
        env_context: dict[str, str] = {}
        steps_context: dict[str, Any] = {}
        # locally, repository variables and secrets come from your environment (e.g. LLMOPS_PROVIDER, keys in .env)
        context = {"github": github, "env": env_context, "secrets": dict(os.environ), "vars": dict(os.environ),
                   "inputs": {},
                   "needs": {n: {"result": results.get(n, {}).get("result", "skipped"),
                                 "outputs": results.get(n, {}).get("outputs", {})} for n in needs},
                   "steps": steps_context}
        for key, value in (workflow.get("env") or {}).items():  # GitHub evaluates these with github/vars/secrets
            env_context[key] = substitute(str(value), context)
        env_context.update(env or {})
        condition = str(job["if"]) if "if" in job else ""
        if status == "failure" and not re.search(r"\b(always|failure)\(\)", condition):
            run.steps.append(StepResult(job_name, "(job)", "skipped", detail="a job it needs failed"))
            results[job_name] = {"result": "skipped", "failed_upstream": True}
            continue
        if any(results.get(n, {}).get("result") == "skipped" and n not in failed_needs for n in needs) \
                and "always()" not in condition:
            run.steps.append(StepResult(job_name, "(job)", "skipped", detail="a job it needs was skipped"))
            results[job_name] = {"result": "skipped"}
            continue
        if condition and not evaluate(condition, context, status):
            run.steps.append(StepResult(job_name, "(job)", "skipped", detail=f"if: {job['if']} is false"))
            results[job_name] = {"result": "skipped"}
            continue
        environment = _environment_name(job)
        if environment in NEEDS_APPROVAL and not approve:  # the rule `llmops deploy` applies
            run.steps.append(StepResult(job_name, "(job)", "skipped",
                                        detail=f"environment {environment} needs an approval: pass --approve NAME"))
            results[job_name] = {"result": "skipped"}
            continue
        env_context.update({k: substitute(str(v), context) for k, v in (job.get("env") or {}).items()})
        env_context.update(env or {})  # --set wins, so a lab can run a smaller sample than the workflow's
        status = "success"
        job_minutes = _minutes(job.get("timeout-minutes"), job_name, context)
        job_deadline = time.monotonic() + 60 * job_minutes
        for index, step in enumerate(job.get("steps") or [], start=1):
            name = mask(step.get("name") or str(step.get("uses") or "").split("@")[0]
                        or (step.get("run") or "").splitlines()[0][:60] or f"#{index}")
            if "if" in step and not evaluate(str(step["if"]), context, status):
                run.steps.append(StepResult(job_name, name, "skipped", detail=f"if: {step['if']} is false"))
                continue
            if status == "failure" and "if" not in step:
                run.steps.append(StepResult(job_name, name, "skipped", detail="an earlier step failed"))
                continue
            if "uses" in step:
                action = str(step["uses"]).split("@")[0]
                reason = SKIP_REASONS.get(action, "a GitHub action; it runs only on GitHub")
                run.steps.append(StepResult(job_name, name, "skipped", detail=f"({reason})"))
                continue
            step_env = {k: substitute(str(v), context) for k, v in (step.get("env") or {}).items()}
            script = substitute(str(step.get("run", "")), context)
            cwd = workdir / substitute(str(step.get("working-directory", ".")), context)
            output_file = scratch / f"{job_name}-{index}.out"
            if echo:
                print(f"▶ {job_name} › {name}\n  $ {mask(script.strip())}", flush=True)
            started = time.perf_counter()
            step_minutes = _minutes(step.get("timeout-minutes"), f"{job_name} › {name}", context)
            job_left = job_deadline - time.monotonic()
            timeout_s = max(0.0, min(60 * step_minutes, job_left))
            try:
                code, output = _run_step(script, cwd, {**base_env, **env_context, **step_env,
                                                       "GITHUB_OUTPUT": str(output_file)}, timeout_s)
            except OSError as exc:  # e.g. a working-directory that does not exist; masked by run_pipeline
                raise PipelineError(f"{job_name} › {name}: cannot start the step in {cwd} ({exc.strerror}). Check "
                                    "its working-directory: and that bash is installed.") from None
            output = mask(output)
            passed = code == 0
            if code is None:
                which = (f"the step's timeout-minutes ({step_minutes:g})" if 60 * step_minutes <= job_left
                         else f"job {job_name}'s timeout-minutes ({job_minutes:g})")
                output += (f"\n⏱️ Stopped after {timeout_s:.0f} s: it reached {which}, as GitHub would cancel it. "
                           "Raise timeout-minutes in the workflow if the step is slow but working.")
            if step.get("id"):
                steps_context[step["id"]] = {"outputs": _read_outputs(output_file),
                                             "outcome": "success" if passed else "failure"}
            result = StepResult(job_name, name, "passed" if passed else "failed", time.perf_counter() - started,
                                "" if passed else ("timed out" if code is None else f"exit code {code}"), output)
            run.steps.append(result)
            if echo:
                print("  " + "\n  ".join(output.rstrip().splitlines()[-25:]) if output.strip() else "", flush=True)
            if not passed:
                status = "failure"
        # GitHub does not pass on a job output that holds a secret; here it arrives masked
        outputs = {k: mask(substitute(str(v), context)) for k, v in (job.get("outputs") or {}).items()}
        results[job_name] = {"result": status, "outputs": outputs}
