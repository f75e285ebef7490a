"""The deployment record: which artifact each environment (dev, qa, prod) serves from which slot, and every
deploy, switch, canary step, rollback, stop and approval, kept in ``state.json`` in the deployment folder
(``$LLMOPS_DEPLOY_DIR`` or ``build/deployments``) so it survives restarts of the notebook or the machine. Writers
lock it and merge their changes, so two commands at once lose nothing. Also the environments themselves: their
names, ports and which of them need an approval, and the rules of a rollout: its strategies, canary
steps and SLOs (the CLI's defaults come from here)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_helpers.errors import LLMOpsError
from llmops_helpers.paths import build_dir, file_lock, write_text_atomic
from llmops_helpers.release.artifacts import Artifact

ENVIRONMENTS = ("dev", "qa", "prod")
DEFAULT_PORTS = {"dev": 8601, "qa": 8602, "prod": 8603}
PORT_BASE_VARIABLE = "LLMOPS_PORT_BASE"
#: Environments that take an artifact only with a named approval: `llmops deploy` and the pipeline runner's
#: protected jobs apply this one rule.
NEEDS_APPROVAL = ("prod",)
STRATEGIES = ("bluegreen", "canary")


@dataclass
class CanarySLO:
    """What the new slot must hold at every canary step, measured on the traffic it received.

    ``quality`` is a live quality sample: the share of its answers that are well formed (non-empty answer,
    articles retrieved, citations among them) and retrieved an article the golden row names."""

    max_error_rate: float = 0.0
    max_p95_s: float = 60.0
    min_quality: float = 0.8


#: A canary's traffic steps (percent on the new slot) and the answers the new slot must give at each.
DEFAULT_CANARY_STEPS = (10, 50, 100)
DEFAULT_MIN_REQUESTS = 2


class DeployError(LLMOpsError):
    """A deployment could not start, or an environment is unknown."""


class ApprovalRequired(DeployError):
    """Promotion to this environment needs a named approver."""


def default_port(environment: str) -> int:
    """The router port of ``environment``: dev 8601, qa 8602, prod 8603, or base+1/+2/+3 with
    ``LLMOPS_PORT_BASE`` set (two copies of the course side by side, e.g. the test suite's parallel workers)."""
    offset = 0
    raw = os.environ.get(PORT_BASE_VARIABLE, "").strip()
    if raw:
        try:
            base = int(raw)
        except ValueError:
            base = -1
        if not 1024 <= base <= 65500:
            raise DeployError(f"{PORT_BASE_VARIABLE}={raw!r} is not a port number between 1024 and 65500. Set it to "
                              f"e.g. 8700 (routers on 8701-8703), or unset it for the defaults 8601-8603.")
        offset = base - 8600
    return DEFAULT_PORTS[environment] + offset


def deploy_dir(folder: str | Path | None = None) -> Path:
    path = Path(folder or os.environ.get("LLMOPS_DEPLOY_DIR") or build_dir() / "deployments").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class DeployStateError(DeployError):
    """``state.json`` cannot be read; the endpoints it recorded may still be running."""


STATE_LOCK_TIMEOUT_S = 30


#: History actions that end a rollout begun by ``rollout_started``.
ROLLOUT_ENDS = ("deployed", "rolled_back", "failed", "stopped", "rollout_interrupted")


class DeployState(dict):
    """The deployment record as read from ``state.json``. It remembers what was read, so :func:`save_state`
    writes only this caller's changes (its environments, its new history events) on top of whatever other
    processes saved meanwhile."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.mark_saved()

    def mark_saved(self) -> None:
        self.loaded_environments = json.loads(json.dumps(self.get("environments", {})))
        self.loaded_events = len(self.get("history", []))


def state_file(folder: str | Path | None) -> Path:
    return deploy_dir(folder) / "state.json"


def state_lock(folder: str | Path | None, purpose: str = "saving the deployment state"):
    return file_lock(deploy_dir(folder) / "state.lock", timeout=STATE_LOCK_TIMEOUT_S, purpose=purpose)


def _read_state(path: Path) -> dict[str, Any]:
    """The state on disk; missing keys (``{}``) read as empty, damage is refused with what to do."""
    if not path.is_file():
        return {"environments": {}, "history": []}
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        problem = "" if isinstance(data, dict) else f"a JSON {type(data).__name__}, not an object"
    except json.JSONDecodeError as exc:
        data, problem = None, f"not valid JSON ({exc.msg} at line {exc.lineno}; {len(text)} bytes — truncated?)"
    if not problem:
        environments, history = data.get("environments", {}), data.get("history", [])
        if not isinstance(environments, dict) or not all(isinstance(e, dict) for e in environments.values()):
            problem = "'environments' is not an object of environment entries"
        elif not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
            problem = "'history' is not a list of events"
        else:
            return {**data, "environments": environments, "history": history}
    raise DeployStateError(
        f"{path}: {problem}. It records which endpoints run in this folder, so they may still be running "
        f"unrecorded. Run `llmops undeploy --all` (with LLMOPS_DEPLOY_DIR={path.parent} if it is not the default "
        "folder): it finds the kit's endpoints by their processes, stops them, and moves the damaged file aside "
        "as state.json.damaged-<time>, keeping it for you to read. Or repair the JSON by hand if you know what "
        "it held.")


def load_state(folder: str | Path | None = None) -> DeployState:
    return DeployState(_read_state(state_file(folder)))


def _merged(current: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """``current`` (on disk now) with the caller's changes applied: the environments it changed since it
    loaded, and its history events that are not on disk yet."""
    if isinstance(state, DeployState):
        loaded, new_events = state.loaded_environments, state["history"][state.loaded_events:]
    else:  # a plain dict: every environment it has is its change; skip events already on disk
        loaded = {}
        on_disk = {json.dumps(event, sort_keys=True) for event in current["history"]}
        new_events = [e for e in state.get("history", []) if json.dumps(e, sort_keys=True) not in on_disk]
    environments = dict(current["environments"])
    mine = state.get("environments", {})
    for name in set(loaded) | set(mine):
        if mine.get(name) != loaded.get(name):
            if name in mine:
                environments[name] = mine[name]
            else:
                environments.pop(name, None)
    extra = {k: v for k, v in state.items() if k not in ("environments", "history")}
    return {**current, **extra, "environments": environments, "history": current["history"] + list(new_events)}


def save_state(state: dict[str, Any], folder: str | Path | None = None) -> None:
    """Write the caller's changes under the state lock, merged with what other processes saved since it
    loaded (read-modify-write, so parallel deploys never lose each other's history)."""
    path = state_file(folder)
    with state_lock(folder):
        write_text_atomic(path, json.dumps(_merged(_read_state(path), state), indent=2) + "\n")
    if isinstance(state, DeployState):
        state.mark_saved()


@contextmanager
def update_state(folder: str | Path | None = None, purpose: str = "updating the deployment state"
                 ) -> Iterator[DeployState]:
    """Load, change and save the state with the lock held throughout."""
    with state_lock(folder, purpose):
        state = load_state(folder)
        yield state
        save_state(state, folder)


def record(state: dict[str, Any], environment: str, action: str, artifact: Artifact | None = None,
           **detail: Any) -> None:
    state["history"].append({"time": now_utc(), "environment": environment, "action": action,
                             "version": artifact.version if artifact else None,
                             "digest": artifact.digest if artifact else None, **detail})
