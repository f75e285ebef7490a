"""The app's own unit tests: what the app's pipelines run (`llmops test --app`), in seconds.

They check what a change to the flow can break — every environment's settings, every prompt, retrieval of the
right article, and one real answer's shape — not the quality of answers (that is the evaluation's job)."""

import sys
from pathlib import Path

import pytest
import yaml

FLOW = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(FLOW))
import support_agent  # noqa: E402

ENVIRONMENTS = ["", *(yaml.safe_load((FLOW / "config.yaml").read_text(encoding="utf-8")).get("environments") or {})]


@pytest.mark.parametrize("environment", ENVIRONMENTS, ids=[e or "default" for e in ENVIRONMENTS])
def test_every_environment_has_usable_settings(environment):
    config = support_agent.load_config(environment=environment)
    assert 0.0 <= float(config["temperature"]) <= 2.0
    assert isinstance(config["top_k"], int) and config["top_k"] >= 1
    assert (FLOW / "prompts" / f"answer_{config['prompt_variant']}.prompty").is_file()


@pytest.mark.parametrize("prompt", sorted((FLOW / "prompts").glob("*.prompty")), ids=lambda p: p.stem)
def test_every_prompt_renders_with_its_inputs(prompt):
    template = support_agent.load_prompty(prompt)
    messages = template.render(**{name: "sample text" for name in template.inputs})
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"


@pytest.mark.parametrize(("question", "article"), [
    ("How much does it cost to use my phone in France?", "kb-roaming-eu"),
    ("How do I set up voicemail?", "kb-voicemail"),
])
def test_retrieval_finds_the_article(question, article):
    agent = support_agent.SupportAgent()
    assert article in [hit.id for hit in agent.retrieve(question)]


def test_one_real_answer_has_the_reply_shape():
    reply = support_agent.SupportAgent()("How do I set up voicemail?")
    assert reply["answer"].strip() and reply["intent"] in support_agent.INTENTS
    assert reply["context_ids"] and set(reply["cited_ids"]) <= set(reply["context_ids"])
    assert reply["usage"]["total_tokens"] > 0
