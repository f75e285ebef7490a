"""Lab 04: the retrieval index is an artifact. A built version is content-addressed and refuses tampering; it goes
live in an environment only after its recall passed validation, by an atomic switch the app picks up on its next
request (no restart), and goes back by a rollback. Fast: BM25 only, no LLM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_cli_failures import assert_one_paragraph  # one paragraph, exit 2, no traceback

from conftest import KIT
from llmops_helpers import cli
from llmops_helpers.errors import DatasetError, LLMOpsError
from llmops_helpers.flow import (
    ENVIRONMENT_NAMES,
    VERSION_PATTERN,
    LiveIndex,
    build_index,
    index_registry,
    live_index,
    live_pointer_path,
    read_live_pointer,
    verify_index,
)
from llmops_helpers.ideate import fingerprint, load_knowledge_base
from llmops_helpers.paths import build_dir, registry_dir
from llmops_helpers.release import (
    ENVIRONMENTS,
    IndexReleaseError,
    default_registry,
    index_status,
    rollback_index,
    switch_index,
    validate_index,
)

KB = KIT / "data" / "knowledge_base"
PLACEHOLDER = "This article is being rewritten. Please check back soon."
# A title still finds its article (titles count twice), so it takes a dozen emptied bodies to fall below 0.9.
EMPTIED = ("kb-plans-overview", "kb-family-plan", "kb-prepaid-top-up", "kb-roaming-eu", "kb-sim-swap", "kb-pin-puk",
           "kb-late-payment", "kb-device-returns", "kb-refunds-credits", "kb-number-porting", "kb-esim-activation",
           "kb-data-add-ons")
DELETED = ("kb-voicemail", "kb-wifi-calling")


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must be there) in a file, even a read-only one of a built index."""
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.chmod(0o644)
    path.write_text(text.replace(old, new), encoding="utf-8")


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def copy_kb(target: Path) -> Path:
    shutil.copytree(KB, target)
    return target


def install(version, registry: Path) -> None:
    """Put a built (and validated) version into another registry, as it is: the folder is its address."""
    shutil.copytree(version.path, index_registry(registry) / version.version)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The real knowledge base and one with twelve articles emptied and two deleted, each built and validated once."""
    root = tmp_path_factory.mktemp("indexes")
    registry = root / "registry"
    good_kb = copy_kb(root / "kb-good")
    bad_kb = copy_kb(root / "kb-bad")
    for name in EMPTIED:
        path = bad_kb / f"{name}.md"
        front = path.read_text(encoding="utf-8").split("\n---\n", 1)[0]
        path.write_text(f"{front}\n---\n\n{PLACEHOLDER}\n", encoding="utf-8")
    for name in DELETED:
        (bad_kb / f"{name}.md").unlink()
    started = time.perf_counter()
    good = build_index(good_kb, registry=registry)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    good_result = validate_index(good.version, registry)
    validate_s = time.perf_counter() - started
    bad = build_index(bad_kb, registry=registry)
    bad_result = validate_index(bad.version, registry)
    return SimpleNamespace(registry=registry, good=good, bad=bad, good_result=good_result, bad_result=bad_result,
                           good_kb=good_kb, times={"build": build_s, "validate": validate_s})


def test_the_registry_is_shared_and_the_environments_agree(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOPS_REGISTRY", str(tmp_path / "reg"))
    assert registry_dir() == default_registry() == tmp_path / "reg"
    assert index_registry() == tmp_path / "reg" / "indexes"
    monkeypatch.delenv("LLMOPS_REGISTRY")
    assert registry_dir() == default_registry() == build_dir() / "registry"
    assert ENVIRONMENT_NAMES == ENVIRONMENTS


def test_build_is_deterministic_and_idempotent(tmp_path):
    kb, registry = copy_kb(tmp_path / "kb"), tmp_path / "registry"
    first = build_index(kb, registry=registry)
    assert first.built and VERSION_PATTERN.fullmatch(first.version)
    manifest = first.manifest
    assert manifest["version"] == first.version and manifest["passage_words"] == 80
    assert manifest["articles"] == len(list(KB.glob("*.md"))) == len(manifest["files"])
    assert manifest["passages"] > manifest["articles"]
    assert manifest["kb_hash"] == fingerprint(load_knowledge_base(kb))
    assert manifest["source"] == str(kb.resolve()) and manifest["built_at"].endswith("Z")
    assert manifest["retriever"]["kind"] == "bm25" and manifest["retriever"]["settings"].startswith("sha256:")
    assert all(name.startswith("articles/kb-") for name in manifest["files"])
    for name in manifest["files"]:
        assert (first.path / name).read_bytes() == (kb / Path(name).name).read_bytes()

    written = {p: p.stat().st_mtime_ns for p in files_under(registry)}
    again = build_index(kb, registry=registry)
    assert again == first and not again.built
    assert {p: p.stat().st_mtime_ns for p in files_under(registry)} == written  # a no-op: nothing rewritten
    elsewhere = build_index(copy_kb(tmp_path / "copy"), registry=tmp_path / "other")
    assert elsewhere.version == first.version  # the content decides, not the folder or the registry

    assert build_index(kb, passage_words=0, registry=registry).version != first.version
    edit(kb / "kb-store-hours.md", "Sunday", "Sunday ")
    assert build_index(kb, registry=registry).version != first.version
    assert len(list(index_registry(registry).glob("idx-*"))) == 3
    assert not list(index_registry(registry).glob(".*"))  # no staging folder left behind
    assert verify_index(first.version, registry) == first


@pytest.mark.parametrize("name, content, problem", [
    ("kb-broken.md", "Our new article, without its front matter.\n", "no front matter"),
    ("kb-voicemail.md", "---\nid: kb-voicemail\ntitle: Voicemail\ncategory: support\n---\n", "is empty"),
])
def test_a_bad_article_is_refused_by_name_and_nothing_is_written(tmp_path, name, content, problem):
    kb, registry = copy_kb(tmp_path / "kb"), tmp_path / "registry"
    (kb / name).write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        build_index(kb, registry=registry)
    assert str(kb / name) in str(caught.value) and problem in str(caught.value)
    assert files_under(registry) == []


def _tamper(path: Path) -> None:
    edit(path / "articles" / "kb-roaming-eu.md", "EU", "EU and Switzerland")


def _without_manifest(path: Path) -> None:
    (path / "manifest.json").unlink()


def _broken_manifest(path: Path) -> None:
    (path / "manifest.json").chmod(0o644)
    (path / "manifest.json").write_text('{"version": ', encoding="utf-8")


def _extra_article(path: Path) -> None:
    (path / "articles" / "kb-new-offer.md").write_text("---\nid: kb-new-offer\n---\nfree phones\n", encoding="utf-8")


def _missing_article(path: Path) -> None:
    (path / "articles" / "kb-sim-swap.md").unlink()


def _edited_manifest(path: Path) -> None:  # a consistent-looking manifest that no longer matches its address
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    edit(path / "manifest.json", '"passage_words": 80', '"passage_words": 40')
    assert manifest["passage_words"] == 80


@pytest.mark.parametrize("damage, named, problem", [
    (_tamper, "articles/kb-roaming-eu.md", "was changed after"),
    (_without_manifest, "manifest.json", "is missing"),
    (_broken_manifest, "manifest.json", "not valid JSON"),
    (_extra_article, "articles/kb-new-offer.md", "extra file"),
    (_missing_article, "articles/kb-sim-swap.md", "is missing"),
    (_edited_manifest, "manifest.json", "version"),
], ids=["tampered", "no-manifest", "manifest-not-json", "extra-file", "missing-file", "edited-manifest"])
def test_verify_refuses_a_damaged_version_and_a_rebuild_repairs_it(tmp_path, damage, named, problem):
    kb, registry = copy_kb(tmp_path / "kb"), tmp_path / "registry"
    version = build_index(kb, registry=registry)
    damage(version.path)
    with pytest.raises(DatasetError) as caught:
        verify_index(version.version, registry)
    message = str(caught.value)
    assert str(version.path / named) in message and problem in message and "llmops index build" in message
    repaired = build_index(kb, registry=registry)  # what the message advises
    assert repaired.built and repaired.version == version.version
    assert verify_index(version.version, registry).manifest["files"] == repaired.manifest["files"]
    assert len(list(index_registry(registry).glob(f".broken-{version.version}-*"))) == 1  # kept aside, for a look


def test_validate_passes_on_the_real_knowledge_base(built):
    result = built.good_result
    assert result["passed"] and result["recall"] >= 0.9 and result["threshold"] == 0.9 and result["k"] == 3
    assert result["queries"]["count"] == 40 and result["heldout"]["queries"] == 25  # held-out: reported
    assert 0 < result["mrr"] <= 1 and 0 < result["ndcg"] <= 1 and result["seconds"] > 0
    assert json.loads((built.good.path / "validation.json").read_text(encoding="utf-8")) == result
    assert verify_index(built.good.version, built.registry) == built.good  # validation.json is allowed beside it


def test_validate_fails_when_articles_were_emptied_or_deleted(built):
    result = built.bad_result
    assert not result["passed"] and result["recall"] < 0.9
    missed = {miss["expected_id"]: miss for miss in result["misses"]}
    assert set(DELETED) <= set(missed) and not any(missed[name]["in_index"] for name in DELETED)
    assert len(set(EMPTIED) & set(missed)) >= 3
    assert built.bad.manifest["articles"] == built.good.manifest["articles"] - len(DELETED)


def test_switch_refuses_an_unvalidated_or_failing_or_damaged_version_and_leaves_the_pointer(built, tmp_path):
    registry = tmp_path / "registry"
    install(built.good, registry)
    install(built.bad, registry)
    unvalidated = build_index(built.good_kb, passage_words=0, registry=registry)
    pointer = live_pointer_path("dev", registry)

    with pytest.raises(IndexReleaseError, match=f"llmops index validate {unvalidated.version}"):
        switch_index("dev", unvalidated.version, registry)
    assert not pointer.exists()
    assert switch_index("dev", built.good.version, registry)["previous"] is None
    before = pointer.read_bytes()
    with pytest.raises(IndexReleaseError) as caught:
        switch_index("dev", built.bad.version, registry)
    assert "failed its validation" in str(caught.value) and f"stays on {built.good.version}" in str(caught.value)
    with pytest.raises(IndexReleaseError, match="has not been validated"):
        switch_index("dev", unvalidated.version, registry)
    assert pointer.read_bytes() == before

    _tamper(index_registry(registry) / built.good.version)  # validated, then edited: refused all the same
    with pytest.raises(IndexReleaseError) as caught:
        switch_index("qa", built.good.version, registry)
    assert "kb-roaming-eu.md" in str(caught.value) and "Not switched: qa stays on" in str(caught.value)
    assert not live_pointer_path("qa", registry).exists() and pointer.read_bytes() == before
    with pytest.raises(IndexReleaseError, match="not an environment"):
        switch_index("staging", built.good.version, registry)
    with pytest.raises(LLMOpsError, match="not an environment"):
        LiveIndex("staging", registry)


def test_switch_and_rollback_round_trip(built, tmp_path):
    registry = tmp_path / "registry"
    install(built.good, registry)
    whole = build_index(built.good_kb, passage_words=0, registry=registry)
    assert validate_index(whole.version, registry)["passed"]
    with pytest.raises(IndexReleaseError, match="never been switched"):
        rollback_index("dev", registry)
    first = switch_index("dev", built.good.version, registry)
    assert first == {"environment": "dev", "version": built.good.version, "previous": None,
                     "seconds": first["seconds"]} and first["seconds"] < 1
    with pytest.raises(IndexReleaseError, match="no previous version"):
        rollback_index("dev", registry)
    assert switch_index("dev", whole.version, registry, switched_by="ana")["previous"] == built.good.version
    assert read_live_pointer("dev", registry)["switched_by"] == "ana"
    assert live_index("dev", registry) == whole

    back = rollback_index("dev", registry)
    assert (back["version"], back["previous"]) == (built.good.version, whole.version)
    assert read_live_pointer("dev", registry)["rolled_back_from"] == whole.version
    forth = rollback_index("dev", registry)  # blue/green: a second rollback flips forward again
    assert (forth["version"], forth["previous"]) == (whole.version, built.good.version)
    again = switch_index("dev", whole.version, registry)  # the same version again keeps its previous
    assert (again["version"], again["previous"]) == (whole.version, built.good.version)
    assert read_live_pointer("qa", registry) is None and live_index("qa", registry) is None

    status = index_status(registry)
    rows = {row["version"]: row for row in status["versions"]}
    assert rows[whole.version]["live"] == ["dev"] and rows[built.good.version]["live"] == []
    assert rows[built.good.version]["passed"] and rows[whole.version]["passage_words"] == 0
    assert all(row["verified"] and row["current_retriever"] for row in rows.values())
    assert status["environments"]["dev"]["previous"] == built.good.version and status["environments"]["prod"] is None


def test_live_index_picks_up_a_switch_without_restart_and_refuses_a_damaged_one(built, tmp_path):
    registry = tmp_path / "registry"
    install(built.good, registry)
    live = LiveIndex("dev", registry=registry, fallback_folder=built.good_kb)
    served, retriever = live.current()
    assert served == "kb:" + fingerprint(load_knowledge_base(built.good_kb))[:12] and live.source == "fallback"

    switch_index("dev", built.good.version, registry)
    served, old = live.current()
    assert served == built.good.version and live.source == "index" and live.last_error is None
    started = time.perf_counter()
    for _ in range(2000):
        assert live.current()[1] is old  # while the pointer is unchanged: one stat, the same retriever
    per_call = (time.perf_counter() - started) / 2000
    assert per_call < 0.001, per_call

    kb = copy_kb(tmp_path / "kb")  # the help centre changes a price
    edit(kb / "kb-plans-overview.md", "€9.99", "€8.49")
    new = build_index(kb, registry=registry)
    assert validate_index(new.version, registry)["passed"]
    switch_index("dev", new.version, registry)
    served, retriever = live.current()
    assert served == new.version
    assert any("€8.49" in unit.text for unit in retriever.units)
    assert not any("€8.49" in unit.text for unit in old.units)
    assert "€8.49" in retriever.search("how much is the start plan per month", k=1)[0].doc.text

    edit(kb / "kb-plans-overview.md", "€19.99", "€18.49")
    damaged = build_index(kb, registry=registry)
    assert validate_index(damaged.version, registry)["passed"]
    switch_index("dev", damaged.version, registry)
    _tamper(damaged.path)  # edited between the switch and the app's next request
    assert live.current() == (new.version, retriever)  # refused: the previous version stays in service
    assert "kb-roaming-eu.md" in live.last_error and f"still serving {new.version}" in live.last_error
    assert live.info()["last_error"] == live.last_error and live.info()["version"] == new.version
    assert live.current()[0] == new.version  # and it is not retried until the pointer changes again

    rollback_index("dev", registry)  # back to new.version: a clean pointer clears the error
    assert live.current() == (new.version, retriever) and live.last_error is None


def test_live_index_with_an_unreadable_first_pointer_serves_the_fallback(tmp_path):
    registry = tmp_path / "registry"
    pointer = live_pointer_path("prod", registry)
    pointer.parent.mkdir(parents=True)
    pointer.write_text("{not json", encoding="utf-8")
    live = LiveIndex("prod", registry=registry, fallback_folder=KB, passage_words=0)
    served, retriever = live.current()
    assert served.startswith("kb:") and live.source == "fallback" and len(retriever.units) == len(retriever.docs)
    assert str(pointer) in live.last_error and "not valid JSON" in live.last_error


def test_live_index_is_thread_safe_during_switches(built, tmp_path):
    registry = tmp_path / "registry"
    install(built.good, registry)
    whole = build_index(built.good_kb, passage_words=0, registry=registry)
    validate_index(whole.version, registry)
    switch_index("qa", built.good.version, registry)
    live = LiveIndex("qa", registry=registry)
    seen, errors = set(), []

    def serve():
        try:
            for _ in range(150):
                version, retriever = live.current()
                assert retriever.search("roaming in france", k=1)
                seen.add(version)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for version in (whole.version, built.good.version, whole.version):
        switch_index("qa", version, registry)
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    assert not errors and seen <= {built.good.version, whole.version}
    assert live.current()[0] == whole.version


def test_index_commands_round_trip(built, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PF_HOME_DIRECTORY", str(tmp_path / "pf"))
    registry = str(tmp_path / "registry")
    assert cli.main(["index", "build", "--kb", str(built.good_kb), "--registry", registry]) == 0
    assert f"Built {built.good.version}" in capsys.readouterr().out
    assert cli.main(["index", "validate", built.good.version, "--registry", registry]) == 0
    assert "PASSED recall@3" in capsys.readouterr().out
    assert cli.main(["index", "switch", "--env", "dev", built.good.version, "--registry", registry]) == 0
    assert f"dev: index {built.good.version} is live" in capsys.readouterr().out
    assert cli.main(["index", "list", "--registry", registry]) == 0
    out = capsys.readouterr().out
    assert "live in dev" in out and "qa    never switched" in out
    assert cli.main(["index", "rollback", "--env", "dev", "--registry", registry]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: Not rolled back") and "\n" not in error


def llmops(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmops_helpers.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "LLMOPS_REGISTRY": ""})


def test_index_command_failures_are_one_paragraph_and_switch_nothing(built, tmp_path):
    registry = tmp_path / "registry"
    kb = copy_kb(tmp_path / "kb")
    (kb / "kb-broken.md").write_text("no front matter here\n", encoding="utf-8")
    assert_one_paragraph(llmops("index", "build", "--kb", str(kb), "--registry", str(registry)),
                         str(kb / "kb-broken.md"), "no front matter")
    assert files_under(registry) == []

    install(built.good, registry)
    install(built.bad, registry)
    options = ("--registry", str(registry))
    assert_one_paragraph(llmops("index", "switch", "--env", "prod", built.bad.version, *options),
                         "failed its validation", "prod stays on the knowledge base")
    assert_one_paragraph(llmops("index", "rollback", "--env", "qa", *options), "never been switched")
    assert_one_paragraph(llmops("index", "validate", "idx-000000000000", *options), "does not exist",
                         built.good.version)

    below = llmops("index", "validate", built.good.version, "--min-recall", "0.99", *options)
    assert below.returncode == 1 and "FAILED recall@3 0.975" in below.stdout and "missed:" in below.stdout, below
    assert_one_paragraph(llmops("index", "switch", "--env", "dev", built.good.version, *options),
                         "failed its validation", "below 0.99")  # the latest validation counts
    _tamper(index_registry(registry) / built.good.version)
    assert_one_paragraph(llmops("index", "validate", built.good.version, *options), "kb-roaming-eu.md",
                         "llmops index build")
    assert not any(live_pointer_path(env, registry).exists() for env in ENVIRONMENTS)
