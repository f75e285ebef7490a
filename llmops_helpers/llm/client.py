"""The provider layer: :func:`connect` hands out a real ``openai.OpenAI`` (or ``openai.AzureOpenAI``)
client for the chosen provider. Learners use that object's normal API; the kit only listens in, recording
every call in a :class:`~llmops_helpers.llm.metering.Meter` and rewriting final errors so they say which endpoint
failed and what to check. Retries are the ``openai`` client's own bounded exponential backoff
(timeouts, connection errors, 408/409/429/5xx). Each HTTP request must finish within ``LLMOPS_TIMEOUT`` seconds
in total, body and stream included (see :mod:`llmops_helpers.llm.deadline`)."""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from llmops_helpers.llm import local as local_llm
from llmops_helpers.llm.deadline import DeadlineHttpClient, timeout_budget
from llmops_helpers.llm.metering import CallRecord, Meter, default_meter, estimate_cost
from llmops_helpers.llm.settings import ProviderSettings, resolve_settings

log = logging.getLogger(__name__)
_LOCAL_PLACEHOLDER_KEY = "local-no-key"
RETRYABLE_STATUS = {408, 409, 429}


class _MeteredMixin:
    """Wraps ``SyncAPIClient.request``: one :class:`CallRecord` per logical call (retries included)."""

    _llmops_meter: Meter
    _llmops_provider: str
    _llmops_hint: str

    def __init__(self, *args: Any, http_client: Any = None, **kwargs: Any) -> None:
        if http_client is None:  # a total deadline per request: httpx alone bounds only each wait
            http_client = DeadlineHttpClient(timeout=kwargs.get("timeout", openai.DEFAULT_TIMEOUT))
        super().__init__(*args, http_client=http_client, **kwargs)  # type: ignore[call-arg]

    def _llmops_init(self, meter: Meter, provider: str, hint: str) -> None:
        self._llmops_meter, self._llmops_provider, self._llmops_hint = meter, provider, hint
        self._llmops_retries = threading.local()

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        """``client.with_options(...)`` and ``client.copy(...)`` keep recording into the same meter."""
        new = super().copy(*args, **kwargs)  # type: ignore[misc]
        new._llmops_init(self._llmops_meter, self._llmops_provider, self._llmops_hint)
        return new

    with_options = copy

    def _sleep_for_retry(self, *args: Any, **kwargs: Any) -> None:  # counts the openai client's own retries
        self._llmops_retries.count = getattr(self._llmops_retries, "count", 0) + 1
        super()._sleep_for_retry(*args, **kwargs)  # type: ignore[misc]

    def request(self, cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None) -> Any:
        body = options.json_data if isinstance(getattr(options, "json_data", None), dict) else {}
        record = CallRecord(
            started_at=time.time(), provider=self._llmops_provider, model=body.get("model"),
            endpoint=str(self.base_url).rstrip("/"), operation=str(options.url).strip("/"),  # type: ignore[attr-defined]
        )
        self._llmops_retries.count = 0
        meter = self._llmops_meter
        meter.add(record)
        given = getattr(options, "timeout", None)
        budget = timeout_budget(given if isinstance(given, (int, float, openai.Timeout)) else self.timeout)  # type: ignore[attr-defined]

        def explain(exc: openai.APIError) -> None:
            _explain(exc, record, self._llmops_hint, budget)

        started = time.perf_counter()
        try:
            result = super().request(cast_to, options, stream=stream, stream_cls=stream_cls)  # type: ignore[misc]
        except openai.APIError as exc:
            record.latency_s = time.perf_counter() - started
            record.retries = self._llmops_retries.count
            record.error = f"{type(exc).__name__}: {_status_of(exc) or exc.message}"
            meter.finish(record)
            explain(exc)
            raise
        record.retries = self._llmops_retries.count
        if stream and hasattr(result, "_iterator"):
            result._iterator = _observe_stream(result._iterator, record, started, meter, explain)
            return result
        record.latency_s = time.perf_counter() - started
        _take_usage(record, result)
        meter.finish(record)
        return result


def _status_of(exc: openai.APIError) -> str | None:
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}" if status else None


def _take_usage(record: CallRecord, result: Any) -> None:
    record.model = getattr(result, "model", None) or record.model
    usage = getattr(result, "usage", None)
    if usage is not None:
        record.prompt_tokens = getattr(usage, "prompt_tokens", None) or getattr(usage, "input_tokens", None)
        record.completion_tokens = getattr(usage, "completion_tokens", None)
        if record.completion_tokens is None:
            record.completion_tokens = getattr(usage, "output_tokens", None)
        record.total_tokens = getattr(usage, "total_tokens", None)
    record.cost_usd = estimate_cost(record.provider, record.model, record.prompt_tokens, record.completion_tokens)


def _observe_stream(iterator: Any, record: CallRecord, started: float, meter: Meter,
                    explain: Callable[[openai.APIError], None]):
    """Passes chunks through, noting time to first chunk and usage (sent when the request sets
    ``stream_options={"include_usage": True}``); completes the record when the stream ends, and explains a
    failure mid-stream like one before it."""
    try:
        for chunk in iterator:
            if record.first_token_s is None:
                record.first_token_s = time.perf_counter() - started
            if getattr(chunk, "usage", None) is not None:
                _take_usage(record, chunk)
            yield chunk
    except openai.APIError as exc:
        record.error = f"{type(exc).__name__}: {_status_of(exc) or exc.message}"
        explain(exc)
        raise
    finally:
        record.latency_s = time.perf_counter() - started
        if record.cost_usd is None:
            record.cost_usd = estimate_cost(
                record.provider, record.model, record.prompt_tokens, record.completion_tokens
            )
        meter.finish(record)


def _explain(exc: openai.APIError, record: CallRecord, hint: str, budget: float | None = None) -> None:
    """Rewrite the message of ``exc`` in place (its type stays, so ``except openai.X`` still works)."""
    status = getattr(exc, "status_code", None)
    where = f"The LLM endpoint {record.endpoint} ({record.provider}, model {record.model!r})"
    tries = f" after {record.retries + 1} attempt{'s' if record.retries else ''}"
    if isinstance(exc, openai.APITimeoutError):
        within = f"did not finish answering within {budget:g} s" if budget else "timed out"
        text = (f"{where} {within}{tries}: LLMOPS_TIMEOUT bounds each request in total (connecting, waiting and "
                f"reading the whole answer, streamed or not). {hint} A slow model may need a larger LLMOPS_TIMEOUT "
                "(seconds); a server that stalls or trickles its answer needs a restart or a fix.")
    elif isinstance(exc, openai.APIConnectionError) and record.first_token_s is not None:
        text = f"{where} dropped the connection in the middle of a streamed answer. {hint}"
    elif isinstance(exc, openai.APIConnectionError):
        text = f"{where} could not be reached{tries}. {hint}"
    elif status in (401, 403):
        text = f"{where} refused the credentials (HTTP {status}). {hint}"
    elif status == 404:
        text = f"{where} answered 404: the model or deployment name is probably wrong. {hint}"
    elif status in RETRYABLE_STATUS or (status or 0) >= 500:
        text = f"{where} kept failing with HTTP {status}{tries}. {hint} Retry later or lower the request rate."
    else:
        text = f"{where} rejected the request (HTTP {status})."
    original = exc.message
    exc.message = f"{text} Server said: {original}" if original and status else text
    exc.args = (exc.message,)
    exc.llmops_explained = True  # type: ignore[attr-defined]  # `llmops` prints it as it is


class MeteredOpenAI(_MeteredMixin, openai.OpenAI):
    """``openai.OpenAI`` that records every call. Use it exactly like ``openai.OpenAI``."""


class MeteredAzureOpenAI(_MeteredMixin, openai.AzureOpenAI):
    """``openai.AzureOpenAI`` that records every call."""


@dataclass
class LLMConnection:
    """What :func:`connect` returns: the client to use, the model name to pass, and the meter."""

    provider: str
    model: str
    base_url: str
    client: openai.OpenAI = field(repr=False)
    meter: Meter = field(repr=False)
    settings: ProviderSettings = field(repr=False)

    def __repr__(self) -> str:
        return f"LLMConnection(provider={self.provider!r}, model={self.model!r}, endpoint={self.base_url!r})"


_HINTS = {
    "local": "Check the embedded model server is running: restart the kernel to start a new one, or if you "
    "set LLMOPS_LOCAL_BASE_URL, check `llmops serve-model` is still running there.",
    "openai": "Check OPENAI_BASE_URL (if set) points at a running server, OPENAI_API_KEY is valid, and the "
    "network allows the call.",
    "azure": "Check AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY, AZURE_OPENAI_DEPLOYMENT and "
    "AZURE_OPENAI_API_VERSION, and that the network allows the call.",
}


def _reachable(base_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout):
            return True
    except urllib.error.HTTPError:  # something answered
        return True
    except (OSError, ValueError):
        return False


def connect(
    provider: str | None = None,
    *,
    model: str | None = None,
    meter: Meter | None = None,
    settings: ProviderSettings | None = None,
) -> LLMConnection:
    """Connect to an LLM: ``provider`` (``local``, ``openai`` or ``azure``) or ``LLMOPS_PROVIDER`` or ``local``.

    For ``local`` this starts the embedded model on first use (well under a second) and reuses it after.
    """
    settings = settings or resolve_settings(provider, model=model)
    meter = meter if meter is not None else default_meter()
    hint = _HINTS[settings.provider]
    common = dict(timeout=settings.timeout, max_retries=settings.max_retries)
    if settings.provider == "local":
        base_url = settings.base_url
        if base_url and not _reachable(base_url):
            log.warning("LLMOPS_LOCAL_BASE_URL=%s does not answer; starting the embedded model instead.", base_url)
            base_url = None
        base_url = base_url or local_llm.shared_server().base_url
        client: openai.OpenAI = MeteredOpenAI(api_key=_LOCAL_PLACEHOLDER_KEY, base_url=base_url, **common)
    elif settings.provider == "openai":
        assert settings.api_key is not None
        client = MeteredOpenAI(api_key=settings.api_key.reveal(), base_url=settings.base_url, **common)
    else:
        assert settings.api_key is not None and settings.base_url is not None
        client = MeteredAzureOpenAI(
            api_key=settings.api_key.reveal(), azure_endpoint=settings.base_url,
            api_version=settings.api_version, **common,
        )
    client._llmops_init(meter, settings.provider, hint)  # type: ignore[attr-defined]
    return LLMConnection(settings.provider, settings.model, str(client.base_url).rstrip("/"), client, meter, settings)


def use_provider(provider: str | None):
    """Make ``provider`` the one this process *and the flow's worker processes* use (``LLMOPS_PROVIDER``),
    and connect to it (for ``local`` this starts the embedded model that the workers then share)."""
    if provider:
        os.environ["LLMOPS_PROVIDER"] = provider
    return connect(provider)
