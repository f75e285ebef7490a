"""The deployment record under stress: parallel writers keep every event, recorded PIDs that now belong to
another process are never signalled, a damaged or empty state file gives a clean answer, `undeploy --all` finds
every endpoint the kit started, and `status` shows the traffic split, a broken slot and an interrupted rollout.
Only routers are started here (no model), each stopped by the test."""

import json
import subprocess
import sys
import textwrap
import time

import pytest

from llmops_helpers.paths import deploy_scan_root
from llmops_helpers.release.endpoints import process_started
from llmops_helpers.release.rollouts import (
    DeployError,
    DeployStateError,
    ensure_router,
    load_state,
    save_state,
    status,
    undeploy,
    undeploy_all,
)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A deployment folder and a folder registry of the test's own."""
    monkeypatch.setenv("LLMOPS_DEPLOY_DIR", str(tmp_path / "deployments"))
    monkeypatch.setenv("LLMOPS_DEPLOY_REGISTRY", str(tmp_path / "deploy-folders.txt"))
    return tmp_path / "deployments"


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmops_helpers.cli", *args], capture_output=True, text=True,
                          check=False, timeout=timeout)


def alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _start_router(folder, environment: str = "dev") -> dict:
    """A real router (no model behind it) recorded in ``folder``'s state, as deploy() leaves it."""
    state = load_state(folder)
    entry = state["environments"].setdefault(environment, {"slots": {}})
    ensure_router(entry, environment, 0, folder)
    save_state(state, folder)
    return entry


WRITER = textwrap.dedent("""
    import sys
    from llmops_helpers.release.rollouts import load_state, record, save_state
    for i in range(40):
        state = load_state(sys.argv[1])
        record(state, "dev", "canary", None, writer=sys.argv[2], n=i)
        save_state(state, sys.argv[1])
""")


def test_three_parallel_writers_keep_all_120_events(folder):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), name], stderr=subprocess.PIPE, text=True)
               for name in "abc"]
    errors = [w.communicate(timeout=120)[1] for w in writers]
    assert all(w.returncode == 0 for w in writers), errors
    history = load_state(folder)["history"]
    assert len(history) == 120
    for name in "abc":  # each writer's events, all there and in its own order
        assert [e["n"] for e in history if e["writer"] == name] == list(range(40))
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))


def test_save_keeps_what_another_process_saved_meanwhile(folder):
    mine, theirs = load_state(folder), load_state(folder)
    theirs["environments"]["qa"] = {"slots": {}, "version": "2.0.0"}
    theirs["history"].append({"time": "t", "environment": "qa", "action": "deployed"})
    save_state(theirs, folder)
    mine["environments"]["dev"] = {"slots": {}, "version": "1.0.0"}
    mine["history"].append({"time": "t", "environment": "dev", "action": "deployed"})
    save_state(mine, folder)
    state = load_state(folder)
    assert set(state["environments"]) == {"dev", "qa"} and len(state["history"]) == 2


def test_undeploy_never_signals_an_unrelated_process_that_reused_a_recorded_pid(folder):
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        state = load_state(folder)
        state["environments"]["dev"] = {"router_pid": stranger.pid, "pid": stranger.pid, "url": "http://127.0.0.1:9",
                                        "slots": {"blue": {"pid": stranger.pid, "url": "http://127.0.0.1:9"}}}
        save_state(state, folder)
        assert status()["dev"]["running"] is False
        assert undeploy("dev") == []
        time.sleep(0.3)
        assert stranger.poll() is None, "undeploy killed a process that was not ours"
        assert "dev" not in load_state()["environments"]
    finally:
        stranger.kill()
        stranger.wait(timeout=10)


def test_a_recorded_router_whose_start_time_differs_is_not_ours(folder):
    entry = _start_router(folder)
    try:
        assert entry["router_started"] == pytest.approx(process_started(entry["router_pid"]))
        state = load_state(folder)
        state["environments"]["dev"]["router_started"] -= 3600  # the PID was recorded for an earlier process
        save_state(state, folder)
        assert status()["dev"]["running"] is False
    finally:
        assert undeploy("dev") == ["dev.router"]  # found by its command line instead
    assert not alive(entry["router_pid"])


def test_an_empty_object_as_state_reads_as_nothing_deployed(folder):
    folder.mkdir(parents=True)
    (folder / "state.json").write_text("{}")
    assert load_state() == {"environments": {}, "history": []} and status() == {}
    assert undeploy("dev") == []
    listed = _cli("status")
    assert listed.returncode == 0 and "Nothing is deployed." in listed.stdout, listed.stderr


def test_a_damaged_state_is_refused_with_a_way_out_and_undeploy_all_stops_its_endpoints(folder):
    entry = _start_router(folder)
    text = (folder / "state.json").read_text()
    (folder / "state.json").write_text(text[: len(text) // 2])  # truncated
    with pytest.raises(DeployStateError) as refused:
        load_state()
    message = str(refused.value)
    assert "undeploy --all" in message and "delete" not in message.lower() and "\n" not in message
    listed = _cli("status")
    assert listed.returncode == 2 and "Traceback" not in listed.stderr and "not valid JSON" in listed.stderr
    rows = undeploy_all()
    assert rows == [{"folder": str(folder.resolve()), "environment": "dev", "stopped": ["dev.router"]}]
    assert not alive(entry["router_pid"])
    assert list(folder.glob("state.json.damaged-*"))
    assert load_state()["history"][-1]["action"] == "stopped"


def test_undeploy_all_stops_every_folder_the_kit_used_even_without_state(folder, tmp_path):
    sandbox = tmp_path / "sandbox" / "app" / "build" / "deployments"
    first = _start_router(folder, "dev")
    second = _start_router(sandbox, "qa")
    (sandbox / "state.json").unlink()  # the advice once was to delete it: the router kept running, unrecorded
    done = _cli("undeploy", "--all")
    assert done.returncode == 0, done.stderr
    assert not alive(first["router_pid"]) and not alive(second["router_pid"])
    assert "dev.router" in done.stdout and "qa.router" in done.stdout
    assert _cli("undeploy").returncode == 2  # --env or --all


def test_status_shows_the_traffic_split_and_an_interrupted_rollout(folder):
    folder.mkdir(parents=True)
    (folder / "dev.router.json").write_text(json.dumps({"slots": {}, "weights": {"blue": 10, "green": 90}}))
    state = load_state()
    state["environments"]["dev"] = {"slots": {}, "live": "blue", "version": "1.0.0", "url": "http://127.0.0.1:9",
                                    "weights": {"blue": 50, "green": 50}}
    state["history"] += [{"time": "t1", "environment": "dev", "action": "deployed", "version": "1.0.0"},
                         {"time": "t2", "environment": "dev", "action": "rollout_started", "version": "1.1.0",
                          "strategy": "canary"},
                         {"time": "t3", "environment": "dev", "action": "canary", "version": "1.1.0", "weight": 10}]
    save_state(state)
    entry = status()["dev"]
    assert entry["weights"] == {"blue": 10, "green": 90}
    assert entry["rollout"]["version"] == "1.1.0" and entry["rollout"]["in_progress"] is False
    listed = _cli("status")
    assert "traffic blue 10% / green 90%" in listed.stdout and "INTERRUPTED" in listed.stdout, listed.stdout


def test_status_reports_a_slot_whose_latest_answers_are_server_errors(folder, monkeypatch):
    folder.mkdir(parents=True)
    (folder / "dev.blue.log").write_text(
        '[dev] 127.0.0.1 "POST /score HTTP/1.1" 500 -\n'  # an earlier process of this slot
        "Serving support-agent@1.0.0 (sha256:abc) for dev on http://127.0.0.1:1\n"
        '[dev] 127.0.0.1 "POST /score HTTP/1.1" 200 -\n[dev] 127.0.0.1 "POST /score HTTP/1.1" 500 -\n')
    (folder / "dev.green.log").write_text(
        "Serving support-agent@1.0.0 (sha256:abc) for dev on http://127.0.0.1:2\n"
        '[dev] 127.0.0.1 "POST /score HTTP/1.1" 500 -\n[dev] 127.0.0.1 "POST /score HTTP/1.1" 200 -\n')
    from llmops_helpers.release.rollouts import slot_errors

    assert "1 of its last 2 answers were server errors (HTTP 500)" in slot_errors(None, "dev.blue")
    assert slot_errors(None, "dev.green") == ""  # it recovered
    state = load_state()
    state["environments"]["dev"] = {"slots": {"blue": {"pid": 1}, "green": {"pid": 2}}, "live": "blue",
                                    "weights": {"blue": 50, "green": 50}}
    save_state(state)
    assert status()["dev"]["problems"] == ["dev.blue gets 50% of the traffic but is not running",
                                           "dev.green gets 50% of the traffic but is not running"]
    monkeypatch.setattr("llmops_helpers.release.rollouts.alive", lambda pid, **identity: True)  # as if both slots ran
    entry = status()["dev"]
    assert len(entry["problems"]) == 1 and entry["problems"][0].startswith("dev.blue: 1 of its last 2 answers")
    assert entry["healthy"] is False


HOLDER = textwrap.dedent("""
    import sys, time
    from llmops_helpers.paths import file_lock
    with file_lock(sys.argv[1], purpose="deploying to dev"):
        print("held", flush=True)
        time.sleep(60)
""")


def test_a_second_deploy_waits_then_names_the_one_that_holds_the_environment(folder, monkeypatch):
    from llmops_helpers.paths import LockTimeoutError, file_lock
    from llmops_helpers.release.rollouts import _rollout_lock, deploy

    lock = _rollout_lock("dev", None)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr("llmops_helpers.release.rollouts.STATE_LOCK_TIMEOUT_S", 0.5)
        with pytest.raises(LockTimeoutError, match=rf"held by process {holder.pid} .*deploying to dev"):
            deploy("no-such-artifact@1.0.0", "dev", port=0)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with file_lock(lock, timeout=5):  # the OS released it when the holder died
        pass


def test_a_rollback_waits_for_a_deploy_to_the_same_environment(folder, monkeypatch):
    """A rollback in the middle of a switch or a canary would save a state that the deploy then overwrites."""
    from llmops_helpers.paths import LockTimeoutError
    from llmops_helpers.release.rollouts import _rollout_lock, rollback

    state = load_state()
    state["environments"]["dev"] = {"slots": {}, "live": "blue", "version": "1.0.0"}
    save_state(state)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(_rollout_lock("dev", None))], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr("llmops_helpers.release.rollouts.STATE_LOCK_TIMEOUT_S", 0.5)
        with pytest.raises(LockTimeoutError, match=rf"held by process {holder.pid} .*deploying to dev"):
            rollback("dev", reason="test")
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with pytest.raises(DeployError, match="no previous slot running"):  # then it runs, and nothing was changed
        rollback("dev", reason="test")
    assert load_state()["environments"]["dev"]["version"] == "1.0.0" and not load_state()["history"]


def test_the_next_deploy_closes_an_interrupted_rollout_and_sends_traffic_back_to_the_live_slot(folder, monkeypatch):
    from llmops_helpers.release.rollouts import _prepare_environment, unfinished_rollout

    folder.mkdir(parents=True)
    (folder / "dev.router.json").write_text(json.dumps({"slots": {}, "weights": {"blue": 10, "green": 90}}))
    state = load_state()
    slots = {name: {"pid": 1, "url": f"http://127.0.0.1:{port}", "version": version}
             for name, port, version in (("blue", 1, "1.0.0"), ("green", 2, "1.1.0"))}
    state["environments"]["dev"] = {"slots": slots, "live": "blue", "version": "1.0.0", "weights": {"blue": 10,
                                                                                                    "green": 90}}
    state["history"].append({"time": "t", "environment": "dev", "action": "rollout_started", "version": "1.1.0"})
    save_state(state)
    monkeypatch.setattr("llmops_helpers.release.rollouts.alive", lambda pid, **identity: True)
    state = load_state()
    _prepare_environment(state, "dev", None)
    state = load_state()
    assert unfinished_rollout(state, "dev") is None
    assert state["history"][-1]["action"] == "rollout_interrupted"
    assert state["history"][-1]["weights_left"] == {"blue": 10, "green": 90}
    assert json.loads((folder / "dev.router.json").read_text())["weights"] == {"blue": 100}
    assert state["environments"]["dev"]["weights"] == {"blue": 100}


def test_router_ports_move_with_llmops_port_base_and_a_bad_base_is_one_paragraph(monkeypatch):
    from llmops_helpers.release.state import default_port

    monkeypatch.delenv("LLMOPS_PORT_BASE", raising=False)
    assert [default_port(e) for e in ("dev", "qa", "prod")] == [8601, 8602, 8603]
    monkeypatch.setenv("LLMOPS_PORT_BASE", "8700")
    assert [default_port(e) for e in ("dev", "qa", "prod")] == [8701, 8702, 8703]
    for bad in ("eighty", "80", "70000"):
        monkeypatch.setenv("LLMOPS_PORT_BASE", bad)
        with pytest.raises(DeployError, match=r"LLMOPS_PORT_BASE=.* is not a port number.*unset it") as refused:
            default_port("dev")
        assert "\n" not in str(refused.value)


def test_a_scoped_registry_scopes_the_endpoint_scan_too(monkeypatch, tmp_path):
    """`undeploy --all` with a registry of its own never reaches endpoints of another copy of the course (the
    test suite's other worker, another checkout) that run inside this checkout."""
    monkeypatch.delenv("LLMOPS_DEPLOY_REGISTRY", raising=False)
    assert (deploy_scan_root() / "llmops_helpers").is_dir()  # the checkout
    monkeypatch.setenv("LLMOPS_DEPLOY_REGISTRY", str(tmp_path / "registry" / "deploy-folders.txt"))
    assert deploy_scan_root() == (tmp_path / "registry").resolve()
