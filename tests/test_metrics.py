"""Deterministic metrics, with F1/EM checked against a reference implementation of the SQuAD v2.0 script."""

import collections
import re
import string

import pytest

from llmops_helpers.evaluate.metrics import (
    content_words,
    context_overlap,
    exact_match,
    intent_accuracy,
    key_fact_recall,
    normalize_answer,
    recall_at_k,
    token_f1,
)


def squad_normalize(s):  # the official script's normalize_answer, restated for the comparison
    def remove_articles(text):
        return re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def squad_f1(a_gold, a_pred):
    gold_toks, pred_toks = squad_normalize(a_gold).split(), squad_normalize(a_pred).split()
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision, recall = num_same / len(pred_toks), num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


TRICKY = [
    ("The €19.99 plan!", "€19.99 plan"), ("an apple a day", "apple day"), ("Theatre", "the atre"),
    ("  spaced   out\ttext\n", "spaced out text"), ("don't", "dont"), ("A", ""), ("", ""), ("the the the", ""),
    ("5 GB, 10 GB and 20 GB", "20 GB 10 GB 5 GB"), ("Über-fast 5G", "uber fast 5g"), ("x-ray", "xray"),
    ("Call 0800 555 0100.", "call 0800-555-0100"), ("ANSWER", "answer"), ("an", "the"), ("cats cats", "cats"),
]


@pytest.mark.parametrize("pred, gold", TRICKY)
def test_f1_and_normalisation_match_squad(pred, gold):
    assert normalize_answer(pred) == squad_normalize(pred)
    assert token_f1(pred, gold) == pytest.approx(squad_f1(gold, pred))
    assert exact_match(pred, gold) == float(squad_normalize(pred) == squad_normalize(gold))


def test_f1_values():
    assert token_f1("the cat sat", "cat sat on mat") == pytest.approx(2 * (2 / 2) * (2 / 4) / (1 + 0.5))
    assert token_f1("nothing shared", "different words") == 0.0


def test_key_fact_recall():
    assert key_fact_recall("It costs €19.99 a month with 30  GB.", ["€19.99", "30 GB", "5 GB"]) == pytest.approx(2 / 3)
    assert key_fact_recall("CALL 0800 555 0100", ["call 0800 555 0100"]) == 1.0
    with pytest.raises(ValueError):
        key_fact_recall("x", [])


def test_intent_and_recall_at_k():
    assert intent_accuracy("Billing ", "billing") == 1.0 and intent_accuracy("sales", "billing") == 0.0
    assert recall_at_k(["a", "b", "c"], ["c", "d"]) == 0.5
    assert recall_at_k(["a", "b", "c"], ["c"], k=2) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(["a"], [])


def test_context_overlap():
    context = ["The Smart plan costs €19.99 a month and includes 30 GB of data."]
    assert content_words("Smart costs €19.99!", {"costs"}) == ["smart", "€19.99"]
    assert context_overlap("The Smart plan costs €19.99.", context) == 1.0
    assert context_overlap("Our Smart plan is free forever.", context, {"is", "our"}) == pytest.approx(2 / 4)
    assert context_overlap("", context) == 0.0 and context_overlap("anything at all", []) == 0.0
