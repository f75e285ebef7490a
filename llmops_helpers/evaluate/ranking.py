"""Retrieval evaluation (Lab 04): how well the retriever ranks the article that answers a query.

Three standard ranking metrics, each per query and then averaged (per category and overall):

- **recall@k**: is the expected article among the first ``k``? (1 or 0 with one expected article)
- **MRR** (mean reciprocal rank): 1 / the rank of the expected article (1, 0.5, 0.33, ...; 0 if not found in the
  ranking that was looked at). It rewards putting the answer *first*.
- **nDCG@k** (normalised discounted cumulative gain, binary relevance): like recall, but a hit at rank 3 counts
  less than a hit at rank 1 (1 / log2(rank + 1)), normalised so that a perfect ranking scores 1.

BM25 is deterministic, so these numbers are exact: a change of one query is a real change. Report the held-out
queries (``retrieval_queries_heldout.jsonl``) beside the tuned ones, and never tune on them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from llmops_helpers.errors import DatasetError
from llmops_helpers.evaluate.metrics import recall_at_k

#: how deep the ranking is read for MRR (a hit below this counts 0)
MRR_DEPTH = 10


def reciprocal_rank(retrieved_ids: Sequence[str], expected_ids: Iterable[str], depth: int = MRR_DEPTH) -> float:
    """1 / the rank (1-based) of the first expected id among the first ``depth`` retrieved; 0 if none is there."""
    expected = set(expected_ids)
    if not expected:
        raise ValueError("reciprocal_rank needs at least one expected id")
    for rank, doc_id in enumerate(list(retrieved_ids)[:depth], start=1):
        if doc_id in expected:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(retrieved_ids: Sequence[str], expected_ids: Iterable[str], k: int) -> float:
    """nDCG@k with binary relevance: the discounted gain of the expected ids in the first ``k`` retrieved, divided
    by the gain of a perfect ranking (all expected ids first)."""
    expected = set(expected_ids)
    if not expected:
        raise ValueError("ndcg_at_k needs at least one expected id")
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    gain = sum(1.0 / math.log2(rank + 1) for rank, doc_id in enumerate(list(retrieved_ids)[:k], start=1)
               if doc_id in expected)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(expected)) + 1))
    return gain / ideal


def load_queries(path: str | Path, known_ids: Iterable[str] | None = None) -> list[dict]:
    """The rows of a retrieval query file (``query``, ``expected_id``); a bad row raises :class:`DatasetError`
    naming the file, row and field, including an ``expected_id`` that is not an article of the knowledge base."""
    from llmops_helpers.flow.batch import read_jsonl

    path = Path(path)
    rows = read_jsonl(path, required=("query", "expected_id"),
                      missing_fix="Pass one of the kit's files, e.g. data/retrieval_queries.jsonl.")
    known = set(known_ids) if known_ids is not None else None
    for number, row in enumerate(rows, start=1):
        for field in ("query", "expected_id"):
            if not isinstance(row[field], str):
                raise DatasetError(str(path), number, field, "must be a string")
        if known is not None and row["expected_id"] not in known:
            raise DatasetError(str(path), number, "expected_id", f"{row['expected_id']!r} is not an article id",
                               "Use an id from the front matter of data/knowledge_base/*.md.")
    return rows


def evaluate_retrieval(retriever: Any, queries: list[dict], k: int = 3):
    """One row per query: the expected article, its category, the top ``k`` retrieved, the rank of the expected
    article (0 = not in the first :data:`MRR_DEPTH`), recall@k, MRR and nDCG@k. ``retriever`` is a
    :class:`~llmops_helpers.flow.retrieval.BM25Retriever` (anything with ``search(query, k)`` and ``docs``)."""
    import pandas as pd

    category = {doc.id: doc.category for doc in retriever.docs}
    records = []
    for row in queries:
        ranked = [hit.id for hit in retriever.search(row["query"], k=max(k, MRR_DEPTH))]
        expected = [row["expected_id"]]
        records.append({
            "query": row["query"], "expected_id": row["expected_id"],
            "category": category.get(row["expected_id"], "?"), "retrieved": ranked[:k],
            "rank": ranked.index(row["expected_id"]) + 1 if row["expected_id"] in ranked else 0,
            f"recall@{k}": recall_at_k(ranked, expected, k), "mrr": reciprocal_rank(ranked, expected),
            f"ndcg@{k}": ndcg_at_k(ranked, expected, k),
        })
    return pd.DataFrame.from_records(records)


def retrieval_summary(frame: Any, by: str = "category"):
    """The metrics of :func:`evaluate_retrieval` averaged per ``by`` value, with the number of queries, and an
    ``all`` row last."""
    import pandas as pd

    metrics = [c for c in frame.columns if c.startswith(("recall@", "ndcg@")) or c == "mrr"]
    grouped = frame.groupby(by)[metrics].mean()
    grouped.insert(0, "queries", frame.groupby(by).size())
    overall = pd.DataFrame([[len(frame), *frame[metrics].mean()]], columns=["queries", *metrics], index=["all"])
    out = pd.concat([grouped, overall])
    out["queries"] = out["queries"].astype(int)
    return out.round(3)


def plot_retrieval(summaries: dict[str, Any], metric: str = "recall@3", title: str = "", ax: Any = None):
    """Bars of ``metric`` per category for each named summary (e.g. {"tuned 40": ..., "held-out 25": ...}), the
    ``all`` row included, on a 0–1 axis."""
    from llmops_helpers.evaluate.report import plot_grouped_bars

    ax = plot_grouped_bars(summaries, metric, ylabel=f"{metric} (share of queries)", ax=ax,
                           title=title or f"Retrieval {metric} per category")
    ax.set_xlabel("category of the expected article")
    return ax
