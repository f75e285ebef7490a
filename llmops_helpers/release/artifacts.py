"""Build once, promote the same bytes: an immutable, content-addressed artifact of the support agent.

An artifact is a folder in a registry (``build/registry/<name>/<version>/``) holding the flow folder as git tracks
it at a commit (code, prompts, config; never ignored or untracked files, and never a file that looks like a secret),
``requirements.lock`` (the exact versions of what the flow's ``requirements.txt`` lists and everything those depend
on, optionally with the sha256 of each wheel for ``pip install --require-hashes``), ``evidence/`` (the evaluation
summary, its metadata and the passed gate decision that admitted it; the evaluated flow's digest must be the
packaged flow's) and ``manifest.json`` with a **content digest**: sha256 over every file's path and bytes. The same
sources give the same digest; a changed byte gives another one, and :func:`verify_artifact` notices. A version
(semver + git sha) can be registered only once."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_helpers.errors import LLMOpsError
from llmops_helpers.evaluate.files import GATE_JSON, METADATA, SUMMARY
from llmops_helpers.flow.app import (
    SCRATCH,
    SECRET_NAMES,
    files_digest,
    in_git,
    matches_any,
    run_git,
    support_agent_dir,
)
from llmops_helpers.paths import git_output, registry_dir

MANIFEST = "manifest.json"
LOCKFILE = "requirements.lock"
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
SECRET_CONTENT = (
    ("a private key", re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")),
    ("an OpenAI-style API key", re.compile(rb"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}")),
    ("a GitHub token", re.compile(rb"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("an AWS access key id", re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Slack token", re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    # NAME = value, where the value has a digit and a lower-case letter (not an environment variable's name)
    ("a key or password written into the file",
     re.compile(rb"(?i:api[_-]?key|secret|token|password|passwd)[\"']?\s*[:=]\s*[\"']?"
                rb"(?=[A-Za-z0-9/+_-]*[0-9])(?=[A-Za-z0-9/+_-]*[a-z])[A-Za-z0-9/+_-]{20,}")),
)


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
    """Where artifacts are registered: :func:`llmops_helpers.paths.registry_dir` (``$LLMOPS_REGISTRY``, else
    ``build/registry``)."""
    return registry_dir()


def content_digest(folder: str | Path) -> str:
    """The digest of every file in ``folder`` but the manifest."""
    folder = Path(folder)
    return files_digest({p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
                         if p.is_file() and p != folder / MANIFEST})


def _refuse_uncommitted(flow_dir: Path) -> None:
    """A build packages the commit, so the working copy's flow must be that commit: refuse local changes."""
    porcelain = run_git(flow_dir, "status", "--porcelain", "-z", "--no-renames", "--untracked-files=all", "--", ".")
    changes = [entry for entry in porcelain.stdout.decode().split("\0") if len(entry) > 3]
    changes = [entry for entry in changes if not matches_any(entry[3:], SCRATCH)  # never packaged, even if tracked
               and not (entry.startswith("??") and matches_any(entry[3:], SECRET_NAMES))]
    if changes:
        listed = ", ".join(f"{entry[3:]} ({'new, not committed' if entry.startswith('??') else 'changed'})"
                           for entry in changes[:8]) + (" ..." if len(changes) > 8 else "")
        raise ArtifactError(f"{flow_dir} has uncommitted changes: {listed}. A build packages what git tracks at a "
                            "commit, so what you evaluated and tested must be committed: commit (or stash) these "
                            "changes, or add scratch files to .gitignore, then build again; to build an earlier "
                            "commit as it is, pass --ref COMMIT.")


def flow_source(flow_dir: str | Path, ref: str = "HEAD") -> tuple[str, dict[str, bytes]]:
    """The full commit sha of ``ref`` and ``{path in the flow: bytes}`` of every file git tracks in ``flow_dir``
    at that commit (``git archive``): ignored and untracked files are never part of it, nor is run scratch
    (:data:`SCRATCH`) committed by mistake, which :func:`flow_digest` never counts either."""
    flow_dir = Path(flow_dir).resolve()
    if not in_git(flow_dir):
        raise ArtifactError(f"{flow_dir} is not in a git repository (or git ignores it, or git is not installed). "
                            "A build packages the flow as committed, so it can be traced to a commit: `git init`, "
                            "add and commit the flow folder, then build again.")
    sha = run_git(flow_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").stdout.decode().strip()
    if not sha:
        raise ArtifactError(f"{ref!r} is not a commit in the repository of {flow_dir}. Commit the flow first, or "
                            "pass a branch, tag or sha that exists.")
    archive = run_git(flow_dir, "archive", "--format=tar", sha)  # in a subfolder: that folder, paths relative to it
    if archive.returncode != 0:
        raise ArtifactError(f"{flow_dir} has no files at {ref} ({sha[:12]}): "
                            f"{archive.stderr.decode().strip()}. Commit the flow folder first.")
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                if not matches_any(member.name, SCRATCH):
                    files[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
            elif member.issym():
                raise ArtifactError(f"{flow_dir / member.name} is a symbolic link in git; an artifact holds files "
                                    "only. Commit the file itself instead of a link to it.")
    return sha, files


def find_secrets(files: dict[str, bytes]) -> list[str]:
    """``"<path>: <why>"`` for each file whose name or content looks like a secret (never the value itself)."""
    found = []
    for relative, data in sorted(files.items()):
        if matches_any(relative.rsplit("/", 1)[-1], SECRET_NAMES):
            found.append(f"{relative}: a secret-like file name")
            continue
        kind = next((kind for kind, pattern in SECRET_CONTENT if pattern.search(data)), None)
        if kind:
            found.append(f"{relative}: contains {kind}")
    return found


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_from_source(dist) -> bool:
    """Installed from a local folder or VCS (e.g. the kit, editable), so no package index has its file."""
    direct = dist.read_text("direct_url.json")
    return bool(direct) and "archive_info" not in json.loads(direct)


KIT_DISTRIBUTION = "llmops-workshop-kit"
#: The app's own list of what it needs at run time, in the flow folder (pip's requirements format, names only).
APP_REQUIREMENTS = "requirements.txt"


def app_requirements(text: str, where: str = APP_REQUIREMENTS) -> tuple[str, ...]:
    """The distribution names a flow's ``requirements.txt`` lists (comments and blank lines skipped)."""
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            names.append(Requirement(line).name)
        except InvalidRequirement as exc:
            raise ArtifactError(f"{where}, line {number}: {line!r} is not a requirement ({exc}). List one "
                                "distribution name per line, e.g. openai.") from None
    if not names:
        raise ArtifactError(f"{where} lists no distribution. List what the app imports to answer, one per line.")
    return tuple(names)


def lock_requirements(roots: tuple[str, ...] | None = None, *, hashes: bool = False) -> str:
    """``name==version`` for ``roots`` (default: the sample app's ``requirements.txt``) and everything they
    depend on (transitively), as installed right now; the kit itself is pinned without following its own
    dependencies (the notebooks', CI's), which the app does not import. With ``hashes``, each line also carries
    the sha256 of the wheel pip picks for this platform (see :func:`hash_requirements`; needs the package
    index)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    if roots is None:
        path = support_agent_dir() / APP_REQUIREMENTS
        roots = app_requirements(path.read_text(encoding="utf-8"), str(path))
    seen: dict[str, str] = {}
    from_source: set[str] = set()
    todo = list(roots)
    while todo:
        name = _canonical(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency that is not installed
        seen[name] = dist.version
        if _installed_from_source(dist):
            from_source.add(name)
        if name == KIT_DISTRIBUTION:
            continue  # the app imports the kit's runtime stages only; their imports are the app's other roots
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    pins = {name: f"{name}=={version}" for name, version in sorted(seen.items())}
    if not hashes:
        return "".join(pin + "\n" for pin in pins.values())
    return hash_requirements([pin for name, pin in pins.items() if name not in from_source],
                             from_source=[pins[name] for name in sorted(from_source)])


def hash_requirements(pins: list[str], *, from_source: list[str] = (), pip_options: tuple[str, ...] = ()) -> str:
    """A lock for ``pip install --no-deps --require-hashes -r requirements.lock``: each ``name==version`` with the
    sha256 of the file pip resolves for it on this platform, asked of the package index with pip itself
    (``pip install --dry-run --report``: metadata only where the index serves it; ~17 s for the kit's 178 pins).
    ``from_source`` pins (the kit itself, installed from its checkout) are listed as comments: no index has them.
    ``pip_options`` go to pip, e.g. ``("--no-index", "--find-links", folder)``."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llmops-lock-") as scratch:
        requirements, report = Path(scratch) / "requirements.txt", Path(scratch) / "report.json"
        requirements.write_text("".join(pin + "\n" for pin in pins), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                               "--no-deps", "--quiet", "--disable-pip-version-check", *pip_options, "--report",
                               str(report), "-r", str(requirements)], capture_output=True, text=True, check=False,
                              timeout=900)
        if done.returncode != 0 or not report.is_file():
            problem = " ".join(line for line in done.stderr.splitlines() if line.startswith("ERROR"))[:600]
            raise ArtifactError(f"pip could not resolve the lock's {len(pins)} pins to files with hashes "
                                f"({problem or 'exit code ' + str(done.returncode)}). Hashing needs the package "
                                "index (PyPI or a mirror); offline, build without --lock-hashes.")
        installs = json.loads(report.read_text(encoding="utf-8"))["install"]
    lines = [f"# pip install --no-deps --require-hashes -r {LOCKFILE}  (wheels for this platform: "
             f"{sys.platform}, Python {sys.version_info.major}.{sys.version_info.minor})\n"]
    lines += [f"# installed from its own source, not from an index: {pin}\n" for pin in from_source]
    by_name = {_canonical(item["metadata"]["name"]): item for item in installs}
    for pin in pins:
        name = _canonical(pin.split("==")[0])
        sha256 = (by_name.get(name, {}).get("download_info", {}).get("archive_info", {}).get("hashes", {})
                  .get("sha256"))
        if not sha256:
            raise ArtifactError(f"pip resolved no file with a sha256 for {pin}; it cannot be installed with "
                                "--require-hashes. Check that the index serves it as a wheel or sdist.")
        lines.append(f"{pin} \\\n    --hash=sha256:{sha256}\n")
    return "".join(lines)


def install_command(artifact: Artifact) -> list[str]:
    """How to install what an artifact's lock pins, refusing any file whose hash differs from the lock's."""
    lock = artifact.path / LOCKFILE
    if "--hash=sha256:" not in lock.read_text(encoding="utf-8"):
        raise ArtifactError(f"{lock} has no hashes, so it cannot be installed with --require-hashes. Build the "
                            "artifact with `llmops build --lock-hashes` (needs the package index).")
    return [sys.executable, "-m", "pip", "install", "--no-deps", "--require-hashes", "-r", str(lock)]


def git_sha(folder: Path | None = None) -> str:
    return git_output("rev-parse", "--short=7", "HEAD", cwd=folder) or "nogit"


def auto_version(folder: Path | None = None, branch: str = "", ref: str = "HEAD") -> str:
    """The version a pipeline builds: ``X.Y.Z`` on a ``release/X.Y.Z`` branch, else a pre-release
    ``0.0.0-<branch>.<commit count>`` (e.g. ``0.0.0-develop.17``) that sorts below every release."""
    branch = branch or os.environ.get("GITHUB_REF_NAME") or git_output("rev-parse", "--abbrev-ref", "HEAD",
                                                                       cwd=folder) or "local"
    release = re.fullmatch(r"release/(\d+\.\d+\.\d+)", branch)
    if release:
        return release.group(1)
    count = git_output("rev-list", "--count", ref, cwd=folder) or "0"
    return f"0.0.0-{re.sub(r'[^0-9A-Za-z-]+', '-', branch).strip('-') or 'local'}.{count}"


def _admitting_evidence(eval_run: Path, packaged_digest: str) -> dict[str, Path]:
    """The eval run's summary, metadata and a *passed* gate decision, for exactly the flow being packaged;
    anything else refuses the build."""
    summary, decision, metadata = eval_run / SUMMARY, eval_run / GATE_JSON, eval_run / METADATA
    if not summary.is_file():
        raise ArtifactError(f"{summary}: no evaluation summary. Run `llmops eval --out {eval_run}` first.")
    if not decision.is_file():
        raise ArtifactError(f"{decision}: no gate decision. Run `llmops gate --candidate {eval_run}` first; "
                            "an artifact is built only from a change that passed the gate.")
    try:
        passed = json.loads(decision.read_text(encoding="utf-8")).get("passed")
        meta = json.loads(metadata.read_text(encoding="utf-8")) if metadata.is_file() else {}
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{eval_run}: a run file is not valid JSON ({exc}); evaluate and gate again.") from None
    if passed is not True:
        raise ArtifactError(f"{decision}: the gate failed, so this change may not be built. See gate_decision.md.")
    evaluated = meta.get("flow_digest")
    if not evaluated:
        raise ArtifactError(f"{metadata}: the run does not record which flow it evaluated (no flow_digest), so it "
                            "cannot admit a build. Evaluate the flow again with this kit (`llmops eval --out "
                            f"{eval_run} --fresh`) and gate it.")
    if evaluated != packaged_digest:
        raise ArtifactError(f"{eval_run} evaluated a flow with digest {evaluated} ({meta.get('flow', '?')}), but "
                            f"the flow being packaged has {packaged_digest}: the evidence is for other content. "
                            "Evaluate and gate this commit's flow, then build with that run.")
    return {SUMMARY: summary, METADATA: metadata, GATE_JSON: decision}


def _make_read_only(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def build_artifact(version: str, *, flow_dir: str | Path | None = None, eval_run: str | Path | None = None,
                   no_gate: str = "", ref: str = "HEAD", lock_hashes: bool = False,
                   registry: str | Path | None = None, name: str = "support-agent") -> Artifact:
    """Package ``flow_dir`` (default: the sample app) as git tracks it at ``ref`` as ``<name>@<version>+<sha>``.

    The gate is required: ``eval_run`` must hold a passed gate decision for an evaluation of this very flow
    content (its recorded ``flow_digest``); ``no_gate`` (a reason, written to the manifest) is the only way
    around it. Building ``HEAD`` refuses uncommitted changes in the flow folder; any secret-like file refuses
    the build. Building identical content again returns the registered artifact; different content under a
    registered version is refused, because a version must always mean the same bytes."""
    from llmops_helpers.flow.app import support_agent_dir

    flow_dir = Path(flow_dir) if flow_dir else support_agent_dir()
    if version == "auto":
        version = auto_version(flow_dir, ref=ref)
    if not SEMVER.match(version):
        raise ArtifactError(f"version {version!r} is not semver (MAJOR.MINOR.PATCH, e.g. 1.0.0).")
    if bool(eval_run) == bool(no_gate.strip()):
        raise ArtifactError("a build needs the gate's evidence: pass --eval-run RUN (an evaluation of this flow "
                            "whose gate passed)" + (", not also --no-gate." if eval_run else
                                                    ", or --no-gate \"REASON\" to build without it (the reason "
                                                    "is recorded in the manifest)."))
    sha, files = flow_source(flow_dir, ref)
    if ref == "HEAD":
        _refuse_uncommitted(flow_dir)
    if "flow.flex.yaml" not in files:
        raise ArtifactError(f"{flow_dir}: no flow.flex.yaml committed at {ref}; pass the flow folder to package.")
    secrets = find_secrets(files)
    if secrets:
        raise ArtifactError(f"refusing to package secrets from {flow_dir} at {sha[:12]}: {'; '.join(secrets)}. "
                            "Remove the file from git (`git rm --cached FILE`, add it to .gitignore, commit), keep "
                            "keys in environment variables or the git-ignored .env at the kit's root, and rotate "
                            "any key that was committed.")
    packaged = files_digest(files)
    evidence = _admitting_evidence(Path(eval_run), packaged) if eval_run else {}
    if APP_REQUIREMENTS not in files:
        raise ArtifactError(f"{flow_dir}: no {APP_REQUIREMENTS} committed at {ref}. List what the app imports to "
                            "answer (one distribution per line, as flows/support_agent/requirements.txt does) and "
                            "commit it: the artifact's lock pins exactly that.")
    roots = app_requirements(files[APP_REQUIREMENTS].decode("utf-8", "replace"), f"{flow_dir / APP_REQUIREMENTS}")
    lock = lock_requirements(roots, hashes=lock_hashes)
    full_version = f"{version}+{sha[:7]}"
    registry = Path(registry) if registry else default_registry()
    target = registry / name / full_version
    staging = registry / name / f".staging-{os.getpid()}-{time.monotonic_ns()}"
    staging.mkdir(parents=True)
    try:
        for relative, data in files.items():
            (staging / "flow" / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / "flow" / relative).write_bytes(data)
        (staging / LOCKFILE).write_text(lock, encoding="utf-8")
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
        summary = json.loads(evidence[SUMMARY].read_text(encoding="utf-8")) if evidence else None
        manifest = {"name": name, "version": full_version, "digest": digest, "git_sha": sha[:7], "commit": sha,
                    "flow_digest": packaged,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "entry": "flow/flow.flex.yaml",
                    "files": sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()),
                    "lock_hashes": lock_hashes,
                    "gate": ({"passed": True, "eval_run": str(eval_run)} if evidence
                             else {"passed": None, "skipped_because": no_gate.strip()}),
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
    commit it was built from (``git:<sha>``, full or short; the newest build of that commit). Any of these
    followed by ``@sha256:<digest>`` (at least 12 hex digits) must also have that digest, e.g.
    ``git:<sha>@sha256:<digest>``: how CD deploys exactly the build CI made and gated, not merely some build of
    that commit."""
    registry = Path(registry) if registry else default_registry()
    text = str(ref)
    if text.startswith("git:") and "@" in text or "@sha256:" in text:
        base, _, pinned = text.rpartition("@")
        if not re.fullmatch(r"sha256:[0-9a-f]{12,64}", pinned):
            raise ArtifactError(f"{ref!r}: after '@' comes the digest CI built (sha256: and at least 12 hex "
                                f"digits), not {pinned!r}. Pass the build step's `digest` output (e.g. "
                                "git:<sha>@sha256:<digest>), or the ref alone.")
        if base.startswith("git:"):  # among several builds of a commit, the one with this digest
            builds = [a for a in _builds_of_commit(base[4:], registry) if a.digest.startswith(pinned)]
            artifact = builds[-1] if builds else _resolve(base, registry)
        else:
            artifact = _resolve(base, registry)
        if not artifact.digest.startswith(pinned):
            raise ArtifactError(f"{base} resolves to {artifact.ref} with digest {artifact.digest}, not {pinned}: "
                                f"the registry ({registry}) does not hold the build that was asked for. Deploy "
                                "from the registry of the CI run that built it, or build and gate it again.")
        return artifact
    return _resolve(ref, registry)


def _builds_of_commit(sha: str, registry: Path) -> list[Artifact]:
    """Every build of commit ``sha`` (full or at least 7 digits), oldest first."""
    def built_from(artifact: Artifact) -> bool:
        full = artifact.manifest.get("commit")  # older manifests hold only the 7-digit git_sha
        return full.startswith(sha) if full else artifact.manifest.get("git_sha", "")[:7] == sha[:7]

    return sorted((a for a in list_artifacts(registry) if len(sha) >= 7 and built_from(a)),
                  key=lambda a: a.manifest.get("created", ""))


def _resolve(ref: str | Path, registry: Path) -> Artifact:
    path = Path(ref)
    if not (path / MANIFEST).is_file():
        candidates = list_artifacts(registry)
        text = str(ref)
        if text.startswith("git:"):
            built = _builds_of_commit(text[4:], registry)
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
