"""Whole articles vs passages in the prompt: retrieval quality (deterministic, a second) and, with ``--eval``, the
support agent end to end on the golden CI rows (tokens, latency, quality; ~4 min with the embedded model).

    .venv/bin/python benchmarks/passages.py                 # retrieval: top-3 hit rate and words per prompt
    .venv/bin/python benchmarks/passages.py --eval          # plus `llmops eval` of the agent both ways

Measured 2026-11-30 on 2 cores (see the closing note of issue 10): passages of up to 80 words kept top-3 hit rate
(0.975 on the 40 queries, 0.92 held-out vs 0.84 over articles) with a third of the words in the prompt; the agent's
tokens per request went 1,129 -> 665 and its p50 latency 8.0 s -> 4.1 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(KIT))
from llmops_helpers.flow.batch import read_jsonl  # noqa: E402
from llmops_helpers.flow.retrieval import get_retriever  # noqa: E402

SETS = {
    "queries (40)": ("data/retrieval_queries.jsonl", "query", "expected_id"),
    "held-out (25)": ("data/retrieval_queries_heldout.jsonl", "query", "expected_id"),
    "golden": ("data/golden/golden.jsonl", "question", "context_ids"),
}


def retrieval_table(sizes: list[int], k: int) -> None:
    print(f"{'passage_words':>13} | " + " | ".join(f"{name:>22}" for name in SETS))
    for words in sizes:
        retriever = get_retriever(passage_words=words)
        cells = []
        for path, text_field, expected_field in SETS.values():
            rows = read_jsonl(KIT / path)
            found = words_sum = 0
            for row in rows:
                expected = row[expected_field] if isinstance(row[expected_field], list) else [row[expected_field]]
                hits = retriever.search(row[text_field], k=k)
                found += any(h.id in expected for h in hits)
                words_sum += sum(len(h.doc.text.split()) for h in hits)
            cells.append(f"top-{k} {found / len(rows):.3f}, {words_sum / len(rows):4.0f} words")
        print(f"{words or 'articles':>13} | " + " | ".join(f"{c:>22}" for c in cells))


def evaluate_both(sample: int | None) -> None:
    keys = ("context_overlap", "key_fact_recall", "recall_at_k", "tokens_per_request", "latency_p50_s")
    with tempfile.TemporaryDirectory() as tmp:
        whole = Path(shutil.copytree(KIT / "flows" / "support_agent", Path(tmp) / "flow",
                                     ignore=shutil.ignore_patterns("__pycache__", ".promptflow")))
        config = whole / "config.yaml"
        config.write_text("\n".join("passage_words: 0" if line.startswith("passage_words:") else line
                                    for line in config.read_text().splitlines()) + "\n")
        for label, flow in (("articles", whole), ("passages", KIT / "flows" / "support_agent")):
            out = Path(tmp) / label
            command = [sys.executable, "-m", "llmops_helpers.cli", "eval", "--flow", str(flow), "--judges", "none",
                       "--data", str(KIT / "data" / "golden" / "ci.jsonl"), "--out", str(out), "--fresh"]
            subprocess.run(command + (["--sample", str(sample)] if sample else []), check=True, timeout=1800,
                           capture_output=True, cwd=KIT)
            metrics = json.loads((out / "summary.json").read_text())["metrics"]
            print(f"{label:>9}: " + ", ".join(f"{key} {metrics[key]:.3g}" for key in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,40,60,80,120", help="passage sizes in words (0 = whole articles)")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--eval", action="store_true", help="also evaluate the agent both ways on the CI rows")
    parser.add_argument("--sample", type=int, help="with --eval: only the first N CI rows")
    args = parser.parse_args()
    retrieval_table([int(s) for s in args.sizes.split(",")], args.k)
    if args.eval:
        evaluate_both(args.sample)


if __name__ == "__main__":
    main()
