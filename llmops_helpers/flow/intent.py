"""A classic intent classifier for the support agent's routing step (Lab 04: not every step needs an LLM).

TF-IDF over words and word pairs, then multinomial logistic regression: trained with scikit-learn in the kit
(:func:`train_intent_model`), shipped as a small JSON file beside the flow, and scored in the app with numpy alone
(:class:`IntentModel`), so the deployed app needs neither scikit-learn nor scipy. A test checks that the numpy
scoring gives scikit-learn's probabilities, and that the committed model is what the committed training data trains.

It answers in well under a millisecond, costs nothing and always returns one of the intents; it knows only the words
it was trained on, so a question in words it has never seen falls back on the class priors. Measure it against the
LLM classifier on the golden set (Lab 04) and let the numbers choose.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_helpers.errors import DatasetError, LLMOpsError
from llmops_helpers.paths import kit_root

INTENTS = ("billing", "technical", "account", "sales", "other")
#: scikit-learn's default token pattern (two or more word characters)
TOKEN = re.compile(r"(?u)\b\w\w+\b")
SETTINGS = {"ngram_range": [1, 2], "sublinear_tf": True, "min_df": 1, "C": 10.0}
FORMAT = "llmops-intent-model/1"


def default_training_file() -> Path:
    return kit_root() / "data" / "intents" / "train.jsonl"


def load_intent_examples(path: str | Path | None = None) -> list[dict]:
    """The labelled examples (``text``, ``intent``) of a JSONL file; a bad row raises :class:`DatasetError`
    naming the file, row and field."""
    from llmops_helpers.flow.batch import read_jsonl

    path = Path(path or default_training_file())
    rows = read_jsonl(path, required=("text", "intent"),
                      missing_fix="Restore it with git checkout, or pass another file.")
    for number, row in enumerate(rows, start=1):
        if row["intent"] not in INTENTS:
            raise DatasetError(str(path), number, "intent", f"{row['intent']!r} is not one of {', '.join(INTENTS)}")
        if not isinstance(row["text"], str):
            raise DatasetError(str(path), number, "text", "must be a string")
    return rows


def _tokens(text: str, ngrams: tuple[int, int]) -> list[str]:
    """The terms scikit-learn's ``TfidfVectorizer(ngram_range=ngrams)`` makes of ``text`` (lower-cased words, then
    space-joined n-grams)."""
    words = TOKEN.findall(text.lower())
    low, high = ngrams
    terms = list(words) if low == 1 else []
    for n in range(max(2, low), high + 1):
        terms += [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
    return terms


def train_intent_model(examples: Iterable[dict], source: str = "") -> dict:
    """Fit TF-IDF + logistic regression on ``examples`` and return the model as plain JSON-able data (vocabulary,
    idf, coefficients, intercepts, settings and provenance). Needs scikit-learn (a kit dependency, not the app's)."""
    import numpy as np
    import sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    rows = list(examples)
    missing = sorted(set(INTENTS) - {r["intent"] for r in rows})
    if missing:
        raise LLMOpsError(f"The training data has no example of {', '.join(missing)}; add some and train again.")
    texts = [r["text"] for r in rows]
    labels = [r["intent"] for r in rows]
    vectorizer = TfidfVectorizer(ngram_range=tuple(SETTINGS["ngram_range"]), sublinear_tf=SETTINGS["sublinear_tf"],
                                 min_df=SETTINGS["min_df"])
    features = vectorizer.fit_transform(texts)
    classifier = LogisticRegression(C=SETTINGS["C"], max_iter=2000).fit(features, labels)
    vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    digest = hashlib.sha256(json.dumps([texts, labels]).encode()).hexdigest()
    return {
        "format": FORMAT, "classes": [str(c) for c in classifier.classes_], "settings": dict(SETTINGS),
        "vocabulary": vocabulary, "idf": np.round(vectorizer.idf_, 6).tolist(),
        "coef": np.round(classifier.coef_, 6).tolist(), "intercept": np.round(classifier.intercept_, 6).tolist(),
        "trained_on": {"examples": len(rows), "sha256": digest, "source": source,
                       "per_intent": {i: labels.count(i) for i in INTENTS}},
        "sklearn": sklearn.__version__,
    }


def save_intent_model(model: dict, path: str | Path) -> Path:
    """Write ``model`` as compact, stable JSON (one line per top-level key, so a diff shows what changed)."""
    path = Path(path)
    lines = [f"  {json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}" for key, value in model.items()]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    return path


@dataclass
class IntentModel:
    """A trained intent model scored with numpy (what the app runs)."""

    classes: list[str]
    vocabulary: dict[str, int]
    idf: Any
    coef: Any
    intercept: Any
    ngrams: tuple[int, int]
    sublinear_tf: bool
    info: dict

    @classmethod
    def load(cls, path: str | Path) -> IntentModel:
        """Read a model written by :func:`save_intent_model`; a missing, damaged or foreign file raises
        :class:`DatasetError` naming it."""
        import numpy as np

        path = Path(path)
        fix = "Train it again: llmops train-intents."
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DatasetError(str(path), None, None, "does not exist", fix) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(str(path), None, None, f"is not a JSON model ({exc})", fix) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DatasetError(str(path), None, "format", f"is not {FORMAT!r}", fix)
        try:
            coef = np.asarray(data["coef"], dtype=float)
            idf = np.asarray(data["idf"], dtype=float)
            intercept = np.asarray(data["intercept"], dtype=float)
            vocabulary = {term: i for i, term in enumerate(data["vocabulary"])}
            if coef.shape != (len(data["classes"]), len(vocabulary)) or idf.shape != (len(vocabulary),):
                raise ValueError(f"coef {coef.shape} and idf {idf.shape} do not fit {len(vocabulary)} terms")
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(str(path), None, None, f"is damaged ({exc})", fix) from None
        settings = data.get("settings", {})
        return cls(list(data["classes"]), vocabulary, idf, coef, intercept, tuple(settings.get("ngram_range", (1, 2))),
                   bool(settings.get("sublinear_tf", True)),
                   {k: data.get(k) for k in ("trained_on", "sklearn", "settings")})

    def features(self, text: str):
        """The L2-normalised TF-IDF vector of ``text`` over the model's vocabulary."""
        import numpy as np

        vector = np.zeros(len(self.vocabulary))
        for term in _tokens(text, self.ngrams):
            index = self.vocabulary.get(term)
            if index is not None:
                vector[index] += 1
        if self.sublinear_tf:
            nonzero = vector > 0
            vector[nonzero] = 1 + np.log(vector[nonzero])
        vector *= self.idf
        norm = math.sqrt(float(vector @ vector))
        return vector / norm if norm else vector

    def probabilities(self, text: str) -> dict[str, float]:
        """Each intent's probability for ``text`` (softmax of the linear scores), highest first."""
        import numpy as np

        scores = self.coef @ self.features(text) + self.intercept
        exp = np.exp(scores - scores.max())
        probs = exp / exp.sum()
        return dict(sorted(zip(self.classes, probs.tolist(), strict=True), key=lambda kv: -kv[1]))

    def predict(self, text: str) -> str:
        """The most probable intent."""
        return next(iter(self.probabilities(text)))


def default_model_file() -> Path:
    """Where the sample app reads its classic intent model: ``flows/support_agent/intent_model.json``."""
    from llmops_helpers.flow.app import support_agent_dir

    return Path(support_agent_dir()) / "intent_model.json"


def train_from_file(data: str | Path | None = None, out: str | Path | None = None) -> tuple[Path, dict]:
    """Train on ``data`` (default ``data/intents/train.jsonl``) and write the model to ``out`` (default the app's
    :func:`default_model_file`); returns the path and the model."""
    data = Path(data or default_training_file())
    model = train_intent_model(load_intent_examples(data), source=_relative(data))
    return save_intent_model(model, out or default_model_file()), model


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(kit_root()).as_posix()
    except ValueError:
        return path.name
