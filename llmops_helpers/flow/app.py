"""The sample app as code to load: where its flow folder is, its entry module (imported, or loaded as a copy of
its own so a baseline and a candidate can live in one process), the flow as committed at a git ref, and the
digest of the flow's files that evaluations record and builds check."""

from __future__ import annotations

import fnmatch
import hashlib
import subprocess
from pathlib import Path

from llmops_helpers.errors import ConfigError
from llmops_helpers.paths import build_dir, git_output, kit_root

# files a run leaves in a flow folder; never packaged, never part of a flow's digest, never "uncommitted changes"
SCRATCH = ("__pycache__", "*.pyc", ".promptflow", ".runs", "*.log", ".pytest_cache")
# file names that hold secrets; never packaged, never counted in a digest when untracked
SECRET_NAMES = (".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.p12",
                "*.pfx", "*.jks", "*.keystore")


def files_digest(files: dict[str, bytes]) -> str:
    """sha256 over (relative path, file sha256) of ``files``, in path order: the one digest formula."""
    digest = hashlib.sha256()
    for relative in sorted(files):
        digest.update(relative.encode() + b"\0" + hashlib.sha256(files[relative]).hexdigest().encode() + b"\n")
    return "sha256:" + digest.hexdigest()


def matches_any(relative: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in relative.split("/") for pattern in patterns)


def run_git(flow_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """``git <args>`` in ``flow_dir`` (bytes); no git at all counts as a failed command, never a crash."""
    try:
        return subprocess.run(["git", *args], cwd=flow_dir, capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess(["git", *args], 127, b"", str(exc).encode())


def in_git(flow_dir: Path) -> bool:
    """Is ``flow_dir`` inside a git working copy, and not a git-ignored folder of it (e.g. build/refs/...)?"""
    inside = run_git(flow_dir, "rev-parse", "--is-inside-work-tree")
    return inside.returncode == 0 and run_git(flow_dir, "check-ignore", "-q", ".").returncode != 0


def flow_digest(flow_dir: str | Path) -> str:
    """The digest of the flow as it is on disk now, over the files a build would package: in a git working copy
    the tracked files plus new files not ignored (a build refuses the latter until they are committed), else
    every file; run scratch (caches, logs) and untracked secret-like files never count. An evaluation records
    it, and a build admits the evaluation only when it equals the digest of the flow it packages."""
    flow_dir = Path(flow_dir)
    if in_git(flow_dir):
        def listed(*options: str) -> list[str]:
            out = run_git(flow_dir, "ls-files", "-z", *options, "--", ".").stdout.decode()
            return [name for name in out.split("\0") if name]

        untracked = [n for n in listed("-o", "--exclude-standard") if not matches_any(n, SCRATCH + SECRET_NAMES)]
        # Scratch counts nowhere, even when committed by mistake: a copy outside git (an extracted commit, the
        # artifact) never counts it, and the same flow must have the same digest wherever it lies.
        names = [n for n in listed("-c") if not matches_any(n, SCRATCH)] + untracked
    else:
        names = [p.relative_to(flow_dir).as_posix() for p in flow_dir.rglob("*") if p.is_file()]
        names = [n for n in names if not matches_any(n, SCRATCH)]
    return files_digest({n: (flow_dir / n).read_bytes() for n in names if (flow_dir / n).is_file()})


def support_agent_dir() -> Path:
    """The sample app's flow folder."""
    return kit_root() / "flows" / "support_agent"


def import_flow_entry(flow: str | Path | None = None, module: str = "support_agent"):
    """Import the flow's Python entry module (to use or subclass its class directly, as Lab 02 does)."""
    import importlib
    import sys

    folder = str(Path(flow) if flow else support_agent_dir())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(module)


def load_flow_module(flow: str | Path, module: str = "support_agent"):
    """Import a copy of the flow's entry module from ``flow`` under a name of its own, so two copies (say, the
    baseline's and the candidate's) can live in one process."""
    import hashlib
    import importlib.util

    path = Path(flow).resolve() / f"{module}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no flow entry module here")
    name = f"{module}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(loaded)  # type: ignore[union-attr]
    return loaded


def flow_at_ref(ref: str, flow_dir: str | Path | None = None) -> Path:
    """The flow folder as committed at git ``ref`` (a branch such as ``origin/develop``, a tag or a sha),
    extracted into ``build/refs/<sha>/``: how a PR pipeline evaluates the target branch as the baseline."""
    import io
    import tarfile

    flow_dir = Path(flow_dir or support_agent_dir()).resolve()
    repo = kit_root()

    sha = git_output("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo)
    if not sha:
        raise ConfigError(f"git ref {ref!r} is not a commit in {repo}. Fetch it first (e.g. git fetch origin "
                          "develop) or pass a branch, tag or sha that exists.")
    relative = flow_dir.relative_to(repo).as_posix()
    target = build_dir() / "refs" / sha[:12]
    if not (target / relative).is_dir():
        archive = run_git(repo, "archive", "--format=tar", sha, relative)
        if archive.returncode != 0:
            raise ConfigError(f"{relative} does not exist at {ref} ({sha[:12]}): {archive.stderr.decode().strip()}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: refuse unsafe paths
                tar.extractall(target, filter="data")
            else:
                tar.extractall(target)  # noqa: S202 (git archive of our own repository)
    return target / relative
