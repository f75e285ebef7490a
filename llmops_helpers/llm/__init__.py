"""The LLM itself (Lab 00 and every lab). Connect to the embedded model or a hosted provider with the official
``openai`` client (``connect``, ``use_provider``), settings and secrets, token and cost metering, the embedded
model's server, the benchmark, and the environment report and pre-flight (Lab 00)."""

from llmops_helpers._lazy import stage_exports

# the stage's names: every public name of these modules, loaded on first use
__getattr__, __dir__ = stage_exports(
    __name__, ("client", "settings", "metering", "local", "deadline", "bench", "doctor"))
