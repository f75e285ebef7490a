"""The provider layer against the real embedded model (and real servers on 127.0.0.1)."""

import http.server
import json
import logging
import socket
import threading
import time

import openai
import pytest

from conftest import CANARY_KEY
from llmops_helpers import connect
from llmops_helpers.llm.metering import Meter
from llmops_helpers.llm.settings import ProviderSettings, Secret

ASK = [{"role": "user", "content": "Name one thing a mobile network operator sells."}]


def ask(connection, **kwargs):
    return connection.client.chat.completions.create(
        model=connection.model, messages=ASK, max_tokens=kwargs.pop("max_tokens", 16), temperature=0, **kwargs
    )


def test_client_is_the_real_openai_client(clean_env, local_server):
    connection = connect("local", meter=Meter())
    assert isinstance(connection.client, openai.OpenAI)
    assert connection.base_url.startswith("http://127.0.0.1:")


def test_every_call_is_recorded(clean_env, local_server):
    meter = Meter()
    connection = connect("local", meter=meter)
    response = ask(connection)
    record = meter.last()
    assert record.ok and record.operation == "chat/completions" and record.provider == "local"
    assert record.prompt_tokens == response.usage.prompt_tokens > 0
    assert record.completion_tokens == response.usage.completion_tokens > 0
    assert record.cost_usd == 0.0 and 0 < record.latency_s < 30 and record.retries == 0


def test_temperature_zero_is_repeatable(clean_env, local_server):
    connection = connect("local", meter=Meter())
    answers = {ask(connection, max_tokens=24).choices[0].message.content for _ in range(3)}
    assert len(answers) == 1


def test_streaming_is_recorded_when_the_stream_ends(clean_env, local_server):
    meter = Meter()
    connection = connect("local", meter=meter)
    stream = ask(connection, stream=True, stream_options={"include_usage": True})
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    record = meter.last()
    assert text and record.first_token_s is not None and record.latency_s >= record.first_token_s
    assert record.completion_tokens and record.completion_tokens > 0


def test_with_options_keeps_recording(clean_env, local_server):
    meter = Meter()
    connection = connect("local", meter=meter)
    connection.client.with_options(timeout=30).chat.completions.create(
        model=connection.model, messages=ASK, max_tokens=4)
    assert len(meter) == 1


def test_openai_base_url_reaches_another_compatible_server(clean_env, external_server):
    clean_env.setenv("LLMOPS_PROVIDER", "openai")
    clean_env.setenv("OPENAI_BASE_URL", external_server)
    clean_env.setenv("OPENAI_API_KEY", CANARY_KEY)
    meter = Meter()
    connection = connect(meter=meter, model="whatever-the-server-serves")
    assert connection.provider == "openai" and connection.base_url == external_server
    response = ask(connection)
    assert response.choices[0].message.content
    assert meter.last().endpoint == external_server and CANARY_KEY not in repr(connection)


def test_transient_failures_are_retried(clean_env, flaky_proxy):
    proxy = flaky_proxy(failures=2, status=503)
    meter = Meter()
    connection = connect(settings=ProviderSettings("local", "m", base_url=proxy.base_url, max_retries=3), meter=meter)
    response = ask(connection)
    assert response.choices[0].message.content
    assert meter.last().retries == 2 and meter.last().ok and proxy.seen == 3


def test_rate_limit_exhausted_says_which_endpoint_and_what_to_check(clean_env, flaky_proxy):
    proxy = flaky_proxy(failures=99, status=429)
    meter = Meter()
    settings = ProviderSettings("local", "m", base_url=proxy.base_url, max_retries=1)
    connection = connect(settings=settings, meter=meter)
    with pytest.raises(openai.RateLimitError) as info:
        ask(connection)
    message = str(info.value)
    assert proxy.base_url in message and "HTTP 429" in message and "after 2 attempts" in message
    assert meter.last().error.startswith("RateLimitError") and meter.last().retries == 1


def test_unreachable_endpoint_error(clean_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    clean_env.setenv("OPENAI_API_KEY", CANARY_KEY)
    clean_env.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    clean_env.setenv("LLMOPS_MAX_RETRIES", "1")
    meter = Meter()
    connection = connect("openai", meter=meter)
    with pytest.raises(openai.APIConnectionError) as info:
        ask(connection)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "could not be reached" in message and "OPENAI_BASE_URL" in message
    assert CANARY_KEY not in message and meter.last().retries == 1


def test_canary_key_never_reaches_the_logs(clean_env, external_server, caplog):
    clean_env.setenv("OPENAI_API_KEY", CANARY_KEY)
    clean_env.setenv("OPENAI_BASE_URL", external_server)
    with caplog.at_level(logging.DEBUG):
        connection = connect("openai", meter=Meter())
        ask(connection)
        logging.getLogger("llmops").info("connection %r settings %r", connection, connection.settings)
    assert caplog.records and CANARY_KEY not in caplog.text


def test_stale_local_url_falls_back_to_embedded(clean_env, local_server):
    clean_env.setenv("LLMOPS_LOCAL_BASE_URL", "http://127.0.0.1:9/v1")
    connection = connect("local", meter=Meter())
    assert connection.base_url == local_server.base_url


def _within(seconds: float, call):
    """Run ``call`` in a thread; fail (instead of hanging the suite) if it has not ended after ``seconds``."""
    outcome: dict = {}

    def run():
        started = time.perf_counter()
        try:
            outcome["value"] = call()
        except Exception as exc:  # noqa: BLE001 (the test inspects it)
            outcome["error"] = exc
        outcome["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s: no total deadline"
    return outcome


def test_a_trickling_server_hits_the_total_deadline(trickle_server, clean_env):
    clean_env.setenv("LLMOPS_TIMEOUT", "2")
    meter = Meter()
    connection = connect(meter=meter)
    outcome = _within(15, lambda: ask(connection))
    error = outcome.get("error")
    assert isinstance(error, openai.APITimeoutError), outcome
    assert 2 <= outcome["seconds"] < 3.5, outcome["seconds"]
    message = str(error)
    assert "within 2 s" in message and "LLMOPS_TIMEOUT" in message and connection.base_url in message
    assert "\n" not in message and CANARY_KEY not in message
    assert meter.last().error.startswith("APITimeoutError")


def test_a_per_request_timeout_is_a_total_deadline_too(trickle_server, clean_env):
    clean_env.setenv("LLMOPS_TIMEOUT", "30")
    connection = connect(meter=Meter())
    quick = connection.client.with_options(timeout=1)
    outcome = _within(15, lambda: quick.chat.completions.create(model=connection.model, messages=ASK, max_tokens=4))
    assert isinstance(outcome.get("error"), openai.APITimeoutError) and outcome["seconds"] < 2.5, outcome
    assert "within 1 s" in str(outcome["error"])


def test_a_trickling_stream_hits_the_total_deadline(trickle_server, clean_env):
    clean_env.setenv("LLMOPS_TIMEOUT", "2")
    meter = Meter()
    connection = connect(meter=meter)
    received = []

    def read_stream():
        for chunk in ask(connection, stream=True):
            received.append(chunk.choices[0].delta.content)

    outcome = _within(15, read_stream)
    assert received == ["Hello"]
    assert isinstance(outcome.get("error"), openai.APITimeoutError) and 2 <= outcome["seconds"] < 3.5, outcome
    assert "LLMOPS_TIMEOUT" in str(outcome["error"]) and CANARY_KEY not in str(outcome["error"])
    record = meter.last()
    assert record.first_token_s is not None and record.error.startswith("APITimeoutError")


class _DroppingHandler(http.server.BaseHTTPRequestHandler):
    """Streams one chunk, then closes the connection in the middle of the answer."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]}
        data = f"data: {json.dumps(chunk)}\n\n".encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
        self.close_connection = True  # no last chunk: the answer is cut off


def test_a_stream_cut_off_midway_is_explained(clean_env):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DroppingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        meter = Meter()
        settings = ProviderSettings("openai", "m", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                                    api_key=Secret(CANARY_KEY), max_retries=0)
        connection = connect(settings=settings, meter=meter)
        received = []
        with pytest.raises(openai.APIConnectionError) as info:
            for chunk in ask(connection, stream=True):
                received.append(chunk.choices[0].delta.content)
    finally:
        server.shutdown()
        server.server_close()
    assert received == ["Hello"]
    message = str(info.value)
    assert "dropped the connection in the middle of a streamed answer" in message and connection.base_url in message
    assert meter.last().error.startswith("APIConnectionError")


def test_the_deadline_holds_through_a_proxy_from_the_environment(trickle_server, clean_env):
    for name in ("http_proxy", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        clean_env.delenv(name, raising=False)
    clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{trickle_server.server_address[1]}")  # the proxy trickles
    clean_env.setenv("OPENAI_BASE_URL", "http://llm.example.invalid/v1")
    clean_env.setenv("LLMOPS_TIMEOUT", "2")
    connection = connect(meter=Meter())
    outcome = _within(15, lambda: ask(connection))
    assert isinstance(outcome.get("error"), openai.APITimeoutError) and outcome["seconds"] < 3.5, outcome
    assert trickle_server.seen == 1
