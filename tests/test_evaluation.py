"""The evaluation runner: persistence, resume after interruption, error rows, summary and metadata."""

import json
import subprocess
import sys

from llmops_helpers.evaluate.evaluation import DEFAULT_EVALUATORS, read_rows, run_evaluation, summarize
from llmops_helpers.evaluate.golden import golden_dir, load_golden
from llmops_helpers.evaluate.judges import JudgeError

ROWS = load_golden(golden_dir() / "ci.jsonl")


class OracleApp:
    """Answers with the golden answer itself: a mechanics test of the runner, not of any model."""

    def __init__(self, fail_on=()):
        self.calls, self.fail_on = [], set(fail_on)
        self.truth = {r.question: r for r in ROWS}

    def __call__(self, question):
        self.calls.append(question)
        row = self.truth[question]
        if row.id in self.fail_on:
            raise TimeoutError("the endpoint timed out")
        return {"answer": row.ground_truth, "context_ids": list(row.context_ids), "intent": row.intent,
                "usage": {"total_tokens": 100, "cost_usd": 0.0}}


def test_scores_persist_and_resume_without_redoing_rows(tmp_path):
    app = OracleApp()
    run_evaluation(ROWS[:3], tmp_path, app, progress=False)
    assert len(app.calls) == 3 and len(read_rows(tmp_path / "rows.jsonl")) == 3
    # an interruption mid-write leaves half a line: it is ignored and that row is re-run
    with (tmp_path / "rows.jsonl").open("a") as fh:
        fh.write('{"id": "' + ROWS[3].id + '", "answ')
    summary = run_evaluation(ROWS[:5], tmp_path, app, progress=False)
    assert len(app.calls) == 5 and summary["n_rows"] == 5 and summary["n_errors"] == 0
    metrics = summary["metrics"]
    assert metrics["exact_match"] == 1.0 and metrics["key_fact_recall"] == 1.0 and metrics["recall_at_k"] == 1.0
    assert metrics["cost_per_request_usd"] == 0.0 and "latency_p95_s" in metrics
    assert json.loads((tmp_path / "summary.json").read_text())["n_rows"] == 5
    assert set(summary["by_category"]) <= {r.category for r in ROWS}


def test_errors_are_rows_not_gaps(tmp_path):
    def strict(row, output):
        raise JudgeError("judge 'x' returned non-JSON: 'Score: 4'")

    summary = run_evaluation(ROWS[:4], tmp_path / "a", OracleApp(fail_on={ROWS[1].id}), progress=False)
    assert (summary["n_rows"], summary["n_errors"]) == (4, 1)
    saved = {r["id"]: r for r in read_rows(tmp_path / "a" / "rows.jsonl")}
    assert saved[ROWS[1].id]["error"] == "TimeoutError: the endpoint timed out"
    judged = run_evaluation(ROWS[:2], tmp_path / "b", OracleApp(), evaluators={"judge_x": strict}, progress=False)
    assert judged["n_errors"] == 2 and "judge_x" not in judged["metrics"]


def test_custom_evaluator_is_a_small_function(tmp_path):
    def mentions_app(row, output):
        return float("app" in output["answer"].lower())

    summary = run_evaluation(ROWS[:2], tmp_path, OracleApp(), evaluators={**DEFAULT_EVALUATORS,
                                                                         "mentions_app": mentions_app},
                             progress=False)
    assert 0.0 <= summary["metrics"]["mentions_app"] <= 1.0


def test_summary_of_nothing():
    assert summarize([]) == {"metrics": {}, "shadow_cost": None, "n_rows": 0, "n_errors": 0, "n_judge_errors": 0,
                            "judge_errors": {}, "row_ids": [], "by_category": {}}


def test_eval_command_on_the_real_agent_then_gate(tmp_path):
    out = tmp_path / "run"
    (tmp_path / "my_evals.py").write_text("def has_answer(row, output):\n    return float(bool(output['answer']))\n")
    run = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "eval", "--sample", "1", "--categories",
                          "roaming", "--judges",
                          "groundedness", "--out", str(out),
                          "--evaluator", f"answered={tmp_path}/my_evals.py:has_answer"],
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    meta = json.loads((out / "metadata.json").read_text())
    assert summary["n_rows"] == 1
    assert summary["n_errors"] == 0  # the JSON schema keeps even the tiny judge's replies parseable
    assert {"token_f1", "key_fact_recall", "judge_groundedness", "latency_p95_s", "answered"} <= set(summary["metrics"])
    assert meta["provider"] == "local" and meta["prompt_hash"] and meta["dataset_hash"] and meta["variant"]
    assert meta["rows"].startswith("1 of 18 rows (stratified by category: roaming 1): g-a0")
    assert f"Rows: {meta['rows']}" in run.stdout and meta["categories"] == ["roaming"]
    rules = tmp_path / "slo.yaml"
    rules.write_text("max_error_rate: 1.0\nslos:\n  - metric: latency_p95_s\n    max: 600\n")
    gate = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "gate", "--rules", str(rules),
                           "--candidate", str(out)], capture_output=True, text=True, check=False)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert json.loads((out / "gate_decision.json").read_text())["passed"] is True


def test_rescore_adds_an_evaluator_to_a_finished_run_without_calling_the_app(tmp_path):
    from llmops_helpers.evaluate.evaluation import rescore

    app = OracleApp(fail_on={ROWS[2].id})
    run_evaluation(ROWS[:3], tmp_path, app, progress=False)
    before = read_rows(tmp_path / "rows.jsonl")

    def says_euro(row, output):
        return float("€" in output["answer"])

    summary = rescore(tmp_path, ROWS, {"says_euro": says_euro}, progress=False)
    assert len(app.calls) == 3  # no new app call
    after = {r["id"]: r for r in read_rows(tmp_path / "rows.jsonl")}
    assert len(after) == 3 and summary["n_errors"] == 1
    for row in before:
        if not row.get("error"):  # old scores kept, new one added
            assert after[row["id"]]["scores"] == {**row["scores"], "says_euro": float("€" in row["answer"])}
    assert "says_euro" in summary["metrics"] and "token_f1" in summary["metrics"]
    assert "says_euro" in json.loads((tmp_path / "metadata.json").read_text())["evaluators"]


def test_rescore_turns_a_failing_or_out_of_range_evaluator_into_error_rows(tmp_path):
    import pytest

    from llmops_helpers.errors import DatasetError
    from llmops_helpers.evaluate.evaluation import rescore

    run_evaluation(ROWS[:2], tmp_path, OracleApp(), progress=False)
    summary = rescore(tmp_path, ROWS, {"percent": lambda row, out: 80.0}, progress=False)
    assert summary["n_errors"] == 2
    assert all("outside 0–1" in r["error"] for r in read_rows(tmp_path / "rows.jsonl"))
    with pytest.raises(DatasetError, match="no saved rows"):
        rescore(tmp_path / "nothing", ROWS, {})
    with pytest.raises(DatasetError, match="not in the golden rows"):
        rescore(tmp_path, ROWS[5:], {})


def test_load_evaluator_from_a_file_or_module(tmp_path):
    import pytest

    from llmops_helpers.errors import ConfigError
    from llmops_helpers.evaluate.evaluation import load_evaluator

    source = tmp_path / "my_evals.py"
    source.write_text("def short(row, output):\n    return float(len(output['answer']) < 200)\n")
    name, fn = load_evaluator(f"is_short={source}:short")
    assert name == "is_short" and fn(ROWS[0], {"answer": "ok"}) == 1.0
    assert load_evaluator("llmops_helpers.evaluate.evaluation:context_overlap")[0] == "context_overlap"
    for bad in ("nocolon", f"{tmp_path}/missing.py:f", f"{source}:nothing"):
        with pytest.raises(ConfigError, match="--evaluator"):
            load_evaluator(bad)


def test_run_frame_and_plot_show_every_row(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from llmops_helpers.evaluate.report import plot_run, run_frame, runs_frame

    run_evaluation(ROWS[:3], tmp_path / "a", OracleApp(fail_on={ROWS[0].id}), progress=False)
    frame = run_frame(tmp_path / "a")
    assert list(frame["id"]) == [r["id"] for r in read_rows(tmp_path / "a" / "rows.jsonl")]
    assert frame["error"].notna().sum() == 1 and "token_f1" in frame.columns
    both = runs_frame({"x": tmp_path / "a", "y": tmp_path / "a"})
    assert len(both) == 6 and set(both["variant"]) == {"x", "y"}
    fig = plot_run(tmp_path / "a")
    assert len(fig.axes) == 3 and fig.axes[0].get_xlabel() == "mean score (0–1)"


def test_a_folder_of_another_configuration_is_not_resumed_unless_fresh(tmp_path):
    import pytest

    from llmops_helpers.errors import ConfigError

    app = OracleApp()
    run_evaluation(ROWS[:2], tmp_path, app, metadata={"prompt_hash": "aaa", "model": "m"}, progress=False)
    with pytest.raises(ConfigError, match="prompt_hash 'aaa' → 'bbb'"):
        run_evaluation(ROWS[:2], tmp_path, app, metadata={"prompt_hash": "bbb", "model": "m"}, progress=False)
    summary = run_evaluation(ROWS[:2], tmp_path, app, metadata={"prompt_hash": "bbb", "model": "m"}, fresh=True,
                             progress=False)
    assert len(app.calls) == 4 and summary["n_rows"] == 2
    assert json.loads((tmp_path / "metadata.json").read_text())["prompt_hash"] == "bbb"
    # the flow's code or config (say passage_words) or its knowledge base changed: its rows would mix with these
    for key in ("flow_digest", "knowledge_base_hash"):
        with pytest.raises(ConfigError, match=f"{key} None → 'new'"):
            run_evaluation(ROWS[:2], tmp_path, app, metadata={"prompt_hash": "bbb", "model": "m", key: "new"},
                           progress=False)


def test_the_baseline_flow_comes_from_a_git_ref_and_is_evaluated_beside_the_candidate(tmp_path):
    import pytest

    from llmops_helpers.errors import ConfigError
    from llmops_helpers.evaluate.evaluation import evaluate_support_agent
    from llmops_helpers.flow.app import flow_at_ref, load_flow_module, support_agent_dir

    base = flow_at_ref("HEAD")
    assert (base / "flow.flex.yaml").is_file() and base != support_agent_dir()
    committed = subprocess.run(["git", "show", "HEAD:flows/support_agent/config.yaml"], capture_output=True,
                               text=True, check=True, cwd=support_agent_dir()).stdout
    assert (base / "config.yaml").read_text() == committed
    assert load_flow_module(base).HERE == base.resolve()  # its own config and prompts, not the working copy's
    assert load_flow_module(support_agent_dir()).HERE == support_agent_dir().resolve()
    with pytest.raises(ConfigError, match="is not a commit"):
        flow_at_ref("no-such-branch")
    summary = evaluate_support_agent(golden_dir() / "ci.jsonl", tmp_path / "base", sample=1, judges=(),
                                     flow_dir=base, progress=False)
    assert summary["n_rows"] == 1
    assert json.loads((tmp_path / "base" / "metadata.json").read_text())["flow"] == str(base)


def fake_judge(fail_on=()):
    """Stands in for the LLM judge: score 4, or a JudgeError for the questions of ``fail_on``."""
    from llmops_helpers.evaluate.judges import Judgement

    questions = {r.question for r in ROWS if r.id in set(fail_on)}

    def judge(connection, name, *, question, answer, context, ground_truth):
        if question in questions:
            raise JudgeError(f"judge '{name}' returned non-JSON: 'Score: 4'")
        return Judgement(name, 4, "supported")

    return judge


def test_the_judges_are_part_of_the_run_identity(tmp_path, monkeypatch):
    import pytest

    from llmops_helpers.errors import ConfigError
    from llmops_helpers.evaluate import judges

    monkeypatch.setattr(judges, "judge", fake_judge())
    app = OracleApp()
    run_evaluation(ROWS[:3], tmp_path, app, judges=("groundedness",), progress=False)
    with pytest.raises(ConfigError, match=r"judges \['groundedness'\] → \[\]") as info:
        run_evaluation(ROWS[:6], tmp_path, app, judges=(), progress=False)  # was: a judge mean over 3 of 6 rows
    assert "--fresh" in str(info.value) and len(app.calls) == 3
    with pytest.raises(ConfigError, match="evaluators"):
        run_evaluation(ROWS[:6], tmp_path, app, judges=("groundedness",), progress=False,
                       evaluators={"token_f1": DEFAULT_EVALUATORS["token_f1"]})
    summary = run_evaluation(ROWS[:6], tmp_path, app, judges=("groundedness",), progress=False)  # same: resumes
    assert len(app.calls) == 6 and summary["metrics"]["judge_groundedness"] == 4.0 and summary["n_rows"] == 6


def test_rows_without_a_valid_metadata_file_are_not_resumed(tmp_path):
    import pytest

    from llmops_helpers.errors import ConfigError

    app = OracleApp()
    for folder, damage, why in ((tmp_path / "cut", lambda p: p.write_text(p.read_text()[:20]), "not valid JSON"),
                                (tmp_path / "gone", lambda p: p.unlink(), "is missing")):
        run_evaluation(ROWS[:3], folder, app, metadata={"variant": "grounded"}, progress=False)
        damage(folder / "metadata.json")
        with pytest.raises(ConfigError, match=why) as info:  # was: 3 "grounded" + 3 "friendly" rows in one run
            run_evaluation(ROWS[:6], folder, app, metadata={"variant": "friendly"}, progress=False)
        assert "3 rows saved" in str(info.value) and "--fresh" in str(info.value)
        assert len(read_rows(folder / "rows.jsonl")) == 3  # nothing lost, nothing added
        summary = run_evaluation(ROWS[:6], folder, app, metadata={"variant": "friendly"}, fresh=True, progress=False)
        assert summary["n_rows"] == 6
        assert {p.name for p in folder.iterdir()} == {"rows.jsonl", "summary.json", "metadata.json"}  # no temp left


def test_a_failing_judge_keeps_the_rows_other_scores(tmp_path, monkeypatch):
    from llmops_helpers.evaluate import judges
    from llmops_helpers.evaluate.gate import apply_gate

    monkeypatch.setattr(judges, "judge", fake_judge(fail_on={ROWS[1].id}))
    summary = run_evaluation(ROWS[:3], tmp_path, OracleApp(), judges=("groundedness",), progress=False)
    saved = {r["id"]: r for r in read_rows(tmp_path / "rows.jsonl")}
    failed = saved[ROWS[1].id]
    assert failed["error"] is None and failed["scores"]["key_fact_recall"] == 1.0  # was: an error row, no scores
    assert "judge_groundedness" not in failed["scores"]
    assert failed["judge_errors"] == {"groundedness": "JudgeError: judge 'groundedness' returned non-JSON: 'Score: 4'"}
    assert (summary["n_errors"], summary["n_judge_errors"], summary["judge_errors"]) == (0, 1, {"groundedness": 1})
    assert summary["metrics"]["key_fact_recall"] == 1.0 and summary["metrics"]["judge_groundedness"] == 4.0
    decision = apply_gate({"max_error_rate": 0.0}, summary)  # a failed judge still never passes silently
    assert [r.metric for r in decision.failed] == ["judge_error_rate"]
    assert "1 of 3 rows have a failed LLM judge" in decision.failed[0].message


def test_rescore_records_a_failing_judge_without_dropping_the_row(tmp_path, monkeypatch):
    from llmops_helpers.evaluate import judges
    from llmops_helpers.evaluate.evaluation import rescore

    run_evaluation(ROWS[:2], tmp_path, OracleApp(), progress=False)
    monkeypatch.setattr(judges, "judge", fake_judge(fail_on={ROWS[0].id}))
    summary = rescore(tmp_path, ROWS, {}, judges=("groundedness",), progress=False)
    assert (summary["n_errors"], summary["n_judge_errors"]) == (0, 1)
    monkeypatch.setattr(judges, "judge", fake_judge())
    summary = rescore(tmp_path, ROWS, {}, judges=("groundedness",), progress=False)  # the judge works now
    assert (summary["n_errors"], summary["n_judge_errors"], summary["metrics"]["judge_groundedness"]) == (0, 0, 4.0)
    monkeypatch.setattr(judges, "judge", fake_judge(fail_on={ROWS[1].id}))
    rescore(tmp_path, ROWS, {}, judges=("groundedness",), progress=False)  # a new failure replaces the old score
    saved = {r["id"]: r for r in read_rows(tmp_path / "rows.jsonl")}
    assert "judge_groundedness" not in saved[ROWS[1].id]["scores"] and saved[ROWS[1].id]["judge_errors"]
    assert saved[ROWS[0].id]["scores"]["judge_groundedness"] == 4.0 and not saved[ROWS[0].id]["judge_errors"]


CONTENT = {"flow_digest": "sha256:flow", "knowledge_base_hash": "kb1", "dataset_hash": "data1", "prompt_hash": "p",
           "model": "m", "provider": "local"}


def test_an_evaluation_of_identical_content_is_reused_from_the_cache(tmp_path, capsys):
    app, cache = OracleApp(), tmp_path / "cache"
    first = run_evaluation(ROWS[:2], tmp_path / "a", app, metadata=CONTENT, cache=cache, progress=False)
    assert len(app.calls) == 2 and len(list(cache.iterdir())) == 1
    again = run_evaluation(ROWS[:2], tmp_path / "b", app, metadata=CONTENT, cache=cache, fresh=True, progress=False)
    assert len(app.calls) == 2 and again == first  # nothing was re-scored
    assert "Reused the evaluation of this exact content" in capsys.readouterr().out
    assert (tmp_path / "b" / "rows.jsonl").read_text() == (tmp_path / "a" / "rows.jsonl").read_text()
    reused = json.loads((tmp_path / "b" / "metadata.json").read_text())
    assert reused["reused_from"]["cache"].startswith(str(cache)) and reused["flow_digest"] == "sha256:flow"
    # any difference in content is evaluated: the flow, its articles, the rows, the model
    for change in ({"flow_digest": "sha256:other"}, {"knowledge_base_hash": "kb2"}, {"model": "m2"}):
        run_evaluation(ROWS[:2], tmp_path / "c", app, metadata={**CONTENT, **change}, cache=cache, fresh=True,
                       progress=False)
    run_evaluation(ROWS[:3], tmp_path / "d", app, metadata=CONTENT, cache=cache, progress=False)
    assert len(app.calls) == 2 + 3 * 2 + 3 and len(list(cache.iterdir())) == 5


def test_the_cache_keeps_no_errored_run_and_replaces_a_damaged_entry(tmp_path, capsys):
    cache = tmp_path / "cache"
    run_evaluation(ROWS[:2], tmp_path / "a", OracleApp(fail_on={ROWS[0].id}), metadata=CONTENT, cache=cache,
                   progress=False)
    assert not cache.exists() or not list(cache.iterdir())  # an errored run is never reused
    app = OracleApp()
    run_evaluation(ROWS[:2], tmp_path / "b", app, metadata=CONTENT, cache=cache, progress=False)
    [entry] = cache.iterdir()
    (entry / "summary.json").write_text('{"cut sh')
    run_evaluation(ROWS[:2], tmp_path / "c", app, metadata=CONTENT, cache=cache, progress=False)
    assert len(app.calls) == 4 and "is damaged" in capsys.readouterr().out
    assert json.loads((entry / "summary.json").read_text())["n_rows"] == 2  # replaced by the new run
    # a run that records no flow digest cannot be told apart from another: it is never cached
    run_evaluation(ROWS[:2], tmp_path / "d", app, metadata={"model": "m"}, cache=tmp_path / "none", progress=False)
    assert not (tmp_path / "none").exists()


def test_the_intent_confusion_matrix_shows_a_one_label_classifier(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from llmops_helpers.evaluate.report import intent_by_category, intent_confusion, plot_intent_confusion, run_frame

    class AlwaysBilling(OracleApp):
        def __call__(self, question):
            return {**super().__call__(question), "intent": "billing"}

    run_evaluation(ROWS, tmp_path / "run", AlwaysBilling(), progress=False)
    frame = run_frame(tmp_path / "run")
    table = intent_confusion(frame["expected_intent"], frame["intent"])
    billing = sum(r.intent == "billing" for r in ROWS)
    assert table.values.sum() == len(ROWS) and int(table["billing"].sum()) == len(ROWS)
    assert int(table.at["billing", "billing"]) == billing and list(table.index)[0] == "billing"
    by_category = intent_by_category(frame)
    assert by_category["rows"].sum() == len(ROWS) and by_category["correct"].sum() == billing
    ax = plot_intent_confusion(frame["expected_intent"], frame["intent"])
    assert ax.get_title() == f"Intent: {billing} of {len(ROWS)} right; 'billing' said {len(ROWS)} times"
    assert list(intent_confusion(["sales"], [""]).columns)[-1] == "(none)"


def test_a_seen_evaluation_is_reused_before_the_flow_is_imported_or_a_model_starts(tmp_path, monkeypatch, capsys):
    """A pipeline's re-run of the same content takes ~0.5 s instead of ~4 s (promptflow import + model start)."""
    import pytest

    from llmops_helpers.evaluate.evaluation import INPUTS_FOLDER, evaluate_support_agent
    from llmops_helpers.flow import app as flows

    cache, data = tmp_path / "cache", golden_dir() / "ci.jsonl"
    first = evaluate_support_agent(data, tmp_path / "a", sample=1, judges=(), cache=cache, progress=False)
    assert len(list((cache / INPUTS_FOLDER).iterdir())) == 1

    def not_again(*args, **kwargs):
        raise AssertionError("the flow was imported")

    monkeypatch.setattr(flows, "import_flow_entry", not_again)
    monkeypatch.setattr(flows, "load_flow_module", not_again)
    again = evaluate_support_agent(data, tmp_path / "b", sample=1, judges=(), cache=cache, fresh=True,
                                   progress=False)
    assert again == first and "Reused the evaluation of this exact content" in capsys.readouterr().out
    meta = json.loads((tmp_path / "b" / "metadata.json").read_text())
    assert meta["reused_from"]["cache"].startswith(str(cache)) and meta["rows"].startswith("1 of 18 rows")
    assert (tmp_path / "b" / "rows.jsonl").read_text() == (tmp_path / "a" / "rows.jsonl").read_text()
    # other inputs are not found by their inputs: another sample, another agent environment, another variant
    for environment, sample, variant in (("", 2, ""), ("prod", 1, ""), ("", 1, "friendly")):
        monkeypatch.setenv("SUPPORT_AGENT_ENV", environment)
        with pytest.raises(AssertionError, match="the flow was imported"):
            evaluate_support_agent(data, tmp_path / "c", sample=sample, variant=variant, judges=(), cache=cache,
                                   fresh=True, progress=False)
