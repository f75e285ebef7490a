"""Deployments: a real HTTP endpoint per environment serving the artifact's exact digest, approvals for prod,
state that survives, smoke tests with real requests, and nothing left running."""

import os
import shutil
import subprocess
import sys

import pytest

from llmops_helpers.flow.app import support_agent_dir
from llmops_helpers.release import artifacts
from llmops_helpers.release.checks import smoke
from llmops_helpers.release.rollouts import (
    ApprovalRequired,
    DeployError,
    deploy,
    http_json,
    load_state,
    promote,
    rollback,
    status,
    undeploy,
)


def build_artifact(version: str, flow_dir=None):
    """An artifact without gate evidence (these tests are about deploying), from the kit's flow or from a copy
    committed in a repository of its own: builds package what git tracks."""
    if flow_dir is not None and not (flow_dir / ".git").exists():
        identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
        for command in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-q", "-m", "flow"]):
            subprocess.run(["git", *command], cwd=flow_dir, check=True, capture_output=True)
    return artifacts.build_artifact(version, flow_dir=flow_dir, no_gate="deploy test")


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A registry and a deployment folder of the test's own; every endpoint is stopped afterwards."""
    monkeypatch.setenv("LLMOPS_REGISTRY", str(tmp_path / "registry"))
    monkeypatch.setenv("LLMOPS_DEPLOY_DIR", str(tmp_path / "deployments"))
    monkeypatch.setenv("LLMOPS_DEPLOY_REGISTRY", str(tmp_path / "deploy-folders.txt"))
    yield tmp_path
    for environment in list(load_state()["environments"]):
        undeploy(environment)


def test_deploy_serves_the_artifact_digest_and_passes_a_smoke_test(place):
    artifact = build_artifact("1.0.0")
    entry = deploy(artifact.ref, "dev", port=0)
    assert entry["url"].startswith("http://127.0.0.1:") and entry["digest"] == artifact.digest
    code, version = http_json(entry["url"] + "/version")
    assert code == 200 and version["digest"] == artifact.digest and version["environment"] == "dev"
    assert http_json(entry["url"] + "/score", {"question": ""})[0] == 400  # a clear client error, not a crash
    result = smoke("dev")
    assert result.passed, str(result)
    assert {name for name, _, _ in result.checks} == {"health", "version", "score", "shape", "context", "latency",
                                                      "slots"}
    # the record survives: a fresh read of the state sees the running deployment
    assert status()["dev"]["running"] is True
    undeploy("dev")
    assert "dev" not in status()
    actions = [event["action"] for event in load_state()["history"]]
    assert actions == ["deployed", "stopped"]


def test_prod_needs_a_recorded_approval(place):
    artifact = build_artifact("1.0.0")
    with pytest.raises(ApprovalRequired, match="needs an approval"):
        deploy(artifact.ref, "prod", port=0)
    entry = deploy(artifact.ref, "prod", port=0, approved_by="release manager")
    assert status()["prod"]["running"] and entry["version"] == artifact.version
    history = load_state()["history"]
    assert [e["action"] for e in history] == ["refused", "approved", "deployed"]
    assert history[1]["approved_by"] == "release manager"


def test_a_tampered_or_unknown_artifact_is_not_deployed(place):
    flow = shutil.copytree(support_agent_dir(), place / "flow", ignore=shutil.ignore_patterns("__pycache__"))
    artifact = build_artifact("1.0.0", flow_dir=flow)
    config = artifact.flow_dir / "config.yaml"
    config.chmod(0o644)
    config.write_text(config.read_text() + "\n# edited in place\n")
    with pytest.raises(Exception, match="modified after it was built"):
        deploy(artifact.ref, "dev", port=0)
    with pytest.raises(DeployError, match="unknown environment"):
        deploy(artifact.ref, "staging", port=0)
    assert not load_state()["environments"]


def test_smoke_command_exit_codes(place):
    artifact = build_artifact("1.0.0")
    nothing = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "smoke", "--env", "qa"],
                             capture_output=True, text=True, check=False)
    assert nothing.returncode == 2 and "nothing is deployed to qa" in nothing.stderr
    deploy(artifact.ref, "qa", port=0)
    slow = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "smoke", "--env", "qa", "--max-latency",
                           "0.001"], capture_output=True, text=True, check=False)
    assert slow.returncode == 1 and "❌ latency" in slow.stdout
    listed = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "status"], capture_output=True, text=True,
                            check=False)
    assert "qa" in listed.stdout and " running" in listed.stdout


def _variant(place, name: str, edit) -> "object":
    """A copy of the sample flow with ``edit(config_text)`` applied to its config.yaml."""
    flow = shutil.copytree(support_agent_dir(), place / name, ignore=shutil.ignore_patterns("__pycache__"))
    config = flow / "config.yaml"
    config.write_text(edit(config.read_text()))
    return flow


def test_blue_green_switches_all_traffic_and_rolls_back_instantly(place):
    first = build_artifact("1.0.0")
    second = build_artifact("1.1.0", flow_dir=_variant(place, "v110", lambda text: text + "\n# 1.1.0\n"))
    assert deploy(first.ref, "dev", port=0)["live"] == "blue"
    entry = deploy(second.ref, "dev", port=0, strategy="bluegreen")
    assert entry["live"] == "green" and not entry["rolled_back"]
    assert http_json(entry["url"] + "/version")[1]["digest"] == second.digest
    assert status()["dev"]["running"]
    back = rollback("dev", reason="test")
    assert back["live"] == "blue" and http_json(entry["url"] + "/version")[1]["digest"] == first.digest
    actions = [event["action"] for event in load_state()["history"]]
    assert actions == ["deployed", "rollout_started", "switched", "deployed", "rolled_back"]
    assert status()["dev"]["rollout"] is None and status()["dev"]["weights"] == {"blue": 100}


def test_a_broken_canary_is_rolled_back_automatically(place):
    good = build_artifact("1.0.0")
    broken_flow = _variant(place, "broken", lambda text: text.replace("  dev: {}", '  dev:\n    temperature: "zero"'))
    broken = build_artifact("1.0.1", flow_dir=broken_flow)
    deploy(good.ref, "dev", port=0)
    outcome = deploy(broken.ref, "dev", port=0, strategy="canary", canary_steps=(50, 100), min_requests=2)
    assert outcome["rolled_back"] and "error rate 100%" in outcome["reason"]
    assert [step["weight"] for step in outcome["steps"]] == [50]
    # the first failed answer already breaks the 0% error budget: the step ends there, not after 2 answers
    assert outcome["steps"][0]["canary_requests"] == 1 and outcome["steps"][0]["errors"] == 1
    assert outcome["steps"][0]["ended_early"]
    # users are back on the good artifact, and the broken slot is gone
    entry = status()["dev"]
    assert entry["running"] and entry["digest"] == good.digest and set(entry["slots"]) == {"blue"}
    assert smoke("dev").passed
    history = load_state()["history"]
    assert [e["action"] for e in history][-2:] == ["canary", "rolled_back"]
    assert history[-1]["digest"] == broken.digest and history[-1]["restored"] == good.version


def test_promote_deploys_the_same_digest(place):
    artifact = build_artifact("1.0.0")
    deploy(artifact.ref, "qa", port=0)
    with pytest.raises(ApprovalRequired):
        promote("qa", "prod", port=0)
    entry = promote("qa", "prod", port=0, approved_by="release manager")
    assert entry["digest"] == status()["qa"]["digest"] == artifact.digest


def test_integration_command_checks_answers_through_the_router(place):
    artifact = build_artifact("1.0.0")
    deploy(artifact.ref, "qa", port=0)
    done = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "integration", "--env", "qa", "--sample", "2",
                           "--redteam", "1"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for check in ("answers", "shape and citations", "retrieval", "latency", "red team"):
        assert f"✅ {check}:" in done.stdout
    assert (place / "deployments" / "qa.redteam.jsonl").read_text().count("\n") == 1


def test_plot_rollouts_and_the_canary_slo_exercise():
    import matplotlib

    matplotlib.use("Agg")
    from llmops_helpers.course.exercises import check_canary_slo
    from llmops_helpers.errors import ExerciseNotDone
    from llmops_helpers.release.rollouts import CanarySLO, cannot_hold, plot_rollouts

    slo = CanarySLO(max_error_rate=0.05, min_quality=0.5)
    assert cannot_hold(1, 1, 0, 2, slo)  # 1 failure of 2 answers is 50% > 5%, whatever comes next
    assert not cannot_hold(1, 0, 0, 2, slo)  # a wrong answer, but 1 of 2 good is still possible
    assert cannot_hold(3, 0, 0, 4, slo) and not cannot_hold(3, 0, 1, 4, slo)  # quality: 0 + 1 < 2, 1 + 1 >= 2
    assert cannot_hold(1, 1, 1, 40, slo) is False  # 1 failure of 40 is 2.5%: wait for the rest
    step = {"weight": 50, "error_rate": 1.0, "quality": 0.0, "p95_s": 0.1, "passed": False}
    assert plot_rollouts({"broken": {"steps": [step], "rolled_back": True}}).get_title()
    assert "✅" in check_canary_slo(CanarySLO())
    for loose in (CanarySLO(max_error_rate=0.5), CanarySLO(max_p95_s=600), CanarySLO(min_quality=0.1)):
        with pytest.raises(ExerciseNotDone):
            check_canary_slo(loose)


def test_an_endpoint_outlives_the_model_server_of_the_process_that_deployed_it(place, monkeypatch):
    """A notebook exports its embedded server's URL (LLMOPS_LOCAL_BASE_URL); the endpoint must not depend on it."""
    import re

    from llmops_helpers.llm import local as local_llm

    env = {k: v for k, v in os.environ.items() if k != local_llm.BASE_URL_VARIABLE}
    notebook_server = subprocess.Popen([sys.executable, "-m", "llmops_helpers.cli", "serve-model", "--port", "0"],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = None
        for line in notebook_server.stdout:
            match = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
            if match:
                url = match.group(1)
                break
        assert url, "serve-model did not start"
        monkeypatch.setenv(local_llm.BASE_URL_VARIABLE, url)
        deploy(build_artifact("1.0.0").ref, "dev", port=0)
    finally:
        notebook_server.terminate()  # the notebook ends
        notebook_server.wait(timeout=30)
    result = smoke("dev")
    assert result.passed, str(result)
    entry = status()["dev"]
    assert entry["healthy"] and not entry["problems"]
