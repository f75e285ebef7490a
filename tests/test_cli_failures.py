"""`llmops` reports every failure it knows in one paragraph with a non-zero exit: no traceback, never the key."""

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error

import httpx2
import openai
import pytest

from conftest import CANARY_KEY, KIT
from llmops_helpers import cli
from llmops_helpers.release import commands as release_commands


def llmops(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmops_helpers.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def assert_one_paragraph(run: subprocess.CompletedProcess, *expected: str) -> str:
    assert CANARY_KEY not in run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    error = run.stderr.strip()
    assert run.returncode == 2 and error.startswith("error: ") and "\n" not in error, (run.returncode, run.stderr)
    for text in expected:
        assert text in error, error
    return error


@pytest.fixture
def openai_env(clean_env):
    clean_env.setenv("LLMOPS_PROVIDER", "openai")
    clean_env.setenv("OPENAI_API_KEY", CANARY_KEY)
    clean_env.setenv("LLMOPS_MAX_RETRIES", "0")
    return clean_env


def test_doctor_with_a_stopped_server(openai_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    openai_env.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    assert_one_paragraph(llmops("doctor"), f"127.0.0.1:{port}", "could not be reached", "OPENAI_BASE_URL")


class _RefusingHandler(http.server.BaseHTTPRequestHandler):
    """Refuses every key with 401, quoting the Authorization header back (as some servers do)."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        payload = json.dumps({"error": {"message": f"Invalid key: {self.headers.get('Authorization')}",
                                        "type": "invalid_request_error", "code": "invalid_api_key"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_doctor_with_a_refused_key_never_prints_it(openai_env):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        openai_env.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
        error = assert_one_paragraph(llmops("doctor"), "refused the credentials (HTTP 401)", "OPENAI_API_KEY")
        assert "Invalid key: Bearer ***" in error  # the server's words stay, the key does not
    finally:
        server.shutdown()
        server.server_close()


def test_doctor_against_a_trickling_server_ends_at_the_deadline(trickle_server, clean_env):
    clean_env.setenv("LLMOPS_TIMEOUT", "2")
    started = time.perf_counter()
    run = llmops("doctor", timeout=60)
    assert_one_paragraph(run, "within 2 s", "LLMOPS_TIMEOUT")
    assert time.perf_counter() - started < 30  # interpreter and imports included; it used to hang for ever


@pytest.mark.skipif(os.name == "nt", reason="Ctrl+C is a console event on Windows, not a signal sent to one process")
def test_ctrl_c_is_one_line_and_exit_130(trickle_server, clean_env):
    clean_env.setenv("LLMOPS_TIMEOUT", "60")
    # A shell that starts a job in the background (as CI may) makes it ignore SIGINT, and Python then installs no
    # Ctrl+C handler: give the child the default disposition that a terminal would.
    proc = subprocess.Popen([sys.executable, "-m", "llmops_helpers.cli", "doctor"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while trickle_server.seen == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # wait until doctor is inside its LLM call
        assert trickle_server.seen == 1, "doctor never called the server"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and err.strip() == "Interrupted.", (proc.returncode, err)


@pytest.mark.parametrize("failure, expected", [
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "Connection refused"),
    (TimeoutError("timed out"), "timed out"),
    (httpx2.ConnectError("[Errno 111] Connection refused"), "ConnectError"),
    (openai.APIConnectionError(request=httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")),
     "http://127.0.0.1:9/v1/chat/completions"),
])
def test_network_failures_anywhere_are_one_paragraph(failure, expected, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PF_HOME_DIRECTORY", str(tmp_path))

    def status(args):
        raise failure

    monkeypatch.setattr(release_commands, "cmd_status", status)
    assert cli.main(["status"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and expected in error and "\n" not in error, error


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("PF_HOME_DIRECTORY", str(tmp_path))

    def status(args):
        raise ValueError("a bug")

    monkeypatch.setattr(release_commands, "cmd_status", status)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["status"])


class _FailingHandler(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers every request with HTTP 500."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        payload = b'{"error": {"message": "injected failure", "type": "server_error"}}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_eval_fails_when_rows_errored(openai_env, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FailingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        openai_env.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
        openai_env.setenv("LLMOPS_KIT_ROOT", str(KIT))  # the real flow and golden data
        out = tmp_path / "run"
        run = llmops("eval", "--sample", "2", "--judges", "none", "--out", str(out))
    finally:
        server.shutdown()
        server.server_close()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_rows"] == 2 and summary["n_errors"] == 2
    assert run.returncode == 1, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr and CANARY_KEY not in run.stdout + run.stderr
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("error: 2 of 2 rows errored") and str(out / "rows.jsonl") in error, error
    assert "HTTP 500" in error and "--fresh" in error


def test_eval_with_a_mistyped_category_or_a_negative_sample_is_one_paragraph(tmp_path):
    run = llmops("eval", "--categories", "roaming,roming", "--sample", "2", "--out", str(tmp_path / "run"))
    assert_one_paragraph(run, "unknown category 'roming'", "plans, roaming, billing")
    assert not (tmp_path / "run").exists()  # refused before any model starts or any folder is made
    assert_one_paragraph(llmops("eval", "--sample", "-1", "--out", str(tmp_path / "run")), "negative")
