"""llmops_helpers: the library behind the LLMOps workshop notebooks.

One module per stage of the journey; the notebooks and the ``llmops`` command call the same functions.
"""

from .pf_setup import configure_promptflow

configure_promptflow()  # before anything imports promptflow: quiet, offline, no background service

from .course import load_reference_answer  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    DatasetError,
    ExerciseNotDone,
    LLMOpsError,
    MissingCredentialError,
    ModelNotInstalledError,
    NotebookError,
)
from .llm import LLMConnection, connect  # noqa: E402
from .metering import CallRecord, Meter, default_meter  # noqa: E402
from .notebook import notebook_setup  # noqa: E402
from .paths import kit_root  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "CallRecord", "ConfigError", "DatasetError", "ExerciseNotDone",
    "LLMConnection", "LLMOpsError", "Meter", "MissingCredentialError", "ModelNotInstalledError",
    "NotebookError", "configure_promptflow", "connect", "default_meter", "kit_root", "load_reference_answer",
    "notebook_setup",
]
