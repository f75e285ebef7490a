"""The traffic switch: weights route an exact share of requests, stats count errors per slot, a config write
switches traffic without a restart. Backends here are tiny HTTP servers that only say who they are: the router's
mechanics are under test, not the model."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmops_helpers.deploy import http_json
from llmops_helpers.router import make_router, write_config


def _backend(name: str, status: int = 200):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
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
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def router(tmp_path):
    blue, green, broken = _backend("blue"), _backend("green"), _backend("broken", status=500)
    config = tmp_path / "router.json"
    slots = {"blue": {"url": f"http://127.0.0.1:{blue.server_address[1]}"},
             "green": {"url": f"http://127.0.0.1:{green.server_address[1]}"}}
    write_config(config, slots, {"blue": 100})
    server = make_router(config, 0, "dev")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", config, slots, broken
    for each in (server, blue, green, broken):
        each.shutdown()
        each.server_close()


def _served(url: str, n: int) -> list[str]:
    return [http_json(url + "/score", {"question": "q"})[1].get("served_by") for _ in range(n)]


def test_weights_route_an_exact_share_and_a_write_switches_traffic(router):
    url, config, slots, _ = router
    assert set(_served(url, 5)) == {"blue"}
    write_config(config, slots, {"blue": 90, "green": 10})
    assert _served(url, 20).count("green") == 2
    write_config(config, slots, {"green": 100})
    assert set(_served(url, 3)) == {"green"}
    stats = http_json(url + "/_router")[1]["stats"]
    assert stats["blue"]["requests"] == 23 and stats["green"]["requests"] == 5 and stats["blue"]["errors"] == 0


def test_errors_are_counted_per_slot_and_reset(router):
    url, config, slots, broken = router
    slots = {**slots, "green": {"url": f"http://127.0.0.1:{broken.server_address[1]}"}}
    write_config(config, slots, {"blue": 50, "green": 50})
    codes = [http_json(url + "/score", {"question": "q"})[0] for _ in range(4)]
    assert sorted(codes) == [200, 200, 500, 500]
    stats = http_json(url + "/_router")[1]["stats"]
    assert stats["green"]["error_rate"] == 1.0 and stats["blue"]["error_rate"] == 0.0
    http_json(url + "/_router/reset", {})
    assert http_json(url + "/_router")[1]["stats"]["green"]["requests"] == 0


def test_no_slot_with_weight_is_a_503_and_a_dead_slot_a_502(router):
    url, config, slots, _ = router
    write_config(config, slots, {})
    code, body = http_json(url + "/score", {"question": "q"})
    assert code == 503 and "no slot takes traffic in dev" in body["error"]
    write_config(config, {"blue": {"url": "http://127.0.0.1:9"}}, {"blue": 100})
    code, body = http_json(url + "/score", {"question": "q"})
    assert code == 502 and "slot blue unreachable" in body["error"]
    assert http_json(url + "/_router")[1]["stats"]["blue"]["errors"] == 1
