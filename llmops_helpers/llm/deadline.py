"""A wall-clock deadline for every HTTP request of the kit's LLM clients.

httpx's timeouts bound each single wait (connect, one read, one write), so a server that sends its headers and
then a byte a second never times out. :class:`DeadlineHttpClient` gives each request a total budget (its largest
timeout, i.e. ``LLMOPS_TIMEOUT``) and shortens every socket wait to what is left of it, from connecting to the
last byte of the body or stream. Running out raises httpx's own timeout error, which the ``openai`` client turns
into ``APITimeoutError`` and retries like any other timeout."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore2
import httpx2
import openai

log = logging.getLogger(__name__)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("llmops_request_deadline", default=None)


def timeout_budget(timeout: Any) -> float | None:
    """Seconds a whole request may take: a number as is, an ``httpx`` Timeout (or its dict) its largest part."""
    if timeout is None or isinstance(timeout, (int, float)):
        return timeout
    parts = timeout if isinstance(timeout, dict) else getattr(timeout, "as_dict", dict)()
    values = [v for v in parts.values() if v is not None]
    return max(values) if values else None


def _clamp(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left before the current request's deadline (if one is running)."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request used up its total time (LLMOPS_TIMEOUT)")
    return left if timeout is None else min(timeout, left)


class _DeadlineNetworkStream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamp(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore2.NetworkStream:
        return _DeadlineNetworkStream(
            self._stream.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore2.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore2.NetworkBackend):
    def __init__(self, backend: httpcore2.NetworkBackend):
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore2.NetworkStream:
        return _DeadlineNetworkStream(self._backend.connect_tcp(
            host, port, _clamp(timeout, httpcore2.ConnectTimeout), local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore2.NetworkStream:
        return _DeadlineNetworkStream(self._backend.connect_unix_socket(
            path, _clamp(timeout, httpcore2.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _DeadlineBody(httpx2.SyncByteStream):
    """A response body read under its request's deadline, however late the caller reads it (streams)."""

    def __init__(self, stream: httpx2.SyncByteStream, deadline: float):
        self._stream, self._deadline = stream, deadline

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._stream)
        while True:
            token = _deadline.set(self._deadline)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                _deadline.reset(token)
            yield chunk

    def close(self) -> None:
        self._stream.close()


class _DeadlineTransport(httpx2.HTTPTransport):
    """httpx's own transport (connection pool, proxies, TLS), with every socket wait inside the deadline."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        pool = getattr(self, "_pool", None)  # httpx offers no network_backend option; its httpcore pool has it
        if not isinstance(getattr(pool, "_network_backend", None), httpcore2.NetworkBackend):
            log.warning("This httpx2 version keeps its network backend elsewhere, so LLMOPS_TIMEOUT bounds each "
                        "wait, not each whole request: llmops_helpers/deadline.py needs updating for it.")
            return
        pool._network_backend = _DeadlineBackend(pool._network_backend)  # type: ignore[union-attr]

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        budget = timeout_budget(request.extensions.get("timeout"))
        if budget is None:
            return super().handle_request(request)
        deadline = time.monotonic() + budget
        token = _deadline.set(deadline)
        try:
            response = super().handle_request(request)
        finally:
            _deadline.reset(token)
        response.stream = _DeadlineBody(response.stream, deadline)  # type: ignore[arg-type]
        return response


class DeadlineHttpClient(openai.DefaultHttpxClient):
    """``openai``'s default ``httpx`` client (its limits, redirects, proxies from the environment) in which each
    request must finish within its timeout in total, body and stream included."""

    def _init_transport(self, transport: httpx2.BaseTransport | None = None, **kwargs: Any) -> httpx2.BaseTransport:
        return transport if transport is not None else _DeadlineTransport(**kwargs)

    def _init_proxy_transport(self, proxy: Any, **kwargs: Any) -> httpx2.BaseTransport:
        return _DeadlineTransport(proxy=proxy, **kwargs)

    def __del__(self) -> None:  # as openai's own client does: free the connections with the client
        try:
            if not self.is_closed:
                self.close()
        except Exception:
            pass
