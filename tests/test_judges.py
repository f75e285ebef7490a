"""LLM judges: strict parsing (garbage is an error, never a score) and a real judgement from the local model."""

import pytest

from llmops_helpers.evaluate.judges import JUDGES, JudgeError, judge, judge_messages, parse_judgement


def test_valid_judgement():
    verdict = parse_judgement("relevance", '{"score": 4, "reason": " mostly answers it "}')
    assert (verdict.score, verdict.reason) == (4, "mostly answers it")


@pytest.mark.parametrize("reply, problem", [
    ("", "empty"), (None, "empty"), ("Score: 4/5", "non-JSON"), ('{"reason": "ok"}', "no 'score'"),
    ('["score", 4]', "no 'score'"), ('{"score": "4"}', "non-integer"), ('{"score": 4.5}', "non-integer"),
    ('{"score": true}', "non-integer"), ('{"score": 0}', "outside 1–5"), ('{"score": 6}', "outside 1–5"),
])
def test_garbage_is_an_error_not_a_score(reply, problem):
    with pytest.raises(JudgeError, match=problem):
        parse_judgement("groundedness", reply)


def test_judges_name_missing_inputs():
    with pytest.raises(JudgeError, match="needs context"):
        judge_messages("groundedness", answer="Hi")
    assert "GROUND TRUTH" in judge_messages("similarity", question="q", ground_truth="g", answer="a")[1]["content"]


def test_local_judge_returns_a_valid_score(local_server):
    from llmops_helpers import connect

    connection = connect("local")
    for name in JUDGES:
        verdict = judge(connection, name, question="How long do refunds take?", answer="Refunds take 5 days.",
                        context="Refunds are paid within 5 working days.", ground_truth="Within 5 working days.")
        assert verdict.name == name and 1 <= verdict.score <= 5  # shape only: a 135M judge's score means little


def test_judge_agreement_counts_pairs_the_metric_separates():
    import pandas as pd

    from llmops_helpers.evaluate.judges import judge_agreement

    frame = pd.DataFrame({"context_overlap": [0.95, 0.8, 0.3, 0.31], "judge_groundedness": [5, 1, 1, 4]})
    result = judge_agreement(frame, margin=0.1)
    # pairs with |Δ| >= 0.1 (all but 0.3/0.31): the 0.95 answer vs each other one agrees (3),
    # 0.8 vs 0.3 is a judge tie (1 vs 1), 0.8 vs 0.31 is reversed by the judge (1 < 4)
    assert (result.pairs, result.agree, result.disagree, result.ties) == (5, 3, 1, 1)
    assert result.agreement_rate == 0.6 and "agreed on 3 (60%)" in str(result)
    flat = judge_agreement(frame.assign(judge_groundedness=1))
    assert flat.ties == flat.pairs and flat.agree == 0
    assert "no pair" in str(judge_agreement(frame.iloc[:1]))


def test_judge_vs_metric_plot(tmp_path):
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    from llmops_helpers.evaluate.judges import plot_judge_vs_metric

    frame = pd.DataFrame({"context_overlap": [0.9, 0.3], "judge_groundedness": [1, 1], "variant": ["a", "b"]})
    fig = plot_judge_vs_metric(frame)
    assert fig.axes[0].get_ylabel().startswith("judge_groundedness") and len(fig.axes[0].collections) == 2
