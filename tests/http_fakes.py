"""Fake slot servers and raw-socket clients for the router and serving tests: tiny HTTP servers on 127.0.0.1
port 0 (or the real serving handler around a fake flow), never the embedded model, each test under a deadline."""

import json
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmops_helpers.release.serving import serve_flow

DEADLINE_S = 60


@pytest.fixture(autouse=True)
def deadline():
    """Every test of a module that imports this fixture ends within DEADLINE_S, whatever hangs."""

    def expire(*_):
        raise TimeoutError(f"test over its {DEADLINE_S} s deadline")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(DEADLINE_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _backend(name: str, status: int = 200):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.server.hits += 1
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"served_by": name}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST  # noqa: N815

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.hits = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _slot(name: str, delay: float = 0.0):
    """The real serving handler around a fake flow that always answers well (article kb-1, cited)."""

    def flow(question: str) -> dict:
        server.questions += 1
        time.sleep(delay)
        return {"answer": f"{name} says hi [kb-1]", "context_ids": ["kb-1"], "cited_ids": ["kb-1"]}

    server = serve_flow(flow, {"name": "agent", "version": name, "digest": f"sha256:{name}", "environment": "dev"})
    server.questions = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _stop(*servers) -> None:
    for server in servers:
        server.shutdown()
        server.server_close()


def _raw(url: str, data: bytes, timeout: float = 5) -> tuple[int, dict, dict]:
    """Send ``data`` on a raw socket and read the reply to its end: (status, JSON body, headers)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), json.loads(body or b"{}"), headers


def _post(headers: str, body: bytes = b"") -> bytes:
    return f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n".encode() + body


def _length(body: bytes) -> bytes:
    return _post(f"Content-Length: {len(body)}\r\n", body)


BAD_REQUESTS = {  # name: (raw request, status, words in the error)
    "non-UTF-8": (_length(b'{"question": "caf\xe9 \xff"}'), 400, "not UTF-8"),
    "not JSON": (_length(b'{"question": '), 400, "not JSON"),
    "negative Content-Length": (_post("Content-Length: -1\r\n", b'{"question": "q"}'), 400, "non-negative"),
    "non-numeric Content-Length": (_post("Content-Length: ten\r\n", b'{"question": "q"}'), 400, "non-negative"),
    "missing Content-Length": (_post("", b'{"question": "q"}'), 400, "Content-Length header is missing"),
    "chunked": (_post("Transfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 400, "chunked"),
    "50 MB announced": (_post("Content-Length: 52428800\r\n"), 413, "limit is 65536 bytes"),
    "too large, still sending": (_post("Content-Length: 52428800\r\n", b"x" * 200_000), 413, "limit is 65536"),
}


