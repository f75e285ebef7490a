"""The traffic switch: weights route an exact share of requests, stats count errors per slot, a config write
switches traffic without a restart, bad requests are refused at the door, a dead slot is failed over and named,
and the admin routes need the environment's token. Backends here are tiny HTTP servers (or the real serving
handler around a fake flow): the router's mechanics are under test, not the model."""

import itertools
import json
import socket
import stat
import threading
import time
from types import SimpleNamespace

import pytest
from http_fakes import BAD_REQUESTS, _backend, _length, _raw, _slot, _stop, _url, deadline  # noqa: F401

from llmops_helpers.release.endpoints import http_json, request_json, router_stats
from llmops_helpers.release.rollouts import CanarySLO, _canary_step
from llmops_helpers.release.router import (
    TOKEN_HEADER,
    RouterTokenError,
    ensure_token,
    make_router,
    read_token,
    token_path,
    write_config,
)
from llmops_helpers.release.state import save_state


@pytest.fixture
def start_router(tmp_path):
    """``start(slots, weights, **kw)`` -> (router url, config path, admin headers); stopped afterwards."""
    started = []

    def start(slots: dict, weights: dict, **kwargs):
        config = tmp_path / "dev.router.json"
        write_config(config, slots, weights)
        server = make_router(config, 0, "dev", **kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return _url(server), config, {TOKEN_HEADER: read_token(config)}

    yield start
    _stop(*started)


@pytest.fixture
def router(start_router):
    blue, green, broken = _backend("blue"), _backend("green"), _backend("broken", status=500)
    slots = {"blue": {"url": _url(blue)}, "green": {"url": _url(green)}}
    url, config, admin = start_router(slots, {"blue": 100})
    yield url, config, slots, broken, admin
    _stop(blue, green, broken)


def _served(url: str, n: int) -> list[str]:
    return [http_json(url + "/score", {"question": "q"})[1].get("served_by") for _ in range(n)]


def test_weights_route_an_exact_share_and_a_write_switches_traffic(router):
    url, config, slots, _, admin = router
    assert set(_served(url, 5)) == {"blue"}
    write_config(config, slots, {"blue": 90, "green": 10})
    assert _served(url, 20).count("green") == 2
    write_config(config, slots, {"green": 100})
    assert set(_served(url, 3)) == {"green"}
    stats = http_json(url + "/_router", headers=admin)[1]["stats"]
    assert stats["blue"]["requests"] == 23 and stats["green"]["requests"] == 5 and stats["blue"]["errors"] == 0


def test_errors_are_counted_per_slot_and_reset(router):
    url, config, slots, broken, admin = router
    slots = {**slots, "green": {"url": _url(broken)}}
    write_config(config, slots, {"blue": 50, "green": 50})
    codes = [http_json(url + "/score", {"question": "q"})[0] for _ in range(4)]
    assert sorted(codes) == [200, 200, 500, 500]
    stats = http_json(url + "/_router", headers=admin)[1]["stats"]
    assert stats["green"]["error_rate"] == 1.0 and stats["blue"]["error_rate"] == 0.0
    http_json(url + "/_router/reset", {}, headers=admin)
    assert http_json(url + "/_router", headers=admin)[1]["stats"]["green"]["requests"] == 0


def test_no_slot_with_weight_is_a_503_and_a_dead_slot_a_502(router):
    url, config, slots, _, admin = router
    write_config(config, slots, {})
    code, body = http_json(url + "/score", {"question": "q"})
    assert code == 503 and "no slot takes traffic in dev" in body["error"]
    write_config(config, {"blue": {"url": "http://127.0.0.1:9"}}, {"blue": 100})
    code, body = http_json(url + "/score", {"question": "q"})
    assert code == 502 and "slot blue unreachable" in body["error"]
    assert http_json(url + "/_router", headers=admin)[1]["stats"]["blue"]["errors"] == 1


# --- bad requests are refused at the door, with a clear JSON reason -------------------------------------------

@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_the_router_refuses_bad_bodies_before_forwarding(router, name):
    url, _, _, _, admin = router
    request, status, words = BAD_REQUESTS[name]
    started = time.perf_counter()
    code, body, _ = _raw(url, request)
    assert (code, body["status"]) == (status, status) and words in body["error"], body
    assert time.perf_counter() - started < 2  # decided from the headers, not after reading 50 MB
    snapshot = http_json(url + "/_router", headers=admin)[1]
    assert snapshot["stats"]["blue"]["requests"] == 0 and snapshot["rejected"] == {str(status): 1}


def test_half_open_connections_are_dropped_after_the_client_timeout(start_router):
    blue = _backend("blue")
    url, _, _ = start_router({"blue": {"url": _url(blue)}}, {"blue": 100}, client_timeout=1.0)
    port = int(url.rsplit(":", 1)[1])
    sockets = []
    try:
        started = time.perf_counter()
        for i in range(100):  # half say nothing, half stop in the middle of their headers
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 2:
                sock.sendall(b"POST /score HTTP/1.1\r\nContent-Length: 10\r\n")
            sockets.append(sock)
        assert http_json(url + "/score", {"question": "q"})[0] == 200  # the router still serves meanwhile
        for sock in sockets:
            try:
                assert sock.recv(1024) == b""  # closed by the router
            except ConnectionResetError:
                pass
        dropped_after = time.perf_counter() - started
        print(f"100 half-open connections dropped after {dropped_after:.1f} s (client timeout 1 s)")
        assert dropped_after < 4
    finally:
        for sock in sockets:
            sock.close()
        _stop(blue)


# --- client errors are not slot errors -------------------------------------------------------------------------

def test_4xx_from_a_slot_are_client_errors_not_errors(start_router):
    picky = _backend("picky", status=400)
    url, _, admin = start_router({"blue": {"url": _url(picky)}}, {"blue": 100})
    try:
        assert [http_json(url + "/score", {"question": "q"})[0] for _ in range(3)] == [400] * 3
        stats = http_json(url + "/_router", headers=admin)[1]["stats"]["blue"]
        assert (stats["requests"], stats["client_errors"], stats["errors"], stats["error_rate"]) == (3, 3, 0, 0.0)
    finally:
        _stop(picky)


def test_client_mistakes_during_a_canary_do_not_roll_it_back(start_router):
    blue, green = _slot("blue"), _slot("green")
    url, _, admin = start_router({"blue": {"url": _url(blue)}, "green": {"url": _url(green)}},
                                 {"blue": 50, "green": 50})
    mistakes = [BAD_REQUESTS["non-UTF-8"][0], BAD_REQUESTS["not JSON"][0], BAD_REQUESTS["50 MB announced"][0],
                _length(b'{"q": 1}'), _length(b'{"question": ""}'),
                _length(json.dumps({"question": "x" * 60_000}).encode())]

    def traffic():  # the canary's questions, with a user's malformed request before each of the first six
        for i in itertools.count():
            if i < len(mistakes):
                assert 400 <= _raw(url, mistakes[i])[0] < 500
            yield SimpleNamespace(question="How do I reset my password?", context_ids=["kb-1"])

    try:
        step = _canary_step(url, "green", 50, 6, traffic(), CanarySLO(), False, headers=admin,
                            slot_url=_url(green))
        assert step["passed"], step["problems"]
        snapshot = http_json(url + "/_router", headers=admin)[1]
        reached = sum(s["client_errors"] for s in snapshot["stats"].values())
        assert step["errors"] == 0 and reached + sum(snapshot["rejected"].values()) == 6
        assert snapshot["rejected"] == {"400": 2, "413": 1} and reached == 3
    finally:
        _stop(blue, green)


# --- a dead slot is failed over at once, and named ------------------------------------------------------------

def _refused_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


def test_a_refused_slot_is_marked_down_and_its_requests_go_to_the_other(start_router):
    blue = _backend("blue")
    dead = _refused_url()
    url, config, admin = start_router({"blue": {"url": _url(blue)}, "green": {"url": dead}},
                                      {"blue": 50, "green": 50})
    try:
        replies = [request_json(url + "/score", {"question": "q"}, 10) for _ in range(10)]
        assert {(code, body.get("served_by"), slot) for code, body, slot in replies} == {(200, "blue", "blue")}
        snapshot = http_json(url + "/_router", headers=admin)[1]
        assert snapshot["health"]["green"]["up"] is False
        assert snapshot["health"]["green"]["reason"] == "connection refused"
        assert snapshot["stats"]["green"]["errors"] == 1  # tried once, then out of rotation
        # with every slot down, the error reply still names the slot
        write_config(config, {"green": {"url": dead}}, {"green": 100})
        code, body, slot = request_json(url + "/score", {"question": "q"}, 10)
        assert (code, slot) == (502, "green") and "connection refused" in body["error"]
        # restarted elsewhere, the slot takes traffic again at once
        write_config(config, {"blue": {"url": _url(blue)}, "green": {"url": _url(blue)}}, {"green": 100})
        assert request_json(url + "/score", {"question": "q"}, 10)[2] == "green"
    finally:
        _stop(blue)


def test_a_killed_canary_slot_ends_the_step_at_once_with_the_reason(start_router):
    # answers take 2 s, so waiting for the request in flight would show; the step must not wait for it
    blue, green = _slot("blue", delay=2.0), _slot("green", delay=2.0)
    url, _, admin = start_router({"blue": {"url": _url(blue)}, "green": {"url": _url(green)}},
                                 {"blue": 90, "green": 10})
    killed_at: list[float] = []
    user_codes: list[int] = []
    done = threading.Event()

    def kill_green():
        time.sleep(2.5)
        _stop(green)
        killed_at.append(time.perf_counter())

    def user():  # a user keeps asking through the router the whole time
        while not done.is_set():
            user_codes.append(http_json(url + "/score", {"question": "q"}, timeout=10)[0])

    threads = [threading.Thread(target=kill_green, daemon=True), threading.Thread(target=user, daemon=True)]
    traffic = itertools.repeat(SimpleNamespace(question="q", context_ids=["kb-1"]))
    try:
        for thread in threads:
            thread.start()
        step = _canary_step(url, "green", 10, 500, traffic, CanarySLO(), False, headers=admin,
                            slot_url=_url(green))
        detected_in = time.perf_counter() - killed_at[0]
        done.set()
        threads[1].join(timeout=15)
        print(f"slot killed -> canary step failed in {detected_in:.2f} s; user replies {set(user_codes)}")
        assert not step["passed"] and len(step["problems"]) == 1
        assert step["problems"][0].startswith("green stopped answering: connection refused at ")
        assert step["problems"][0].endswith(" UTC") and step["stopped"] == step["problems"][0]
        assert detected_in < 1.5
        assert set(user_codes) == {200}  # failed over, not a 502
    finally:
        done.set()
        _stop(blue)


# --- the admin routes need the environment's token -------------------------------------------------------------

def test_the_admin_routes_need_the_token_from_an_owner_only_file(router):
    url, config, _, _, admin = router
    path = token_path(config)
    assert path.name == "dev.router.token" and stat.S_IMODE(path.stat().st_mode) == 0o600
    http_json(url + "/score", {"question": "q"})
    code, body = http_json(url + "/_router")
    assert code == 401 and TOKEN_HEADER in body["error"] and read_token(config) not in json.dumps(body)
    assert http_json(url + "/_router", headers={TOKEN_HEADER: "guess"})[0] == 403
    assert http_json(url + "/_router/reset", {})[0] == 401
    assert http_json(url + "/_router/reset", {}, headers={TOKEN_HEADER: "guess"})[0] == 403
    assert http_json(url + "/_router", headers=admin)[1]["stats"]["blue"]["requests"] == 1  # not reset
    assert http_json(url + "/_router/reset", {}, headers=admin) == (200, {"reset": True})
    code, body = http_json(url + "/_router/health")
    assert code == 200 and body == {"status": "ok", "environment": "dev"}
    path.unlink()  # rotate: the router reads the file at each admin request
    fresh = {TOKEN_HEADER: ensure_token(config)}
    assert http_json(url + "/_router", headers=admin)[0] == 403 and http_json(url + "/_router", headers=fresh)[0] == 200


def test_a_token_file_others_can_read_is_refused(tmp_path):
    config = tmp_path / "qa.router.json"
    write_config(config, {}, {})
    make_router(config, 0, "qa").server_close()
    token_path(config).chmod(0o644)
    with pytest.raises(RouterTokenError, match="can be read by other users"):
        make_router(config, 0, "qa")


def test_router_stats_sends_the_token(router, tmp_path):
    url = router[0]
    save_state({"environments": {"dev": {"url": url}}, "history": []}, tmp_path)
    assert router_stats("dev", folder=tmp_path)["environment"] == "dev"

