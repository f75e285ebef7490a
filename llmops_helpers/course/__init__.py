"""The course itself: labs built from solutions, rehearsals, exercises, figures and notebook setup."""

from llmops_helpers._lazy import stage_exports

# the stage's names: every public name of these modules, loaded on first use
__getattr__, __dir__ = stage_exports(__name__, ("labs", "runner", "exercises", "figures", "notebook"))
