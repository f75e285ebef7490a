"""A sandbox git repository of the sample app, for walking the branching workflow with real git.

:func:`create_sandbox` copies the app (flow, data, gates, workflows, ``kit.py``) into a fresh folder, never the
learner's own repository: ``origin.git`` is a bare repository playing GitHub, and ``app/`` is the clone the
labs work in, with ``main`` and ``develop`` pushed. :class:`Sandbox` wraps the everyday moves (branch, edit and
commit, push, open a "pull request", merge) and runs the app's real workflow files with
:func:`llmops_helpers.release.pipeline.run_pipeline`, so a PR, a merge or a release triggers the same steps GitHub would
run. :func:`plot_git_graph` and :func:`plot_pipeline_runs` draw what happened."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_helpers.errors import LLMOpsError
from llmops_helpers.paths import kit_root
from llmops_helpers.release.pipeline import PipelineRun, run_pipeline

APP_FILES = ("kit.py", "pyproject.toml", "gates.yaml", "flows/support_agent", "data/golden", "data/knowledge_base",
             ".github/workflows/pr-evaluation.yml", ".github/workflows/ci.yml", ".github/workflows/cd.yml",
             ".github/workflows/nightly-eval.yml")
IDENTITY = {"GIT_AUTHOR_NAME": "Workshop Learner", "GIT_AUTHOR_EMAIL": "learner@example.com",
            "GIT_COMMITTER_NAME": "Workshop Learner", "GIT_COMMITTER_EMAIL": "learner@example.com"}


class SandboxError(LLMOpsError):
    """A git command in the sandbox failed."""


@dataclass
class Sandbox:
    root: Path
    runs: list[tuple[str, PipelineRun]] = field(default_factory=list)
    clock: int = 0

    @property
    def repo(self) -> Path:
        return self.root / "app"

    @property
    def origin(self) -> Path:
        return self.root / "origin.git"

    @property
    def deployments(self) -> Path:
        return self.repo / "build" / "deployments"

    @property
    def registry(self) -> Path:
        return self.repo / "build" / "registry"

    def git(self, *args: str) -> str:
        """Run git in the working copy; a failure raises with git's own message. Commits get a fixed author
        and a clock that advances a second per git command, so the history (and its shas) is the same every run."""
        self.clock += 1
        stamp = f"2026-01-05T09:{self.clock // 60 % 60:02d}:{self.clock % 60:02d}+0000"
        done = subprocess.run(["git", *args], cwd=self.repo, capture_output=True, text=True, check=False,
                              env={**os.environ, **IDENTITY, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
        if done.returncode != 0:
            raise SandboxError(f"git {' '.join(args)} failed in {self.repo}:\n{done.stderr.strip()}")
        return done.stdout.strip()

    def activate(self) -> None:
        """Point this process's deploy state and registry at the sandbox, where its pipelines write them."""
        os.environ["LLMOPS_DEPLOY_DIR"] = str(self.deployments)
        os.environ["LLMOPS_REGISTRY"] = str(self.registry)

    def branch(self, name: str, start: str = "develop") -> None:
        """Create ``name`` from ``start`` and check it out."""
        self.git("switch", "-c", name, start)

    def edit(self, path: str, change: Callable[[str], str] | str, message: str) -> str:
        """Change one file (a new text, or a function of the old one), commit and push; returns the sha."""
        target = self.repo / path
        old = target.read_text(encoding="utf-8") if target.is_file() else ""
        new = change(old) if callable(change) else change
        if new == old:
            raise SandboxError(f"{path}: the change leaves the file as it was; nothing to commit.")
        target.write_text(new, encoding="utf-8")
        self.git("add", path)
        self.git("commit", "-q", "-m", message)
        self.git("push", "-q", "-u", "origin", "HEAD")
        return self.git("rev-parse", "--short", "HEAD")

    def merge(self, head: str, base: str, message: str = "") -> str:
        """Merge ``head`` into ``base`` with a merge commit (as a PR merge does), push, and return the sha."""
        self.git("switch", base)
        self.git("merge", "--no-ff", "-q", "-m", message or f"Merge {head} into {base}", head)
        self.git("push", "-q", "origin", base)
        return self.git("rev-parse", "--short", "HEAD")

    def run(self, workflow: str, event: str, branch: str, *, label: str = "", base: str = "",
            jobs: list[str] | None = None, approve: str = "", settings: dict[str, str] | None = None,
            echo: bool = True) -> PipelineRun:
        """Check out ``branch`` and run ``.github/workflows/<workflow>`` for ``event`` with the local runner."""
        self.git("switch", branch)
        run = run_pipeline(self.repo / ".github" / "workflows" / workflow, event, workdir=self.repo, branch=branch,
                           base=base, jobs=jobs, approve=approve, env=settings, echo=echo)
        self.runs.append((label or f"{workflow} {branch}", run))
        return run

    def pull_request(self, head: str, base: str, **kwargs: Any) -> PipelineRun:
        """What opening a PR from ``head`` into ``base`` triggers: ``pr-evaluation.yml``."""
        kwargs.setdefault("label", f"PR {head} → {base}")
        return self.run("pr-evaluation.yml", "pull_request", head, base=base, **kwargs)


def create_sandbox(folder: str | Path) -> Sandbox:
    """A fresh sandbox in ``folder`` (replacing an earlier one, after stopping its endpoints): the app committed
    on ``main``, ``develop`` branched from it, both pushed to the bare ``origin.git``."""
    from llmops_helpers.release.rollouts import load_state, undeploy

    sandbox = Sandbox(Path(folder).resolve())
    if sandbox.deployments.is_dir():
        for environment in list(load_state(sandbox.deployments)["environments"]):
            undeploy(environment, sandbox.deployments)
    if sandbox.root.exists():
        shutil.rmtree(sandbox.root, onerror=lambda fn, path, _: (os.chmod(path, 0o700), fn(path)))
    sandbox.root.mkdir(parents=True)
    source = kit_root()
    for relative in APP_FILES:
        src, dst = source / relative, sandbox.repo / relative
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", ".promptflow", "*.pyc"))
        else:
            shutil.copy2(src, dst)
    (sandbox.repo / ".gitignore").write_text("build/\n.venv/\n__pycache__/\n.promptflow/\n", encoding="utf-8")
    (sandbox.repo / "README.md").write_text(
        "# Contoso support agent\n\nA sandbox copy of the workshop's sample app, for the branching lab.\n",
        encoding="utf-8")
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(sandbox.origin)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(sandbox.repo)], check=True)
    sandbox.git("remote", "add", "origin", str(sandbox.origin))
    sandbox.git("add", "-A")
    sandbox.git("commit", "-q", "-m", "Support agent: first version")
    sandbox.git("push", "-q", "-u", "origin", "main")
    sandbox.git("switch", "-q", "-c", "develop")
    sandbox.git("push", "-q", "-u", "origin", "develop")
    return sandbox


KINDS = ("main", "release", "develop", "feature")
KIND_COLOURS = {"main": "#1f77b4", "release": "#9467bd", "develop": "#2ca02c", "feature": "#ff7f0e"}


def _kind(branch: str) -> str:
    return next((kind for kind in KINDS if branch == kind or branch.startswith(kind + "/")), "feature")


def _lane_order(branch: str) -> tuple[int, str]:
    """main first, then develop, releases and features: the order in which commits are given to branches."""
    return ({"main": 0, "develop": 1, "release": 2, "feature": 3}[_kind(branch)], branch)


def git_graph(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Commits oldest first, each with its parents, subject, the branch it was made on (by first-parent
    history, main first) and the branch names pointing at it."""
    branches = [b for b in sandbox.git("for-each-ref", "--format=%(refname:short)", "refs/heads").split("\n") if b]
    owner: dict[str, str] = {}
    for branch in sorted(branches, key=_lane_order):
        for sha in sandbox.git("rev-list", "--first-parent", branch).split():
            owner.setdefault(sha, branch)
    tips: dict[str, list[str]] = {}
    for branch in branches:
        tips.setdefault(sandbox.git("rev-parse", branch), []).append(branch)
    log = sandbox.git("log", "--all", "--reverse", "--date-order", "--format=%H%x1f%P%x1f%s")
    commits = []
    for line in log.splitlines():
        sha, parents, subject = line.split("\x1f")
        commits.append({"sha": sha, "parents": parents.split(), "subject": subject,
                        "branch": owner.get(sha, "feature"), "tips": sorted(tips.get(sha, []), key=_lane_order)})
    return commits


def plot_git_graph(sandbox: Sandbox, ax: Any = None):
    """The branching history, a lane per branch (main on top, then releases, develop, features): a dot per
    commit, lines to its parents, branch names at their tips."""
    import matplotlib.pyplot as plt

    commits = git_graph(sandbox)
    display = {"main": 0, "release": 1, "develop": 2, "feature": 3}
    lanes = sorted({c["branch"] for c in commits}, key=lambda b: (display[_kind(b)], b))
    y = {lane: len(lanes) - i for i, lane in enumerate(lanes)}
    where = {c["sha"]: (x, y[c["branch"]]) for x, c in enumerate(commits)}
    if ax is None:
        _, ax = plt.subplots(figsize=(max(8, 1.25 * len(commits) + 2), 0.85 * len(lanes) + 1.4))
    for c in commits:
        x1, y1 = where[c["sha"]]
        for parent in c["parents"]:
            if parent in where:
                x0, y0 = where[parent]
                first = parent == c["parents"][0]
                owner = c["branch"] if first else next(d["branch"] for d in commits if d["sha"] == parent)
                bend = max(x0, x1 - 0.45)  # along the parent's lane, then over to the child
                ax.plot([x0, bend, x1], [y0, y0, y1], color=KIND_COLOURS[_kind(owner)], zorder=1, linewidth=1.6,
                        alpha=0.7)
    for c in commits:
        x, yy = where[c["sha"]]
        colour = KIND_COLOURS[_kind(c["branch"])]
        ax.scatter([x], [yy], s=150, color=colour, zorder=2, edgecolor="white", linewidth=1.5)
        ax.annotate(c["subject"][:22], (x, yy), textcoords="offset points", xytext=(0, -15), ha="center",
                    fontsize=7)
        if c["tips"]:
            ax.annotate("\n".join(c["tips"]), (x, yy), textcoords="offset points", xytext=(0, 9), ha="center",
                        va="bottom", fontsize=7.5, color=colour, fontweight="bold")
    ax.set_yticks([y[lane] for lane in lanes], lanes, fontsize=8)
    ax.set_xticks([])
    ax.set_ylim(0.3, len(lanes) + 1.0)
    ax.set_xlim(-0.7, len(commits) - 0.3)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title("The sandbox's git history, a lane per branch")
    return ax


def plot_pipeline_runs(runs: list[tuple[str, PipelineRun]], ax: Any = None):
    """Each pipeline run as a row of its jobs: green passed, red failed, grey skipped."""
    import matplotlib.pyplot as plt

    colours = {"passed": "#2ca02c", "failed": "#d62728", "skipped": "#c7c7c7"}
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 0.55 * len(runs) + 1.2))
    for row, (_label, run) in enumerate(reversed(runs)):
        jobs: dict[str, str] = {}
        for step in run.steps:
            previous = jobs.get(step.job)
            if step.status == "failed" or previous is None or (previous == "skipped" and step.status == "passed"):
                jobs[step.job] = step.status
        x = 0.0
        for job, state in jobs.items():
            width = max(1.6, 0.12 * len(job) + 0.6)
            ax.barh(row, width - 0.1, left=x, color=colours[state], edgecolor="white")
            ax.text(x + (width - 0.1) / 2, row, job, ha="center", va="center", fontsize=8,
                    color="white" if state != "skipped" else "#444444")
            x += width
        verdict = "passed" if run.passed else "FAILED"
        ax.text(x + 0.2, row, f"{verdict} {sum(s.seconds for s in run.steps):.0f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(runs)), [label for label, _ in reversed(runs)], fontsize=8)
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title("Pipeline runs, oldest at the top (green passed · red failed · grey skipped)")
    return ax
