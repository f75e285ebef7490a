"""The processes and HTTP behind an environment: each has a router on its own port that sends traffic to two
slots (blue and green), each a serving process with one artifact. Start them and wait until they answer, find
them by command line, stop only processes that are verifiably ours (a recorded PID may have been reused), and talk
to them over HTTP (JSON, with deadlines)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_helpers.paths import kit_root, register_deploy_folder
from llmops_helpers.release.artifacts import Artifact
from llmops_helpers.release.state import DeployError, default_port, deploy_dir, load_state, now_utc

START_TIMEOUT_S = 90
#: The kit's server processes, recognised by their command line (`python -m <module>`).
OUR_MODULES = ("llmops_helpers.release.serving", "llmops_helpers.release.router")


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


def process_started(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def ours(pid: int | None, name: str = "", folder: str | Path | None = None, started: float | None = None
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


def alive(pid: int | None, **identity: Any) -> bool:
    """Whether ``pid`` is a running router or slot of the kit (see :func:`ours`)."""
    return ours(pid, **identity) is not None


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


def request_json(url: str, payload: dict | None, timeout: float, headers: dict[str, str] | None = None
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
    code, body, _ = request_json(url, payload, timeout, headers)
    return code, body


def signal_tree(pid: int, kill: bool) -> None:
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


def stop_pid(pid: int | None, timeout: float = 20, **identity: Any) -> bool:
    """Stop ``pid`` if it is one of the kit's routers or slots (and matches ``identity``, see :func:`ours`);
    a PID that now belongs to another process is left alone. True when it was ours and is now stopped."""
    import psutil

    if not alive(pid, **identity):
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
            signal_tree(proc.pid, kill=kill)
        deadline = time.monotonic() + wait
        while running() and time.monotonic() < deadline:
            time.sleep(0.05)
    return True


def start_server(command: list[str], name: str, folder: Path, probe: str, env: dict[str, str] | None = None
                   ) -> tuple[int, str]:
    """Start a server process (own session), wait for its ready file and a 200 on ``probe``; (pid, url).

    The process does not inherit this process's embedded model server (``LLMOPS_LOCAL_BASE_URL``, exported by
    a notebook or pipeline that started one): that server dies with its owner, and the endpoint would answer
    HTTP 500 from then on. The endpoint starts its own instead (a ``.env`` setting still applies)."""
    from llmops_helpers.llm.local import BASE_URL_VARIABLE

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
        stop_pid(proc.pid)
    proc.wait(timeout=30)
    tail = log_path.read_text(encoding="utf-8")[-1500:]
    raise DeployError(f"{name} did not become healthy within {START_TIMEOUT_S} s. Log ({log_path}):\n{tail}")


def router_config(environment: str, folder: str | Path | None) -> Path:
    return deploy_dir(folder) / f"{environment}.router.json"


def set_weights(entry: dict[str, Any], environment: str, folder: str | Path | None, weights: dict[str, int]
                 ) -> None:
    from llmops_helpers.release.router import write_config

    weights = {name: weight for name, weight in weights.items() if weight}
    slots = {name: {"url": entry["slots"][name]["url"], "version": entry["slots"][name]["version"]} for name in weights}
    write_config(router_config(environment, folder), slots, weights)
    entry["weights"] = weights


def router_headers(environment: str, folder: str | Path | None) -> dict[str, str]:
    """The header that opens the router's admin routes (its token lives next to its config, owner-only)."""
    from llmops_helpers.release.router import TOKEN_HEADER, ensure_token

    return {TOKEN_HEADER: ensure_token(router_config(environment, folder))}


def router_stats(environment: str, *, folder: str | Path | None = None) -> dict[str, Any]:
    """What the environment's router reports (``GET /_router``): slots, weights, slot health and statistics."""
    entry = load_state(folder)["environments"].get(environment)
    if not entry or not entry.get("url"):
        raise DeployError(f"nothing is deployed to {environment}; run `llmops deploy --env {environment}` first.")
    code, body = http_json(entry["url"] + "/_router", timeout=10, headers=router_headers(environment, folder))
    if code != 200:
        raise DeployError(f"the {environment} router at {entry['url']} answered HTTP {code} to GET /_router: "
                          f"{body.get('error', '')}")
    return body


def ensure_router(entry: dict[str, Any], environment: str, port: int | None, folder: str | Path | None) -> None:
    from llmops_helpers.release.router import ensure_token

    if alive(entry.get("router_pid"), name=f"{environment}.router", folder=folder,
              started=entry.get("router_started")):
        return
    config = router_config(environment, folder)
    if not config.is_file():
        config.write_text(json.dumps({"slots": {}, "weights": {}}), encoding="utf-8")
    ensure_token(config)
    port = default_port(environment) if port is None else port
    pid, url = start_server([sys.executable, "-m", "llmops_helpers.release.router", "--config", str(config), "--env",
                               environment, "--port", str(port)], f"{environment}.router", deploy_dir(folder),
                              "/_router/health")
    entry.update(router_pid=pid, router_started=process_started(pid), url=url, port=int(url.rsplit(":", 1)[1]))


def start_slot(artifact: Artifact, environment: str, slot: str, folder: str | Path | None) -> dict[str, Any]:
    pid, url = start_server(
        [sys.executable, "-m", "llmops_helpers.release.serving", "--artifact", str(artifact.path), "--env", environment,
         "--port", "0"], f"{environment}.{slot}", deploy_dir(folder), "/health",
        env={"SUPPORT_AGENT_ENV": environment})
    return {"version": artifact.version, "digest": artifact.digest, "artifact": str(artifact.path), "url": url,
            "pid": pid, "pid_started": process_started(pid), "started": now_utc()}


def score_with_slot(url: str, question: str, timeout: float = 300) -> tuple[int, dict, str]:
    """POST one question to ``/score``: status, reply, and the slot that answered it."""
    return request_json(url + "/score", {"question": question}, timeout)


def slot_stopped(slot_url: str, timeout: float = 5) -> str:
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


def weights_now(environment: str, folder: str | Path | None, entry: dict[str, Any]) -> dict[str, int]:
    """The traffic split the router applies (its config file), else the recorded one."""
    try:
        return dict(json.loads(router_config(environment, folder).read_text(encoding="utf-8"))["weights"])
    except (OSError, ValueError, KeyError, TypeError):
        return dict(entry.get("weights") or {})
