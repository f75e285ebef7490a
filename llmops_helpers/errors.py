"""One base error for the kit, with specific subclasses whose messages say what happened,
where, and what to do next (modelled on papermill's exceptions)."""

from __future__ import annotations


class LLMOpsError(Exception):
    """Base class of every error the kit raises on purpose."""


class ConfigError(LLMOpsError):
    """A setting (environment variable, .env entry or parameter) is missing or wrong."""


class MissingCredentialError(ConfigError):
    """A provider was chosen but one or more of its variables are not set."""

    def __init__(self, provider: str, missing: list[str], how: str):
        self.provider = provider
        self.missing = list(missing)
        names = ", ".join(missing)
        super().__init__(
            f"The '{provider}' provider needs {names}, which {'is' if len(missing) == 1 else 'are'} not set. "
            f"{how} Put the values in a .env file at the kit's root (copy .env.example; .env is git-ignored) "
            "or export them in the shell that starts Jupyter, then restart the kernel. "
            "To stay offline instead, use provider='local'."
        )


class ModelNotInstalledError(LLMOpsError):
    """The embedded model's package is not installed."""


class DatasetError(LLMOpsError):
    """A data file has a bad row; the message names the file, row and field."""

    def __init__(self, path: str, row: int | None, field: str | None, problem: str, fix: str = ""):
        self.path, self.row, self.field, self.problem = path, row, field, problem
        where = path + (f", row {row}" if row is not None else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {problem}." + (f" {fix}" if fix else ""))


class NotebookError(LLMOpsError):
    """A notebook is malformed, out of date, or failed to execute."""


class ExerciseNotDone(LLMOpsError):
    """An exercise check found a missing or wrong answer; the message is a hint, not a stack trace."""
