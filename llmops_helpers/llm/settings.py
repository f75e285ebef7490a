"""Provider settings: which LLM endpoint the kit talks to, read from parameters, the environment
or a ``.env`` file, with secrets that never show up in a repr, a log line or a notebook output."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from llmops_helpers.errors import ConfigError, MissingCredentialError
from llmops_helpers.paths import kit_root

PROVIDERS = ("local", "openai", "azure")
LOCAL_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_AZURE_API_VERSION = "2024-10-21"

#: The variables each provider reads; shown to learners in Lab 00 (names only, never values).
PROVIDER_VARIABLES: dict[str, dict[str, str]] = {
    "local": {
        "LLMOPS_LOCAL_BASE_URL": "optional: reuse a server from `llmops serve-model` (else one starts in-process)",
        "LLMOPS_LOCAL_THREADS": "optional: model CPU threads (default: 2 of 2 cores, else cores - 1, at most 4)",
    },
    "openai": {
        "OPENAI_API_KEY": "required: your key (any placeholder for a local server that needs none)",
        "OPENAI_BASE_URL": "optional: any OpenAI-compatible endpoint (Ollama, vLLM, LM Studio, ...)",
        "LLMOPS_MODEL": "optional: model name (default gpt-4o-mini)",
    },
    "azure": {
        "AZURE_OPENAI_ENDPOINT": "required: https://<resource>.openai.azure.com",
        "AZURE_OPENAI_API_KEY": "required: the resource's key",
        "AZURE_OPENAI_DEPLOYMENT": "required: the deployment name (used as the model)",
        "AZURE_OPENAI_API_VERSION": f"optional: default {DEFAULT_AZURE_API_VERSION}",
    },
}


class Secret:
    """Holds a secret value; its repr and str are redacted. Call ``reveal()`` only where the value is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True)
class ProviderSettings:
    """Everything needed to build an ``openai`` client for one provider."""

    provider: str
    model: str
    base_url: str | None = None
    api_key: Secret | None = field(default=None, repr=True)
    api_version: str | None = None
    timeout: float = 60.0
    max_retries: int = 3

    def describe(self) -> dict[str, str]:
        """A display-safe summary: the key shows only whether it is set."""
        return {
            "provider": self.provider,
            "model": self.model,
            "endpoint": self.base_url or ("embedded (starts on first use)" if self.provider == "local" else "default"),
            "api key": "set" if self.api_key else "not needed" if self.provider == "local" else "not set",
        }


def read_environment(env: Mapping[str, str] | None = None, dotenv_path: Path | None = None) -> dict[str, str]:
    """The process environment layered over the kit's ``.env`` file (the environment wins)."""
    merged: dict[str, str] = {}
    path = dotenv_path if dotenv_path is not None else kit_root() / ".env"
    if path.is_file():
        merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(os.environ if env is None else env)
    return merged


def _int_or_float(value: str, name: str, kind: type) -> float | int:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number. Set it to a number or unset it.") from None


def whole_number_setting(name: str, unit: str, advice: str) -> int | None:
    """The whole number (1 or more) in environment variable ``name``, or None when it is unset or blank; anything
    else is a :class:`ConfigError` that names the variable, the value and what to do (``advice``)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r} is not a whole number of {unit}. {advice}")
    return int(raw)


def resolve_settings(
    provider: str | None = None,
    *,
    model: str | None = None,
    env: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> ProviderSettings:
    """Decide the provider and its settings: the argument, else ``LLMOPS_PROVIDER``, else ``local``.

    Raises :class:`MissingCredentialError` naming every missing variable at once.
    """
    values = read_environment(env, dotenv_path)
    chosen = (provider or values.get("LLMOPS_PROVIDER") or "local").strip().lower()
    if chosen not in PROVIDERS:
        raise ConfigError(
            f"Unknown provider {chosen!r}. Choose one of {', '.join(PROVIDERS)} "
            "(the notebook's `provider` parameter or the LLMOPS_PROVIDER variable)."
        )
    timeout = float(_int_or_float(values.get("LLMOPS_TIMEOUT", "60"), "LLMOPS_TIMEOUT", float))
    retries = int(_int_or_float(values.get("LLMOPS_MAX_RETRIES", "3"), "LLMOPS_MAX_RETRIES", int))
    common = dict(timeout=timeout, max_retries=retries)

    if chosen == "local":
        return ProviderSettings(
            "local", model or values.get("LLMOPS_LOCAL_MODEL") or LOCAL_MODEL_NAME,
            base_url=values.get("LLMOPS_LOCAL_BASE_URL") or None, **common,
        )
    if chosen == "openai":
        if not values.get("OPENAI_API_KEY"):
            raise MissingCredentialError(
                "openai", ["OPENAI_API_KEY"],
                "Set OPENAI_API_KEY to your key (for an OpenAI-compatible server that needs no key, "
                "any placeholder such as 'none' will do, with OPENAI_BASE_URL pointing at it).",
            )
        return ProviderSettings(
            "openai", model or values.get("LLMOPS_MODEL") or "gpt-4o-mini",
            base_url=values.get("OPENAI_BASE_URL") or None, api_key=Secret(values["OPENAI_API_KEY"]), **common,
        )
    required = ["AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY"] + ([] if model else ["AZURE_OPENAI_DEPLOYMENT"])
    missing = [name for name in required if not values.get(name)]
    if missing:
        raise MissingCredentialError(
            "azure", missing,
            "Find the endpoint and key under 'Keys and Endpoint' of your Azure OpenAI resource, and the "
            "deployment name under its model deployments.",
        )
    return ProviderSettings(
        "azure", model or values["AZURE_OPENAI_DEPLOYMENT"],
        base_url=values["AZURE_OPENAI_ENDPOINT"], api_key=Secret(values["AZURE_OPENAI_API_KEY"]),
        api_version=values.get("AZURE_OPENAI_API_VERSION") or DEFAULT_AZURE_API_VERSION, **common,
    )


class RedactingFilter(logging.Filter):
    """Replaces known secret values in log records with ``***``."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def redact(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


SECRET_VARIABLES = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")


def _configured_secrets(values: Mapping[str, str]) -> RedactingFilter:
    """A filter for the API keys among ``values`` (the environment and ``.env``)."""
    return RedactingFilter([values.get(name) or "" for name in SECRET_VARIABLES])


def install_log_redaction(env: Mapping[str, str] | None = None) -> RedactingFilter:
    """Attach a :class:`RedactingFilter` for the configured keys to the root logger's handlers."""
    flt = _configured_secrets(read_environment(env))
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)
    return flt


def redact_secrets(text: str) -> str:
    """``text`` without the configured API keys: an error may quote a request or a server's reply."""
    try:
        values = read_environment()
    except Exception:  # an unreadable .env must not hide the error being reported
        values = dict(os.environ)
    return _configured_secrets(values).redact(text)
