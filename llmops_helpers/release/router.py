"""The traffic switch in front of an environment: a small reverse proxy on the environment's port.

Each environment runs two slots, ``blue`` and ``green``, each a serving process with one artifact. The router
sends every request to one of them by weight (``{"blue": 90, "green": 10}``), using smooth weighted round robin,
so 10% means exactly one request in ten, in a fixed order. Blue/green is a switch from 100/0 to 0/100; a canary
moves the weights in steps. Replies, error replies included, carry ``X-Slot``. Per-slot counts, server errors,
client errors and latencies are what canary analysis reads.

A slot that refuses the connection is marked down at once and the request goes to the other slot that takes
traffic (the request never reached the dead one, so nothing is sent twice); it is tried again after
``RECHECK_S``. Bodies are checked before they are forwarded (:mod:`llmops_helpers.release.httpjson`): 413 when too
large, 400 when malformed, and a silent client is dropped after ``CLIENT_TIMEOUT_S``.

The weights and slots live in a JSON file that :mod:`llmops_helpers.release.rollouts` writes; the router re-reads
it when it changes, so a switch is one atomic file write. Routes of its own: ``GET /_router`` (slots, weights, health,
stats) and ``POST /_router/reset`` (zero the stats) need the environment's token in the ``X-LLMOps-Token``
header (the token is in an owner-only file next to the config); ``GET /_router/health`` is open. Run as
``python -m llmops_helpers.release.router --config FILE --port P``."""

from __future__ import annotations

import argparse
import hmac
import http.client
import json
import os
import secrets
import signal
import stat
import sys
import threading
import time
from collections import Counter
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmops_helpers.errors import LLMOpsError
from llmops_helpers.llm.metering import percentile
from llmops_helpers.paths import write_text_atomic
from llmops_helpers.release.httpjson import CLIENT_TIMEOUT_S, JSONHandler, JSONServer, RequestRejected

SLOTS = ("blue", "green")
FORWARD_TIMEOUT_S = 300
CONNECT_TIMEOUT_S = 5
RECHECK_S = 2.0
TOKEN_HEADER = "X-LLMOps-Token"


class RouterTokenError(LLMOpsError):
    """The router's admin token file is missing, empty or readable by other users."""


def token_path(config_path: str | Path) -> Path:
    """The admin token's file, next to the router config: ``dev.router.json`` -> ``dev.router.token``."""
    config_path = Path(config_path)
    return config_path.with_name(config_path.name.removesuffix(".json") + ".token")


def read_token(config_path: str | Path) -> str:
    """The environment's router token; refused when its file can be read by anyone but its owner."""
    path = token_path(config_path)
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise RouterTokenError(f"{path}: the router's admin token is missing. Deploy to the environment "
                               "(`llmops deploy`), which creates it, or restart its router.") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise RouterTokenError(f"{path}: the router's admin token can be read by other users (mode "
                               f"{stat.S_IMODE(mode):o}). Delete the file and restart the router (`llmops undeploy` "
                               "then `llmops deploy`): a new token is made with owner-only permissions (600).")
    if not token:
        raise RouterTokenError(f"{path}: the router's admin token file is empty. Delete it and redeploy.")
    return token


def ensure_token(config_path: str | Path) -> str:
    """The environment's router token, created (owner-only, 0600) when there is none yet."""
    path = token_path(config_path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(config_path)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return read_token(config_path)


class SlotStats:
    """One slot's counts since the last reset. ``errors`` are server-side failures (5xx, 429, connection
    failures, timeouts), what an SLO judges; ``client_errors`` (other 4xx) are the client's mistake and count
    against neither the error rate nor the latency."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.client_errors = 0
        self.latencies: list[float] = []

    def as_dict(self) -> dict[str, Any]:
        judged = self.requests - self.client_errors
        return {"requests": self.requests, "errors": self.errors, "client_errors": self.client_errors,
                "error_rate": self.errors / judged if judged else 0.0,
                "p95_s": percentile(self.latencies, 0.95) if self.latencies else None}


def outcome_of(status: int) -> str:
    """``ok``, ``client_error`` or ``error`` (server-side) for a slot's HTTP status."""
    if status >= 500 or status == HTTPStatus.TOO_MANY_REQUESTS:
        return "error"
    return "client_error" if status >= 400 else "ok"


class Router:
    """Slot choice, slot health and statistics; thread-safe."""

    def __init__(self, config_path: str | Path) -> None:
        self.config_path = Path(config_path)
        self._lock = threading.Lock()
        self._mtime = -1.0
        self.config: dict[str, Any] = {"slots": {}, "weights": {}}
        self._current: dict[str, float] = {}
        self.stats = {slot: SlotStats() for slot in SLOTS}
        self.rejected: Counter[int] = Counter()
        self._down: dict[str, dict[str, Any]] = {}

    def _reload(self) -> None:
        try:
            mtime = self.config_path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            self.config = json.loads(self.config_path.read_text(encoding="utf-8"))
            self._mtime = mtime
            self._current = {}

    def _url(self, slot: str) -> str:
        return str(self.config.get("slots", {}).get(slot, {}).get("url", ""))

    def _is_down(self, slot: str) -> bool:
        mark = self._down.get(slot)
        if mark and mark["url"] != self._url(slot):  # the slot was restarted elsewhere: forget the old mark
            del self._down[slot]
            return False
        return bool(mark) and time.monotonic() - mark["checked"] < RECHECK_S

    def choose(self, skip: tuple[str, ...] | list[str] = ()) -> tuple[str, str] | None:
        """The next slot (name, url) by smooth weighted round robin among slots not in ``skip``, passing over
        slots marked down while another can answer; None when no slot is left with weight."""
        with self._lock:
            self._reload()
            weights = {s: float(w) for s, w in self.config.get("weights", {}).items()
                       if w and s in self.config.get("slots", {}) and s not in skip}
            healthy = {s: w for s, w in weights.items() if not self._is_down(s)}
            weights = healthy or weights  # a down mark is a hint: with no other slot, try it anyway
            if not weights:
                return None
            total = sum(weights.values())
            for slot, weight in weights.items():
                self._current[slot] = self._current.get(slot, 0.0) + weight
            chosen = max(weights, key=lambda s: (self._current[s], s == "blue"))
            self._current[chosen] -= total
            return chosen, self._url(chosen)

    def mark_down(self, slot: str, url: str, reason: str) -> None:
        """Take ``slot`` out of rotation for ``RECHECK_S``; the first mark's time is kept while it stays down."""
        with self._lock:
            previous = self._down.get(slot)
            since = previous["since"] if previous and previous["url"] == url else time.time()
            self._down[slot] = {"url": url, "reason": reason, "since": since, "checked": time.monotonic()}

    def mark_up(self, slot: str) -> None:
        with self._lock:
            self._down.pop(slot, None)

    def observe(self, slot: str, seconds: float, outcome: str) -> None:
        """Count one forwarded request: ``outcome`` is ``ok``, ``client_error`` or ``error``."""
        with self._lock:
            stats = self.stats.setdefault(slot, SlotStats())
            stats.requests += 1
            stats.errors += outcome == "error"
            stats.client_errors += outcome == "client_error"
            if outcome != "client_error":
                stats.latencies.append(seconds)
                del stats.latencies[:-1000]

    def reject(self, status: int) -> None:
        with self._lock:
            self.rejected[int(status)] += 1

    def health(self) -> dict[str, dict[str, Any]]:
        """Each configured slot's state: ``up``, or down with the ``reason`` and the time it was first seen."""
        result = {}
        for slot in self.config.get("slots", {}):
            mark = self._down.get(slot)
            if mark and mark["url"] == self._url(slot):
                result[slot] = {"up": False, "reason": mark["reason"], "since": mark["since"],
                                "since_utc": time.strftime("%H:%M:%S UTC", time.gmtime(mark["since"]))}
            else:
                result[slot] = {"up": True}
        return result

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._reload()
            return {"slots": self.config.get("slots", {}), "weights": self.config.get("weights", {}),
                    "health": self.health(),
                    "stats": {slot: stats.as_dict() for slot, stats in self.stats.items()},
                    "rejected": {str(status): count for status, count in sorted(self.rejected.items())}}

    def reset(self) -> None:
        with self._lock:
            self.stats = {slot: SlotStats() for slot in SLOTS}
            self.rejected = Counter()


class SlotUnreachable(OSError):
    """No connection could be made to a slot: the request was never sent, so another slot may take it."""


def _forward_once(url: str, method: str, path: str, body: bytes | None, content_type: str
                  ) -> tuple[int, bytes, dict[str, str]]:
    target = urlsplit(url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=CONNECT_TIMEOUT_S)
    try:
        try:
            connection.connect()
        except OSError as exc:
            reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else (
                "connection timed out" if isinstance(exc, TimeoutError) else f"cannot connect ({exc})")
            raise SlotUnreachable(reason) from exc
        connection.sock.settimeout(FORWARD_TIMEOUT_S)
        connection.request(method, path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        payload = response.read()
        headers = {k: v for k, v in response.getheaders() if k.lower() in ("content-type", "x-artifact-digest")}
        return response.status, payload, headers
    finally:
        connection.close()


def make_router(config_path: str | Path, port: int, environment: str = "",
                client_timeout: float = CLIENT_TIMEOUT_S) -> JSONServer:
    """The router's HTTP server on 127.0.0.1:``port``; creates the admin token file if there is none."""
    router = Router(config_path)
    ensure_token(config_path)  # read again at each admin request, so replacing the file rotates it
    where = token_path(config_path)

    class Handler(JSONHandler):
        server_version = "llmops-router/1"
        timeout = client_timeout

        def _authorised(self) -> bool:
            given = self.headers.get(TOKEN_HEADER)
            try:
                token = read_token(config_path)
            except RouterTokenError as exc:
                token, problem = "", str(exc)
            if given is None:
                error = RequestRejected(HTTPStatus.UNAUTHORIZED, f"{self.path} needs the {environment or 'router'} "
                                        f"router's token in the {TOKEN_HEADER} header; it is in {where}")
            elif not token:
                error = RequestRejected(HTTPStatus.FORBIDDEN, problem)
            elif not hmac.compare_digest(given.strip().encode(), token.encode()):
                error = RequestRejected(HTTPStatus.FORBIDDEN, f"the {TOKEN_HEADER} header does not match the "
                                        f"token in {where}")
            else:
                return True
            router.reject(error.status)
            self.reject(error)
            return False

        def _admin(self, method: str) -> None:
            route = (method, self.path)
            if route == ("GET", "/_router/health"):
                self.send_json(HTTPStatus.OK, {"status": "ok", "environment": environment})
            elif route not in (("GET", "/_router"), ("POST", "/_router/reset")):
                self.reject(RequestRejected(HTTPStatus.NOT_FOUND, f"no router route {method} {self.path}; try "
                                            "GET /_router, POST /_router/reset or GET /_router/health"))
            elif not self._authorised():
                return
            elif method == "GET":
                self.send_json(HTTPStatus.OK, {"environment": environment, **router.snapshot()})
            else:
                try:
                    if self.headers.get("Content-Length"):
                        self.read_json()  # read off so closing the connection does not reset it
                except RequestRejected as exc:
                    self.reject(exc)
                    return
                router.reset()
                self.send_json(HTTPStatus.OK, {"reset": True})

        def _handle(self, method: str) -> None:
            if self.path.startswith("/_router"):
                self._admin(method)
                return
            body = None
            try:
                if method == "POST":
                    self.read_json()  # validated here, forwarded as sent
                    body = self.raw_body
            except RequestRejected as exc:
                router.reject(exc.status)
                self.reject(exc)
                return
            self._proxy(method, body)

        def _proxy(self, method: str, body: bytes | None) -> None:
            tried: list[str] = []
            while (choice := router.choose(skip=tried)) is not None:
                slot, url = choice
                started = time.perf_counter()
                try:
                    status, payload, headers = _forward_once(url, method, self.path, body,
                                                             self.headers.get("Content-Type", "application/json"))
                except SlotUnreachable as exc:
                    router.observe(slot, time.perf_counter() - started, "error")
                    router.mark_down(slot, url, str(exc))
                    self.log_message("slot %s %s; failing over", slot, exc)
                    tried.append(slot)
                    continue
                except TimeoutError:
                    router.observe(slot, time.perf_counter() - started, "error")
                    self.send_json(HTTPStatus.GATEWAY_TIMEOUT, {"error": f"slot {slot} did not answer within "
                                   f"{FORWARD_TIMEOUT_S} s", "slot": slot}, {"X-Slot": slot})
                    return
                except OSError as exc:  # connected, then the slot closed or reset the connection
                    router.observe(slot, time.perf_counter() - started, "error")
                    self.send_json(HTTPStatus.BAD_GATEWAY, {"error": f"slot {slot} unreachable: {exc or type(exc)}",
                                                            "slot": slot}, {"X-Slot": slot})
                    return
                router.mark_up(slot)
                router.observe(slot, time.perf_counter() - started, outcome_of(status))
                self.send_body(status, payload, {**headers, "X-Slot": slot})
                return
            if tried:
                reasons = "; ".join(f"slot {s} unreachable: {router.health().get(s, {}).get('reason', '')}"
                                    for s in tried)
                self.send_json(HTTPStatus.BAD_GATEWAY, {"error": f"{reasons}; no other slot takes traffic in "
                                                        f"{environment}", "slot": tried[-1]},
                               {"X-Slot": tried[-1]})
            else:
                self.send_json(HTTPStatus.SERVICE_UNAVAILABLE,
                               {"error": f"no slot takes traffic in {environment}"})

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write(f"[router {environment}] {format % args}\n")

    return JSONServer(("127.0.0.1", port), Handler)


def write_config(path: str | Path, slots: dict[str, dict[str, Any]], weights: dict[str, int]) -> None:
    """Atomically replace the router's slots and weights (the router picks it up on its next request)."""
    write_text_atomic(path, json.dumps({"slots": slots, "weights": weights}, indent=2) + "\n")
    # st_mtime_ns can repeat within a coarse clock tick; make each write visible as a change
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops_helpers.release.router")
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--env", default="")
    parser.add_argument("--client-timeout", type=float, default=CLIENT_TIMEOUT_S,
                        help="seconds a client connection may stay silent before it is dropped")
    parser.add_argument("--ready-file")
    args = parser.parse_args(argv)
    server = make_router(args.config, args.port, args.env, args.client_timeout)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    if args.ready_file:
        write_text_atomic(args.ready_file, json.dumps({"port": server.server_address[1], "pid": os.getpid()}))
    print(f"Routing {args.env} on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
