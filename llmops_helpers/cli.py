"""``llmops``: the command line over the same functions the notebooks call.

Each stage owns its commands (``<stage>/commands.py`` has a ``register(subparsers)``); this module only assembles
them, in the order of the course, and turns expected failures into one paragraph and an exit status."""

from __future__ import annotations

import argparse
import socket
import sys
import urllib.error

from llmops_helpers.errors import LLMOpsError
from llmops_helpers.llm.settings import redact_secrets

#: The stages that own commands, in course order; ``llmops --help`` lists their commands in this order.
COMMAND_STAGES = ("llm", "flow", "evaluate", "release", "responsible", "course")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="llmops", description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in COMMAND_STAGES:
        importlib.import_module(f"llmops_helpers.{stage}.commands").register(sub)
    # a command that checks other commands' use (check-workflows) gets the names from here, not by importing cli
    parser.set_defaults(llmops_commands=frozenset(sub.choices))
    return parser


def command_names() -> frozenset[str]:
    """Every ``llmops`` command, e.g. for :func:`llmops_helpers.release.workflows.check_workflows`."""
    return build_parser().get_default("llmops_commands")


def _known_failure(exc: BaseException) -> str | None:
    """One paragraph for a failure the kit expects (its own errors, the LLM API's, the network's); None for a
    bug, which keeps its traceback."""
    if isinstance(exc, LLMOpsError):
        return str(exc)
    openai = sys.modules.get("openai")  # loaded by any command that can raise its errors
    if openai is not None and isinstance(exc, openai.APIError):
        if getattr(exc, "llmops_explained", False):  # the kit's clients say which endpoint failed and what to check
            return str(exc)
        url = getattr(getattr(exc, "request", None), "url", "the LLM endpoint")
        return (f"The call to {url} failed ({type(exc).__name__}: {exc}). Check the provider's settings and that "
                "the endpoint is up with `llmops doctor`, then run the command again.")
    httpx2 = sys.modules.get("httpx2")
    network: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, socket.gaierror, urllib.error.URLError)
    if httpx2 is not None:
        network += (httpx2.TransportError,)
    if isinstance(exc, network) and not isinstance(exc, BrokenPipeError):
        return (f"A network call failed ({type(exc).__name__}: {exc}). Check that the server or endpoint this "
                "command talks to is running and reachable (if it is only slow, raise LLMOPS_TIMEOUT), then run "
                "the command again.")
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit status: 0 success; 1 the command's own check failed (a gate rule, errored evaluation
    rows, a smoke test...); 2 it could not run (a setting or input, the LLM endpoint, the network), explained in
    one paragraph on stderr without a traceback; 130 interrupted (Ctrl+C)."""
    from llmops_helpers.flow.pf_setup import configure_promptflow

    try:
        configure_promptflow()
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if getattr(args, "passthrough", None):
            setattr(args, args.passthrough, extra)
        elif extra:
            parser.error("unrecognized arguments: " + " ".join(extra))
        return args.func(args)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:
        message = _known_failure(exc)
        if message is None:
            raise
        print(f"error: {redact_secrets(message)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
