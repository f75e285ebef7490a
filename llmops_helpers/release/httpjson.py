"""The kit's JSON-over-HTTP servers (the router and the serving slots) share one request handler base: it
drops a silent connection after ``CLIENT_TIMEOUT_S``, and turns a bad request body into a 400 or 413 with a
JSON reason, decided before any work is done (a too-large body from its ``Content-Length``, before reading it)."""

from __future__ import annotations

import json
import re
import socket
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from llmops_helpers.errors import LLMOpsError

MAX_BODY = 64 * 1024
CLIENT_TIMEOUT_S = 10.0
_DIGITS = re.compile(r"[0-9]{1,18}")


class RequestRejected(LLMOpsError):
    """A client sent a request the server will not process; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)


class JSONServer(ThreadingHTTPServer):
    """A thread per connection, and a listen backlog a burst of clients does not overflow (the default of 5
    made the sixth of 100 quick connections wait a second for the kernel to retry it)."""

    request_queue_size = 128


class JSONHandler(BaseHTTPRequestHandler):
    """``BaseHTTPRequestHandler`` with per-connection socket timeouts and validated JSON bodies."""

    timeout = CLIENT_TIMEOUT_S  # applied to the client socket by StreamRequestHandler.setup
    max_body = MAX_BODY
    raw_body = b""

    def send_body(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        self.send_body(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def read_json(self) -> Any:
        """The request's body decoded as UTF-8 JSON (the bytes kept in ``raw_body``); :class:`RequestRejected`
        (400 or 413) otherwise."""
        if self.headers.get("Transfer-Encoding"):
            raise RequestRejected(HTTPStatus.BAD_REQUEST, "chunked bodies are not accepted: send the JSON body "
                                  "with a Content-Length header")
        values = self.headers.get_all("Content-Length") or []
        if not values:
            raise RequestRejected(HTTPStatus.BAD_REQUEST, "the Content-Length header is missing: send the JSON "
                                  'body (like {"question": "..."}) with its length in bytes')
        if len(set(values)) > 1 or not _DIGITS.fullmatch(values[0].strip()):
            raise RequestRejected(HTTPStatus.BAD_REQUEST, f"Content-Length {', '.join(values)!r} is not one "
                                  "non-negative whole number of bytes")
        length = int(values[0])
        if length > self.max_body:
            raise RequestRejected(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is {length} bytes; the limit "
                                  f"is {self.max_body} bytes. Send a shorter question")
        body = self.rfile.read(length)
        if len(body) < length:
            raise RequestRejected(HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of the {length} "
                                  "bytes its Content-Length announced")
        self.raw_body = body
        try:
            return json.loads(body.decode("utf-8") or "{}")
        except UnicodeDecodeError as exc:
            raise RequestRejected(HTTPStatus.BAD_REQUEST, f"the body is not UTF-8 (bad byte at offset {exc.start}): "
                                  "encode the JSON as UTF-8") from None
        except json.JSONDecodeError as exc:
            raise RequestRejected(HTTPStatus.BAD_REQUEST, f'the body is not JSON ({exc}): send {{"question": '
                                  '"..."}') from None

    def reject(self, error: RequestRejected, headers: dict[str, str] | None = None) -> None:
        """Answer ``error`` as JSON and close the connection, reading off what the client may still be sending
        (briefly) so it receives the answer rather than a connection reset."""
        self.close_connection = True
        self.send_json(error.status, {"error": str(error), "status": error.status},
                       {"Connection": "close", **(headers or {})})
        self.wfile.flush()
        _drain(self.connection)


def _drain(connection: socket.socket, max_bytes: int = 1 << 20, max_seconds: float = 1.0) -> None:
    try:
        connection.shutdown(socket.SHUT_WR)
        deadline, seen = time.monotonic() + max_seconds, 0
        while seen < max_bytes and time.monotonic() < deadline:
            connection.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = connection.recv(65536)
            if not chunk:
                break
            seen += len(chunk)
    except OSError:
        pass
