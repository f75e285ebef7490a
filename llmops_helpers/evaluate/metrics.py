"""Deterministic evaluation metrics. Each returns a float in [0, 1] for one row.

Token F1 and exact match follow the official SQuAD v2.0 evaluation script: lower-case, strip punctuation,
remove the articles a/an/the, collapse whitespace; F1 over the bag of tokens; two empty answers match."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def token_f1(prediction: str, ground_truth: str) -> float:
    """Harmonic mean of token precision and recall after normalisation (SQuAD v2.0 ``compute_f1``)."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def _squash(text: str) -> str:
    return " ".join(text.casefold().split())


def key_fact_recall(answer: str, key_facts: Iterable[str]) -> float:
    """Share of the key facts found in the answer (case-insensitive, whitespace-insensitive substring)."""
    facts = [f for f in key_facts if f.strip()]
    if not facts:
        raise ValueError("key_fact_recall needs at least one key fact")
    haystack = _squash(answer)
    return sum(_squash(f) in haystack for f in facts) / len(facts)


def intent_accuracy(predicted: str, expected: str) -> float:
    return float(predicted.strip().lower() == expected.strip().lower())


def recall_at_k(retrieved_ids: Sequence[str], expected_ids: Iterable[str], k: int | None = None) -> float:
    """Share of the expected articles among the first ``k`` retrieved (all retrieved if ``k`` is None)."""
    expected = set(expected_ids)
    if not expected:
        raise ValueError("recall_at_k needs at least one expected id")
    top = list(retrieved_ids)[: k if k is not None else None]
    return len(expected & set(top)) / len(expected)


_WORD = re.compile(r"[a-z0-9€£$]+(?:[.,][0-9]+)?")


def content_words(text: str, stop: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Lower-case word and number tokens (``€19.99`` stays whole), without stop words and 1-letter tokens."""
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in stop]


def context_overlap(answer: str, context_texts: Iterable[str], stop: set[str] | frozenset[str] = frozenset()) -> float:
    """A deterministic groundedness proxy: the share of the answer's content words that occur in the retrieved
    articles. Crude (it cannot tell a true paraphrase from a copied falsehood) but stable, and unlike a tiny
    LLM judge it clearly separates an answer built from the articles from one that ignores them."""
    words = content_words(answer, stop)
    if not words:
        return 0.0
    vocabulary = set(content_words(" ".join(context_texts), stop))
    return sum(w in vocabulary for w in words) / len(words)
