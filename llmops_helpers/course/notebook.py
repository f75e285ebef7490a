"""What a notebook calls to set itself up (quiet promptflow, redacted logs, short errors) and to run an `llmops`
command as a learner would type it."""

from __future__ import annotations

import sys
from typing import Any

from llmops_helpers.errors import LLMOpsError
from llmops_helpers.flow.pf_setup import configure_promptflow
from llmops_helpers.llm.settings import install_log_redaction


def _short_errors(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> None:
    shell.showtraceback((etype, value, tb), exception_only=True)


def notebook_setup(short_errors: bool = True) -> None:
    """Prepare a notebook kernel: quiet offline promptflow, secrets redacted from logs, and the kit's own
    errors (and ``openai`` API errors, whose messages the kit rewrites to say what to check) shown as one
    readable paragraph instead of a stack trace. They still fail the cell; ``%tb`` shows the full trace."""
    configure_promptflow()
    install_log_redaction()
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and short_errors:
        import openai

        shell.set_custom_exc((LLMOpsError, openai.APIError), _short_errors)


def run_llmops(*args: str) -> int:
    """Run ``llmops <args>`` as a pipeline would (same interpreter, in the kit's folder), print what it prints,
    and return its exit code: the number CI acts on."""
    import subprocess

    from llmops_helpers.paths import kit_root

    print("$ llmops " + " ".join(args))
    result = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", *args], cwd=kit_root(),
                            capture_output=True, text=True, check=False)
    print((result.stdout + result.stderr).rstrip())
    print(f"→ exit code {result.returncode}")
    return result.returncode
