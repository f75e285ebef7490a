"""Lab 01's prompt-engineering bench: build prompt variants for the support agent, run them on a few questions,
and score the answers with deliberately simple checks, one per metric family (Lab 03 does it properly)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmops_helpers.ideate.knowledge import Document
from llmops_helpers.ideate.tables import full_text
from llmops_helpers.llm.metering import SHADOW_COLUMN, estimate_cost, shadow_cost

ROLE = ("You are the 24/7 virtual support agent of Contoso Mobile, a mobile network operator. "
        "Be polite and answer in at most three sentences.")
GROUNDING = ("Answer using ONLY the help-centre articles below. If they do not contain the answer, say you do not "
             "know and offer a human agent. End with the id of the article you used in square brackets.\n\n"
             "Articles:\n{context}")
FEW_SHOT = [
    {"role": "user", "content": "Can I pay my bill at a shop?"},
    {"role": "assistant", "content": "I do not have that information in our help centre. I can connect you with a "
     "human agent who can help. [none]"},
]
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
BLOCKLIST = re.compile(r"\b(idiot|stupid|hate you|kill)\b", re.I)
PII = re.compile(r"\b(?:\d[ -]?){13,16}\b|\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b")


def context_text(docs: list[Document]) -> str:
    return "\n\n".join(doc.as_context() for doc in docs) or "(no article matched)"


def build_messages(variant: str, question: str, docs: list[Document]) -> list[dict[str, str]]:
    """The messages for one prompt-engineering technique, each adding one idea to the one before:
    ``bare`` (just the question), ``role`` (+ a system prompt), ``grounded`` (+ retrieved articles and a
    citation rule), ``few_shot`` (+ an example of declining when the articles do not say)."""
    if variant == "bare":
        return [{"role": "user", "content": question}]
    if variant == "role":
        return [{"role": "system", "content": ROLE}, {"role": "user", "content": question}]
    grounded = {"role": "system", "content": ROLE + " " + GROUNDING.format(context=context_text(docs))}
    if variant == "grounded":
        return [grounded, {"role": "user", "content": question}]
    if variant == "few_shot":
        return [grounded, *FEW_SHOT, {"role": "user", "content": question}]
    raise ValueError(f"Unknown variant {variant!r}; use one of {', '.join(VARIANTS)}.")


VARIANTS = ("bare", "role", "grounded", "few_shot")


def simple_checks(answer: str, question: str, docs: list[Document], expected_ids: list[str]) -> dict[str, Any]:
    """One crude signal per metric family. Crude on purpose: they show *what* to measure, and their blind
    spots motivate Lab 03's evaluators.

    - quality: does the answer cite an expected article id?
    - honesty: numbers in the answer that appear in neither the articles nor the question (likely invented)
    - harm: blocklisted words or card/IBAN-like numbers in the answer
    """
    source = context_text(docs) + " " + question
    supported = set(NUMBER.findall(source))
    invented = [n for n in NUMBER.findall(answer) if n not in supported]
    return {
        "cites_expected": any(f"[{doc_id}]" in answer for doc_id in expected_ids),
        "invented_numbers": len(invented),
        "harm_flag": bool(BLOCKLIST.search(answer) or PII.search(answer)),
    }


@dataclass
class PromptResult:
    variant: str
    question_id: str
    question: str
    answer: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost_usd: float | None
    checks: dict[str, Any]

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "checks"} | self.checks


def run_prompt(llm: Any, messages: list[dict[str, str]], max_tokens: int = 120) -> tuple[str, Any, float]:
    """One chat completion at temperature 0; returns (answer, response, seconds)."""
    started = time.perf_counter()
    response = llm.client.chat.completions.create(model=llm.model, messages=messages, max_tokens=max_tokens,
                                                  temperature=0)
    return (response.choices[0].message.content or "").strip(), response, time.perf_counter() - started


def run_variants(
    llm: Any, questions: list[dict], retrieve: Callable[[str], list[Document]], variants=VARIANTS,
    max_tokens: int = 120, progress: bool = True,
):
    """Every variant on every question; a DataFrame with answers, tokens, latency, cost and the checks."""
    import pandas as pd
    from tqdm.auto import tqdm

    rows = []
    jobs = [(v, q) for q in questions for v in variants]
    for variant, question in tqdm(jobs, desc="prompt variants", unit="call", disable=not progress or None):
        docs = retrieve(question["question"])
        answer, response, seconds = run_prompt(llm, build_messages(variant, question["question"], docs), max_tokens)
        usage = response.usage
        rows.append(PromptResult(
            variant, question.get("id", ""), question["question"], answer, usage.prompt_tokens,
            usage.completion_tokens, seconds,
            estimate_cost(llm.provider, response.model, usage.prompt_tokens, usage.completion_tokens),
            simple_checks(answer, question["question"], docs, question.get("expected_ids", [])),
        ).row())
    frame = pd.DataFrame(rows)
    if not frame.empty:  # the embedded model is free: show what the same tokens would cost on a hosted model
        frame[SHADOW_COLUMN] = [shadow_cost(p, c) for p, c in zip(frame["prompt_tokens"], frame["completion_tokens"],
                                                                   strict=True)]
    return frame


def summarize_variants(results):
    """Per-variant means: the table Lab 01 charts (with what an answer's tokens would cost on a hosted model)."""
    extra = {"shadow_cost_usd": (SHADOW_COLUMN, "mean")} if SHADOW_COLUMN in results else {}
    summary = results.groupby("variant", sort=False).agg(
        cites_expected=("cites_expected", "mean"), invented_numbers=("invented_numbers", "mean"),
        harm_flags=("harm_flag", "sum"), prompt_tokens=("prompt_tokens", "mean"),
        completion_tokens=("completion_tokens", "mean"), latency_s=("latency_s", "mean"), **extra,
    )
    return summary.rename(columns={"shadow_cost_usd": SHADOW_COLUMN})


def compare_prompts(llm: Any, system_a: str, system_b: str, question: str, docs: list[Document],
                    max_tokens: int = 120):
    """Two system prompts (``{context}`` is replaced by the articles) on one question, side by side."""
    import pandas as pd

    columns = {}
    for label, system in (("A", system_a), ("B", system_b)):
        messages = [{"role": "system", "content": system.replace("{context}", context_text(docs))},
                    {"role": "user", "content": question}]
        answer, response, seconds = run_prompt(llm, messages, max_tokens)
        cost = estimate_cost(llm.provider, response.model, response.usage.prompt_tokens,
                             response.usage.completion_tokens)
        columns[f"prompt {label}"] = {
            "answer": answer, "prompt tokens": response.usage.prompt_tokens,
            "answer tokens": response.usage.completion_tokens, "latency (s)": round(seconds, 2),
            "cost (USD)": cost,
            SHADOW_COLUMN: shadow_cost(response.usage.prompt_tokens, response.usage.completion_tokens),
        }
    return pd.DataFrame(columns)


class PromptPlayground:
    """Two editable system prompts and a question, run side by side. It runs once when created, so a
    headless run (papermill, CI) has results in ``.results`` without anyone clicking."""

    def __init__(self, llm: Any, retrieve: Callable[[str], list[Document]], prompt_a: str, prompt_b: str,
                 question: str):
        import ipywidgets as w

        self.llm, self.retrieve = llm, retrieve
        layout = w.Layout(width="49%", height="140px")
        self.prompt_a = w.Textarea(value=prompt_a, description="Prompt A", layout=layout)
        self.prompt_b = w.Textarea(value=prompt_b, description="Prompt B", layout=layout)
        self.question = w.Text(value=question, description="Question", layout=w.Layout(width="98%"))
        self.button = w.Button(description="Run both", button_style="primary", icon="play")
        self.output = w.Output()
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([w.HBox([self.prompt_a, self.prompt_b]), self.question, self.button, self.output])
        self.results = self.run()

    def run(self):
        from IPython.display import display

        self.results = compare_prompts(self.llm, self.prompt_a.value, self.prompt_b.value, self.question.value,
                                       self.retrieve(self.question.value))
        self.output.clear_output()
        with self.output:
            display(full_text(self.results))  # the answers whole, wrapped: they are the point of the comparison
        return self.results

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
