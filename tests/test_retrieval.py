"""BM25 retrieval quality on hand-written customer queries (deterministic, so a hard threshold is fair)."""

import pytest

from llmops_helpers.flow.batch import read_jsonl
from llmops_helpers.flow.retrieval import get_retriever
from llmops_helpers.paths import kit_root

QUERIES = read_jsonl(kit_root() / "data" / "retrieval_queries.jsonl", required=("query", "expected_id"))
# Written later, by someone who had not seen the search glossary: how well the tuning generalises.
HELD_OUT = read_jsonl(kit_root() / "data" / "retrieval_queries_heldout.jsonl", required=("query", "expected_id"))


APP_PASSAGE_WORDS = 80  # flows/support_agent/config.yaml


def top3_misses(queries, passage_words=0):
    retriever = get_retriever(passage_words=passage_words)
    misses = []
    for q in queries:
        found = [h.id for h in retriever.search(q["query"], k=3)]
        if q["expected_id"] not in found:
            misses.append((q["query"], q["expected_id"], found))
    return misses


def test_there_are_enough_queries():
    ids = {doc.id for doc in get_retriever().docs}
    assert len(QUERIES) >= 30
    assert {q["expected_id"] for q in QUERIES} <= ids


@pytest.mark.parametrize("passage_words", [0, APP_PASSAGE_WORDS], ids=["articles", "passages"])
def test_expected_document_is_in_the_top_3_for_at_least_90_percent(passage_words):
    misses = top3_misses(QUERIES, passage_words)
    hit_rate = 1 - len(misses) / len(QUERIES)
    assert hit_rate >= 0.9, f"top-3 hit rate {hit_rate:.0%}; misses: {misses}"


@pytest.mark.parametrize(("passage_words", "measured"), [(0, 0.84), (APP_PASSAGE_WORDS, 0.92)],
                         ids=["articles", "passages"])
def test_held_out_queries_do_not_regress(passage_words, measured):
    """Measured 80% (20/25) over whole articles when the glossary was frozen. The EU country names were added
    later (a customer names the country, the help centre says "EU"): 84% over articles, 92% over the app's
    passages. BM25 is deterministic, so a drop is a real regression."""
    misses = top3_misses(HELD_OUT, passage_words)
    assert len(HELD_OUT) >= 25
    assert 1 - len(misses) / len(HELD_OUT) >= measured, misses


def test_passage_search_returns_distinct_articles_each_as_its_best_passage():
    retriever = get_retriever(passage_words=APP_PASSAGE_WORDS)
    hits = retriever.search("How much does data cost when I am roaming in Spain?", k=3)
    assert len(hits) == 3 and len({h.id for h in hits}) == 3
    assert all(h.doc.part >= 1 and len(h.doc.text.split()) <= APP_PASSAGE_WORDS for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    articles = {d.id: d.text for d in retriever.docs}
    assert all(h.doc.text in articles[h.id] for h in hits)


def test_glossary_maps_customer_words_to_help_centre_words():
    from llmops_helpers.flow.retrieval import BM25Retriever

    assert BM25Retriever.expand("My SIM card is broken") == "my sim is broken repair fault"
    assert "stolen" in BM25Retriever.expand("someone stole it")
    assert BM25Retriever.expand("calls in Portugal").endswith("roaming eu")


def test_a_country_finds_the_eu_roaming_article():
    """The app's own unit test asks this; over passages, 'France' alone matched no article until the glossary
    mapped EU countries to 'roaming eu'."""
    hits = get_retriever(passage_words=APP_PASSAGE_WORDS).search("How much does it cost to use my phone in France?")
    assert hits[0].id == "kb-roaming-eu"


def test_index_is_built_once_and_search_is_deterministic():
    first, second = get_retriever(), get_retriever()
    assert first is second
    query = QUERIES[0]["query"]
    assert [h.id for h in first.search(query, 5)] == [h.id for h in second.search(query, 5)]


def test_stop_words_only_query_returns_nothing():
    assert get_retriever().search("the and of", k=3) == []
