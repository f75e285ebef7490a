"""The evaluation runner: answer golden rows with the app, score them with evaluators and LLM judges, and keep
every row on disk as it arrives so an interrupted run resumes where it stopped.

An **evaluator** is a small function ``(row: GoldenRow, output: dict) -> float`` returning a score in [0, 1]
(``output`` is the app's reply: answer, context_ids, intent, usage, timings). Register it in a dict passed to
:func:`run_evaluation` (or add it to :data:`DEFAULT_EVALUATORS`); its name becomes a metric in ``summary.json``.

A run folder holds ``rows.jsonl`` (one line a row, errors included), ``summary.json`` (``metrics`` = name → mean
over scored rows, ``n_rows``, ``n_errors``, slices by category) and ``metadata.json`` (git sha, prompt hash,
model, provider, dataset hash)."""

from __future__ import annotations

import functools
import hashlib
import json
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from . import metrics
from .golden import GoldenRow
from .knowledge import load_knowledge_base
from .metering import percentile
from .paths import kit_root

Evaluator = Callable[[GoldenRow, dict], float]

@functools.lru_cache(maxsize=1)
def _articles_and_stopwords() -> tuple[dict[str, str], frozenset[str]]:
    from .retrieval import stopwords

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
    """``summary.json``'s content from saved rows: metric means over rows that scored, error counts, latency
    percentiles, tokens and cost, and the same metric means per category."""
    scored = [r for r in rows if not r.get("error")]
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
    }
    categories = sorted({r.get("category", "") for r in scored})
    return {
        "metrics": {**means(scored), **{k: v for k, v in operational.items() if v is not None}},
        "n_rows": len(rows), "n_errors": len(rows) - len(scored),
        "by_category": {c: means([r for r in scored if r.get("category") == c]) for c in categories},
    }


def _git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=kit_root(), capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


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
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``rows`` with ``app`` (question -> reply dict) into ``out_dir``; rows already saved there are
    skipped, so re-running after an interruption resumes. Returns the summary (also written to disk)."""
    from tqdm.auto import tqdm

    from .judges import judge

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.jsonl"
    evaluators = DEFAULT_EVALUATORS if evaluators is None else evaluators
    _drop_partial_last_line(rows_path)
    done = {r["id"] for r in read_rows(rows_path) if "id" in r}
    todo = [row for row in rows if row.id not in done]
    lock = threading.Lock()
    articles = {doc.id: doc for doc in load_knowledge_base()} if judges else {}

    def evaluate(row: GoldenRow) -> dict:
        record: dict[str, Any] = {"id": row.id, "category": row.category, "difficulty": row.difficulty,
                                  "question": row.question}
        started = time.perf_counter()
        try:
            output = app(row.question)
            record["latency_s"] = time.perf_counter() - started
            usage = output.get("usage") or {}
            record.update(answer=output.get("answer"), context_ids=output.get("context_ids"),
                          intent=output.get("intent"), total_tokens=usage.get("total_tokens"),
                          cost_usd=usage.get("cost_usd"))
            scores = {name: float(fn(row, output)) for name, fn in evaluators.items()}
            reasons = {}
            context = "\n\n".join(articles[i].as_context() for i in output.get("context_ids", []) if i in articles)
            for name in judges:
                verdict = judge(judge_connection, name, question=row.question, answer=output.get("answer", ""),
                                context=context, ground_truth=row.ground_truth)
                scores[f"judge_{name}"] = float(verdict.score)
                reasons[name] = verdict.reason
            record.update(scores=scores, judge_reasons=reasons, error=None)
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
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    meta = {"git_sha": _git_sha(), "evaluators": sorted(evaluators), "judges": list(judges),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(metadata or {})}
    (out / "metadata.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    return summary


def evaluate_support_agent(
    data: str | Path, out_dir: str | Path, *, variant: str = "grounded", sample: int | None = None,
    judges: tuple[str, ...] = ("groundedness",), concurrency: int | None = None, top_k: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """The kit's standard evaluation of the sample app (what ``llmops eval`` runs)."""
    from .flows import import_flow_entry, support_agent_dir
    from .golden import load_golden
    from .judges import judge_connection as make_judge_connection

    rows = load_golden(data)[: sample or None]
    agent = import_flow_entry().SupportAgent(prompt_variant=variant, top_k=top_k)
    prompt_file = support_agent_dir() / "prompts" / f"answer_{agent.config['prompt_variant']}.prompty"
    local = agent.llm.provider == "local"
    metadata = {"dataset": str(data), "dataset_hash": file_hash(data), "variant": agent.config["prompt_variant"],
                "prompt_hash": file_hash(prompt_file), "provider": agent.llm.provider, "model": agent.llm.model,
                "top_k": agent.config["top_k"], "sample": len(rows)}
    return run_evaluation(rows, out_dir, agent, judges=judges,
                          judge_connection=make_judge_connection() if judges else None,
                          concurrency=concurrency or (1 if local else 4), metadata=metadata, progress=progress)

