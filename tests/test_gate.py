"""The quality gate on crafted summaries: decisions, messages, written decision files and exit codes."""

import json
import re
import subprocess
import sys

import pytest

from llmops_helpers.evaluate.gate import GateInputError, apply_gate, load_rules, load_summary, run_gate

RULES = """
max_error_rate: 0.1
slos:
  - metric: key_fact_recall
    min: 0.3
  - metric: latency_p95_s
    max: 10
relative:
  - metric: key_fact_recall
    max_drop: 0.05
  - metric: cost_per_request_usd
    max_rise: 0.10
"""


def summary(tmp_path, name, n_rows=20, n_errors=0, **metrics):
    folder = tmp_path / name
    folder.mkdir()
    base = {"key_fact_recall": 0.5, "latency_p95_s": 4.0, "cost_per_request_usd": 0.001}
    (folder / "summary.json").write_text(json.dumps({"metrics": {**base, **metrics}, "n_rows": n_rows,
                                                     "n_errors": n_errors}))
    return folder


@pytest.fixture
def rules(tmp_path):
    path = tmp_path / "gates.yaml"
    path.write_text(RULES)
    return path


def test_pass(tmp_path, rules):
    decision = run_gate(rules, summary(tmp_path, "cand"), summary(tmp_path, "base"))
    assert decision.passed and len(decision.results) == 5
    saved = json.loads((tmp_path / "cand" / "gate_decision.json").read_text())
    assert saved["passed"] is True and (tmp_path / "cand" / "gate_decision.md").read_text().startswith("### Quality")


def test_quality_drop_over_5_percent_fails_and_under_passes(tmp_path, rules):
    base = summary(tmp_path, "base", key_fact_recall=0.50)
    assert run_gate(rules, summary(tmp_path, "ok", key_fact_recall=0.476), base).passed  # -4.8%
    decision = run_gate(rules, summary(tmp_path, "bad", key_fact_recall=0.47), base)  # -6%
    [failed] = decision.failed
    assert failed.metric == "key_fact_recall" and failed.threshold == pytest.approx(0.475)
    assert failed.delta == pytest.approx(-0.06) and failed.baseline == 0.5


def test_cost_rise_over_10_percent_fails(tmp_path, rules):
    base = summary(tmp_path, "base", cost_per_request_usd=0.001)
    decision = run_gate(rules, summary(tmp_path, "cand", cost_per_request_usd=0.00111), base)
    assert [r.metric for r in decision.failed] == ["cost_per_request_usd"]


def test_errors_never_pass(tmp_path, rules):
    decision = run_gate(rules, summary(tmp_path, "cand", n_rows=20, n_errors=3), summary(tmp_path, "base"))
    assert [r.metric for r in decision.failed] == ["error_rate"]
    assert "3 of 20 rows errored" in decision.failed[0].message


def test_missing_metric_fails_loudly(tmp_path, rules):
    cand = summary(tmp_path, "cand")
    data = json.loads((cand / "summary.json").read_text())
    del data["metrics"]["latency_p95_s"]
    (cand / "summary.json").write_text(json.dumps(data))
    decision = run_gate(rules, cand, summary(tmp_path, "base"))
    assert [(r.metric, r.message) for r in decision.failed] == [
        ("latency_p95_s", "metric missing from the candidate summary")]


def test_relative_rules_without_baseline_fail(tmp_path, rules):
    decision = run_gate(rules, summary(tmp_path, "cand"))
    assert {r.message for r in decision.failed} == {"no baseline run was given"}


@pytest.mark.parametrize("loader, name, content, problem", [
    (load_summary, "summary.json", "{", "not valid JSON"),
    (load_summary, "summary.json", json.dumps({"metrics": {}, "n_rows": 3}), "'n_errors' must be a whole number"),
    (load_summary, "summary.json", json.dumps({"metrics": [], "n_rows": 3, "n_errors": 0}), "'metrics' must be"),
    (load_summary, "summary.json", json.dumps({"metrics": {}, "n_rows": 0, "n_errors": 0}), "evaluation of nothing"),
    (load_summary, "summary.json", json.dumps({"metrics": {}, "n_rows": 2, "n_errors": 5}), "larger than"),
    (load_rules, "gates.yaml", "slos: [{metric: f1}]", "must set max or min"),
    (load_rules, "gates.yaml", "slos: [{min: 0.3}]", "needs a 'metric'"),
    (load_rules, "gates.yaml", "relative: [{metric: f1, max_drop: lots}]", "must be a number"),
    (load_rules, "gates.yaml", "thresholds: []", "unknown section"),
    (load_rules, "gates.yaml", "max_error_rate: 2", "from 0 to 1"),
])
def test_unusable_input_names_the_file(tmp_path, loader, name, content, problem):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(GateInputError, match=problem) as info:
        loader(path)
    assert str(path) in str(info.value)


def test_zero_baseline_cost_does_not_divide_by_zero():
    rules = {"relative": [{"metric": "cost_per_request_usd", "max_rise": 0.1}]}
    cand = {"metrics": {"cost_per_request_usd": 0.0}, "n_rows": 5, "n_errors": 0}
    assert apply_gate(rules, cand, cand).passed


def test_cli_exit_codes(tmp_path, rules):
    def gate(*args):
        return subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "gate", "--rules", str(rules), *args],
                              capture_output=True, text=True, check=False)

    base = summary(tmp_path, "base")
    passed = gate("--candidate", str(summary(tmp_path, "good")), "--baseline", str(base))
    failed = gate("--candidate", str(summary(tmp_path, "worse", key_fact_recall=0.2)), "--baseline", str(base))
    unusable = gate("--candidate", str(tmp_path / "nowhere"), "--baseline", str(base))
    assert (passed.returncode, failed.returncode, unusable.returncode) == (0, 1, 2)
    assert "FAILED key_fact_recall >= 0.3: observed 0.2, threshold 0.3" in failed.stderr
    assert "nowhere" in unusable.stderr


def test_notebooks_run_the_gate_command_and_see_its_exit_code(tmp_path, rules, capsys):
    from llmops_helpers.course.notebook import run_llmops

    base = summary(tmp_path, "base")
    worse = summary(tmp_path, "worse", key_fact_recall=0.4)
    assert run_llmops("gate", "--rules", str(rules), "--candidate", str(base), "--baseline", str(base)) == 0
    assert run_llmops("gate", "--rules", str(rules), "--candidate", str(worse), "--baseline", str(base)) == 1
    printed = capsys.readouterr().out
    assert "$ llmops gate" in printed and "→ exit code 1" in printed and "key_fact_recall" in printed


def test_the_kits_gate_rules_use_metrics_an_evaluation_produces():
    from llmops_helpers.evaluate.evaluation import DEFAULT_EVALUATORS
    from llmops_helpers.paths import kit_root

    rules = load_rules(kit_root() / "gates.yaml")
    produced = {*DEFAULT_EVALUATORS, "latency_p50_s", "latency_p95_s", "cost_total_usd", "cost_per_request_usd",
                "tokens_per_request", "tokens_total", "error_rate"}
    used = {rule["metric"] for section in ("slos", "relative") for rule in rules[section]}
    assert used <= produced, used - produced


def test_absolute_only_leaves_out_the_relative_rules(tmp_path, rules):
    candidate = summary(tmp_path, "cand")
    assert not run_gate(rules, candidate).passed  # relative rules without a baseline fail...
    decision = run_gate(rules, candidate, absolute_only=True)  # ...unless the pipeline says it has none
    assert decision.passed and not any("vs baseline" in r.rule for r in decision.results)
    assert not run_gate(rules, summary(tmp_path, "slow", latency_p95_s=99.0), absolute_only=True).passed
    with pytest.raises(GateInputError, match="absolute_only with a baseline"):
        run_gate(rules, candidate, summary(tmp_path, "base"), absolute_only=True)


@pytest.mark.parametrize("section, rule, problem", [
    ("relative", "{metric: f1, max_drop: 0.05, note: why}", "relative rule 1 (f1): unknown key(s) 'note'"),
    ("relative", "{metric: f1, max_drop: 5}", "'max_drop' is 5, but it is a fraction"),
    ("relative", "{metric: cost, max_rise: 1}", "'max_rise' is 1, but it is a fraction"),
    ("relative", "{metric: f1, max_drop: -0.1}", "'max_drop' is -0.1, but thresholds cannot be negative"),
    ("relative", "{metric: f1, max_drop: .nan}", "'max_drop' is nan, not a finite number"),
    ("relative", "{metric: cost, max_rise: .inf}", "'max_rise' is inf, not a finite number"),
    ("slos", "{metric: latency_p95_s, max: -1}", "slos rule 1 (latency_p95_s): 'max' is -1, but thresholds cannot be"),
    ("slos", "{metric: f1, min: .nan}", "'min' is nan, not a finite number"),
    ("slos", "{metric: f1, min: 0.3, max_drop: 0.1}", "unknown key(s) 'max_drop'"),
])
def test_rules_that_could_never_fail_or_hide_a_typo_are_refused(tmp_path, section, rule, problem):
    path = tmp_path / "gates.yaml"
    path.write_text(f"{section}:\n  - {rule}\n")
    with pytest.raises(GateInputError, match=re.escape(problem)) as info:
        load_rules(path)
    assert str(path) in str(info.value)


def test_cli_exits_2_naming_the_unknown_key(tmp_path):
    rules = tmp_path / "gates.yaml"
    rules.write_text("relative:\n  - metric: key_fact_recall\n    max_drop: 0.05\n    note: keep quality\n")
    run = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "gate", "--rules", str(rules), "--candidate",
                          str(summary(tmp_path, "cand")), "--baseline", str(summary(tmp_path, "base"))],
                         capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 2 and "unknown key(s) 'note'" in run.stderr and "Traceback" not in run.stderr


def test_a_nan_metric_fails_its_rules_and_the_decision_is_strict_json(tmp_path, rules):
    cand = summary(tmp_path, "cand")
    (cand / "summary.json").write_text((cand / "summary.json").read_text().replace('"key_fact_recall": 0.5',
                                                                                   '"key_fact_recall": NaN'))
    decision = run_gate(rules, cand, summary(tmp_path, "base"))
    assert {r.metric for r in decision.failed} == {"key_fact_recall"} and len(decision.failed) == 2
    assert all("not a finite number" in r.message for r in decision.failed)
    text = (cand / "gate_decision.json").read_text()
    saved = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in gate_decision.json"))
    failed = [r for r in saved["results"] if not r["passed"]]
    assert [r["observed"] for r in failed] == [None, None] and "NaN" not in text


def test_decision_json_never_holds_bare_nan_or_infinity():
    from llmops_helpers.evaluate.gate import Decision, RuleResult

    decision = Decision(False, [RuleResult("x", "x", False, float("nan"), float("inf"), message="odd")])
    assert json.loads(decision.to_json())["results"][0]["observed"] is None
    assert "NaN" not in decision.to_json() and "Infinity" not in decision.to_json()


def run_folder(tmp_path, name, ids, dataset_hash="d1", **metrics):
    folder = summary(tmp_path, name, n_rows=len(ids), **metrics)
    data = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**data, "row_ids": sorted(ids)}))
    (folder / "metadata.json").write_text(json.dumps({"dataset": "data/golden/ci.jsonl", "dataset_hash": dataset_hash,
                                                      "sample": len(ids)}))
    return folder


def test_runs_of_other_rows_are_not_compared(tmp_path, rules):
    ids = [f"g{i:02d}" for i in range(18)]
    base = run_folder(tmp_path, "base", ids)
    with pytest.raises(GateInputError, match="number of rows: candidate 2, baseline 18") as info:
        run_gate(rules, run_folder(tmp_path, "two", ids[:2]), base)  # passed before: same means, fewer rows
    assert "sample size: candidate 2, baseline 18" in str(info.value)
    with pytest.raises(GateInputError, match="dataset hash: candidate 'd2'"):
        run_gate(rules, run_folder(tmp_path, "other_data", ids, dataset_hash="d2"), base)
    with pytest.raises(GateInputError, match="only in the candidate x99; only in the baseline g17"):
        run_gate(rules, run_folder(tmp_path, "other_rows", ids[:17] + ["x99"]), base)
    assert not (tmp_path / "two" / "gate_decision.json").exists()
    assert run_gate(rules, run_folder(tmp_path, "same", ids), base).passed


def test_cli_exits_2_listing_the_differences(tmp_path, rules):
    ids = [f"g{i:02d}" for i in range(18)]
    run = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "gate", "--rules", str(rules), "--candidate",
                          str(run_folder(tmp_path, "two", ids[:2])), "--baseline", str(run_folder(tmp_path, "b", ids))],
                         capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 2 and "not comparable" in run.stderr and "number of rows" in run.stderr


def test_a_zero_baseline_makes_relative_rules_not_applicable(tmp_path, rules):
    base = summary(tmp_path, "local", cost_per_request_usd=0.0, key_fact_recall=0.0)
    decision = run_gate(rules, summary(tmp_path, "hosted", cost_per_request_usd=0.002), base)
    cost = next(r for r in decision.results if r.metric == "cost_per_request_usd" and "vs baseline" in r.rule)
    assert decision.passed and cost.passed and not cost.applicable and cost.threshold is None
    assert "baseline is 0" in cost.message and "| n/a: not applicable" in decision.to_markdown()
    expensive = run_gate(rules, summary(tmp_path, "pricey", cost_per_request_usd=0.05), base)
    assert expensive.passed  # the relative rule is n/a; an absolute cost SLO is what bounds a 0 baseline
    with_slo = tmp_path / "slo.yaml"
    cost_slo = "    max: 10\n  - metric: cost_per_request_usd\n    max: 0.01\n"
    with_slo.write_text(RULES.replace("    max: 10\n", cost_slo))
    assert [r.rule for r in run_gate(with_slo, summary(tmp_path, "p2", cost_per_request_usd=0.05), base).failed] == [
        "cost_per_request_usd <= 0.01"]


def test_a_safety_section_is_validated_and_left_to_the_safety_gate(tmp_path):
    path = tmp_path / "gates.yaml"
    path.write_text(RULES + "safety:\n  - {metric: redteam_pass_rate, min: 0.9}\n  - {metric: leak_count, max: 0}\n")
    rules = load_rules(path)
    assert [rule["metric"] for rule in rules["safety"]] == ["redteam_pass_rate", "leak_count"]
    decision = run_gate(path, summary(tmp_path, "cand"), summary(tmp_path, "base"))  # no red-team metrics here
    assert decision.passed and not {"redteam_pass_rate", "leak_count"} & {r.metric for r in decision.results}
    assert decision.to_markdown().startswith("### Quality gate")
    path.write_text("safety:\n  - {metric: leak_count, max_drop: 0.1}\n")
    with pytest.raises(GateInputError, match=re.escape("safety rule 1 (leak_count): unknown key(s) 'max_drop'")):
        load_rules(path)
