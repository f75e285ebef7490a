"""The app as a real prompt flow (Lab 02). Loading the sample app (its folder, entry module, the flow at a
git ref and its digest), promptflow batch runs, flow lint, promptflow's offline setup, and BM25 retrieval.
"""

from llmops_helpers._lazy import lazy_exports

_EXPORTS = {
    # app
    "files_digest": "app",
    "flow_at_ref": "app",
    "flow_digest": "app",
    "import_flow_entry": "app",
    "in_git": "app",
    "load_flow_module": "app",
    "matches_any": "app",
    "run_git": "app",
    "SCRATCH": "app",
    "SECRET_NAMES": "app",
    "support_agent_dir": "app",
    # batch
    "EVAL_COLUMNS": "batch",
    "evaluate_run": "batch",
    "flatten_details": "batch",
    "plot_step_timings": "batch",
    "QUIET_LOGGERS": "batch",
    "read_jsonl": "batch",
    "run_batch": "batch",
    "run_summary": "batch",
    "side_by_side": "batch",
    "write_jsonl": "batch",
    # lint
    "lint_flow": "lint",
    "SAMPLE_INPUTS": "lint",
    # pf_setup
    "configure_promptflow": "pf_setup",
    "PF_CONFIG": "pf_setup",
    "PF_SERVICE_PORT": "pf_setup",
    "QUIET_VARIABLES": "pf_setup",
    "service_running": "pf_setup",
    "skip_slow_iri_checker": "pf_setup",
    # retrieval
    "BM25Retriever": "retrieval",
    "CHAT_FILLER": "retrieval",
    "EU_EEA": "retrieval",
    "get_retriever": "retrieval",
    "GLOSSARY": "retrieval",
    "Hit": "retrieval",
    "NEGATIONS": "retrieval",
    "stopwords": "retrieval",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
