"""Deploy artifacts to dev, qa and prod as real HTTP endpoints on 127.0.0.1, and smoke-test them.

Each environment has its own port and its own server process. What is deployed where, and every deploy, stop
and approval, is kept in ``state.json`` in the deployment folder (``$LLMOPS_DEPLOY_DIR`` or
``build/deployments``), so the record survives restarts of the notebook or the machine. Prod takes an artifact
only with a recorded approval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import Artifact, load_artifact, verify_artifact
from .errors import LLMOpsError
from .paths import build_dir, kit_root, write_text_atomic

ENVIRONMENTS = ("dev", "qa", "prod")
DEFAULT_PORTS = {"dev": 8601, "qa": 8602, "prod": 8603}
NEEDS_APPROVAL = ("prod",)
START_TIMEOUT_S = 90


class DeployError(LLMOpsError):
    """A deployment could not start, or an environment is unknown."""


class ApprovalRequired(DeployError):
    """Promotion to this environment needs a named approver."""


def deploy_dir(folder: str | Path | None = None) -> Path:
    path = Path(folder or os.environ.get("LLMOPS_DEPLOY_DIR") or build_dir() / "deployments")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def load_state(folder: str | Path | None = None) -> dict[str, Any]:
    path = deploy_dir(folder) / "state.json"
    if not path.is_file():
        return {"environments": {}, "history": []}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise DeployError(f"{path}: not valid JSON. Fix or delete it (deployments are recorded there).") from None


def save_state(state: dict[str, Any], folder: str | Path | None = None) -> None:
    write_text_atomic(deploy_dir(folder) / "state.json", json.dumps(state, indent=2) + "\n")


def record(state: dict[str, Any], environment: str, action: str, artifact: Artifact | None = None,
           **detail: Any) -> None:
    state["history"].append({"time": _now(), "environment": environment, "action": action,
                             "version": artifact.version if artifact else None,
                             "digest": artifact.digest if artifact else None, **detail})


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie (exited child not yet reaped) is not alive
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True


def http_json(url: str, payload: dict | None = None, timeout: float = 120) -> tuple[int, dict]:
    """GET (or POST ``payload``) and decode the JSON reply; HTTP errors return their status and body."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except json.JSONDecodeError:
            return exc.code, {}


def _stop_pid(pid: int | None, timeout: float = 20) -> None:
    if not _alive(pid):
        return
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)


def deploy(artifact_ref: str | Path, environment: str, *, approved_by: str = "", port: int | None = None,
           folder: str | Path | None = None, registry: str | Path | None = None) -> dict[str, Any]:
    """Serve the artifact for ``environment`` (replacing what ran there) and record it. Returns the
    environment's entry: url, port, pid, version, digest."""
    if environment not in ENVIRONMENTS:
        raise DeployError(f"unknown environment {environment!r}; use one of {', '.join(ENVIRONMENTS)}.")
    artifact = verify_artifact(load_artifact(artifact_ref, registry))
    state = load_state(folder)
    if environment in NEEDS_APPROVAL and not approved_by.strip():
        record(state, environment, "refused", artifact, reason="no approval")
        save_state(state, folder)
        raise ApprovalRequired(f"deploying {artifact.ref} to {environment} needs an approval: pass "
                               "approved_by='name' (CLI: --approved-by NAME). It is recorded in the history.")
    if approved_by:
        record(state, environment, "approved", artifact, approved_by=approved_by)
    previous = state["environments"].get(environment)
    if previous:
        _stop_pid(previous.get("pid"))
    folder_path = deploy_dir(folder)
    ready = folder_path / f"{environment}.ready"
    ready.unlink(missing_ok=True)
    log = (folder_path / f"{environment}.log").open("a", encoding="utf-8")
    port = DEFAULT_PORTS[environment] if port is None else port
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops_helpers.serving", "--artifact", str(artifact.path), "--env", environment,
         "--port", str(port), "--ready-file", str(ready)],
        stdout=log, stderr=subprocess.STDOUT, cwd=kit_root(), start_new_session=True,
        env={**os.environ, "SUPPORT_AGENT_ENV": environment},
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    url = None
    while time.monotonic() < deadline and proc.poll() is None:
        if ready.is_file():
            url = f"http://127.0.0.1:{json.loads(ready.read_text(encoding='utf-8'))['port']}"
            try:
                if http_json(url + "/health", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
        time.sleep(0.2)
    else:
        if proc.poll() is None:
            _stop_pid(proc.pid)
        proc.wait(timeout=30)
        tail = (folder_path / f"{environment}.log").read_text(encoding="utf-8")[-1500:]
        record(state, environment, "failed", artifact, reason="did not become healthy")
        state["environments"].pop(environment, None)
        save_state(state, folder)
        raise DeployError(f"{artifact.ref} did not become healthy in {environment} within {START_TIMEOUT_S} s. "
                          f"Log ({folder_path / (environment + '.log')}):\n{tail}")
    entry = {"version": artifact.version, "digest": artifact.digest, "artifact": str(artifact.path), "url": url,
             "port": int(url.rsplit(":", 1)[1]), "pid": proc.pid, "deployed_at": _now()}
    state["environments"][environment] = entry
    record(state, environment, "deployed", artifact, url=url)
    save_state(state, folder)
    return entry


def undeploy(environment: str, folder: str | Path | None = None) -> None:
    """Stop the environment's endpoint and record it."""
    state = load_state(folder)
    entry = state["environments"].pop(environment, None)
    if entry:
        _stop_pid(entry.get("pid"))
        state["history"].append({"time": _now(), "environment": environment, "action": "stopped",
                                 "version": entry["version"], "digest": entry["digest"]})
        save_state(state, folder)


def status(folder: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Each environment's recorded deployment, with ``running`` checked against the live endpoint."""
    result = {}
    for environment, entry in load_state(folder)["environments"].items():
        running = False
        if _alive(entry.get("pid")):
            try:
                code, body = http_json(entry["url"] + "/version", timeout=5)
                running = code == 200 and body.get("digest") == entry["digest"]
            except OSError:
                running = False
        result[environment] = {**entry, "running": running}
    return result


@dataclass
class SmokeResult:
    environment: str
    url: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def __str__(self) -> str:
        lines = [f"Smoke test of {self.environment} at {self.url}: {'passed' if self.passed else 'FAILED'}"]
        lines += [f"  {'✅' if ok else '❌'} {name}: {detail}" for name, ok, detail in self.checks]
        return "\n".join(lines)


def smoke(environment: str, *, question: str = "What are your customer support opening hours?",
          max_latency_s: float = 60.0, folder: str | Path | None = None) -> SmokeResult:
    """Real requests to a deployed endpoint: healthy, serving the recorded digest, and answering one question
    with the reply's shape (answer, context, cited ids among the context, usage) within ``max_latency_s``."""
    entry = load_state(folder)["environments"].get(environment)
    if not entry:
        raise DeployError(f"nothing is deployed to {environment}; run `llmops deploy --env {environment}` first.")
    result = SmokeResult(environment, entry["url"])
    checks = result.checks
    try:
        code, health = http_json(entry["url"] + "/health", timeout=5)
        checks.append(("health", code == 200 and health.get("status") == "ok", f"HTTP {code}"))
        code, version = http_json(entry["url"] + "/version", timeout=5)
        same = version.get("digest") == entry["digest"]
        checks.append(("version", code == 200 and same, f"serves {version.get('version')} "
                       f"({'the recorded digest' if same else 'NOT the recorded digest'})"))
        started = time.perf_counter()
        code, reply = http_json(entry["url"] + "/score", {"question": question}, timeout=max_latency_s + 30)
        latency = time.perf_counter() - started
    except OSError as exc:
        checks.append(("reachable", False, f"{type(exc).__name__}: {exc}"))
        return result
    checks.append(("score", code == 200, f"HTTP {code}" + (f": {reply.get('error')}" if code != 200 else "")))
    if code == 200:
        keys = {"answer", "context_ids", "cited_ids", "intent", "usage"}
        checks.append(("shape", keys <= set(reply) and bool(str(reply.get("answer", "")).strip()),
                       "answer, context_ids, cited_ids, intent, usage present" if keys <= set(reply)
                       else f"missing {sorted(keys - set(reply))}"))
        context = set(reply.get("context_ids") or [])
        checks.append(("context", bool(context) and set(reply.get("cited_ids") or []) <= context,
                       f"{len(context)} articles retrieved, cited {reply.get('cited_ids')}"))
    checks.append(("latency", latency <= max_latency_s, f"{latency:.1f} s (limit {max_latency_s:g} s)"))
    return result
