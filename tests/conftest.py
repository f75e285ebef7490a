"""Shared fixtures: a real embedded model server, a second one in its own process (an "OpenAI-compatible
server of your own"), a flaky proxy in front of the real server for retry tests, and a clean environment."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from llmops_helpers import local_llm

KIT = Path(__file__).resolve().parent.parent
CANARY_KEY = "sk-canary-DO-NOT-LEAK-7f3a9c2e1b"
PROVIDER_VARS = [
    "LLMOPS_PROVIDER", "LLMOPS_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_DEPLOYMENT", "AZURE_OPENAI_API_VERSION", "LLMOPS_MAX_RETRIES",
    "LLMOPS_TIMEOUT",
]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No provider variables, and no .env file from the developer's checkout."""
    for name in PROVIDER_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMOPS_KIT_ROOT", str(tmp_path))
    return monkeypatch


@pytest.fixture(scope="session")
def local_server():
    """The real embedded model, in this process, shared by the session and stopped at its end."""
    server = local_llm.shared_server()
    yield server
    local_llm.stop_shared_server()


@pytest.fixture(scope="session")
def external_server():
    """`llmops serve-model` in its own process: stands in for any OpenAI-compatible endpoint."""
    env = {k: v for k, v in os.environ.items() if k != local_llm.BASE_URL_VARIABLE}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops_helpers.cli", "serve-model"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=env,
    )
    url = None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        match = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        if match:
            url = match.group(1)
            break
    assert url, "serve-model did not print its URL:\n" + "".join(lines)
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain the rest
    yield url
    proc.terminate()
    proc.wait(timeout=20)


class FlakyProxy(http.server.ThreadingHTTPServer):
    """Answers the first ``failures`` requests with ``status``, then forwards to the real server."""

    def __init__(self, upstream: str, failures: int, status: int = 503):
        self.upstream, self.failures, self.status, self.seen = upstream.rstrip("/"), failures, status, 0
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        server: FlakyProxy = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server.seen += 1
        if server.seen <= server.failures:
            payload = json.dumps({"error": {"message": "injected failure", "type": "server_error"}}).encode()
            self.send_response(server.status)
        else:
            path = self.path[len("/v1"):] if self.path.startswith("/v1") else self.path
            request = urllib.request.Request(server.upstream + path, data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as upstream:
                payload = upstream.read()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def flaky_proxy(local_server):
    proxies = []

    def make(failures: int, status: int = 503) -> FlakyProxy:
        proxy = FlakyProxy(local_server.base_url, failures, status)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.shutdown()
        proxy.server_close()


class _TrickleHandler(http.server.BaseHTTPRequestHandler):
    """Sends the headers at once, then one byte a second for as long as the test runs: every wait for the next
    byte is short, so only a total deadline can end the request."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        stop: threading.Event = self.server.stop  # type: ignore[attr-defined]
        self.server.seen += 1  # type: ignore[attr-defined]
        self.send_response(200)
        if body.get("stream"):  # one real chunk, then SSE keep-alive comments
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            drip = b":\n"
        else:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            drip = b" "
        try:
            while not stop.wait(1.0):
                self.wfile.write(drip)
                self.wfile.flush()
        except OSError:  # the client gave up and closed the connection
            pass


@pytest.fixture
def trickle_server(clean_env):
    """An OpenAI-compatible endpoint that never finishes an answer, with the openai provider pointed at it
    (the canary key, no retries); set LLMOPS_TIMEOUT in the test."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TrickleHandler)
    server.daemon_threads = True
    server.stop, server.seen = threading.Event(), 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    clean_env.setenv("LLMOPS_PROVIDER", "openai")
    clean_env.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
    clean_env.setenv("OPENAI_API_KEY", CANARY_KEY)
    clean_env.setenv("LLMOPS_MAX_RETRIES", "0")
    yield server
    server.stop.set()
    server.shutdown()
    server.server_close()
