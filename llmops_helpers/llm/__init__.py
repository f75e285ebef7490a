"""The LLM itself (Lab 00 and every lab). Connect to the embedded model or a hosted
provider with the official ``openai`` client (``connect``, ``use_provider``), settings and secrets, token and
cost metering, the embedded model's server, the benchmark, and the environment report and pre-flight (Lab 00).
"""

from llmops_helpers._lazy import lazy_exports

_EXPORTS = {
    # bench
    "bench_dict": "bench",
    "BENCH_MESSAGES": "bench",
    "BenchResult": "bench",
    "run_bench": "bench",
    # client
    "connect": "client",
    "LLMConnection": "client",
    "MeteredAzureOpenAI": "client",
    "MeteredOpenAI": "client",
    "RETRYABLE_STATUS": "client",
    "use_provider": "client",
    # deadline
    "DeadlineHttpClient": "deadline",
    "timeout_budget": "deadline",
    # doctor
    "CORE_PACKAGES": "doctor",
    "environment_report": "doctor",
    "package_versions": "doctor",
    "Preflight": "doctor",
    "preflight": "doctor",
    "PREFLIGHT_PROMPT": "doctor",
    "provider_variables": "doctor",
    # local
    "BASE_URL_VARIABLE": "local",
    "default_threads": "local",
    "INSTALL_COMMAND": "local",
    "LocalModelServer": "local",
    "MODEL_FILE": "local",
    "MODEL_PACKAGE": "local",
    "MODEL_PACKAGE_VERSION": "local",
    "model_path": "local",
    "shared_server": "local",
    "start_server": "local",
    "START_TIMEOUT_S": "local",
    "stop_shared_server": "local",
    # metering
    "CallRecord": "metering",
    "default_meter": "metering",
    "estimate_cost": "metering",
    "LOCAL_PROVIDER": "metering",
    "lookup_price": "metering",
    "Meter": "metering",
    "percentile": "metering",
    "price_table": "metering",
    "SHADOW_COLUMN": "metering",
    "shadow_cost": "metering",
    "SHADOW_MODEL": "metering",
    "summarize": "metering",
    # settings
    "DEFAULT_AZURE_API_VERSION": "settings",
    "install_log_redaction": "settings",
    "LOCAL_MODEL_NAME": "settings",
    "PROVIDER_VARIABLES": "settings",
    "PROVIDERS": "settings",
    "ProviderSettings": "settings",
    "read_environment": "settings",
    "redact_secrets": "settings",
    "RedactingFilter": "settings",
    "resolve_settings": "settings",
    "Secret": "settings",
    "SECRET_VARIABLES": "settings",
    "whole_number_setting": "settings",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
