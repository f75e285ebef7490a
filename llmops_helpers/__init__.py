"""llmops_helpers: the library behind the LLMOps workshop notebooks.

One module per stage of the journey; the notebooks and the ``llmops`` command call the same functions.
"""

from .pf_setup import configure_promptflow

configure_promptflow()  # before anything imports promptflow: quiet, offline, no background service

from .errors import (  # noqa: E402
    ConfigError,
    DatasetError,
    ExerciseNotDone,
    LLMOpsError,
    MissingCredentialError,
    ModelNotInstalledError,
    NotebookError,
)
from .paths import kit_root  # noqa: E402

# Imported on first use: the openai client alone takes ~0.8 s to import, and most `llmops` commands (gate,
# compare, build, status, smoke, the endpoints' routers) never call a model.
_LAZY = {"load_reference_answer": ".course", "LLMConnection": ".llm", "connect": ".llm", "CallRecord": ".metering",
         "Meter": ".metering", "default_meter": ".metering", "notebook_setup": ".notebook"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = [
    "CallRecord", "ConfigError", "DatasetError", "ExerciseNotDone",
    "LLMConnection", "LLMOpsError", "Meter", "MissingCredentialError", "ModelNotInstalledError",
    "NotebookError", "configure_promptflow", "connect", "default_meter", "kit_root", "load_reference_answer",
    "notebook_setup",
]
