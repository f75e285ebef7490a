"""Where the kit lives on disk, so notebooks and tests never depend on the current directory."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmops_helpers.errors import LLMOpsError


def kit_root() -> Path:
    """The repository root: ``LLMOPS_KIT_ROOT`` if set, else the folder holding this package's
    ``pyproject.toml`` (an editable install), else the current directory."""
    env = os.environ.get("LLMOPS_KIT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "solutions").is_dir():
        return here
    return Path.cwd().resolve()


def build_dir() -> Path:
    """Scratch output (executed notebooks, run artefacts); git-ignored."""
    return kit_root() / "build"


def registry_dir() -> Path:
    """The registry of built things (the app's artifacts, the retrieval indexes): ``$LLMOPS_REGISTRY``, else
    ``build/registry``."""
    env = os.environ.get("LLMOPS_REGISTRY")
    return Path(env) if env else build_dir() / "registry"


def git_output(*args: str, cwd: str | Path | None = None, timeout: float = 30) -> str:
    """``git <args>``'s output in ``cwd`` (default: the kit), stripped; "" when git or the repository is
    missing or the command fails."""
    import subprocess

    try:
        return subprocess.run(["git", *args], cwd=cwd or kit_root(), capture_output=True, text=True, check=True,
                              timeout=timeout).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write through a temporary file of its own in the same folder and rename it over ``path``, so a reader
    never sees half a file and two writers never share (and steal) one temporary file."""
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the files it replaces were not
        for attempt in range(50):
            try:
                os.replace(tmp, path)
                break
            except PermissionError:  # Windows: a reader has the target open for a moment
                if os.name != "nt" or attempt == 49:
                    raise
                time.sleep(0.02)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class LockTimeoutError(LLMOpsError):
    """Another process held a kit lock (deployment state, an environment's rollout) past the deadline."""


_held: dict[str, list] = {}  # lock path -> [owning thread id, depth, open handle]
_held_guard = threading.Lock()


def _try_lock(handle) -> bool:
    try:
        if os.name == "nt":
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _unlock(handle) -> None:
    if os.name == "nt":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def lock_holder(path: str | Path) -> dict | None:
    """Who holds (or last held) the lock at ``path``: pid, command, since, purpose; None if unknown."""
    try:
        return json.loads(Path(str(path) + ".holder").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return "an unknown process"
    return (f"process {holder.get('pid')} ({holder.get('command', '?')}, {holder.get('purpose') or 'working'} "
            f"since {holder.get('since', '?')})")


def is_locked(path: str | Path) -> bool:
    """Whether some process holds the lock at ``path`` right now (a crashed holder's lock is released)."""
    path = Path(path)
    if not path.is_file():
        return False
    key = str(path.resolve())
    with _held_guard:
        if key in _held:
            return True
    with path.open("a+b") as handle:
        if _try_lock(handle):
            _unlock(handle)
            return False
        return True


@contextmanager
def file_lock(path: str | Path, *, timeout: float = 30.0, purpose: str = "") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) across processes, waiting at most ``timeout``
    seconds. Re-entrant within a thread. The OS releases it when the holder dies, so a crash never leaves it
    stuck; who holds it is kept in ``<path>.holder`` for the error message."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    me = threading.get_ident()
    with _held_guard:
        mine = _held.get(key)
        if mine and mine[0] == me:
            mine[1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key][1] -= 1
        return
    handle = path.open("a+b")
    deadline = time.monotonic() + timeout
    while not _try_lock(handle):
        if time.monotonic() >= deadline:
            handle.close()
            raise LockTimeoutError(
                f"{path} is held by {describe_holder(lock_holder(path))}, and it was not released within "
                f"{timeout:g} s. Wait for that process to finish, or stop it if it hangs (the lock is released "
                "when it exits); do not delete the lock file while it runs.")
        time.sleep(0.05)
    with _held_guard:
        _held[key] = [me, 1, handle]
    try:
        holder = {"pid": os.getpid(), "command": " ".join(sys.argv)[:200], "purpose": purpose,
                  "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            write_text_atomic(str(path) + ".holder", json.dumps(holder))
        except OSError:
            pass  # only used to name the holder in an error
        yield
    finally:
        with _held_guard:
            _held.pop(key, None)
        try:
            _unlock(handle)
        finally:
            handle.close()


def deploy_folder_registry() -> Path:
    """The list of deployment folders in which the kit has started endpoints, for ``llmops undeploy --all``:
    ``$LLMOPS_DEPLOY_REGISTRY``, else ``build/deploy-folders.txt`` of the checkout this package runs from (so
    sandboxes, whose pipelines run with another kit root, are listed in the kit's own build folder)."""
    env = os.environ.get("LLMOPS_DEPLOY_REGISTRY")
    if env:
        return Path(env)
    home = Path(__file__).resolve().parent.parent
    if (home / "pyproject.toml").is_file() and (home / "llmops_helpers").is_dir():
        return home / "build" / "deploy-folders.txt"
    return build_dir() / "deploy-folders.txt"


def deploy_scan_root() -> Path:
    """Where ``llmops undeploy --all`` also looks for running kit endpoints that no registered folder lists:
    this package's checkout (lab sandboxes live in its build folder), or, with ``$LLMOPS_DEPLOY_REGISTRY`` set,
    only the registry's own folder, so a scoped registry never reaches another copy's endpoints."""
    env = os.environ.get("LLMOPS_DEPLOY_REGISTRY")
    if env:
        return Path(env).resolve().parent
    return Path(__file__).resolve().parent.parent


def register_deploy_folder(folder: str | Path) -> None:
    """Remember ``folder`` in :func:`deploy_folder_registry` (once)."""
    registry = deploy_folder_registry()
    folder = str(Path(folder).resolve())
    with file_lock(str(registry) + ".lock", timeout=30, purpose="registering a deployment folder"):
        known = registry.read_text(encoding="utf-8").splitlines() if registry.is_file() else []
        if folder not in known:
            registry.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(registry, "\n".join([*known, folder]) + "\n")


def registered_deploy_folders() -> list[Path]:
    """The registered deployment folders that still exist."""
    registry = deploy_folder_registry()
    lines = registry.read_text(encoding="utf-8").splitlines() if registry.is_file() else []
    return [Path(line) for line in dict.fromkeys(lines) if line.strip() and Path(line).is_dir()]
