"""The classic intent classifier: numpy scoring equals scikit-learn's, the committed model is what the committed
data trains, and bad training data or a damaged model file is refused by name."""

import json

import pytest

from llmops_helpers.errors import DatasetError, LLMOpsError
from llmops_helpers.flow.intent import (
    INTENTS,
    IntentModel,
    default_model_file,
    load_intent_examples,
    save_intent_model,
    train_intent_model,
)
from llmops_helpers.paths import kit_root


@pytest.fixture(scope="module")
def examples():
    return load_intent_examples()


def test_numpy_scoring_gives_scikit_learns_probabilities(examples, tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    model = IntentModel.load(save_intent_model(train_intent_model(examples), tmp_path / "m.json"))
    texts, labels = [e["text"] for e in examples], [e["intent"] for e in examples]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    reference = LogisticRegression(C=10.0, max_iter=2000).fit(vectorizer.fit_transform(texts), labels)
    golden = [json.loads(line)["question"] for line in open(kit_root() / "data/golden/golden.jsonl", encoding="utf-8")]
    expected = reference.predict_proba(vectorizer.transform(golden))
    for text, row in zip(golden, expected, strict=True):
        probs = model.probabilities(text)
        assert max(abs(probs[c] - p) for c, p in zip(reference.classes_, row, strict=True)) < 1e-4
        assert model.predict(text) == reference.classes_[row.argmax()]


def test_the_committed_model_is_what_the_committed_data_trains(examples):
    """One source of truth: retrain with `llmops train-intents` after editing data/intents/train.jsonl."""
    committed = json.loads(default_model_file().read_text(encoding="utf-8"))
    fresh = train_intent_model(examples, source="data/intents/train.jsonl")
    assert committed["trained_on"]["sha256"] == fresh["trained_on"]["sha256"], \
        "data/intents/train.jsonl changed: run `llmops train-intents` and commit intent_model.json"
    assert committed["vocabulary"] == fresh["vocabulary"] and committed["classes"] == fresh["classes"]
    assert max(abs(a - b) for ra, rb in zip(committed["coef"], fresh["coef"], strict=True)
               for a, b in zip(ra, rb, strict=True)) < 1e-4


def test_the_model_always_answers_one_of_the_intents():
    model = IntentModel.load(default_model_file())
    for text in ("", "???", "zzz qqq", "How much is roaming in Spain?", "x" * 10_000):
        assert model.predict(text) in INTENTS


def test_training_data_with_an_unknown_intent_names_its_row(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"text": "my bill is wrong", "intent": "billing"}\n{"text": "hi", "intent": "smalltalk"}\n',
                   encoding="utf-8")
    with pytest.raises(DatasetError, match=r"train.jsonl, row 2, field 'intent'.*smalltalk"):
        load_intent_examples(bad)
    with pytest.raises(LLMOpsError, match="no example of"):
        train_intent_model([{"text": "my bill", "intent": "billing"}])


@pytest.mark.parametrize("content", ["", "{not json", '{"format": "other"}', '{"format": "llmops-intent-model/1"}',
                                     '{"format": "llmops-intent-model/1", "classes": ["a"], "vocabulary": ["x"], '
                                     '"idf": [1.0], "coef": [[1.0, 2.0]], "intercept": [0.0]}'])
def test_a_damaged_model_file_is_refused_by_name(tmp_path, content):
    path = tmp_path / "intent_model.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match="intent_model.json.*llmops train-intents"):
        IntentModel.load(path)
