"""Contoso Mobile's support agent: retrieve help-centre passages (BM25), classify the intent (JSON schema),
answer from the articles with a prompt variant, and report what it cost.

Run it:  pf flow test --flow . --inputs question="How do I set up voicemail?"
or from Python:  SupportAgent(prompt_variant="friendly")("How do I set up voicemail?")

(No `from __future__ import annotations` here: promptflow reads the entry's real type annotations.)
"""


import json
import os
import re
import time
from pathlib import Path
from typing import Any, TypedDict

import yaml
from promptflow.tracing import trace

# The app's runtime: the kit's stage packages, never their inner modules (those may move between versions)
from llmops_helpers.errors import ConfigError
from llmops_helpers.flow import get_retriever
from llmops_helpers.ideate import load_prompty
from llmops_helpers.llm import connect, estimate_cost

HERE = Path(__file__).resolve().parent
INTENTS = ["billing", "technical", "account", "sales", "other"]
INTENT_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "intent",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"intent": {"type": "string", "enum": INTENTS}},
            "required": ["intent"],
            "additionalProperties": False,
        },
    },
}
CITATION = re.compile(r"\[(kb-[a-z0-9-]+)\]")


class AgentReply(TypedDict):
    """What the flow returns for one question."""

    answer: str
    cited_ids: list  # article ids the answer cites that were really in its context
    context_ids: list  # ids of the articles retrieved (each as its best passage) and put in the prompt, best first
    intent: str
    usage: dict  # prompt_tokens, completion_tokens, total_tokens, llm_calls, cost_usd
    timings: dict  # seconds per step: retrieve, classify, answer, total


def load_config(path: str | Path = HERE / "config.yaml", environment: str = "", **overrides: Any) -> dict:
    """The YAML settings, with the ``environment`` overlay (dev/qa/prod) and then ``overrides`` applied.
    ``SUPPORT_AGENT_ENV`` picks the environment when none is given."""
    path = Path(path) if Path(path).is_absolute() else HERE / path
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    environments = raw.pop("environments", {}) or {}
    environment = environment or os.environ.get("SUPPORT_AGENT_ENV", "")
    if environment:
        if environment not in environments:
            raise ConfigError(f"{path}: no environment {environment!r} (have {', '.join(environments)}).")
        raw.update(environments[environment] or {})
    raw.update({k: v for k, v in overrides.items() if v not in (None, "")})
    raw["environment"] = environment or "default"
    return raw


class SupportAgent:
    """The flow. Init parameters (any may be left empty to use config.yaml) are what a run varies."""

    def __init__(self, prompt_variant: str = "", top_k: int = 0, environment: str = "", config: str = "config.yaml"):
        # promptflow passes init values it did not get as strings of the defaults ("0"), so convert here.
        top_k = int(top_k or 0)
        self.config = load_config(config, environment, prompt_variant=prompt_variant, top_k=top_k or None)
        self.llm = connect(self.config.get("provider"), model=self.config.get("model"))
        self.answer_prompt = load_prompty(HERE / "prompts" / f"answer_{self.config['prompt_variant']}.prompty")
        self.intent_prompt = load_prompty(HERE / "prompts" / "classify_intent.prompty")
        kb = self.config.get("knowledge_base")
        self.retriever = get_retriever((HERE / kb) if kb else None, int(self.config.get("passage_words") or 0))

    @trace
    def retrieve(self, question: str) -> list:
        return self.retriever.search(question, k=int(self.config["top_k"]))

    def _chat(self, messages: list, max_tokens: int, **extra: Any):
        return self.llm.client.chat.completions.create(
            model=self.llm.model, messages=messages, max_tokens=max_tokens,
            temperature=float(self.config["temperature"]), **extra,
        )

    @trace
    def classify(self, question: str) -> tuple[str, Any]:
        response = self._chat(self.intent_prompt.render(question=question),
                              int(self.intent_prompt.parameters.get("max_tokens", 20)), response_format=INTENT_SCHEMA)
        try:
            intent = json.loads(response.choices[0].message.content or "{}").get("intent", "other")
        except json.JSONDecodeError:
            intent = "other"  # a provider that ignores json_schema; counted as 'other', not hidden
        return (intent if intent in INTENTS else "other"), response

    @trace
    def answer(self, question: str, hits: list) -> tuple[str, Any]:
        context = "\n\n".join(hit.doc.as_context() for hit in hits) or "(no article matched)"
        max_tokens = int(self.config.get("max_tokens") or self.answer_prompt.parameters.get("max_tokens", 150))
        response = self._chat(self.answer_prompt.render(question=question, context=context), max_tokens)
        return (response.choices[0].message.content or "").strip(), response

    def __call__(self, question: str) -> AgentReply:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        hits = self.retrieve(question)
        timings["retrieve"] = time.perf_counter() - started
        responses = []
        intent = "other"
        if self.config.get("classify_intent", True):
            t0 = time.perf_counter()
            intent, response = self.classify(question)
            responses.append(response)
            timings["classify"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        text, response = self.answer(question, hits)
        responses.append(response)
        timings["answer"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        context_ids = [hit.id for hit in hits]
        cited = [doc_id for doc_id in dict.fromkeys(CITATION.findall(text)) if doc_id in context_ids]
        return AgentReply(answer=text, cited_ids=cited, context_ids=context_ids, intent=intent,
                          usage=_usage(self.llm.provider, responses), timings=timings)


def _usage(provider: str, responses: list) -> dict:
    prompt = sum(r.usage.prompt_tokens for r in responses if r.usage)
    completion = sum(r.usage.completion_tokens for r in responses if r.usage)
    costs = [estimate_cost(provider, r.model, r.usage.prompt_tokens, r.usage.completion_tokens)
             for r in responses if r.usage]
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "llm_calls": len(responses), "cost_usd": None if None in costs else sum(costs)}


if __name__ == "__main__":
    import sys

    print(json.dumps(SupportAgent()(" ".join(sys.argv[1:]) or "How much is roaming in Spain?"), indent=2))
