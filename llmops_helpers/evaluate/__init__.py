"""Evaluation on a golden dataset (Lab 03). Golden rows, metrics, LLM judges, evaluation runs, the quality gate and the
comparison of two runs (the PR report)."""

from llmops_helpers._lazy import stage_exports

# the stage's names: every public name of these modules, loaded on first use
__getattr__, __dir__ = stage_exports(
    __name__, ("golden", "evaluation", "report", "metrics", "ranking", "routing", "judges", "gate", "compare", "files"))
