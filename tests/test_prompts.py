"""Prompt files (.prompty) load, validate and render into chat messages."""

import pytest

from llmops_helpers.errors import DatasetError
from llmops_helpers.flow.app import support_agent_dir
from llmops_helpers.ideate.prompts import load_prompty, split_roles

PROMPTS = sorted((support_agent_dir() / "prompts").glob("*.prompty"))


def test_split_roles():
    messages = split_roles("system:\nBe brief.\nuser:\nHi\nassistant:\nHello\n")
    assert messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello"}]
    with pytest.raises(DatasetError, match="before the first role marker"):
        split_roles("Be brief.\nuser:\nHi")


def test_the_app_has_two_answer_variants_and_a_classifier():
    names = {p.stem for p in PROMPTS}
    assert {"answer_grounded", "answer_friendly", "classify_intent"} <= names


@pytest.mark.parametrize("path", PROMPTS, ids=[p.stem for p in PROMPTS])
def test_each_prompt_renders_its_sample(path):
    import yaml

    prompt = load_prompty(path)
    sample = yaml.safe_load(path.read_text().split("---")[1])["sample"]
    messages = prompt.render(**sample)
    assert messages[0]["role"] == "system" and messages[-1] == {"role": "user", "content": sample["question"]}


def test_missing_input_is_named(tmp_path):
    path = tmp_path / "p.prompty"
    path.write_text("---\nname: p\ninputs:\n  question: {type: string}\n---\nuser:\n{{ question }}\n")
    with pytest.raises(DatasetError, match="missing question") as info:
        load_prompty(path).render()
    assert info.value.path == str(path)
