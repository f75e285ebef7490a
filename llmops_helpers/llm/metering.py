"""Per-call records (latency, tokens, estimated cost, errors) and the price table behind the cost.

Every request made through a client from :func:`llmops_helpers.connect` lands in a :class:`Meter`; Lab 00
shows one record; Lab 07 (coming) will turn the stream of them into dashboards and alerts."""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

LOCAL_PROVIDER = "local"


@lru_cache(maxsize=1)
def price_table() -> dict[str, tuple[float, float]]:
    """USD per million (input, output) tokens by model name, from ``prices.json``."""
    raw = json.loads(resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8"))
    return {k: (float(v[0]), float(v[1])) for k, v in raw.items() if not k.startswith("_")}


def lookup_price(model: str | None) -> tuple[float, float] | None:
    """Price for ``model`` by exact name, else the longest matching prefix, else ``None`` (unknown)."""
    if not model:
        return None
    table = price_table()
    name = model.lower().rsplit("/", 1)[-1]
    if name in table:
        return table[name]
    prefixes = [key for key in table if name.startswith(key)]
    return table[max(prefixes, key=len)] if prefixes else None


#: A named hosted model whose list price (``prices.json``) the labs show beside the embedded model's $0: the same
#: tokens cost money on a service. Token counts come from the model that ran, so the figure is an estimate.
SHADOW_MODEL = "gpt-4o-mini"
SHADOW_COLUMN = f"same tokens on {SHADOW_MODEL} (USD)"


def shadow_cost(prompt_tokens: int | float | None, completion_tokens: int | float | None,
                model: str = SHADOW_MODEL) -> float | None:
    """What ``prompt_tokens`` in and ``completion_tokens`` out would cost on the hosted ``model`` at its list price
    (``None`` when a count or the price is unknown): the embedded model is free, and this says what it saves."""
    if prompt_tokens is None or prompt_tokens != prompt_tokens:  # None or NaN (a pandas column's missing value)
        return None
    completion = completion_tokens if completion_tokens == completion_tokens else 0  # NaN: unknown, count none
    return _list_price(model, prompt_tokens, completion)


def estimate_cost(
    provider: str, model: str | None, prompt_tokens: int | None, completion_tokens: int | None
) -> float | None:
    """Estimated USD for one call; 0 for the local model, ``None`` when tokens or the price are unknown."""
    if provider == LOCAL_PROVIDER:
        return 0.0
    return _list_price(model, prompt_tokens, completion_tokens)


def _list_price(model: str | None, prompt_tokens: float | None, completion_tokens: float | None) -> float | None:
    """USD for these tokens at ``model``'s list price; None when the price or the prompt count is unknown."""
    price = lookup_price(model)
    if price is None or prompt_tokens is None:
        return None
    return (prompt_tokens * price[0] + (completion_tokens or 0) * price[1]) / 1_000_000


@dataclass
class CallRecord:
    """One request to an LLM endpoint, as the kit measured it."""

    started_at: float
    provider: str
    model: str | None
    endpoint: str
    operation: str
    latency_s: float | None = None
    first_token_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    retries: int = 0
    error: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Meter:
    """A bounded, thread-safe list of :class:`CallRecord`; optionally appended to a JSONL file
    (``LLMOPS_CALL_LOG``) so pipelines and monitoring can read it later. Records hold no secrets."""

    def __init__(self, maxlen: int = 10_000, log_path: str | os.PathLike | None = None):
        self._records: deque[CallRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        env_path = os.environ.get("LLMOPS_CALL_LOG")
        self.log_path = Path(log_path) if log_path else Path(env_path) if env_path else None

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)

    def finish(self, record: CallRecord) -> None:
        """Called when a record is complete (streams finish later than they start)."""
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record.to_dict()) + "\n")

    @property
    def records(self) -> list[CallRecord]:
        with self._lock:
            return list(self._records)

    def last(self) -> CallRecord:
        with self._lock:
            if not self._records:
                raise LookupError("No LLM call has been recorded yet: make a request first.")
            return self._records[-1]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)

    def to_frame(self):
        """All records as a pandas DataFrame (one row a call)."""
        import pandas as pd

        return pd.DataFrame([r.to_dict() for r in self.records])

    def summary(self) -> dict[str, Any]:
        """Calls, errors, tokens, cost and latency percentiles over the records so far."""
        return summarize(self.records)


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` from 0 to 1) of ``values``; ``None`` when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def summarize(records: Iterable[CallRecord]) -> dict[str, Any]:
    records = list(records)
    latencies = [r.latency_s for r in records if r.latency_s is not None and r.ok]
    costs = [r.cost_usd for r in records if r.cost_usd is not None]

    return {
        "calls": len(records),
        "errors": sum(not r.ok for r in records),
        "prompt_tokens": sum(r.prompt_tokens or 0 for r in records),
        "completion_tokens": sum(r.completion_tokens or 0 for r in records),
        "cost_usd": sum(costs) if costs else None,
        "latency_p50_s": percentile(latencies, 0.5),
        "latency_p95_s": percentile(latencies, 0.95),
    }


_default_meter = Meter()


def default_meter() -> Meter:
    """The meter that :func:`llmops_helpers.connect` uses unless given another."""
    return _default_meter
