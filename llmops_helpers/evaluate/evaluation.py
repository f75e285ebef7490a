"""The evaluation runner: answer golden rows with the app, score them with evaluators and LLM judges, and keep
every row on disk as it arrives so an interrupted run resumes where it stopped.

An **evaluator** is a small function ``(row: GoldenRow, output: dict) -> float`` returning a score in [0, 1]
(``output`` is the app's reply: answer, context_ids, intent, usage, timings). Register it in a dict passed to
:func:`run_evaluation` (or add it to :data:`DEFAULT_EVALUATORS`); its name becomes a metric in ``summary.json``.

A run folder holds ``rows.jsonl`` (one line a row, errors included), ``summary.json`` (``metrics`` = name → mean
over scored rows, ``n_rows``, ``n_errors``, ``n_judge_errors``, ``row_ids``, slices by category) and
``metadata.json`` (git sha, prompt hash, model, provider, dataset hash, evaluators, judges).

A failing evaluator or app call makes the row an error row; a failing LLM judge does not: the row keeps its
deterministic scores and records the judge's failure in ``judge_errors`` (counted in ``n_judge_errors``)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from llmops_helpers.errors import ConfigError, DatasetError
from llmops_helpers.evaluate import metrics
from llmops_helpers.evaluate.files import CACHED_FILES, METADATA, ROWS, RUN_FILES, SUMMARY
from llmops_helpers.evaluate.golden import GoldenRow
from llmops_helpers.ideate.knowledge import fingerprint, load_knowledge_base
from llmops_helpers.llm.metering import SHADOW_MODEL, percentile, shadow_cost
from llmops_helpers.paths import git_output, write_text_atomic

Evaluator = Callable[[GoldenRow, dict], float]

@functools.lru_cache(maxsize=1)
def _articles_and_stopwords() -> tuple[dict[str, str], frozenset[str]]:
    from llmops_helpers.flow.retrieval import stopwords

    return {doc.id: f"{doc.title}\n{doc.text}" for doc in load_knowledge_base()}, frozenset(stopwords())


def context_overlap(row: GoldenRow, output: dict) -> float:
    """Share of the answer's content words found in the articles the app retrieved (see metrics.context_overlap)."""
    articles, stop = _articles_and_stopwords()
    texts = [articles[i] for i in output.get("context_ids", []) if i in articles]
    return metrics.context_overlap(output["answer"], texts, stop)


DEFAULT_EVALUATORS: dict[str, Evaluator] = {
    "exact_match": lambda row, out: metrics.exact_match(out["answer"], row.ground_truth),
    "token_f1": lambda row, out: metrics.token_f1(out["answer"], row.ground_truth),
    "key_fact_recall": lambda row, out: metrics.key_fact_recall(out["answer"], row.key_facts),
    "intent_accuracy": lambda row, out: metrics.intent_accuracy(out.get("intent", ""), row.intent),
    "recall_at_k": lambda row, out: metrics.recall_at_k(out.get("context_ids", []), row.context_ids),
    "context_overlap": context_overlap,
}


def _articles_by_id() -> dict[str, Any]:
    return {doc.id: doc for doc in load_knowledge_base()}


def score_output(row: GoldenRow, output: dict, evaluators: dict[str, Evaluator], judges: tuple[str, ...] = (),
                 judge_connection: Any = None, articles: dict[str, Any] | None = None,
                 ) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """Scores of one reply: every evaluator, then every judge (as ``judge_<name>``, 1–5); returns the scores, the
    judges' reasons and the judges that failed (name → error). A failing evaluator raises, so the caller records
    an error row; a failing judge (unparseable reply, timeout) costs only its own score, named in the errors."""
    from llmops_helpers.evaluate.judges import judge

    scores = {}
    for name, fn in evaluators.items():
        value = float(fn(row, output))
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"evaluator {name!r} returned {value}, outside 0–1")
        scores[name] = value
    reasons, failed = {}, {}
    if judges:
        articles = articles if articles is not None else _articles_by_id()
        context = "\n\n".join(articles[i].as_context() for i in output.get("context_ids") or [] if i in articles)
        for name in judges:
            try:
                verdict = judge(judge_connection, name, question=row.question, answer=output.get("answer") or "",
                                context=context, ground_truth=row.ground_truth)
            except Exception as exc:  # the judge's failure is recorded; the row's other scores stand
                failed[name] = f"{type(exc).__name__}: {exc}"
                continue
            scores[f"judge_{name}"] = float(verdict.score)
            reasons[name] = verdict.reason
    return scores, reasons, failed


def read_rows(path: Path) -> list[dict]:
    """Rows saved so far; a last line cut short by a crash is ignored (it is re-run on resume)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _drop_partial_last_line(path: Path) -> None:
    """A crash mid-write leaves a line without its newline; cut it so the next row starts on a line of its own."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])


def summarize(rows: list[dict]) -> dict[str, Any]:
    """``summary.json``'s content from saved rows: metric means over rows that scored, error counts (rows that
    errored; rows where a judge failed, and failures per judge), latency percentiles, tokens and cost, the row ids,
    and the same metric means per category. A judge's mean covers only the rows it scored. ``shadow_cost`` says
    what the same tokens would cost per answer on :data:`~llmops_helpers.llm.metering.SHADOW_MODEL`."""
    scored = [r for r in rows if not r.get("error")]
    judge_failures: dict[str, int] = {}
    for r in scored:
        for name in r.get("judge_errors") or {}:
            judge_failures[name] = judge_failures.get(name, 0) + 1
    names = sorted({name for r in scored for name in r.get("scores", {})})

    def means(subset: list[dict]) -> dict[str, float]:
        return {n: statistics.fmean(r["scores"][n] for r in subset if n in r["scores"])
                for n in names if any(n in r["scores"] for r in subset)}

    latencies = [r["latency_s"] for r in rows if r.get("latency_s") is not None]
    costs = [r["cost_usd"] for r in rows if r.get("cost_usd") is not None]
    tokens = [r["total_tokens"] for r in rows if r.get("total_tokens") is not None]
    operational = {
        "latency_p50_s": percentile(latencies, 0.5), "latency_p95_s": percentile(latencies, 0.95),
        "cost_total_usd": sum(costs) if costs else None,
        "cost_per_request_usd": statistics.fmean(costs) if costs else None,
        "tokens_per_request": statistics.fmean(tokens) if tokens else None,
        "tokens_total": sum(tokens) if tokens else None,
    }
    categories = sorted({r.get("category", "") for r in scored})
    shadow = [shadow_cost(r.get("prompt_tokens"), r.get("completion_tokens")) for r in rows]
    shadow = [cost for cost in shadow if cost is not None]
    return {
        "metrics": {**means(scored), **{k: v for k, v in operational.items() if v is not None}},
        # not a metric (gates never see it): what the same tokens would cost on a hosted model, for reports
        "shadow_cost": {"model": SHADOW_MODEL, "per_request_usd": statistics.fmean(shadow)} if shadow else None,
        "n_rows": len(rows), "n_errors": len(rows) - len(scored),
        "n_judge_errors": sum(1 for r in scored if r.get("judge_errors")), "judge_errors": judge_failures,
        "row_ids": sorted((r["id"] for r in rows if "id" in r), key=str),  # what a comparison must match
        "by_category": {c: means([r for r in scored if r.get("category") == c]) for c in categories},
    }


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


RUN_IDENTITY = ("variant", "prompt_hash", "dataset_hash", "provider", "model", "top_k", "evaluators", "judges",
                "flow_digest", "knowledge_base_hash")  # the flow's code, config (passage_words...) and its articles
START_OVER = "Start over with --fresh (fresh=True) or use a new --out folder."


def _identity(meta: dict[str, Any], key: str) -> Any:
    value = meta.get(key)
    return sorted(value) if key in ("evaluators", "judges") and isinstance(value, list) else value


def _clear_run(out: Path) -> None:
    """Delete a run folder's files (rows, summary, metadata, gate decision): a fresh start, or room for a copy."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def _check_same_run(out: Path, metadata: dict[str, Any]) -> None:
    """Refuse to resume a folder whose saved rows came from another configuration (any :data:`RUN_IDENTITY` key,
    evaluators and judges included), or whose ``metadata.json`` is missing or unreadable, so the configuration
    of its rows cannot be told."""
    saved_rows = read_rows(out / ROWS)
    if not saved_rows:
        return
    meta_path = out / METADATA
    try:
        saved = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        saved, why = None, "is missing"
    except (json.JSONDecodeError, UnicodeDecodeError):
        saved, why = None, "is not valid JSON (cut short?)"
    else:
        why = "is not a JSON object"
    if not isinstance(saved, dict):
        raise ConfigError(f"{meta_path} {why}, so the configuration of the {len(saved_rows)} rows saved in "
                          f"{out / ROWS} cannot be checked and the run cannot be resumed. {START_OVER}")
    changed = [f"{key} {_identity(saved, key)!r} → {_identity(metadata, key)!r}" for key in RUN_IDENTITY
               if _identity(saved, key) != _identity(metadata, key)]
    if changed:
        raise ConfigError(f"{out} holds a run of another configuration ({'; '.join(changed)}), so it cannot be "
                          f"resumed. {START_OVER}")


@functools.lru_cache(maxsize=1)
def _kit_digest() -> str:
    """A hash of the kit's own code (retrieval, metrics, the runner): a cached evaluation is only reused by the
    same code that produced it."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def evaluation_key(meta: dict[str, Any], rows: list[GoldenRow]) -> str | None:
    """The content address of an evaluation: every :data:`RUN_IDENTITY` value (the flow's digest, its articles,
    the data, model, provider, prompt, evaluators, judges), the row ids and the kit's code. None when the run does
    not record its flow and articles, so its content cannot be told (such a run is never cached)."""
    if not (meta.get("flow_digest") and meta.get("knowledge_base_hash") and meta.get("dataset_hash")):
        return None
    identity = {key: _identity(meta, key) for key in RUN_IDENTITY}
    identity.update(rows=[row.id for row in rows], kit=_kit_digest())
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _reuse_cached(entry: Path, out: Path, meta: dict[str, Any], rows: list[GoldenRow]) -> dict[str, Any] | None:
    """Copy a cached evaluation of the same content into ``out``; None (and a warning) if there is none or it is
    damaged, so the caller evaluates."""
    if not (entry / SUMMARY).is_file():
        return None
    try:
        summary = json.loads((entry / SUMMARY).read_text(encoding="utf-8"))
        cached_meta = json.loads((entry / METADATA).read_text(encoding="utf-8"))
        saved = read_rows(entry / ROWS)
    except (OSError, ValueError) as exc:
        print(f"⚠️ The cached evaluation {entry} is damaged ({exc}); evaluating again, and it will be replaced.")
        return None
    if sorted(r.get("id") for r in saved) != sorted(row.id for row in rows) or summary.get("n_errors"):
        print(f"⚠️ The cached evaluation {entry} does not hold every row; evaluating again.")
        return None
    _check_same_run(out, meta)  # never replace the rows of another configuration that --out holds
    _clear_run(out)
    shutil.copyfile(entry / ROWS, out / ROWS)
    write_text_atomic(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    meta = {**meta, "created": cached_meta.get("created"),
            "reused_from": {"cache": str(entry), "git_sha": cached_meta.get("git_sha")}}
    write_text_atomic(out / METADATA, json.dumps(meta, indent=2, default=str) + "\n")
    first = (cached_meta.get("git_sha") or "?")[:7]
    print(f"♻️ Reused the evaluation of this exact content (flow, articles, data, rows, model and kit code), "
          f"first evaluated at commit {first}: nothing was re-scored. ({entry})")
    return summary


def _store_cached(out: Path, entry: Path) -> None:
    """Put a finished run's files into the cache, whole or not at all (a rename), so a reader never sees half."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    temporary = entry.parent / f".{entry.name}.{os.getpid()}.{threading.get_ident()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    for name in CACHED_FILES:
        shutil.copyfile(out / name, temporary / name)
    shutil.rmtree(entry, ignore_errors=True)  # a damaged entry; a complete one was reused instead
    try:
        os.replace(temporary, entry)
    except OSError:  # another process stored the same content first
        shutil.rmtree(temporary, ignore_errors=True)


def run_evaluation(
    rows: list[GoldenRow],
    out_dir: str | Path,
    app: Callable[[str], dict],
    *,
    evaluators: dict[str, Evaluator] | None = None,
    judges: tuple[str, ...] = (),
    judge_connection: Any = None,
    concurrency: int = 1,
    metadata: dict[str, Any] | None = None,
    fresh: bool = False,
    progress: bool = True,
    cache: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``rows`` with ``app`` (question -> reply dict) into ``out_dir``; rows already saved there are
    skipped, so re-running after an interruption resumes (unless ``fresh``, which starts over). Resuming a folder
    whose saved run used another prompt, model, dataset, evaluators or judges (see :data:`RUN_IDENTITY`), or
    whose ``metadata.json`` is missing, is refused, so one run never mixes two configurations. Returns the summary
    (also written to disk; metadata and summary are replaced atomically).

    With ``cache`` (a folder), a finished run without errors is also kept there under its content address
    (:func:`evaluation_key`), and a later run of the same content is copied from it instead of being evaluated
    again: how CI avoids re-scoring a commit whose flow, articles and data are byte for byte ones it has scored."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / ROWS
    meta_path = out / METADATA
    evaluators = DEFAULT_EVALUATORS if evaluators is None else evaluators
    if fresh:
        _clear_run(out)
    meta = {"git_sha": git_output("rev-parse", "HEAD") or None, "evaluators": sorted(evaluators),
            "judges": list(judges), **(metadata or {})}
    key = evaluation_key(meta, rows) if cache else None
    if key:
        reused = _reuse_cached(Path(cache) / key, out, meta, rows)
        if reused is not None:
            return reused
    _check_same_run(out, meta)
    write_text_atomic(meta_path, json.dumps(meta, indent=2, default=str) + "\n")  # before any row
    _drop_partial_last_line(rows_path)
    done = {r["id"] for r in read_rows(rows_path) if "id" in r}
    todo = [row for row in rows if row.id not in done]
    lock = threading.Lock()
    articles = _articles_by_id() if judges else {}

    def evaluate(row: GoldenRow) -> dict:
        record: dict[str, Any] = {"id": row.id, "category": row.category, "difficulty": row.difficulty,
                                  "question": row.question, "expected_intent": row.intent}
        started = time.perf_counter()
        try:
            output = app(row.question)
            record["latency_s"] = time.perf_counter() - started
            usage = output.get("usage") or {}
            record.update(answer=output.get("answer"), context_ids=output.get("context_ids"),
                          cited_ids=output.get("cited_ids"), intent=output.get("intent"),
                          prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
                          total_tokens=usage.get("total_tokens"),
                          cost_usd=usage.get("cost_usd"))
            scores, reasons, judge_errors = score_output(row, output, evaluators, judges, judge_connection,
                                                         articles)
            record.update(scores=scores, judge_reasons=reasons, judge_errors=judge_errors, error=None)
        except Exception as exc:  # every failure becomes an error row; nothing is dropped
            record.setdefault("latency_s", time.perf_counter() - started)
            record["error"] = f"{type(exc).__name__}: {exc}"
        with lock, rows_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        return record

    bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc=f"eval {out.name}", unit="row",
               disable=not progress or None)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for future in as_completed([pool.submit(evaluate, row) for row in todo]):
            future.result()
            bar.update(1)
    bar.close()
    wanted = {row.id for row in rows}
    saved = [r for r in read_rows(rows_path) if r.get("id") in wanted]
    summary = summarize(saved)
    write_text_atomic(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_text_atomic(meta_path, json.dumps(meta, indent=2, default=str) + "\n")
    if key and not summary["n_errors"] and not summary.get("n_judge_errors") and len(saved) == len(rows):
        _store_cached(out, Path(cache) / key)
    return summary


def rescore(
    out_dir: str | Path,
    rows: list[GoldenRow],
    evaluators: dict[str, Evaluator],
    *,
    judges: tuple[str, ...] = (),
    judge_connection: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Add evaluators (or judges) to a finished run without calling the app again: each saved answer is scored
    and the new scores join the old ones in ``rows.jsonl`` and ``summary.json``. A row whose new score fails
    becomes an error row (with the message), and a failing judge is recorded in the row's ``judge_errors``, as in
    :func:`run_evaluation`. Returns the new summary."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    rows_path = out / ROWS
    saved = read_rows(rows_path)
    if not saved:
        raise DatasetError(str(rows_path), None, None, "no saved rows to rescore",
                           "Run the evaluation first (run_evaluation or llmops eval).")
    golden = {row.id: row for row in rows}
    unknown = [r.get("id") for r in saved if r.get("id") not in golden]
    if unknown:
        raise DatasetError(str(rows_path), None, "id", f"rows {', '.join(map(str, unknown[:5]))} are not in the "
                           "golden rows given", "Pass the golden rows this run was evaluated on.")
    articles = _articles_by_id() if judges else None
    for record in tqdm(saved, desc=f"rescore {out.name}", unit="row", disable=not progress or None):
        if record.get("error"):
            continue
        output = {key: record.get(key) for key in ("answer", "context_ids", "cited_ids", "intent")}
        output["context_ids"] = output["context_ids"] or []
        try:
            scores, reasons, judge_errors = score_output(golden[record["id"]], output, evaluators, judges,
                                                         judge_connection, articles)
        except Exception as exc:  # as in run_evaluation: a failure is an error row, never a dropped score
            record["error"] = f"{type(exc).__name__}: {exc}"
            continue
        # a judge's latest attempt wins: a new score clears its old error, a new failure replaces its old score
        stale = {f"judge_{name}" for name in judge_errors}
        record["scores"] = {k: v for k, v in {**record.get("scores", {}), **scores}.items() if k not in stale}
        record["judge_reasons"] = {k: v for k, v in {**(record.get("judge_reasons") or {}), **reasons}.items()
                                   if k not in judge_errors}
        still_failed = {k: v for k, v in (record.get("judge_errors") or {}).items() if k not in reasons}
        record["judge_errors"] = {**still_failed, **judge_errors}
    write_text_atomic(rows_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in saved))
    summary = summarize(saved)
    write_text_atomic(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    meta_path = out / METADATA
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    meta["evaluators"] = sorted({*meta.get("evaluators", []), *evaluators})
    meta["judges"] = list(dict.fromkeys([*meta.get("judges", []), *judges]))
    write_text_atomic(meta_path, json.dumps(meta, indent=2, default=str) + "\n")
    return summary


def load_evaluator(spec: str) -> tuple[str, Evaluator]:
    """An evaluator named on the command line: ``[name=]module:function`` or ``[name=]path/to/file.py:function``
    (the name defaults to the function's)."""
    import importlib
    import importlib.util

    name, _, target = spec.rpartition("=") if "=" in spec else ("", "", spec)
    where, _, function = target.rpartition(":")
    if not where or not function:
        raise ConfigError(f"--evaluator {spec!r}: write it as name=module:function or name=file.py:function.")
    try:
        if where.endswith(".py"):
            module_spec = importlib.util.spec_from_file_location(Path(where).stem, where)
            if module_spec is None or not Path(where).is_file():
                raise FileNotFoundError(where)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(where)
        fn = getattr(module, function)
    except (ImportError, FileNotFoundError, AttributeError) as exc:
        raise ConfigError(f"--evaluator {spec!r}: cannot load {function!r} from {where!r} ({exc}). Check the "
                          "module or file path and that it defines the function.") from None
    if not callable(fn):
        raise ConfigError(f"--evaluator {spec!r}: {where}:{function} is not a function.")
    return name or function, fn


INPUTS_FOLDER = "by-input"  # in a cache: input address -> content address, written by a run that was evaluated


def _input_key(flow_folder: Path, data: str | Path, rows: list[GoldenRow], variant: str, top_k: int,
               judges: tuple[str, ...], evaluators: list[str], overrides: dict | None = None) -> str | None:
    """The address of an evaluation by what goes *in*, computed without importing the flow (promptflow takes
    ~2.5 s to import) or starting a model (~1 s): the flow folder's digest (its code, config and prompts), the
    articles it retrieves from, the data and row ids, the arguments, the agent environment, the provider's
    settings (no key) and the kit's code. A run that was evaluated records which content address
    (:func:`evaluation_key`) these inputs produced, so the same inputs find it again before anything starts.
    None when an input cannot be read (the run then takes the ordinary path)."""
    import yaml

    from llmops_helpers.errors import LLMOpsError
    from llmops_helpers.flow.app import flow_digest
    from llmops_helpers.llm.settings import resolve_settings

    try:
        raw = yaml.safe_load((flow_folder / "config.yaml").read_text(encoding="utf-8")) or {}
        environment = os.environ.get("SUPPORT_AGENT_ENV", "")
        overlay = ((raw.get("environments") or {}).get(environment) or {}) if environment else {}
        kb = {**raw, **overlay}.get("knowledge_base")
        articles = fingerprint(load_knowledge_base(flow_folder / kb if kb else None))
        settings = resolve_settings(None)
        # the embedded model is named by its model; its URL changes with every start (not a different model)
        endpoint = None if settings.provider == "local" else settings.base_url
        identity = {"flow": flow_digest(flow_folder), "articles": articles, "data": file_hash(data),
                    "rows": [row.id for row in rows], "variant": variant, "top_k": top_k, "judges": list(judges),
                    "evaluators": sorted(evaluators), "agent_environment": environment, "kit": _kit_digest(),
                    "overrides": overrides or {},
                    "provider": [settings.provider, settings.model, endpoint, settings.api_version]}
    except (LLMOpsError, OSError, ValueError, AttributeError, yaml.YAMLError):
        return None
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _reuse_by_inputs(cache: Path, inputs: str, out: Path, rows: list[GoldenRow], fresh: bool,
                     metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The cached evaluation that these inputs produced before, copied into ``out``; None when there is none (or
    it is gone, damaged, or no longer matches the kit's code), so the caller evaluates as usual."""
    alias = cache / INPUTS_FOLDER / inputs
    if not alias.is_file():
        return None
    entry = cache / alias.read_text(encoding="utf-8").strip()
    try:
        cached = json.loads((entry / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    meta = {**{k: v for k, v in cached.items() if k not in ("created", "reused_from")}, **metadata,
            "git_sha": git_output("rev-parse", "HEAD") or None}
    if evaluation_key(meta, rows) != entry.name:
        return None
    out.mkdir(parents=True, exist_ok=True)
    if fresh:
        _clear_run(out)
    return _reuse_cached(entry, out, meta, rows)


def _remember_inputs(cache: Path, inputs: str, out: Path, rows: list[GoldenRow]) -> None:
    """After a run: note which content address these inputs produced, if that run is in the cache."""
    try:
        meta = json.loads((out / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    key = evaluation_key(meta, rows)
    if key and (cache / key / SUMMARY).is_file():
        (cache / INPUTS_FOLDER).mkdir(parents=True, exist_ok=True)
        write_text_atomic(cache / INPUTS_FOLDER / inputs, key + "\n")


def _knowledge_base_hash(agent: Any) -> str | None:
    """The content hash of the articles the flow retrieves from, when it has a kit retriever (else None)."""
    retriever = getattr(agent, "retriever", None)
    known = getattr(retriever, "fingerprint", None)  # the kit's retriever computed it when it was built
    docs = getattr(retriever, "docs", None)
    return known or (fingerprint(docs) if docs else None)


def evaluate_support_agent(
    data: str | Path, out_dir: str | Path, *, variant: str = "", sample: int | None = None,
    judges: tuple[str, ...] = ("groundedness",), concurrency: int | None = None, top_k: int = 0,
    extra_evaluators: dict[str, Evaluator] | None = None, fresh: bool = False, progress: bool = True,
    flow_dir: str | Path | None = None, cache: str | Path | None = None, categories: tuple[str, ...] = (),
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The kit's standard evaluation of the sample app (what ``llmops eval`` runs) on ``sample`` rows stratified
    by category (:func:`~llmops_helpers.evaluate.golden.sample_rows`; ``categories`` keeps only those); ``cache``
    reuses an evaluation of identical content (see :func:`run_evaluation`); ``flow_dir`` evaluates another copy
    of the flow, e.g. the target branch's (see :func:`~llmops_helpers.flow.app.flow_at_ref`). ``variant`` (the answer
    prompt) and ``top_k`` override the flow's ``config.yaml``; left empty, the flow runs as configured, which is
    what a pipeline must evaluate. ``overrides`` sets other init parameters of the flow (``intent_classifier``,
    ``guardrails``, ``passage_words``, ``canary``), recorded in the run's metadata and cache key."""
    from llmops_helpers.evaluate.golden import describe_sample, load_golden, sample_rows
    from llmops_helpers.evaluate.judges import judge_connection as make_judge_connection
    from llmops_helpers.flow.app import flow_digest, import_flow_entry, load_flow_module, support_agent_dir

    every = load_golden(data)
    rows = sample_rows(every, sample, categories)
    evaluators = {**DEFAULT_EVALUATORS, **(extra_evaluators or {})}
    flow_folder = Path(flow_dir or support_agent_dir())
    overrides = {k: v for k, v in (overrides or {}).items() if v not in (None, "")}
    inputs = (_input_key(flow_folder, data, rows, variant, top_k, judges, list(evaluators), overrides) if cache
              else None)
    per_run = {"dataset": str(data), "sample": len(rows), "rows": describe_sample(rows, len(every)),
               "categories": list(categories), "flow": str(flow_folder), **({"overrides": overrides} if overrides
                                                                          else {})}
    if inputs:  # seen before: copy it without importing the flow or starting a model
        reused = _reuse_by_inputs(Path(cache), inputs, Path(out_dir), rows, fresh, per_run)
        if reused is not None:
            return reused
    module = load_flow_module(flow_dir) if flow_dir else import_flow_entry()
    agent = module.SupportAgent(prompt_variant=variant, top_k=top_k, **overrides)
    prompt_file = flow_folder / "prompts" / f"answer_{agent.config['prompt_variant']}.prompty"
    local = agent.llm.provider == "local"
    metadata = {**per_run, "dataset_hash": file_hash(data), "variant": agent.config["prompt_variant"],
                "prompt_hash": file_hash(prompt_file), "provider": agent.llm.provider, "model": agent.llm.model,
                "top_k": agent.config["top_k"],
                "flow_digest": flow_digest(flow_folder),  # what a build checks it packages
                "knowledge_base_hash": _knowledge_base_hash(agent)}
    summary = run_evaluation(rows, out_dir, agent, evaluators=evaluators, judges=judges,
                             judge_connection=make_judge_connection() if judges else None,
                             concurrency=concurrency or (1 if local else 4), metadata=metadata, fresh=fresh,
                             progress=progress, cache=cache)
    if inputs:
        _remember_inputs(Path(cache), inputs, Path(out_dir), rows)
    return summary


