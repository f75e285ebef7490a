"""LLM judges: strict parsing (garbage is an error, never a score) and a real judgement from the local model."""

import pytest

from llmops_helpers.judges import JUDGES, JudgeError, judge, judge_messages, parse_judgement


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
