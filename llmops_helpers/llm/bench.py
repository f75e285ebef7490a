"""``llmops bench``: how fast the embedded model is here, and what the kit's metering costs on top of raw
``openai`` calls. A benchmark to run and record, not a timed test."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import openai

from llmops_helpers.llm import local as local_llm
from llmops_helpers.llm.client import connect
from llmops_helpers.llm.metering import Meter
from llmops_helpers.llm.settings import LOCAL_MODEL_NAME, ProviderSettings

BENCH_MESSAGES = [
    {"role": "system", "content": "You are a helpful customer-support agent for a mobile network operator."},
    {"role": "user", "content": "My roaming does not work in Spain. What should I check first?"},
]


@dataclass
class BenchResult:
    requests: int
    max_tokens: int
    cold_start_s: float
    cold_first_answer_s: float
    prompt_tokens_per_s: float
    generation_tokens_per_s: float
    first_token_s: float
    raw_median_s: float
    kit_median_s: float
    overhead_ratio: float

    def as_table(self) -> str:
        rows = [
            ("requests (each client)", f"{self.requests} x {self.max_tokens} max tokens, temperature 0"),
            ("cold start: server up", f"{self.cold_start_s:.2f} s"),
            ("cold start: first answer", f"{self.cold_first_answer_s:.2f} s"),
            ("prompt processing", f"{self.prompt_tokens_per_s:.0f} tok/s"),
            ("generation", f"{self.generation_tokens_per_s:.0f} tok/s"),
            ("first-token latency (stream)", f"{self.first_token_s * 1000:.0f} ms"),
            ("raw openai client, median", f"{self.raw_median_s * 1000:.0f} ms"),
            ("kit client, median", f"{self.kit_median_s * 1000:.0f} ms"),
            ("overhead ratio kit/raw", f"{self.overhead_ratio:.3f}"),
        ]
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run_bench(requests: int = 10, max_tokens: int = 48, progress: bool = True) -> BenchResult:
    """Start a fresh embedded server, then alternate identical requests between a raw ``openai.OpenAI`` and
    the kit's metered client (so drift in machine load hits both), and compare medians."""
    from tqdm.auto import tqdm

    started = time.perf_counter()
    server = local_llm.start_server()
    up = time.perf_counter() - started
    raw = openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=3, timeout=60)
    kit = connect(settings=ProviderSettings("local", LOCAL_MODEL_NAME, base_url=server.base_url), meter=Meter())
    args = dict(model=LOCAL_MODEL_NAME, messages=BENCH_MESSAGES, max_tokens=max_tokens, temperature=0)
    try:
        raw.chat.completions.create(**args)
        first_answer = time.perf_counter() - started
        kit.client.chat.completions.create(**args)  # warm both paths
        raw_times, kit_times, prompt_rates, gen_rates = [], [], [], []
        for i in tqdm(range(requests), desc="bench", unit="pair", disable=not progress):
            order = [("raw", raw), ("kit", kit.client)] if i % 2 == 0 else [("kit", kit.client), ("raw", raw)]
            for name, client in order:
                t0 = time.perf_counter()
                response = client.chat.completions.create(**args)
                (raw_times if name == "raw" else kit_times).append(time.perf_counter() - t0)
                timings = (response.model_extra or {}).get("timings", {})
                prompt_rates.append(timings.get("prompt_per_second", 0.0))
                gen_rates.append(timings.get("predicted_per_second", 0.0))
        first_tokens = []
        for _ in range(3):
            t0 = time.perf_counter()
            with raw.chat.completions.create(**args, stream=True) as stream:
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        first_tokens.append(time.perf_counter() - t0)
                        break
        raw_median, kit_median = statistics.median(raw_times), statistics.median(kit_times)
        return BenchResult(
            requests, max_tokens, up, first_answer, statistics.median(prompt_rates), statistics.median(gen_rates),
            statistics.median(first_tokens), raw_median, kit_median, kit_median / raw_median,
        )
    finally:
        raw.close()
        kit.client.close()
        server.stop()


def bench_dict(result: BenchResult) -> dict:
    return asdict(result)
