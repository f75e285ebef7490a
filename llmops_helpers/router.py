"""The traffic switch in front of an environment: a small reverse proxy on the environment's port.

Each environment runs two slots, ``blue`` and ``green``, each a serving process with one artifact. The router
sends every request to one of them by weight (``{"blue": 90, "green": 10}``), using smooth weighted round robin,
so 10% means exactly one request in ten, in a fixed order. Blue/green is a switch from 100/0 to 0/100; a canary
moves the weights in steps. Replies carry ``X-Slot``. Per-slot counts, errors and latencies are what canary
analysis reads.

The weights and slots live in a JSON file that :mod:`llmops_helpers.deploy` writes; the router re-reads it when
it changes, so a switch is one atomic file write. Routes of its own: ``GET /_router`` (slots, weights, stats)
and ``POST /_router/reset`` (zero the stats). Run as ``python -m llmops_helpers.router --config FILE --port P``."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .metering import percentile
from .paths import write_text_atomic

SLOTS = ("blue", "green")
FORWARD_TIMEOUT_S = 300


class SlotStats:
    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latencies: list[float] = []

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors,
                "error_rate": self.errors / self.requests if self.requests else 0.0,
                "p95_s": percentile(self.latencies, 0.95) if self.latencies else None}


class Router:
    """Slot choice and statistics; thread-safe."""

    def __init__(self, config_path: str | Path) -> None:
        self.config_path = Path(config_path)
        self._lock = threading.Lock()
        self._mtime = -1.0
        self.config: dict[str, Any] = {"slots": {}, "weights": {}}
        self._current: dict[str, float] = {}
        self.stats = {slot: SlotStats() for slot in SLOTS}

    def _reload(self) -> None:
        try:
            mtime = self.config_path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            self.config = json.loads(self.config_path.read_text(encoding="utf-8"))
            self._mtime = mtime
            self._current = {}

    def choose(self) -> tuple[str, str] | None:
        """The next slot (name, url) by smooth weighted round robin; None when no slot has weight."""
        with self._lock:
            self._reload()
            weights = {s: float(w) for s, w in self.config.get("weights", {}).items()
                       if w and s in self.config.get("slots", {})}
            if not weights:
                return None
            total = sum(weights.values())
            for slot, weight in weights.items():
                self._current[slot] = self._current.get(slot, 0.0) + weight
            chosen = max(weights, key=lambda s: (self._current[s], s == "blue"))
            self._current[chosen] -= total
            return chosen, self.config["slots"][chosen]["url"]

    def observe(self, slot: str, seconds: float, ok: bool) -> None:
        with self._lock:
            stats = self.stats.setdefault(slot, SlotStats())
            stats.requests += 1
            stats.errors += 0 if ok else 1
            stats.latencies.append(seconds)
            del stats.latencies[:-1000]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._reload()
            return {"slots": self.config.get("slots", {}), "weights": self.config.get("weights", {}),
                    "stats": {slot: stats.as_dict() for slot, stats in self.stats.items()}}

    def reset(self) -> None:
        with self._lock:
            self.stats = {slot: SlotStats() for slot in SLOTS}


def make_router(config_path: str | Path, port: int, environment: str = "") -> ThreadingHTTPServer:
    router = Router(config_path)

    class Handler(BaseHTTPRequestHandler):
        server_version = "llmops-router/1"

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict) -> None:
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

        def _forward(self, method: str) -> None:
            if self.path == "/_router" and method == "GET":
                self._json(HTTPStatus.OK, {"environment": environment, **router.snapshot()})
                return
            if self.path == "/_router/reset" and method == "POST":
                router.reset()
                self._json(HTTPStatus.OK, {"reset": True})
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else None
            choice = router.choose()
            if choice is None:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"no slot takes traffic in {environment}"})
                return
            slot, url = choice
            target = urlsplit(url)
            started = time.perf_counter()
            try:
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=FORWARD_TIMEOUT_S)
                connection.request(method, self.path, body=body,
                                   headers={"Content-Type": self.headers.get("Content-Type", "application/json")})
                response = connection.getresponse()
                payload, status = response.read(), response.status
                headers = {k: v for k, v in response.getheaders() if k.lower() in ("content-type",
                                                                                   "x-artifact-digest")}
                connection.close()
            except OSError as exc:
                router.observe(slot, time.perf_counter() - started, ok=False)
                self._json(HTTPStatus.BAD_GATEWAY, {"error": f"slot {slot} unreachable: {exc}", "slot": slot})
                return
            router.observe(slot, time.perf_counter() - started, ok=status < 500)
            self._send(status, payload, {**headers, "X-Slot": slot})

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._forward("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._forward("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write(f"[router {environment}] {format % args}\n")

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def write_config(path: str | Path, slots: dict[str, dict[str, Any]], weights: dict[str, int]) -> None:
    """Atomically replace the router's slots and weights (the router picks it up on its next request)."""
    write_text_atomic(path, json.dumps({"slots": slots, "weights": weights}, indent=2) + "\n")
    # st_mtime_ns can repeat within a coarse clock tick; make each write visible as a change
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops_helpers.router")
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--env", default="")
    parser.add_argument("--ready-file")
    args = parser.parse_args(argv)
    server = make_router(args.config, args.port, args.env)
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
