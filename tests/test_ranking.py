"""Retrieval metrics (recall@k, MRR, nDCG) and the retrieval evaluation of Lab 04."""

import math

import pytest

from llmops_helpers.errors import DatasetError
from llmops_helpers.evaluate.ranking import (
    evaluate_retrieval,
    load_queries,
    ndcg_at_k,
    reciprocal_rank,
    retrieval_summary,
)
from llmops_helpers.flow.retrieval import get_retriever
from llmops_helpers.paths import kit_root

DATA = kit_root() / "data"


def test_reciprocal_rank_is_one_over_the_first_hit_and_zero_without_one():
    assert reciprocal_rank(["a", "b", "c"], ["a"]) == 1.0
    assert reciprocal_rank(["a", "b", "c"], ["c"]) == pytest.approx(1 / 3)
    assert reciprocal_rank(["a", "b"], ["z"]) == 0.0
    assert reciprocal_rank(["a", "b", "c"], ["c"], depth=2) == 0.0


def test_ndcg_rewards_a_higher_rank_and_is_one_for_a_perfect_ranking():
    assert ndcg_at_k(["a", "b", "c"], ["a"], 3) == 1.0
    assert ndcg_at_k(["b", "a", "c"], ["a"], 3) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["b", "c", "a"], ["a"], 2) == 0.0
    assert ndcg_at_k(["a", "x", "b"], ["a", "b"], 3) == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))


@pytest.mark.parametrize("metric", [reciprocal_rank, lambda r, e: ndcg_at_k(r, e, 3)])
def test_metrics_refuse_an_empty_expected_set(metric):
    with pytest.raises(ValueError):
        metric(["a"], [])


def test_the_evaluation_has_a_row_per_query_and_a_summary_per_category():
    retriever = get_retriever(passage_words=80)
    queries = load_queries(DATA / "retrieval_queries.jsonl", [d.id for d in retriever.docs])
    frame = evaluate_retrieval(retriever, queries, k=3)
    assert len(frame) == len(queries) == 40
    assert set(frame.columns) >= {"query", "expected_id", "category", "retrieved", "rank", "recall@3", "mrr",
                                  "ndcg@3"}
    assert all(len(r) <= 3 for r in frame["retrieved"])
    hit = frame["rank"].between(1, 3)
    assert (frame.loc[hit, "recall@3"] == 1).all() and (frame.loc[~hit, "recall@3"] == 0).all()
    summary = retrieval_summary(frame)
    assert summary.index[-1] == "all" and summary.loc["all", "queries"] == 40
    assert summary.loc["all", "recall@3"] >= 0.9  # the floor `llmops index validate` holds
    assert summary[["recall@3", "mrr", "ndcg@3"]].stack().between(0, 1).all()


def test_a_bad_query_file_is_refused_with_its_row_and_field(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"query": "roaming in spain", "expected_id": "kb-roaming-eu"}\n'
                   '{"query": "x", "expected_id": "kb-no-such-article"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"q.jsonl, row 2, field 'expected_id'.*not an article id"):
        load_queries(bad, ["kb-roaming-eu"])
    bad.write_bytes(b'{"query": "caf\xe9", "expected_id": "kb-roaming-eu"}\n')
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_queries(bad)
    with pytest.raises(DatasetError, match="does not exist"):
        load_queries(tmp_path / "missing.jsonl")
