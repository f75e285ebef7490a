"""The app as a real prompt flow (Lab 02). Loading the sample app (its folder, entry module, the flow at a git ref and
its digest), promptflow batch runs, flow lint, promptflow's offline setup, BM25 retrieval and its versioned index."""

from llmops_helpers._lazy import stage_exports

# the stage's names: every public name of these modules, loaded on first use
__getattr__, __dir__ = stage_exports(__name__, ("app", "batch", "retrieval", "index", "intent", "lint", "pf_setup"))
