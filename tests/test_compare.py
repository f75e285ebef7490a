"""Comparing two runs: deltas with paired-bootstrap intervals, slices, worse rows, and the report files."""

import subprocess
import sys

from llmops_helpers.evaluate.compare import (
    GITHUB_COMMENT_LIMIT,
    bootstrap_interval,
    compare_runs,
    to_markdown,
    write_report,
)
from llmops_helpers.evaluate.evaluation import run_evaluation
from llmops_helpers.evaluate.golden import golden_dir, load_golden
from llmops_helpers.llm.metering import SHADOW_MODEL, shadow_cost

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


def hand_run(folder, rows, dataset_hash="d1"):
    """A run folder written by hand: rows.jsonl, summary.json and metadata.json, no model and no app."""
    import json

    from llmops_helpers.evaluate.evaluation import summarize

    folder.mkdir(parents=True)
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "summary.json").write_text(json.dumps(summarize(rows)))
    (folder / "metadata.json").write_text(json.dumps({"dataset_hash": dataset_hash, "sample": len(rows)}))
    return folder


def row(row_id, recall, cost, question="How long do refunds take?"):
    return {"id": row_id, "category": "billing", "question": question, "scores": {"key_fact_recall": recall},
            "cost_usd": cost, "latency_s": 1.0, "total_tokens": 10, "error": None}


def test_small_costs_keep_their_significant_digits(tmp_path):
    base = hand_run(tmp_path / "base", [row("a", 1.0, 5.4e-05), row("b", 0.5, 5.4e-05)])
    cand = hand_run(tmp_path / "cand", [row("a", 1.0, 1.08e-04), row("b", 0.25, 1.08e-04)])
    markdown = to_markdown(compare_runs(base, cand))
    cost = next(line for line in markdown.splitlines() if line.startswith("| cost_per_request_usd |"))
    assert "| 0.0000540 | 0.000108 | +0.0000540 |" in cost  # was "| 0.000 | 0.000 | +0.000 |"
    assert "| key_fact_recall | 0.750 | 0.625 | -0.125 |" in markdown


def test_pipes_and_newlines_in_a_question_stay_inside_their_cell(tmp_path):
    from llmops_helpers.evaluate.compare import _html

    question = "Plan A | plan B:\nwhich is cheaper?"
    base = hand_run(tmp_path / "base", [row("a", 1.0, 0.0, question), row("b", 1.0, 0.0)])
    cand = hand_run(tmp_path / "cand", [row("a", 0.0, 0.0, question), row("b", 1.0, 0.0)])
    markdown = to_markdown(compare_runs(base, cand))
    [line] = [line for line in markdown.splitlines() if line.startswith("| a |")]
    assert line == "| a | Plan A \\| plan B: which is cheaper? | key_fact_recall 1.00 → 0 |"
    html = _html(markdown, "")
    assert "<td>Plan A | plan B: which is cheaper?</td>" in html


def test_runs_of_other_rows_are_not_compared(tmp_path):
    base = hand_run(tmp_path / "base", [row(f"g{i}", 1.0, 0.0) for i in range(18)])
    cand = hand_run(tmp_path / "cand", [row(f"g{i}", 1.0, 0.0) for i in range(2)])
    run = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "compare", str(base), str(cand)],
                         capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 2 and "not comparable" in run.stderr and "number of rows: candidate 2, baseline 18" in \
        run.stderr and "Traceback" not in run.stderr
    assert not (cand / "compare").exists()


def test_the_report_shows_intent_by_category_against_the_candidates_labels(tmp_path):
    def routes(roaming_to):
        truth = {r.question: r for r in ROWS}

        def answer(question):
            row = truth[question]
            intent = roaming_to if row.category == "roaming" else row.intent
            return {"answer": row.ground_truth, "context_ids": list(row.context_ids), "intent": intent,
                    "usage": {"prompt_tokens": 600, "completion_tokens": 80, "total_tokens": 680, "cost_usd": 0.0}}
        return answer

    run_evaluation(ROWS, tmp_path / "base", routes("billing"), progress=False)
    run_evaluation(ROWS, tmp_path / "cand", routes("technical"), progress=False)
    comparison = compare_runs(tmp_path / "base", tmp_path / "cand")
    roaming = comparison.intent_by_category["roaming"]
    expected_right = sum(r.category == "roaming" and r.intent == "billing" for r in ROWS)
    assert roaming["rows"] == 2 and roaming["base"] == expected_right and roaming["candidate"] == 2 - expected_right
    assert roaming["candidate_said"] == {"technical": 2}
    assert comparison.intent_by_category["plans"] == {"rows": 2, "base": 2, "candidate": 2,
                                                      "base_said": {"sales": 2}, "candidate_said": {"sales": 2}}
    text = to_markdown(comparison)
    assert "### Intent by category" in text
    assert f"| roaming | {expected_right}/2 | {2 - expected_right}/2 | technical 2 |" in text
    # the model was free: the report says what the same tokens would cost on a hosted one
    hosted = shadow_cost(600, 80)
    assert comparison.candidate_summary["shadow_cost"] == {"model": SHADOW_MODEL, "per_request_usd": hosted}
    assert f"Cost: this model is free; the same tokens on {SHADOW_MODEL} would cost $" in text
