"""Releasing a retrieval index (Lab 04): validate a built version on the retrieval queries, then switch an
environment (dev, qa, prod) to it in one atomic step, blue/green style, and back with a rollback.

A version goes live only after :func:`validate_index` measured its recall@k on ``data/retrieval_queries.jsonl``
(the held-out queries are measured too, and reported, never gated) and wrote a passing ``validation.json`` into
the version's folder. :func:`switch_index` verifies the version again (a folder edited after the build is
refused), then rewrites the environment's live pointer (``<registry>/indexes/live-<env>.json``) whole, through a
temporary file and a rename, under a lock per environment: the app's :class:`~llmops_helpers.flow.index.LiveIndex`
sees either the old pointer or the new one, never half of one, and serves the new version from its next request.
The pointer keeps the version it replaced, so :func:`rollback_index` flips back."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path
from typing import Any

from llmops_helpers.errors import DatasetError, LLMOpsError
from llmops_helpers.evaluate.ranking import evaluate_retrieval, load_queries
from llmops_helpers.flow.index import (
    VALIDATION_FILE,
    IndexVersion,
    index_folders,
    index_registry,
    live_pointer_path,
    read_live_pointer,
    retriever_settings,
    verify_index,
)
from llmops_helpers.paths import file_lock, kit_root, write_text_atomic
from llmops_helpers.release.state import ENVIRONMENTS

#: the share of the tuned retrieval queries whose article must be in the top k for a version to go live
DEFAULT_MIN_RECALL = 0.9
SWITCH_LOCK_TIMEOUT_S = 30


class IndexReleaseError(LLMOpsError):
    """An index version cannot be validated, switched to or rolled back to; nothing was switched."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _environment(environment: str) -> str:
    if environment not in ENVIRONMENTS:
        raise IndexReleaseError(f"{environment!r} is not an environment; use one of {', '.join(ENVIRONMENTS)}.")
    return environment


def _measure(retriever: Any, path: Path, k: int) -> tuple[dict[str, Any], Any]:
    rows = load_queries(path)  # an expected article missing from the index is a miss, not an error
    if not rows:
        raise DatasetError(str(path), None, None, "has no queries", "Add rows with 'query' and 'expected_id'.")
    frame = evaluate_retrieval(retriever, rows, k=k)
    figures = {"file": str(path), "queries": len(frame), "recall": round(float(frame[f"recall@{k}"].mean()), 4),
               "mrr": round(float(frame["mrr"].mean()), 4), "ndcg": round(float(frame[f"ndcg@{k}"].mean()), 4)}
    return figures, frame


def validate_index(version: str | Path, registry: str | Path | None = None, queries: str | Path | None = None,
                   min_recall: float = DEFAULT_MIN_RECALL, k: int = 3,
                   heldout: str | Path | None = None) -> dict[str, Any]:
    """Verify index ``version``, then measure its retriever on ``queries`` (default
    ``data/retrieval_queries.jsonl``) and on ``heldout`` (default, with the default queries:
    ``data/retrieval_queries_heldout.jsonl``; reported, not gated): recall@k, MRR and nDCG@k. The version passes
    when its recall@k on ``queries`` is at least ``min_recall``; a version that does not is ``passed: False``, not
    an error. The result (with the missed queries) is also written to the version's ``validation.json``, which
    :func:`switch_index` requires. A query whose expected article is not in the index counts as a miss."""
    started = time.perf_counter()
    if not 0 <= min_recall <= 1:
        raise IndexReleaseError(f"min_recall must be a share between 0 and 1 (e.g. {DEFAULT_MIN_RECALL}), "
                                f"not {min_recall}.")
    if k < 1:
        raise IndexReleaseError(f"k must be at least 1 (the number of articles the app retrieves), not {k}.")
    index = verify_index(version, registry)
    current = retriever_settings()["settings"]
    built = index.manifest["retriever"].get("settings")
    if built != current:
        raise IndexReleaseError(
            f"{index.path} was built with other retriever settings ({built}) than this kit's code has ({current}): "
            "the glossary, the stop words or the retrieval code changed since, so measuring it now would not measure "
            f"what {index.version} names. Build it again from the same articles with `llmops index build --kb "
            f"{index.manifest.get('source', 'FOLDER')}` (a new version) and validate that one.")
    data = kit_root() / "data"
    tuned_file = Path(queries) if queries else data / "retrieval_queries.jsonl"
    heldout_file = Path(heldout) if heldout else (data / "retrieval_queries_heldout.jsonl" if not queries else None)
    retriever = index.retriever()
    tuned, frame = _measure(retriever, tuned_file, k)
    held = _measure(retriever, heldout_file, k)[0] if heldout_file else None
    in_index = {doc.id for doc in retriever.docs}
    misses = [{"query": row["query"], "expected_id": row["expected_id"], "retrieved": list(row["retrieved"]),
               "in_index": row["expected_id"] in in_index}
              for row in frame.to_dict("records") if not row[f"recall@{k}"]]
    result = {"version": index.version, "passed": bool(tuned["recall"] >= min_recall), "recall": tuned["recall"],
              "mrr": tuned["mrr"], "ndcg": tuned["ndcg"], "k": k, "threshold": min_recall,
              "queries": {"file": tuned["file"], "count": tuned["queries"]}, "heldout": held, "misses": misses,
              "retriever_settings": current, "validated_at": _now()}
    result["seconds"] = round(time.perf_counter() - started, 3)
    write_text_atomic(index.path / VALIDATION_FILE, json.dumps(result, indent=2) + "\n")
    return result


def _who(switched_by: str) -> str:
    if switched_by:
        return switched_by
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return ""


def _serving(pointer: dict[str, Any] | None) -> str:
    return pointer["version"] if pointer else "the knowledge base its flow was deployed with"


def _verified(version: str | Path, environment: str, pointer: dict[str, Any] | None,
              registry: str | Path | None) -> IndexVersion:
    try:
        return verify_index(version, registry)
    except DatasetError as exc:
        raise IndexReleaseError(f"Not switched: {environment} stays on {_serving(pointer)}. {exc}") from None


def _require_passing_validation(index: IndexVersion, environment: str, pointer: dict[str, Any] | None) -> None:
    stays = f"{environment} stays on {_serving(pointer)}"
    path = index.path / VALIDATION_FILE
    try:
        validation = index.validation()
    except DatasetError as exc:
        raise IndexReleaseError(f"Not switched: {stays}. {exc}") from None
    if validation is None:
        raise IndexReleaseError(f"Not switched: {index.version} has not been validated ({path} does not exist), and "
                                f"{stays}. Validate it first with `llmops index validate {index.version}`: a version "
                                "goes live only after its retrieval recall passed the threshold.")
    if validation.get("version") != index.version:
        raise IndexReleaseError(f"Not switched: {path} is the validation of {validation.get('version')!r}, not of "
                                f"{index.version}, and {stays}. Validate it again with `llmops index validate "
                                f"{index.version}`.")
    if validation.get("passed") is not True:
        misses = validation.get("misses") or []
        example = (f"; e.g. {misses[0].get('query')!r} did not find {misses[0].get('expected_id')}"
                   + ("" if misses[0].get("in_index", True) else ", which the index no longer has") if misses else "")
        raise IndexReleaseError(
            f"Not switched: {index.version} failed its validation (recall@{validation.get('k')} "
            f"{validation.get('recall')} is below {validation.get('threshold')}: {len(misses)} of "
            f"{(validation.get('queries') or {}).get('count', '?')} queries missed their article{example}), and "
            f"{stays}. Fix the articles, build a new version, validate it and switch to that one.")


def _write_pointer(environment: str, registry: str | Path | None, pointer: dict[str, Any]) -> None:
    path = live_pointer_path(environment, registry)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(pointer, indent=2) + "\n")


def _switch_lock(environment: str, registry: str | Path | None, purpose: str):
    return file_lock(index_registry(registry) / f"live-{environment}.lock", timeout=SWITCH_LOCK_TIMEOUT_S,
                     purpose=purpose)


def _current_pointer(environment: str, registry: str | Path | None) -> dict[str, Any] | None:
    try:
        return read_live_pointer(environment, registry)
    except DatasetError as exc:
        raise IndexReleaseError(f"Not switched: {exc}") from None


def switch_index(environment: str, version: str | Path, registry: str | Path | None = None,
                 require_validation: bool = True, switched_by: str = "") -> dict[str, Any]:
    """Make ``version`` the index ``environment`` serves: refuse (:class:`IndexReleaseError`, nothing switched) a
    version that fails :func:`~llmops_helpers.flow.index.verify_index` or, with ``require_validation``, has no
    passing ``validation.json``; else rewrite the environment's live pointer atomically, with ``previous`` the
    version it served. Returns ``{environment, version, previous, seconds}``."""
    started = time.perf_counter()
    _environment(environment)
    with _switch_lock(environment, registry, f"switching the {environment} index"):
        pointer = _current_pointer(environment, registry)
        index = _verified(version, environment, pointer, registry)
        if require_validation:
            _require_passing_validation(index, environment, pointer)
        if pointer is None:
            previous = None
        elif pointer["version"] != index.version:
            previous = pointer["version"]
        else:  # switched to what it serves: the pointer is written again (picked up again), the previous kept
            previous = pointer.get("previous")
        _write_pointer(environment, registry, {"version": index.version, "previous": previous,
                                               "switched_at": _now(), "switched_by": _who(switched_by)})
    return {"environment": environment, "version": index.version, "previous": previous,
            "seconds": round(time.perf_counter() - started, 4)}


def rollback_index(environment: str, registry: str | Path | None = None, switched_by: str = "") -> dict[str, Any]:
    """Switch ``environment`` back to the version its live pointer names as ``previous`` (verified again); the
    version it leaves becomes the new ``previous``, so a second rollback flips forward again. Refuses when the
    environment was never switched or has no previous version. Returns ``{environment, version, previous,
    seconds}``."""
    started = time.perf_counter()
    _environment(environment)
    with _switch_lock(environment, registry, f"rolling back the {environment} index"):
        pointer = _current_pointer(environment, registry)
        if pointer is None:
            raise IndexReleaseError(
                f"Not rolled back: {environment} has never been switched to an index "
                f"({live_pointer_path(environment, registry)} does not exist), so it serves the knowledge base its "
                f"flow was deployed with and there is nothing to go back to. Switch it with `llmops index switch "
                f"--env {environment} VERSION`.")
        previous = pointer.get("previous")
        if not previous:
            raise IndexReleaseError(
                f"Not rolled back: {environment} serves {pointer['version']}, the first index it was switched to, so "
                f"there is no previous version. Switch it to another validated version with `llmops index switch "
                f"--env {environment} VERSION`.")
        index = _verified(previous, environment, pointer, registry)
        _write_pointer(environment, registry, {"version": index.version, "previous": pointer["version"],
                                               "switched_at": _now(), "switched_by": _who(switched_by),
                                               "rolled_back_from": pointer["version"]})
    return {"environment": environment, "version": index.version, "previous": pointer["version"],
            "seconds": round(time.perf_counter() - started, 4)}


def index_status(registry: str | Path | None = None) -> dict[str, Any]:
    """Every built version (when, from what, its counts, whether it verifies, its validated recall, where it is
    live) and each environment's live and previous version."""
    environments: dict[str, Any] = {}
    for environment in ENVIRONMENTS:
        try:
            environments[environment] = read_live_pointer(environment, registry)
        except DatasetError as exc:
            environments[environment] = {"version": None, "previous": None, "problem": str(exc)}
    versions = []
    settings = retriever_settings()["settings"]
    for folder in index_folders(registry):
        row: dict[str, Any] = {"version": folder.name, "verified": True, "problem": None}
        try:
            index = verify_index(folder)
            validation = index.validation() or {}
        except DatasetError as exc:
            row.update(verified=False, problem=str(exc))
            versions.append(row)
            continue
        manifest = index.manifest
        row.update({key: manifest.get(key) for key in ("built_at", "articles", "passages", "passage_words",
                                                       "source", "kb_hash")})
        row.update(validated=bool(validation), recall=validation.get("recall"), passed=validation.get("passed"),
                   current_retriever=manifest["retriever"].get("settings") == settings)
        versions.append(row)
    for row in versions:
        row["live"] = [env for env, pointer in environments.items() if pointer and pointer["version"] == row["version"]]
    versions.sort(key=lambda row: row.get("built_at") or "")
    return {"registry": str(index_registry(registry)), "versions": versions, "environments": environments}
