"""Ideation and prompt engineering (Lab 01). The prompt playground and variant runs, prompty files, the help-centre
articles prompts are grounded on, and the table style the labs show results in."""

from llmops_helpers._lazy import stage_exports

# the stage's names: every public name of these modules, loaded on first use
__getattr__, __dir__ = stage_exports(__name__, ("prompt_lab", "prompts", "knowledge", "tables"))
