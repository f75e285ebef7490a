"""Serve one artifact as an HTTP endpoint on 127.0.0.1: ``POST /score``, ``GET /health``, ``GET /version``.

A small standard-library server around the artifact's flow, chosen after measuring: it answers ``/health``
6.0 s after ``llmops deploy`` starts it (embedded model included), where ``pf flow serve`` took 11.7 s and
tried to reach ``settings.sdk.monitor.azure.com`` (offline, that is retries and noise). The artifact's digest
is checked before it serves, so an endpoint never runs bytes other than the ones that were built and gated.

Run by :func:`llmops_helpers.release.rollouts.deploy` as
``python -m llmops_helpers.release.serving --artifact DIR --env dev``."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import yaml

from llmops_helpers.paths import write_text_atomic
from llmops_helpers.release.artifacts import Artifact, load_artifact, verify_artifact
from llmops_helpers.release.httpjson import JSONHandler, JSONServer, RequestRejected

# The embedded model's context is 4096 tokens and the agent's prompt ~1,200 of them before the question
# (~4 characters a token): a longer question would fail inside the model, a server error for a client's mistake.
MAX_QUESTION_CHARS = 4000


def load_flow(artifact: Artifact, environment: str) -> Any:
    """Instantiate the artifact's flow entry (``flow.flex.yaml``'s ``entry: module:Class``) for ``environment``."""
    from llmops_helpers.flow.app import load_flow_module

    flow_dir = artifact.flow_dir
    entry = (yaml.safe_load((flow_dir / "flow.flex.yaml").read_text(encoding="utf-8")) or {}).get("entry", "")
    module_name, _, class_name = str(entry).partition(":")
    return getattr(load_flow_module(flow_dir, module_name), class_name)(environment=environment)


def make_server(artifact: Artifact, environment: str, port: int = 0) -> JSONServer:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    identity = {"name": artifact.name, "version": artifact.version, "digest": artifact.digest,
                "environment": environment, "started": started}
    return serve_flow(load_flow(artifact, environment), identity, port)


def serve_flow(flow: Callable[[str], Any], identity: dict[str, Any], port: int = 0,
               log_requests: bool = True) -> JSONServer:
    """The endpoint around ``flow`` (question -> reply mapping); ``identity`` is what ``/version`` answers
    (``digest``, ``version`` and ``environment`` at least). ``log_requests`` writes one line per request to stderr
    (a slot's log); a notebook's endpoint turns it off."""
    environment, digest = identity.get("environment", ""), identity.get("digest", "")
    lock = threading.Lock()  # one answer at a time: the embedded model has one slot anyway

    class Handler(JSONHandler):
        server_version = "llmops-endpoint/1"

        def _send(self, status: int, payload: dict) -> None:
            self.send_json(status, payload, {"X-Artifact-Digest": digest})

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/health":
                self._send(HTTPStatus.OK, {"status": "ok", "environment": environment,
                                           "version": identity.get("version")})
            elif self.path == "/version":  # with the retrieval index serving now, when the flow says (it can switch)
                index_info = getattr(flow, "index_info", None)
                self._send(HTTPStatus.OK, {**identity, **({"index": index_info()} if callable(index_info) else {})})
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}; try POST /score, GET /health"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path not in ("/score", "/chat"):
                self.reject(RequestRejected(HTTPStatus.NOT_FOUND, f"no route {self.path}; POST to /score"),
                            {"X-Artifact-Digest": digest})
                return
            try:
                question = _question(self.read_json())
            except RequestRejected as exc:
                self.reject(exc, {"X-Artifact-Digest": digest})
                return
            started_at = time.perf_counter()
            try:
                with lock:
                    reply = dict(flow(question))
            except Exception as exc:  # the caller sees a 500 with the reason; the endpoint keeps serving
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})
                return
            reply["server_latency_s"] = round(time.perf_counter() - started_at, 3)
            self._send(HTTPStatus.OK, reply)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if log_requests and self.path != "/health":  # a canary asks it twice a second
                sys.stderr.write(f"[{environment}] {self.address_string()} {format % args}\n")

    return JSONServer(("127.0.0.1", port), Handler)


@contextlib.contextmanager
def serving_in_thread(flow: Callable[[str], Any], identity: dict[str, Any]) -> Iterator[str]:
    """Serve ``flow`` on a free port of 127.0.0.1 from a thread of this process, for as long as the ``with`` block
    lasts, and yield its URL (a notebook's way to put a real endpoint in front of an agent it holds; deployments run
    each slot as its own process instead). The server is shut down and its socket closed on the way out."""
    server = serve_flow(flow, identity, port=0, log_requests=False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _question(body: Any) -> str:
    """The request's question, or :class:`RequestRejected` saying what is wrong with it."""
    question = body.get("question") if isinstance(body, dict) else None
    if not isinstance(question, str) or not question.strip():
        raise RequestRejected(HTTPStatus.BAD_REQUEST, "field 'question' must be a non-empty string, "
                              'as in {"question": "..."}')
    if len(question) > MAX_QUESTION_CHARS:
        raise RequestRejected(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the question is {len(question)} characters; "
                              f"the limit is {MAX_QUESTION_CHARS} (the model's context). Send a shorter question")
    return question


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops_helpers.release.serving")
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", help="write {port, pid} here once listening")
    args = parser.parse_args(argv)
    artifact = verify_artifact(load_artifact(args.artifact))
    server = make_server(artifact, args.env, args.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    if args.ready_file:
        import os

        write_text_atomic(args.ready_file, json.dumps({"port": server.server_address[1], "pid": os.getpid()}))
    print(f"Serving {artifact.ref} ({artifact.digest[:19]}) for {args.env} on http://127.0.0.1:"
          f"{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        from llmops_helpers.llm.local import stop_shared_server

        stop_shared_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
