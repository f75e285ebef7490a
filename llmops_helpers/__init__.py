"""llmops_helpers: the library behind the LLMOps workshop notebooks.

One subpackage per stage of the course (``llm``, ``ideate``, ``flow``, ``evaluate``, ``release``, ``responsible``,
``operate``, ``course``; a stage imports only earlier ones): the notebooks and the ``llmops`` command call the same
functions. ``llmops_helpers/README.md`` maps each stage to its package and lab.
"""

from llmops_helpers.flow.pf_setup import configure_promptflow

configure_promptflow()  # before anything imports promptflow: quiet, offline, no background service

from llmops_helpers._lazy import lazy_names  # noqa: E402
from llmops_helpers.errors import (  # noqa: E402
    ConfigError,
    DatasetError,
    ExerciseNotDone,
    LLMOpsError,
    MissingCredentialError,
    ModelNotInstalledError,
    NotebookError,
)
from llmops_helpers.paths import kit_root  # noqa: E402

# What every notebook's first cell imports; loaded on first use: the openai client alone takes ~0.8 s to import,
# and most `llmops` commands (gate, compare, build, status, smoke, the endpoints' routers) never call a model.
_EXPORTS = {"LLMConnection": "llm.client", "connect": "llm.client", "use_provider": "llm.client",
            "CallRecord": "llm.metering", "Meter": "llm.metering", "default_meter": "llm.metering",
            "load_reference_answer": "course.labs", "notebook_setup": "course.notebook"}
__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)

__version__ = "0.1.0"
__all__ = [
    "CallRecord", "ConfigError", "DatasetError", "ExerciseNotDone",
    "LLMConnection", "LLMOpsError", "Meter", "MissingCredentialError", "ModelNotInstalledError",
    "NotebookError", "configure_promptflow", "connect", "default_meter", "kit_root", "load_reference_answer",
    "notebook_setup", "use_provider",
]
