"""Branching, CI/CD and deployment (Labs 05-06). Artifacts, deployments on 127.0.0.1 (state, rollouts, endpoints,
checks), retrieval index releases (validate, switch, rollback), the router and slot servers, the local pipeline
runner, workflow checks and the git sandbox."""

from llmops_helpers._lazy import stage_exports

# the stage's names: every public name of these modules, loaded on first use
__getattr__, __dir__ = stage_exports(__name__, (
    "artifacts", "state", "endpoints", "checks", "rollouts", "indexes", "router", "serving", "httpjson", "pipeline",
    "workflows", "sandbox"))
