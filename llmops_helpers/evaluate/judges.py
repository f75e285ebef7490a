"""LLM judges: groundedness, relevance, coherence, fluency and similarity, each a 1–5 score with a short reason.

Judges ask for a JSON-schema response and parse it strictly: anything that is not a JSON object with an integer
``score`` from 1 to 5 raises :class:`JudgeError`, which the evaluation records as that judge's failure in the row
(``judge_errors``, counted in the summary's ``n_judge_errors`` and held to the gate's error rate), never a
silently dropped score; the row's other scores are kept. (promptflow's sample evaluators read the first digit
they find; we do not.)

What a 135M judge can tell you: almost nothing about meaning. It returns valid JSON every time (the schema
forces the shape), but its scores do not track quality: on the 18 CI rows it scored all 36 answers of a grounded
and an ungrounded prompt 1 for groundedness (:func:`judge_agreement` against ``context_overlap``: 0 of 495 pairs
told apart), at ~9 s a judgement on two CPU cores. Use it to exercise the pipeline offline; set
``LLMOPS_JUDGE_PROVIDER`` / ``LLMOPS_JUDGE_MODEL`` to judge with a capable model, and check any judge's agreement
with metrics or people before it gates anything."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from llmops_helpers.errors import LLMOpsError

JUDGE_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "judgement",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                           "reason": {"type": "string", "maxLength": 100}},
            "required": ["score", "reason"],
            "additionalProperties": False,
        },
    },
}

RUBRICS = {
    "groundedness": ("Is every claim in the ANSWER supported by the CONTEXT articles? 5 = fully supported; "
                     "3 = partly supported; 1 = contradicts the context or invents facts.", ("context", "answer")),
    "relevance": ("Does the ANSWER address the customer's QUESTION? 5 = directly and completely; 3 = partly; "
                  "1 = off topic.", ("question", "answer")),
    "coherence": ("Is the ANSWER logically organised and consistent? 5 = clear and consistent; 1 = contradictory "
                  "or rambling.", ("question", "answer")),
    "fluency": ("Is the ANSWER well-written, grammatical English? 5 = fluent; 1 = broken or repetitive.",
                ("answer",)),
    "similarity": ("Does the ANSWER say the same as the GROUND TRUTH? 5 = same meaning and facts; 3 = partly; "
                   "1 = different or contradictory.", ("question", "ground_truth", "answer")),
}
JUDGES = tuple(RUBRICS)


class JudgeError(LLMOpsError):
    """A judge's reply could not be used as a score."""


@dataclass(frozen=True)
class Judgement:
    name: str
    score: int
    reason: str


def parse_judgement(name: str, text: str | None) -> Judgement:
    """Strictly parse ``{"score": 1..5, "reason": "..."}``; raise :class:`JudgeError` otherwise."""
    if not text or not text.strip():
        raise JudgeError(f"judge '{name}' returned an empty reply")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise JudgeError(f"judge '{name}' returned non-JSON: {text[:80]!r}") from None
    if not isinstance(data, dict) or "score" not in data:
        raise JudgeError(f"judge '{name}' returned no 'score': {text[:80]!r}")
    score = data["score"]
    if isinstance(score, bool) or not isinstance(score, int):
        raise JudgeError(f"judge '{name}' returned a non-integer score {score!r}")
    if not 1 <= score <= 5:
        raise JudgeError(f"judge '{name}' returned {score}, outside 1–5")
    reason = data.get("reason", "")
    return Judgement(name, score, reason.strip() if isinstance(reason, str) else "")


def judge_messages(name: str, **fields: str | None) -> list[dict[str, str]]:
    rubric, needs = RUBRICS[name]
    missing = [f for f in needs if not fields.get(f)]
    if missing:
        raise JudgeError(f"judge '{name}' needs {', '.join(missing)}")
    body = "\n\n".join(f"{field.upper().replace('_', ' ')}:\n{fields[field]}" for field in needs)
    return [{"role": "system", "content": f"You grade a telco customer-support answer. {rubric} "
             "Reply with JSON: an integer score from 1 to 5 and a one-sentence reason."},
            {"role": "user", "content": body}]


def judge(connection: Any, name: str, **fields: str | None) -> Judgement:
    """Run one judge through ``connection`` (any provider) at temperature 0."""
    response = connection.client.chat.completions.create(
        model=connection.model, messages=judge_messages(name, **fields), max_tokens=160, temperature=0,
        response_format=JUDGE_SCHEMA,
    )
    return parse_judgement(name, response.choices[0].message.content)


def judge_connection():
    """The judges' own connection: ``LLMOPS_JUDGE_PROVIDER`` / ``LLMOPS_JUDGE_MODEL``, else the app's provider."""
    from llmops_helpers.llm.client import connect

    return connect(os.environ.get("LLMOPS_JUDGE_PROVIDER") or None, model=os.environ.get("LLMOPS_JUDGE_MODEL") or None)


@dataclass(frozen=True)
class Agreement:
    """How often a judge orders pairs of answers the way a deterministic metric does."""

    judge: str
    metric: str
    margin: float
    pairs: int  # answer pairs whose metric differs by at least ``margin``
    agree: int  # the judge ranks the pair the same way
    disagree: int  # the judge ranks it the other way
    ties: int  # the judge gives both the same score: it cannot tell them apart

    @property
    def agreement_rate(self) -> float | None:
        return self.agree / self.pairs if self.pairs else None

    def __str__(self) -> str:
        if not self.pairs:
            return f"{self.judge} vs {self.metric}: no pair of answers differs by {self.margin} or more."
        return (f"{self.judge} vs {self.metric}: of {self.pairs} answer pairs where {self.metric} differs by "
                f"≥ {self.margin}, the judge agreed on {self.agree} ({self.agree / self.pairs:.0%}), disagreed on "
                f"{self.disagree} and could not tell {self.ties} apart.")


def judge_agreement(frame: Any, judge: str = "judge_groundedness", metric: str = "context_overlap",
                    margin: float = 0.1) -> Agreement:
    """Compare every pair of scored answers in ``frame`` (a table with a ``judge`` and a ``metric`` column, e.g.
    several runs' rows together): where the metric clearly prefers one answer, does the judge prefer it too?"""
    scored = frame.dropna(subset=[judge, metric])
    values = list(zip(scored[metric], scored[judge], strict=True))
    pairs = agree = disagree = ties = 0
    for i, (m1, j1) in enumerate(values):
        for m2, j2 in values[i + 1:]:
            if abs(m1 - m2) < margin:
                continue
            pairs += 1
            if j1 == j2:
                ties += 1
            elif (j1 > j2) == (m1 > m2):
                agree += 1
            else:
                disagree += 1
    return Agreement(judge, metric, margin, pairs, agree, disagree, ties)


def plot_judge_vs_metric(frame: Any, judge: str = "judge_groundedness", metric: str = "context_overlap",
                         by: str = "variant"):
    """Judge score (1–5) against a deterministic metric (0–1), one dot an answer, coloured by ``by``."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.5, 4))
    rng = np.random.default_rng(0)
    groups = frame.groupby(by) if by in frame.columns else [("answers", frame)]
    for name, group in groups:
        group = group.dropna(subset=[judge, metric])
        jitter = rng.uniform(-0.08, 0.08, len(group))  # so equal scores do not hide each other
        ax.scatter(group[metric], group[judge] + jitter, label=str(name), alpha=0.75, s=45)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0.5, 5.5)
    ax.set_xlabel(f"{metric} (deterministic, 0–1)")
    ax.set_ylabel(f"{judge} (LLM judge, 1–5)")
    ax.set_title("Does the judge see what the metric sees?")
    ax.legend()
    fig.tight_layout()
    return fig
