"""An evaluation flow for promptflow: one golden row plus the app's output in, scores out; ``__aggregate__``
averages them into run metrics. It reuses ``llmops_helpers.evaluate.evaluation.DEFAULT_EVALUATORS`` — the same
functions as ``llmops eval`` — so the two ways of evaluating cannot drift apart.

(No `from __future__ import annotations`: promptflow reads the real type annotations.)
"""

import statistics
from typing import TypedDict

from llmops_helpers.evaluate import DEFAULT_EVALUATORS, GoldenRow


class Scores(TypedDict):
    """One row's scores (promptflow needs a TypedDict here; add a key when you add an evaluator)."""

    exact_match: float
    token_f1: float
    key_fact_recall: float
    intent_accuracy: float
    recall_at_k: float
    context_overlap: float


class Evaluate:
    def __init__(self) -> None:  # promptflow inspects __init__; object's own has no __module__
        self.evaluators = DEFAULT_EVALUATORS

    def __call__(self, question: str, answer: str, context_ids: list, intent: str, ground_truth: str,
                 key_facts: list, expected_context_ids: list, expected_intent: str) -> Scores:
        row = GoldenRow("", question, ground_truth, tuple(expected_context_ids), expected_intent, "", "",
                        tuple(key_facts))
        output = {"answer": answer, "context_ids": context_ids, "intent": intent}
        return Scores(**{name: float(evaluator(row, output)) for name, evaluator in self.evaluators.items()})

    def __aggregate__(self, line_results: list) -> dict:
        scored = [r for r in line_results if isinstance(r, dict)]
        return {name: statistics.fmean(r[name] for r in scored) for name in self.evaluators if scored}
