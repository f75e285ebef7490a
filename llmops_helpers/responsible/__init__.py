"""Augmenting (RAG) and responsible AI: Lab 04 (coming) fills this stage."""

from llmops_helpers._lazy import stage_exports

# the stage's names: every public name of these modules, loaded on first use
__getattr__, __dir__ = stage_exports(__name__, ("guardrails", "safety"))
