"""Tables that show answers whole."""

import pandas as pd
import pytest

from llmops_helpers.ideate.tables import full_text


def test_long_answers_are_shown_whole_and_wrapped_and_small_costs_stay_visible():
    answer = "No, you can't keep your number if you switch to a business plan without a porting code, " * 2
    frame = pd.DataFrame({"id": ["g-a001", "g-a002"], "answer": [answer, "Yes."], "cost": [0.000124, None]})
    with pd.option_context("display.max_colwidth", 50):
        html = full_text(frame).to_html()
    assert answer.strip() in html and "…" not in html  # the whole answer, not cut at 50 characters
    assert "pre-wrap" in html and "0.000124" in html and "–" in html
    numbers = full_text(pd.DataFrame({"x": [5.025235, 552.0, 0.0, 0.6666, 8.01e-05, 54.5]})).to_html()
    for shown in (">5.03<", ">552<", ">0<", ">0.667<", ">0.0000801<", ">54.5<"):
        assert shown in numbers
    assert full_text(frame).data is frame
    styled_columns = full_text(frame, wrap=["answer"]).to_html()
    assert styled_columns.count("pre-wrap") == full_text(frame).to_html().count("pre-wrap")  # only 'answer' is long
    with pytest.raises(KeyError, match="no column 'answr'"):
        full_text(frame, wrap=["answr"])
