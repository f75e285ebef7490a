"""Comparing two runs: deltas with paired-bootstrap intervals, slices, worse rows, and the report files."""

import subprocess
import sys

from llmops_helpers.compare import GITHUB_COMMENT_LIMIT, bootstrap_interval, compare_runs, to_markdown, write_report
from llmops_helpers.evaluation import run_evaluation
from llmops_helpers.golden import golden_dir, load_golden

ROWS = load_golden(golden_dir() / "ci.jsonl")


def app(degraded):
    truth = {r.question: r for r in ROWS}

    def answer(question):
        row = truth[question]
        text = "I am not sure, please contact us." if degraded and row.difficulty != "easy" else row.ground_truth
        return {"answer": text, "context_ids": list(row.context_ids), "intent": row.intent,
                "usage": {"total_tokens": 50, "cost_usd": 0.0}}

    return answer


def runs(tmp_path):
    base, cand = tmp_path / "base", tmp_path / "cand"
    run_evaluation(ROWS, base, app(False), progress=False)
    run_evaluation(ROWS, cand, app(True), progress=False)
    return base, cand


def test_bootstrap_interval():
    assert bootstrap_interval([0.5]) is None
    low, high = bootstrap_interval([-1.0] * 10 + [0.0] * 10)
    assert -0.8 < low < -0.5 < high < -0.2
    assert bootstrap_interval([1.0, 2.0, 3.0]) == bootstrap_interval([1.0, 2.0, 3.0])  # seeded


def test_degraded_candidate_is_flagged(tmp_path):
    base, cand = runs(tmp_path)
    comparison = compare_runs(base, cand)
    kfr = next(d for d in comparison.deltas if d.metric == "key_fact_recall")
    assert kfr.delta < 0 and kfr.significant and kfr.ci_high < 0 and kfr.paired_rows == len(ROWS)
    assert comparison.primary == "key_fact_recall"
    assert {w["id"] for w in comparison.worse_rows} == {r.id for r in ROWS if r.difficulty != "easy"}
    assert any(v["delta"] < 0 for v in comparison.by_category.values())


def test_report_files_and_comment_limit(tmp_path):
    base, cand = runs(tmp_path)
    comparison = compare_runs(base, cand)
    paths = write_report(comparison, tmp_path / "report", "### Quality gate: ❌ failed (1 rule(s))")
    markdown = paths["markdown"].read_text()
    assert markdown.startswith("## Evaluation") and "▼" in markdown and "Quality gate" in markdown
    assert len(markdown) < GITHUB_COMMENT_LIMIT
    html = paths["html"].read_text()
    assert "<table>" in html and "data:image/png;base64," in html and paths["png"].stat().st_size > 5000
    comparison.worse_rows = comparison.worse_rows * 400  # far too many rows for one comment
    trimmed = to_markdown(comparison, limit=20_000)
    assert len(trimmed) <= 20_000 and "more rows in comparison.json" in trimmed


def test_compare_command(tmp_path):
    base, cand = runs(tmp_path)
    run = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "compare", str(base), str(cand)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert (cand / "compare" / "report.md").is_file() and "key_fact_recall" in run.stdout
    missing = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "compare", str(base),
                              str(tmp_path / "nothing")], capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and "nothing" in missing.stderr
