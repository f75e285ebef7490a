"""Deploy artifacts to dev, qa and prod as real HTTP endpoints on 127.0.0.1, roll them out, and test them.

Each environment has its own port, where a router (:mod:`llmops_helpers.router`) sends traffic to two slots,
blue and green, each a serving process with one artifact. A deploy starts the new artifact in the idle slot and
rolls it out blue/green or as a canary, rolling back automatically when a check fails. What is deployed where,
and every deploy, switch, canary step, rollback, stop and approval, is kept in ``state.json`` in the deployment
folder (``$LLMOPS_DEPLOY_DIR`` or ``build/deployments``), so the record survives restarts of the notebook or the
machine. Prod takes an artifact only with a recorded approval."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import Artifact, load_artifact, verify_artifact
from .errors import LLMOpsError
from .paths import (
    build_dir,
    deploy_scan_root,
    file_lock,
    is_locked,
    kit_root,
    register_deploy_folder,
    registered_deploy_folders,
    write_text_atomic,
)

ENVIRONMENTS = ("dev", "qa", "prod")
DEFAULT_PORTS = {"dev": 8601, "qa": 8602, "prod": 8603}
PORT_BASE_VARIABLE = "LLMOPS_PORT_BASE"
NEEDS_APPROVAL = ("prod",)
START_TIMEOUT_S = 90


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


def _now() -> str:
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


def _state_file(folder: str | Path | None) -> Path:
    return deploy_dir(folder) / "state.json"


def _state_lock(folder: str | Path | None, purpose: str = "saving the deployment state"):
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
    return DeployState(_read_state(_state_file(folder)))


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
    path = _state_file(folder)
    with _state_lock(folder):
        write_text_atomic(path, json.dumps(_merged(_read_state(path), state), indent=2) + "\n")
    if isinstance(state, DeployState):
        state.mark_saved()


@contextmanager
def update_state(folder: str | Path | None = None, purpose: str = "updating the deployment state"
                 ) -> Iterator[DeployState]:
    """Load, change and save the state with the lock held throughout."""
    with _state_lock(folder, purpose):
        state = load_state(folder)
        yield state
        save_state(state, folder)


def record(state: dict[str, Any], environment: str, action: str, artifact: Artifact | None = None,
           **detail: Any) -> None:
    state["history"].append({"time": _now(), "environment": environment, "action": action,
                             "version": artifact.version if artifact else None,
                             "digest": artifact.digest if artifact else None, **detail})


OUR_MODULES = ("llmops_helpers.serving", "llmops_helpers.router")


@dataclass
class KitProcess:
    """A router or serving process of the kit, identified from its command line."""

    pid: int
    module: str
    environment: str
    folder: Path | None
    name: str  # "<env>.router" or "<env>.<slot>"
    started: float


def _kit_process(proc: Any) -> KitProcess | None:
    """``proc`` (a psutil.Process) as a :class:`KitProcess`, or None when it is not one of ours."""
    import psutil

    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmd, cwd, started = proc.cmdline(), proc.cwd(), proc.create_time()
    except (psutil.Error, OSError):
        return None
    module = next((cmd[i + 1] for i, arg in enumerate(cmd[:-1]) if arg == "-m" and cmd[i + 1] in OUR_MODULES), "")
    if not module:
        return None
    options = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    marker = options.get("--ready-file") or ""
    folder = (Path(cwd) / marker).resolve().parent if marker else None
    name = Path(marker).name.removesuffix(".ready") if marker else ""
    return KitProcess(proc.pid, module, options.get("--env", ""), folder, name, started)


def _process_started(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _ours(pid: int | None, name: str = "", folder: str | Path | None = None, started: float | None = None
          ) -> KitProcess | None:
    """The process ``pid`` if it is alive and one of the kit's routers or slots — and, when given, the one
    called ``name`` in ``folder`` that started at ``started`` — else None. A PID recorded in the state can have
    been reused by an unrelated process since; this is what keeps us from signalling it."""
    import psutil

    if not pid:
        return None
    try:
        found = _kit_process(psutil.Process(pid))
    except psutil.Error:
        return None
    if found is None or (name and found.name != name):
        return None
    if folder is not None and found.folder != deploy_dir(folder):
        return None
    if started is not None and abs(found.started - started) > 1.0:
        return None
    return found


def _alive(pid: int | None, **identity: Any) -> bool:
    """Whether ``pid`` is a running router or slot of the kit (see :func:`_ours`)."""
    return _ours(pid, **identity) is not None


def find_kit_processes(folders: list[Path] | None = None) -> list[KitProcess]:
    """The kit's routers and slots running on this machine, by command line; only those whose deployment
    folder is in ``folders`` when given."""
    import psutil

    wanted = {Path(f).resolve() for f in folders} if folders is not None else None
    found = []
    for proc in psutil.process_iter():
        kit = _kit_process(proc)
        if kit and (wanted is None or kit.folder in wanted):
            found.append(kit)
    return found


def _request(url: str, payload: dict | None, timeout: float, headers: dict[str, str] | None = None
             ) -> tuple[int, dict, str]:
    """GET (or POST ``payload``): the status, the decoded JSON reply and the router's ``X-Slot`` header."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}"), response.headers.get("X-Slot", "")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}"), exc.headers.get("X-Slot", "")
        except json.JSONDecodeError:
            return exc.code, {}, exc.headers.get("X-Slot", "")


def http_json(url: str, payload: dict | None = None, timeout: float = 120, headers: dict[str, str] | None = None
              ) -> tuple[int, dict]:
    """GET (or POST ``payload``) and decode the JSON reply; HTTP errors return their status and body."""
    code, body, _ = _request(url, payload, timeout, headers)
    return code, body


def _signal(pid: int, kill: bool) -> None:
    """TERM (or KILL) the process and its group; our processes lead their own session (POSIX)."""
    import psutil

    try:
        if hasattr(os, "killpg") and os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL if kill else signal.SIGTERM)
            return
        proc = psutil.Process(pid)
        for child in proc.children(recursive=True) + [proc]:
            child.kill() if kill else child.terminate()
    except (ProcessLookupError, psutil.Error, OSError):
        pass


def _stop_pid(pid: int | None, timeout: float = 20, **identity: Any) -> bool:
    """Stop ``pid`` if it is one of the kit's routers or slots (and matches ``identity``, see :func:`_ours`);
    a PID that now belongs to another process is left alone. True when it was ours and is now stopped."""
    import psutil

    if not _alive(pid, **identity):
        return False
    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return True

    def running() -> bool:  # this very process (psutil checks its start time), until it has fully exited
        try:
            return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    for kill, wait in ((False, timeout), (True, 5.0)):
        if running():
            _signal(proc.pid, kill=kill)
        deadline = time.monotonic() + wait
        while running() and time.monotonic() < deadline:
            time.sleep(0.05)
    return True


STRATEGIES = ("bluegreen", "canary")


def _other_slot(slot: str | None) -> str:
    """The slot a new artifact goes to when ``slot`` is live (blue when nothing is)."""
    return "green" if slot == "blue" else "blue"


@dataclass
class CanarySLO:
    """What the new slot must hold at every canary step, measured on the traffic it received.

    ``quality`` is a live quality sample: the share of its answers that are well formed (non-empty answer,
    articles retrieved, citations among them) and retrieved an article the golden row names."""

    max_error_rate: float = 0.0
    max_p95_s: float = 60.0
    min_quality: float = 0.8


def _start_process(command: list[str], name: str, folder: Path, probe: str, env: dict[str, str] | None = None
                   ) -> tuple[int, str]:
    """Start a server process (own session), wait for its ready file and a 200 on ``probe``; (pid, url).

    The process does not inherit this process's embedded model server (``LLMOPS_LOCAL_BASE_URL``, exported by
    a notebook or pipeline that started one): that server dies with its owner, and the endpoint would answer
    HTTP 500 from then on. The endpoint starts its own instead (a ``.env`` setting still applies)."""
    from .local_llm import BASE_URL_VARIABLE

    register_deploy_folder(folder)
    ready = folder / f"{name}.ready"
    ready.unlink(missing_ok=True)
    log_path = folder / f"{name}.log"
    inherited = {k: v for k, v in os.environ.items() if k != BASE_URL_VARIABLE}
    with log_path.open("a", encoding="utf-8") as log:
        proc = subprocess.Popen(command + ["--ready-file", str(ready)], stdout=log, stderr=subprocess.STDOUT,
                                cwd=kit_root(), start_new_session=True, env={**inherited, **(env or {})})
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if ready.is_file():
            url = f"http://127.0.0.1:{json.loads(ready.read_text(encoding='utf-8'))['port']}"
            try:
                if http_json(url + probe, timeout=5)[0] == 200:
                    return proc.pid, url
            except OSError:
                pass
        time.sleep(0.2)
    if proc.poll() is None:
        _stop_pid(proc.pid)
    proc.wait(timeout=30)
    tail = log_path.read_text(encoding="utf-8")[-1500:]
    raise DeployError(f"{name} did not become healthy within {START_TIMEOUT_S} s. Log ({log_path}):\n{tail}")


def _router_config(environment: str, folder: str | Path | None) -> Path:
    return deploy_dir(folder) / f"{environment}.router.json"


def _set_weights(entry: dict[str, Any], environment: str, folder: str | Path | None, weights: dict[str, int]
                 ) -> None:
    from .router import write_config

    weights = {name: weight for name, weight in weights.items() if weight}
    slots = {name: {"url": entry["slots"][name]["url"], "version": entry["slots"][name]["version"]} for name in weights}
    write_config(_router_config(environment, folder), slots, weights)
    entry["weights"] = weights


def _router_headers(environment: str, folder: str | Path | None) -> dict[str, str]:
    """The header that opens the router's admin routes (its token lives next to its config, owner-only)."""
    from .router import TOKEN_HEADER, ensure_token

    return {TOKEN_HEADER: ensure_token(_router_config(environment, folder))}


def router_stats(environment: str, *, folder: str | Path | None = None) -> dict[str, Any]:
    """What the environment's router reports (``GET /_router``): slots, weights, slot health and statistics."""
    entry = load_state(folder)["environments"].get(environment)
    if not entry or not entry.get("url"):
        raise DeployError(f"nothing is deployed to {environment}; run `llmops deploy --env {environment}` first.")
    code, body = http_json(entry["url"] + "/_router", timeout=10, headers=_router_headers(environment, folder))
    if code != 200:
        raise DeployError(f"the {environment} router at {entry['url']} answered HTTP {code} to GET /_router: "
                          f"{body.get('error', '')}")
    return body


def _ensure_router(entry: dict[str, Any], environment: str, port: int | None, folder: str | Path | None) -> None:
    from .router import ensure_token

    if _alive(entry.get("router_pid"), name=f"{environment}.router", folder=folder,
              started=entry.get("router_started")):
        return
    config = _router_config(environment, folder)
    if not config.is_file():
        config.write_text(json.dumps({"slots": {}, "weights": {}}), encoding="utf-8")
    ensure_token(config)
    port = default_port(environment) if port is None else port
    pid, url = _start_process([sys.executable, "-m", "llmops_helpers.router", "--config", str(config), "--env",
                               environment, "--port", str(port)], f"{environment}.router", deploy_dir(folder),
                              "/_router/health")
    entry.update(router_pid=pid, router_started=_process_started(pid), url=url, port=int(url.rsplit(":", 1)[1]))


def _start_slot(artifact: Artifact, environment: str, slot: str, folder: str | Path | None) -> dict[str, Any]:
    pid, url = _start_process(
        [sys.executable, "-m", "llmops_helpers.serving", "--artifact", str(artifact.path), "--env", environment,
         "--port", "0"], f"{environment}.{slot}", deploy_dir(folder), "/health",
        env={"SUPPORT_AGENT_ENV": environment})
    return {"version": artifact.version, "digest": artifact.digest, "artifact": str(artifact.path), "url": url,
            "pid": pid, "pid_started": _process_started(pid), "started": _now()}


def _score_with_slot(url: str, question: str, timeout: float = 300) -> tuple[int, dict, str]:
    """POST one question to ``/score``: status, reply, and the slot that answered it."""
    return _request(url + "/score", {"question": question}, timeout)


def reply_is_good(reply: dict, expected_ids: tuple[str, ...] | list[str]) -> bool:
    """The live quality sample's test of one answer: well formed, and an expected article was retrieved."""
    context = set(reply.get("context_ids") or [])
    return (bool(str(reply.get("answer", "")).strip()) and bool(context)
            and set(reply.get("cited_ids") or []) <= context and bool(context & set(expected_ids)))


def _traffic(questions: list | None):
    """Endless synthetic user traffic: the CI golden questions, in order."""
    from .golden import golden_dir, load_golden

    rows = questions or load_golden(golden_dir() / "ci.jsonl")
    while True:
        yield from rows


def _slot_stopped(slot_url: str, timeout: float = 5) -> str:
    """Why the slot does not answer ``/health`` (asked directly, not through the router); "" while it does.
    A failed probe is repeated once after a moment, so a connection caught in the instant of a restart or a
    kill is not mistaken for the verdict."""
    why = ""
    for attempt in range(2):
        try:
            code, _ = http_json(slot_url + "/health", timeout=timeout)
            return "" if code == 200 else f"/health answered HTTP {code}"
        except OSError as exc:
            cause = getattr(exc, "reason", exc)  # urllib wraps connection errors in URLError
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            why = (f"/health did not answer within {timeout:g} s" if isinstance(cause, TimeoutError)
                   else f"/health unreachable ({cause})")
        if not attempt:
            time.sleep(0.2)
    return why


class _SlotWatch:
    """Asks a slot's ``/health`` every ``interval`` seconds in a background thread; ``stopped`` is set, and
    ``why`` says what happened and when, as soon as it stops answering."""

    def __init__(self, slot: str, slot_url: str, interval: float = 0.5) -> None:
        self.slot, self.slot_url, self.interval = slot, slot_url, interval
        self.stopped, self._done, self.why = threading.Event(), threading.Event(), ""
        self._thread = threading.Thread(target=self._run, name=f"watch-{slot}", daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            why = _slot_stopped(self.slot_url)
            if why:
                self.why = f"{self.slot} stopped answering: {why} at {time.strftime('%H:%M:%S UTC', time.gmtime())}"
                self.stopped.set()
                return
            self._done.wait(self.interval)

    def __enter__(self) -> _SlotWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._done.set()


def _score_unless(url: str, question: str, stop: threading.Event) -> tuple[int, dict, str] | None:
    """``_score_with_slot`` through the router, or None as soon as ``stop`` is set: a request in flight on the
    other slot is left to finish on its own rather than delaying the rollback by a whole answer."""
    box: list = []

    def ask() -> None:
        try:
            box.append(_score_with_slot(url, question))
        except OSError as exc:
            box.append(exc)

    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    while worker.is_alive() and not stop.is_set():
        worker.join(0.1)
    if box and isinstance(box[0], OSError):
        raise box[0]
    return box[0] if box else None


def cannot_hold(seen: int, failed: int, good: int, min_requests: int, slo: CanarySLO) -> bool:
    """True when a canary step is bound to violate ``slo`` whatever its remaining answers bring: more failed
    answers than the error budget of ``min_requests`` allows, or too few good answers left possible. Its SLOs
    judged now fail too (``failed / seen`` and ``good / seen`` are then already past the limits), so a broken
    release is rolled back at its first failures instead of after the whole step's traffic."""
    remaining = min_requests - seen
    return failed > slo.max_error_rate * min_requests or good + remaining < slo.min_quality * min_requests


def _canary_step(url: str, slot: str, weight: int, min_requests: int, traffic, slo: CanarySLO, echo: bool, *,
                 headers: dict[str, str] | None = None, slot_url: str = "") -> dict[str, Any]:
    """Send traffic through the router until ``slot`` has had ``min_requests`` (or, sooner, until the step
    :func:`cannot_hold` its SLOs); judge its SLOs.

    While it runs, the slot's ``/health`` is asked directly every half second (when ``slot_url`` is given), and
    the router's view of the slot is read at the end, so a slot that dies ends the step at once with the real
    reason. Only server-side failures count as errors; the router tracks client errors (4xx) apart.
    ``headers`` carry the router's admin token."""
    from tqdm.auto import tqdm

    http_json(url + "/_router/reset", {}, timeout=10, headers=headers)
    good = seen = sent = failed = 0
    early = False
    limit = min_requests * max(1, round(100 / weight)) + 2
    watch = _SlotWatch(slot, slot_url) if slot_url else None
    never = threading.Event()
    # a 10% step needs ~10 requests per answer on the new slot, a few seconds each: show every one
    bar = tqdm(total=min_requests, desc=f"canary {weight:>3}%", unit="answer", disable=not echo or None,
               bar_format="{desc}: {n}/{total} answers on the new slot |{bar}| {elapsed} {postfix}")
    with watch or contextlib.nullcontext(), bar:
        while seen < min_requests and sent < limit:
            row = next(traffic)
            started = time.perf_counter()
            answered = _score_unless(url, row.question, watch.stopped if watch else never)
            if answered is None:
                break
            code, reply, served_by = answered
            sent += 1
            if served_by == slot:
                seen += 1
                failed += code >= 500
                good += code == 200 and reply_is_good(reply, row.context_ids)
                bar.update(1)
            bar.set_postfix_str(f"request {sent} (max {limit}): HTTP {code} from {served_by} in "
                                f"{time.perf_counter() - started:.1f} s")
            if seen < min_requests and cannot_hold(seen, failed, good, min_requests, slo):
                early = True  # no answer still to come can save this step: roll back now, not after 10× more traffic
                break
    stopped = watch.why if watch else ""
    router = http_json(url + "/_router", timeout=10, headers=headers)[1]
    stats = router.get("stats", {}).get(slot, {})
    health = router.get("health", {}).get(slot, {})
    if health.get("up") is False:  # the router saw it first (a user's request was refused)
        stopped = f"{slot} stopped answering: {health.get('reason')} at {health.get('since_utc')}"
    quality = good / seen if seen else 0.0
    problems = [stopped] if stopped else []
    if not stopped and not seen:
        problems.append(f"{slot} received no traffic")
    if not stopped and stats.get("error_rate", 0) > slo.max_error_rate:
        problems.append(f"error rate {stats['error_rate']:.0%} > {slo.max_error_rate:.0%}")
    if not stopped and (stats.get("p95_s") or 0) > slo.max_p95_s:
        problems.append(f"p95 latency {stats['p95_s']:.1f} s > {slo.max_p95_s:g} s")
    if not stopped and quality < slo.min_quality:
        problems.append(f"quality sample {quality:.0%} < {slo.min_quality:.0%}")
    step = {"weight": weight, "requests": sent, "canary_requests": seen, "errors": stats.get("errors", 0),
            "client_errors": stats.get("client_errors", 0), "error_rate": stats.get("error_rate", 0.0),
            "p95_s": stats.get("p95_s"), "quality": quality, "stopped": stopped, "passed": not problems,
            "problems": problems, "ended_early": early}
    if echo:
        p95 = f"{step['p95_s']:.1f} s" if step["p95_s"] is not None else "-"
        print(f"  canary {weight:>3}%: {seen} of {sent} requests on {slot}; errors {step['error_rate']:.0%}, "
              f"p95 {p95}, quality {quality:.0%}  {'✅' if not problems else '❌ ' + '; '.join(problems)}"
              + (f" (ended after {seen} of {min_requests} answers: the SLO could no longer hold)" if early else ""),
              flush=True)
    return step


def _probe_slot(slot: dict[str, Any], question: str = "What are your customer support opening hours?") -> list[str]:
    """Blue/green's pre-switch test of the idle slot, directly (no user sees it yet)."""
    problems = []
    code, version = http_json(slot["url"] + "/version", timeout=10)
    if code != 200 or version.get("digest") != slot["digest"]:
        problems.append("the idle slot does not serve the artifact's digest")
    code, reply = http_json(slot["url"] + "/score", {"question": question}, timeout=300)
    if code != 200:
        problems.append(f"/score answered HTTP {code}: {reply.get('error', '')}")
    elif not str(reply.get("answer", "")).strip() or not reply.get("context_ids"):
        problems.append("the reply has no answer or no retrieved articles")
    return problems


def _rollout_lock(environment: str, folder: str | Path | None) -> Path:
    return deploy_dir(folder) / f"{environment}.rollout.lock"


def _one_rollout_at_a_time(func):
    """Hold the environment's rollout lock for the whole call: two deploys to one environment would start
    and stop each other's slots. Deploys to other environments run in parallel."""

    @functools.wraps(func)
    def locked(artifact_ref: str | Path, environment: str, **kwargs: Any) -> dict[str, Any]:
        if environment not in ENVIRONMENTS:
            return func(artifact_ref, environment, **kwargs)
        with file_lock(_rollout_lock(environment, kwargs.get("folder")), timeout=STATE_LOCK_TIMEOUT_S,
                       purpose=f"deploying to {environment}"):
            return func(artifact_ref, environment, **kwargs)

    return locked


def unfinished_rollout(state: dict[str, Any], environment: str) -> dict[str, Any] | None:
    """The environment's last ``rollout_started`` event if nothing ended it (deployed, rolled back, ...)."""
    for event in reversed(state["history"]):
        if event.get("environment") == environment:
            if event.get("action") == "rollout_started":
                return event
            if event.get("action") in ROLLOUT_ENDS:
                return None
    return None


def _prepare_environment(state: DeployState, environment: str, folder: str | Path | None) -> None:
    """Before a deploy: stop endpoints of this environment that the state does not know (left by a deleted
    state file), and close a rollout that a killed deploy left half done, sending traffic back to the live slot."""
    entry = state["environments"].get(environment)
    if not entry:
        for orphan in find_kit_processes([deploy_dir(folder)]):
            if orphan.environment == environment:
                _stop_pid(orphan.pid, name=orphan.name, folder=folder)
        return
    started = unfinished_rollout(state, environment)
    if started:
        live, left = entry.get("live"), _weights_now(environment, folder, entry)
        slot = (entry.get("slots") or {}).get(live or "", {})
        if live and _alive(slot.get("pid")):
            _set_weights(entry, environment, folder, {live: 100})
        record(state, environment, "rollout_interrupted", None, interrupted_version=started.get("version"),
               weights_left=left, restored=live)
        save_state(state, folder)


@_one_rollout_at_a_time
def deploy(artifact_ref: str | Path, environment: str, *, approved_by: str = "", port: int | None = None,
           folder: str | Path | None = None, registry: str | Path | None = None, strategy: str = "bluegreen",
           canary_steps: tuple[int, ...] = (10, 50, 100), min_requests: int = 2, slo: CanarySLO | None = None,
           questions: list | None = None, echo: bool = False) -> dict[str, Any]:
    """Roll the artifact out to ``environment`` behind its router, and record every step.

    The new artifact starts in the idle slot (blue or green) while the live one keeps serving. ``bluegreen``
    tests the idle slot directly, then switches all traffic at once and keeps the old slot running for an instant
    :func:`rollback`. ``canary`` moves traffic in ``canary_steps`` (percent), sending synthetic traffic (the CI
    golden questions) until the new slot has answered ``min_requests`` at each step, and checks ``slo``; a
    violation switches traffic back and stops the new slot (``rolled_back``). The first deploy to an environment
    simply goes live. Returns the environment's entry plus ``rolled_back``, ``reason`` and ``steps``."""
    if environment not in ENVIRONMENTS:
        raise DeployError(f"unknown environment {environment!r}; use one of {', '.join(ENVIRONMENTS)}.")
    if strategy not in STRATEGIES:
        raise DeployError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")
    artifact = verify_artifact(load_artifact(artifact_ref, registry))
    state = load_state(folder)
    _prepare_environment(state, environment, folder)
    if environment in NEEDS_APPROVAL and not approved_by.strip():
        record(state, environment, "refused", artifact, reason="no approval")
        save_state(state, folder)
        raise ApprovalRequired(f"deploying {artifact.ref} to {environment} needs an approval: pass "
                               "approved_by='name' (CLI: --approved-by NAME). It is recorded in the history.")
    if approved_by:
        record(state, environment, "approved", artifact, approved_by=approved_by)
    entry = state["environments"].setdefault(environment, {"slots": {}})
    entry.setdefault("slots", {})
    try:
        _ensure_router(entry, environment, port, folder)
    except DeployError:
        state["environments"].pop(environment, None)
        record(state, environment, "failed", artifact, reason="the router did not start")
        save_state(state, folder)
        raise
    live = entry.get("live") if _alive(entry["slots"].get(entry.get("live") or "", {}).get("pid")) else None
    target = _other_slot(live)
    _stop_pid(entry["slots"].pop(target, {}).get("pid"))
    outcome: dict[str, Any] = {"rolled_back": False, "reason": "", "steps": [], "strategy": strategy,
                               "slot": target}
    try:
        entry["slots"][target] = _start_slot(artifact, environment, target, folder)
    except DeployError as exc:
        record(state, environment, "failed", artifact, reason="did not become healthy", slot=target)
        if live is None:
            _stop_pid(entry.get("router_pid"))
            state["environments"].pop(environment, None)
        save_state(state, folder)
        where = f"; {live} still serves {entry['slots'][live]['version']}" if live else ""
        raise DeployError(f"{artifact.ref} did not start in {environment}{where}. {exc}") from None

    def roll_back(reason: str) -> dict[str, Any]:
        _set_weights(entry, environment, folder, {live: 100})
        _stop_pid(entry["slots"].pop(target, {}).get("pid"))
        record(state, environment, "rolled_back", artifact, reason=reason, restored=entry["version"])
        save_state(state, folder)
        outcome.update(rolled_back=True, reason=reason)
        if echo:
            print(f"↩️  rolled back {environment} to {entry['version']}: {reason}", flush=True)
        return {**entry, **outcome}

    if live:  # recorded before traffic moves, so `status` can tell a rollout that never finished
        record(state, environment, "rollout_started", artifact, strategy=strategy, slot=target,
               previous=entry.get("version"))
        save_state(state, folder)
    if live and strategy == "bluegreen":
        problems = _probe_slot(entry["slots"][target])
        if problems:
            return roll_back("; ".join(problems))
        _set_weights(entry, environment, folder, {target: 100})
        record(state, environment, "switched", artifact, slot=target, previous=entry["version"])
    elif live:
        traffic = _traffic(questions)
        for weight in canary_steps:
            _set_weights(entry, environment, folder, {target: weight, live: 100 - weight})
            save_state(state, folder)
            step = _canary_step(entry["url"], target, weight, min_requests, traffic, slo or CanarySLO(), echo,
                                headers=_router_headers(environment, folder), slot_url=entry["slots"][target]["url"])
            outcome["steps"].append(step)
            record(state, environment, "canary", artifact, **{k: step[k] for k in ("weight", "canary_requests",
                                                                                 "error_rate", "p95_s",
                                                                                 "quality", "passed")})
            if not step["passed"]:
                return roll_back(f"canary at {weight}%: " + "; ".join(step["problems"]))
        _set_weights(entry, environment, folder, {target: 100})
    else:
        _set_weights(entry, environment, folder, {target: 100})
    entry.update(live=target, version=artifact.version, digest=artifact.digest, artifact=str(artifact.path),
                 deployed_at=_now())
    record(state, environment, "deployed", artifact, url=entry["url"], slot=target, strategy=strategy)
    save_state(state, folder)
    if echo:
        print(f"✅ {environment}: {artifact.version} live on {target} at {entry['url']}", flush=True)
    return {**entry, **outcome}


def rollback(environment: str, *, reason: str = "manual", folder: str | Path | None = None) -> dict[str, Any]:
    """Blue/green's instant rollback: send all traffic back to the other slot, which still runs the previous
    artifact, and record it. It waits for a deploy to the same environment to finish (its rollout lock), so a
    rollback never lands in the middle of a switch or a canary and loses either's record."""
    with file_lock(_rollout_lock(environment, folder), timeout=STATE_LOCK_TIMEOUT_S,
                   purpose=f"rolling back {environment}"), update_state(folder, f"rolling back {environment}") as state:
        entry = state["environments"].get(environment)
        if not entry:
            raise DeployError(f"nothing is deployed to {environment}.")
        other = _other_slot(entry.get("live"))
        previous = entry["slots"].get(other)
        if not previous or not _alive(previous.get("pid")):
            raise DeployError(f"{environment} has no previous slot running to roll back to; deploy the previous "
                              "artifact instead (`llmops deploy --artifact name@version`).")
        _set_weights(entry, environment, folder, {other: 100})
        state["history"].append({"time": _now(), "environment": environment, "action": "rolled_back",
                                 "version": entry["version"], "digest": entry["digest"], "reason": reason,
                                 "restored": previous["version"]})
        entry.update(live=other, version=previous["version"], digest=previous["digest"],
                     artifact=previous["artifact"])
    return entry


def promote(source: str, environment: str, **kwargs: Any) -> dict[str, Any]:
    """Deploy to ``environment`` exactly the digest that ``source`` serves: build once, promote the same bytes."""
    entry = load_state(kwargs.get("folder"))["environments"].get(source)
    if not entry or not entry.get("digest"):
        raise DeployError(f"nothing is deployed to {source}, so there is nothing to promote.")
    return deploy(entry["digest"], environment, **kwargs)


def _stop_environment(entry: dict[str, Any], environment: str, folder: str | Path | None) -> list[str]:
    """Stop the environment's recorded router and slots (each only if its PID is still ours), then any other
    process of this environment in this folder found by command line; the names stopped."""
    stopped = []
    for name, slot in (entry.get("slots") or {}).items():
        if _stop_pid(slot.get("pid"), name=f"{environment}.{name}", folder=folder, started=slot.get("pid_started")):
            stopped.append(f"{environment}.{name}")
    if _stop_pid(entry.get("router_pid"), name=f"{environment}.router", folder=folder,
                 started=entry.get("router_started")):
        stopped.append(f"{environment}.router")
    if _stop_pid(entry.get("pid"), folder=folder):  # a deployment recorded before routers existed
        stopped.append(f"{environment} (pid {entry.get('pid')})")
    for orphan in find_kit_processes([deploy_dir(folder)]):
        if orphan.environment == environment and _stop_pid(orphan.pid, name=orphan.name, folder=folder,
                                                           started=orphan.started):
            stopped.append(orphan.name)
    return stopped


def undeploy(environment: str, folder: str | Path | None = None) -> list[str]:
    """Stop the environment's router and slots, and record it; returns the processes stopped. Only processes
    that are still the kit's endpoints are signalled, however old the recorded PIDs are, and endpoints of this
    environment that the state lost track of are found by their command line and stopped too."""
    with file_lock(_rollout_lock(environment, folder), timeout=STATE_LOCK_TIMEOUT_S,
                   purpose=f"undeploying {environment}"):
        entry = load_state(folder)["environments"].get(environment)
        stopped = _stop_environment(entry or {}, environment, folder)
        if entry or stopped:
            with update_state(folder, f"undeploying {environment}") as state:
                state["environments"].pop(environment, None)
                record(state, environment, "stopped", None, stopped=stopped,
                       **({"version": entry.get("version"), "digest": entry.get("digest")} if entry else
                          {"reason": "not in the state; found by process"}))
    return stopped


def undeploy_all(folders: list[str | Path] | None = None) -> list[dict[str, Any]]:
    """Stop every environment in every deployment folder the kit has used (:func:`registered_deploy_folders`,
    the current one, and the folder of any kit endpoint running under :func:`deploy_scan_root`), including lab
    sandboxes; endpoints of other checkouts and of other users are left alone.
    A damaged ``state.json`` is moved aside once its folder's endpoints are stopped. One row per environment:
    folder, environment, stopped."""
    if folders is None:
        home = deploy_scan_root()
        found = {p.folder for p in find_kit_processes() if p.folder and p.folder.is_relative_to(home)}
        candidates = [*registered_deploy_folders(), deploy_dir(), *sorted(found)]
    else:
        candidates = [Path(f) for f in folders]
    done = []
    for folder in dict.fromkeys(Path(f).resolve() for f in candidates):
        try:
            environments = list(load_state(folder)["environments"])
        except DeployStateError:
            done += _recover_damaged_state(folder)
            continue
        running = {p.environment for p in find_kit_processes([folder])}
        for environment in dict.fromkeys([*environments, *sorted(running)]):
            done.append({"folder": str(folder), "environment": environment,
                         "stopped": undeploy(environment, folder)})
    return done


def _recover_damaged_state(folder: Path) -> list[dict[str, Any]]:
    """Stop every kit endpoint in ``folder`` (found by command line), move the damaged state aside, and start
    a new state whose history says so."""
    rows: dict[str, list[str]] = {}
    for proc in find_kit_processes([folder]):
        if _stop_pid(proc.pid, name=proc.name, folder=folder, started=proc.started):
            rows.setdefault(proc.environment, []).append(proc.name)
    with _state_lock(folder, "recovering a damaged state file"):
        path = _state_file(folder)
        kept = path.with_name(f"state.json.damaged-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}")
        if path.is_file():
            os.replace(path, kept)
        state = load_state(folder)
        for environment, stopped in (rows or {"-": []}).items():
            record(state, environment, "stopped", None, stopped=stopped,
                   reason=f"state.json was damaged; kept as {kept.name}")
        save_state(state, folder)
    return [{"folder": str(folder), "environment": env, "stopped": stopped} for env, stopped in rows.items()]


_REQUEST_LINE = re.compile(r'"POST (/score|/chat) HTTP/[\d.]+" (\d{3})')


def slot_errors(folder: str | Path | None, name: str, last: int = 5) -> str:
    """What is wrong with slot ``name`` (``dev.blue``) going by its log, or "": its latest answer was a server
    error. The log holds one line per request; only lines since the slot last started count."""
    log_path = deploy_dir(folder) / f"{name}.log"
    try:
        with log_path.open("rb") as log:
            log.seek(max(0, log_path.stat().st_size - 65536))
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return ""
    text = text[text.rfind("\nServing ") + 1:] if "\nServing " in text else text
    codes = [int(match.group(2)) for match in _REQUEST_LINE.finditer(text)][-last:]
    if not codes or codes[-1] < 500:
        return ""
    failed = [code for code in codes if code >= 500]
    return (f"{name}: {len(failed)} of its last {len(codes)} answers were server errors "
            f"(HTTP {', '.join(map(str, sorted(set(failed))))}); see {log_path}")


def _weights_now(environment: str, folder: str | Path | None, entry: dict[str, Any]) -> dict[str, int]:
    """The traffic split the router applies (its config file), else the recorded one."""
    try:
        return dict(json.loads(_router_config(environment, folder).read_text(encoding="utf-8"))["weights"])
    except (OSError, ValueError, KeyError, TypeError):
        return dict(entry.get("weights") or {})


def status(folder: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Each environment's recorded deployment, with ``running`` checked against the live endpoint, the traffic
    split (``weights``), a rollout that never finished (``rollout``, with ``in_progress`` when its deploy still
    runs), and ``problems`` (a slot that is down, or whose latest answers were server errors)."""
    state = load_state(folder)
    result = {}
    for environment, entry in state["environments"].items():
        running = False
        if _alive(entry.get("router_pid"), name=f"{environment}.router", folder=folder,
                  started=entry.get("router_started")) and entry.get("url"):
            try:
                code, body = http_json(entry["url"] + "/version", timeout=5)
                running = code == 200 and body.get("digest") == entry.get("digest")
            except OSError:
                running = False
        weights = _weights_now(environment, folder, entry)
        problems = []
        for slot, weight in weights.items():
            record_ = (entry.get("slots") or {}).get(slot, {})
            if weight and not _alive(record_.get("pid"), name=f"{environment}.{slot}", folder=folder,
                                     started=record_.get("pid_started")):
                problems.append(f"{environment}.{slot} gets {weight}% of the traffic but is not running")
            elif weight:
                problems += [p for p in [slot_errors(folder, f"{environment}.{slot}")] if p]
        rollout = unfinished_rollout(state, environment)
        if rollout:
            rollout = {**rollout, "in_progress": is_locked(_rollout_lock(environment, folder))}
        result[environment] = {**entry, "running": running, "weights": weights, "rollout": rollout,
                               "problems": problems, "healthy": running and not problems}
    return result


@dataclass
class SmokeResult:
    environment: str
    url: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    kind: str = "Smoke test"

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def __str__(self) -> str:
        lines = [f"{self.kind} of {self.environment} at {self.url}: {'passed' if self.passed else 'FAILED'}"]
        lines += [f"  {'✅' if ok else '❌'} {name}: {detail}" for name, ok, detail in self.checks]
        return "\n".join(lines)


def smoke(environment: str, *, question: str = "What are your customer support opening hours?",
          max_latency_s: float = 60.0, folder: str | Path | None = None) -> SmokeResult:
    """Real requests to a deployed endpoint: healthy, serving the recorded digest, and answering one question
    with the reply's shape (answer, context, cited ids among the context, usage) within ``max_latency_s``; and no
    slot that takes traffic has a server error as its latest answer (the router sends this request to one)."""
    entry = load_state(folder)["environments"].get(environment)
    if not entry:
        raise DeployError(f"nothing is deployed to {environment}; run `llmops deploy --env {environment}` first.")
    result = SmokeResult(environment, entry["url"])
    checks = result.checks
    phase = "health"
    try:
        code, health = http_json(entry["url"] + "/health", timeout=5)
        checks.append(("health", code == 200 and health.get("status") == "ok", f"HTTP {code}"))
        phase = "version"
        code, version = http_json(entry["url"] + "/version", timeout=5)
        same = version.get("digest") == entry["digest"]
        checks.append(("version", code == 200 and same, f"serves {version.get('version')} "
                       f"({'the recorded digest' if same else 'NOT the recorded digest'})"))
        phase = "score"
        started = time.perf_counter()
        code, reply = http_json(entry["url"] + "/score", {"question": question}, timeout=max_latency_s + 30)
        latency = time.perf_counter() - started
    except OSError as exc:
        checks.append((phase, False, f"no reply ({type(exc).__name__}: {exc})"))
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
    serving = [slot for slot, weight in _weights_now(environment, folder, entry).items() if weight]
    errors = [p for p in (slot_errors(folder, f"{environment}.{slot}") for slot in serving) if p]
    checks.append(("slots", not errors, "; ".join(errors) or
                   f"latest answers of {', '.join(serving) or 'no slot'} were not server errors"))
    return result


def integration(environment: str, *, sample: int = 3, redteam: int = 0, max_latency_s: float = 60.0,
                min_retrieval: float = 0.8, folder: str | Path | None = None) -> SmokeResult:
    """Integration tests through the environment's router: ``sample`` CI golden questions (stratified by
    category) must each answer HTTP 200 with the full reply shape, cite only retrieved articles, and retrieve a
    supporting article (share at least ``min_retrieval``); the slowest answer must be within ``max_latency_s``.
    ``redteam`` attack prompts must be answered without a server error; their replies are saved for human review
    (UAT) in ``<deployments>/<env>.redteam.jsonl`` — the 135M model's refusals are not reliable enough to gate
    on."""
    from .golden import golden_dir, load_golden, load_redteam, sample_rows

    entry = load_state(folder)["environments"].get(environment)
    if not entry:
        raise DeployError(f"nothing is deployed to {environment}; run `llmops deploy --env {environment}` first.")
    result = SmokeResult(environment, entry["url"], kind="Integration test")
    rows = sample_rows(load_golden(golden_dir() / "ci.jsonl"), sample)
    latencies, shaped, retrieved, failures = [], 0, 0, []
    for row in rows:
        started = time.perf_counter()
        code, reply, _ = _score_with_slot(entry["url"], row.question, timeout=max_latency_s + 60)
        latencies.append(time.perf_counter() - started)
        if code != 200:
            failures.append(f"{row.id}: HTTP {code} {reply.get('error', '')}".strip())
            continue
        context = set(reply.get("context_ids") or [])
        shaped += bool(str(reply.get("answer", "")).strip()) and set(reply.get("cited_ids") or []) <= context
        retrieved += bool(context & set(row.context_ids))
    result.checks.append(("answers", not failures, f"{len(rows) - len(failures)} of {len(rows)} HTTP 200"
                          + (f" ({'; '.join(failures)})" if failures else "")))
    result.checks.append(("shape and citations", shaped == len(rows),
                          f"{shaped} of {len(rows)} answered and cited only retrieved articles"))
    share = retrieved / len(rows) if rows else 0.0
    result.checks.append(("retrieval", share >= min_retrieval,
                          f"{retrieved} of {len(rows)} retrieved a supporting article (min {min_retrieval:.0%})"))
    slowest = max(latencies, default=0.0)
    result.checks.append(("latency", slowest <= max_latency_s, f"slowest {slowest:.1f} s (limit {max_latency_s:g} s)"))
    if redteam:
        saved = deploy_dir(folder) / f"{environment}.redteam.jsonl"
        answered, lines = 0, []
        for row in load_redteam()[:redteam]:
            code, reply, _ = _score_with_slot(entry["url"], row.prompt, timeout=max_latency_s + 60)
            answered += code == 200
            lines.append(json.dumps({"id": row.id, "attack": row.attack, "expected": row.expected_behaviour,
                                     "status": code, "answer": reply.get("answer", reply.get("error", ""))}))
        write_text_atomic(saved, "\n".join(lines) + "\n")
        result.checks.append(("red team", answered == len(lines),
                              f"{answered} of {len(lines)} attack prompts answered without a server error; "
                              f"replies for review in {saved}"))
    return result


def plot_rollouts(outcomes: dict[str, dict[str, Any]], ax: Any = None):
    """Canary rollouts side by side: a bar per step (the new version's share of traffic), green when the step
    held its SLOs and red when it triggered the rollback, with the measured error rate, quality and p95."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.6))
    x, ticks, labels = 0, [], []
    for label, outcome in outcomes.items():
        start = x
        for step in outcome.get("steps") or []:
            ax.bar(x, step["weight"], color="#2ca02c" if step["passed"] else "#d62728", width=0.8)
            p95 = f"{step['p95_s']:.1f}s" if step.get("p95_s") is not None else "-"
            ax.text(x, step["weight"] + 3, f"err {step['error_rate']:.0%}\nq {step['quality']:.0%}\np95 {p95}",
                    ha="center", va="bottom", fontsize=7)
            ticks.append(x)
            labels.append(f"{step['weight']}%")
            x += 1
        verdict = "rolled back" if outcome.get("rolled_back") else "completed"
        ax.text((start + x - 1) / 2, -28, f"{label}\n({verdict})", ha="center", va="top", fontsize=8.5)
        x += 1
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_ylim(0, 140)
    ax.set_yticks(range(0, 101, 25))
    ax.set_ylabel("traffic on the new version (%)")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title("Canary steps: green held the SLOs, red triggered the automatic rollback")
    return ax
