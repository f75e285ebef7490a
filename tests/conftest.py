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


def _isolate_parallel_worker() -> None:
    """Under ``llmops test``'s parallel workers (pytest-xdist), give this worker what must not be shared: its own
    router ports (LLMOPS_PORT_BASE), its own promptflow home (a run database per process tree), and its share of
    the cores for the embedded model (llama.cpp's spinning threads collapse when two servers want every core).
    Runs before llmops_helpers is imported, so promptflow is configured with this worker's home."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return
    index, count = int(worker[2:]), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    os.environ["LLMOPS_PORT_BASE"] = str(8600 + 100 * index)
    os.environ["PF_HOME_DIRECTORY"] = str(KIT / "build" / f".promptflow-{worker}")
    os.environ.setdefault("LLMOPS_LOCAL_THREADS", str(max(1, (os.cpu_count() or 1) // count)))


KIT = Path(__file__).resolve().parent.parent
_isolate_parallel_worker()

from llmops_helpers.llm import local as local_llm  # noqa: E402

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


# Measured seconds per notebook (papermill run of the solution; the lab under nbval takes about as long). The
# parallel run starts the longest first, so that no worker is left with a long notebook at the end.
NOTEBOOK_SECONDS = {"05": 280, "06": 200, "02": 100, "03": 63, "01": 57, "00": 20}


def _solution(item: pytest.Item) -> str:
    """The stem of the solution notebook a test executes (its ``path`` parameter), else ""."""
    callspec = getattr(item, "callspec", None)
    return getattr(callspec.params.get("path"), "stem", "") if callspec else ""


def _notebook_weight(item: pytest.Item) -> int:
    path = Path(str(item.fspath))
    if path.suffix == ".ipynb":
        return NOTEBOOK_SECONDS.get(path.stem[:2], 60)
    return NOTEBOOK_SECONDS.get(_solution(item)[:2], 0) if _solution(item) else 0


@pytest.hookimpl(tryfirst=True)  # before xdist turns the markers into group names
def pytest_collection_modifyitems(config, items):
    """For parallel runs (``--dist loadgroup``): every cell of a notebook under nbval, and every test of a unit
    test module, stay together on one worker, in order (a notebook's kernel and a module's fixtures are set up
    once); each solution notebook is a unit of its own. Longest units first."""
    for item in items:
        path = Path(str(item.fspath))
        if _notebook_weight(item) and path.suffix != ".ipynb":
            group = f"solution-{_solution(item)}"
        else:
            group = str(path.relative_to(KIT)) if path.is_relative_to(KIT) else str(path)
        item.add_marker(pytest.mark.xdist_group(name=group))
    items.sort(key=lambda item: -_notebook_weight(item))
