"""Responsible AI (Lab 04): guardrails (PII, injection, jailbreak and harm checks on the way in, the honesty check on
the way out, moderation), red-team scoring, abstention and the safety gate."""

from llmops_helpers._lazy import stage_exports

# the stage's names: every public name of these modules, loaded on first use
__getattr__, __dir__ = stage_exports(__name__, ("guardrails", "safety"))
