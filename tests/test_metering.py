import json

import pytest

from llmops_helpers.llm.metering import CallRecord, Meter, estimate_cost, lookup_price, summarize


def test_price_lookup_by_name_and_prefix():
    assert lookup_price("gpt-4o-mini") == (0.15, 0.60)
    assert lookup_price("gpt-4o-mini-2024-07-18") == lookup_price("gpt-4o-mini")  # longest prefix wins
    assert lookup_price("gpt-4o-2024-08-06") == lookup_price("gpt-4o")
    assert lookup_price("some-unknown-model") is None


def test_cost_estimates():
    assert estimate_cost("local", "anything", 1000, 1000) == 0.0
    assert estimate_cost("openai", "gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert estimate_cost("openai", "mystery", 10, 10) is None
    assert estimate_cost("openai", "gpt-4o", None, None) is None


def _record(latency, error=None, tokens=(10, 5)):
    return CallRecord(0.0, "local", "m", "http://x", "chat/completions", latency_s=latency,
                      prompt_tokens=tokens[0], completion_tokens=tokens[1], cost_usd=0.0, error=error)


def test_summary_and_frame():
    meter = Meter()
    for latency in (0.1, 0.2, 0.3, 0.4):
        meter.add(_record(latency))
    meter.add(_record(5.0, error="APIConnectionError"))
    summary = meter.summary()
    assert summary["calls"] == 5 and summary["errors"] == 1
    assert summary["prompt_tokens"] == 50 and summary["completion_tokens"] == 25
    assert summary["latency_p50_s"] in (0.2, 0.3) and summary["latency_p95_s"] == 0.4  # errors excluded
    assert list(meter.to_frame()["latency_s"]) == [0.1, 0.2, 0.3, 0.4, 5.0]
    assert summarize([])["latency_p50_s"] is None


def test_meter_is_bounded_and_last_needs_a_call():
    meter = Meter(maxlen=3)
    with pytest.raises(LookupError, match="make a request first"):
        meter.last()
    for i in range(5):
        meter.add(_record(float(i)))
    assert len(meter) == 3 and meter.last().latency_s == 4.0


def test_jsonl_log(tmp_path):
    log = tmp_path / "calls.jsonl"
    meter = Meter(log_path=log)
    record = _record(0.5)
    meter.add(record)
    meter.finish(record)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows[0]["latency_s"] == 0.5 and rows[0]["provider"] == "local"


def test_the_shadow_price_says_what_the_free_tokens_would_cost_on_a_hosted_model():
    from llmops_helpers.llm.metering import SHADOW_MODEL, estimate_cost, lookup_price, shadow_cost

    assert estimate_cost("local", "smollm2-135m-instruct", 600, 80) == 0.0
    price_in, price_out = lookup_price(SHADOW_MODEL)
    assert shadow_cost(600, 80) == (600 * price_in + 80 * price_out) / 1_000_000 > 0
    assert shadow_cost(600, 80, model="gpt-4o") > shadow_cost(600, 80)
    assert shadow_cost(None, 80) is None and shadow_cost(float("nan"), 1) is None
    assert shadow_cost(600, float("nan")) == 600 * price_in / 1_000_000
    assert shadow_cost(600, 80, model="no-such-model") is None
