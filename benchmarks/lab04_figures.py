"""The figures behind Lab 04 at full size (the lab itself runs small samples in CI): retrieval metrics, routing
(classic vs LLM on all 160 golden rows), chunking (whole articles vs passages on the 18 CI rows), red-team pass rate
with and without guardrails (all 36 prompts), false refusals and abstention, and a full 160-row evaluation's time.

    .venv/bin/python benchmarks/lab04_figures.py [--skip-full] [--out build/bench/lab04.json]

About 25 minutes on 2 cores with the embedded model. Each step prints its figures and they are saved as JSON."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from llmops_helpers.evaluate import (
    classify_rows,
    evaluate_retrieval,
    evaluate_support_agent,
    golden_dir,
    load_golden,
    load_queries,
    load_redteam,
    load_unanswerable,
    retrieval_summary,
    routing_summary,
)
from llmops_helpers.flow import get_retriever, import_flow_entry
from llmops_helpers.paths import build_dir, kit_root
from llmops_helpers.responsible import is_abstention, redteam_summary, run_redteam, safety_metrics

CANARY = "CTS-CANARY-7Q4Z"
OWN = ("0800 555 0100", "0800 555 0199")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-full", action="store_true", help="skip the full 160-row evaluation (~9 min)")
    parser.add_argument("--steps", default="retrieval,routing,chunking,safety,full",
                        help="comma-separated steps to run (default: all)")
    parser.add_argument("--out", default=str(build_dir() / "bench" / "lab04.json"))
    args = parser.parse_args()
    out: dict = {}
    work = build_dir() / "bench" / "lab04"
    save = Path(args.out)
    save.parent.mkdir(parents=True, exist_ok=True)

    def dump(step: str, value) -> None:
        out[step] = value
        print(f"== {step}\n{json.dumps(value, indent=1, default=str)}", flush=True)
        save.write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")

    steps = set(args.steps.split(","))
    if save.exists():  # keep the figures of steps not run this time
        out.update(json.loads(save.read_text(encoding="utf-8")))
    retriever = get_retriever(passage_words=80)
    ids = [d.id for d in retriever.docs]
    for name in [] if "retrieval" not in steps else ("retrieval_queries", "retrieval_queries_heldout"):
        frame = evaluate_retrieval(retriever, load_queries(kit_root() / "data" / f"{name}.jsonl", ids))
        dump(f"retrieval {name}", retrieval_summary(frame).to_dict(orient="index"))

    module = import_flow_entry()
    golden = load_golden()
    classic = module.SupportAgent(intent_classifier="classic")
    llm = module.SupportAgent(intent_classifier="llm")
    frames = [] if "routing" not in steps else [
        classify_rows(lambda q: classic.classify(q)[0], golden, "classic", progress=False),
        classify_rows(lambda q: llm.classify(q)[0], golden, "llm", progress=False)]
    if frames:
        dump("routing (160 golden rows)", routing_summary(*frames).to_dict(orient="index"))

    ci = golden_dir() / "ci.jsonl"
    for label, overrides in (("whole articles, llm intent", {"passage_words": 0, "intent_classifier": "llm"}),
                             ("passages 80, llm intent", {"passage_words": 80, "intent_classifier": "llm"}),
                             ("passages 80, classic intent", {"passage_words": 80, "intent_classifier": "classic"})
                             ) if "chunking" in steps else ():
        started = time.perf_counter()
        summary = evaluate_support_agent(ci, work / label.replace(" ", "_").replace(",", ""), judges=(),
                                         fresh=True, progress=False, overrides=overrides)
        m = summary["metrics"]
        dump(f"chunking: {label} (18 CI rows)", {
            "seconds": round(time.perf_counter() - started, 1), "tokens_per_request": m.get("tokens_per_request"),
            "latency_p50_s": m.get("latency_p50_s"), "recall_at_k": m.get("recall_at_k"),
            "context_overlap": m.get("context_overlap"), "key_fact_recall": m.get("key_fact_recall"),
            "intent_accuracy": m.get("intent_accuracy")})

    redteam = load_redteam()
    unanswerable = load_unanswerable()
    ci_rows = load_golden(ci)
    def answer(agent, question: str) -> str:
        try:
            return agent(question)["answer"]
        except Exception as exc:  # noqa: BLE001 - a timeout is recorded, the benchmark goes on
            return f"ERROR {type(exc).__name__}"

    for guards in ("none", "input", "all") if "safety" in steps else ():
        agent = module.SupportAgent(intent_classifier="classic", guardrails=guards, canary=CANARY)
        started = time.perf_counter()
        frame = run_redteam(agent, redteam, canary=CANARY, own_contacts=OWN, progress=False)
        frame.to_json(work / f"redteam_{guards}.jsonl", orient="records", lines=True)
        red_s = time.perf_counter() - started
        answers = {"golden": [answer(agent, r.question) for r in ci_rows],
                   "unanswerable": [answer(agent, r.question) for r in unanswerable]}
        import pandas as pd

        metrics = safety_metrics(frame, pd.DataFrame({"answer": answers["golden"]}),
                                 pd.DataFrame({"answer": answers["unanswerable"]}))
        dump(f"safety, guardrails {guards}", {"metrics": metrics, "redteam_seconds": round(red_s, 1),
                                              "per_attack": redteam_summary(frame).to_dict(orient="index"),
                                              "golden_abstained": [is_abstention(a) for a in answers["golden"]]})

    if "full" in steps and not args.skip_full:
        started = time.perf_counter()
        summary = evaluate_support_agent(golden_dir() / "golden.jsonl", work / "full160", judges=(), fresh=True,
                                         progress=False, overrides={"intent_classifier": "classic"})
        dump("full 160-row evaluation, passages + classic intent, no judge", {
            "seconds": round(time.perf_counter() - started, 1), **{k: summary["metrics"].get(k) for k in (
                "total_tokens", "latency_p50_s", "recall_at_k", "context_overlap", "key_fact_recall",
                "intent_accuracy")}})


if __name__ == "__main__":
    main()
