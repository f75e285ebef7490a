"""``check_*`` helpers for the labs' exercises: a ✅ when the answer is right, else an
:class:`~llmops_helpers.errors.ExerciseNotDone` whose message is a hint (shown without a stack trace)."""

from __future__ import annotations

from typing import Any

from .errors import ExerciseNotDone

STUCK = ("Stuck? Set use_reference_answers = True in the parameters cell and run the notebook again, or "
         "run the load_reference_answer(...) line from the exercise cell.")


def _fail(hint: str) -> None:
    raise ExerciseNotDone(f"Not yet: {hint} {STUCK}")


def check_first_call(messages: Any, response: Any) -> str:
    """Exercise 'first_call' (Lab 00): a system message that sets the support-agent role, a user
    question, and a real chat completion in ``response``."""
    if messages is ... or response is ...:
        _fail("define `messages` and `response` in the exercise cell.")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        _fail("`messages` should be a list of dicts like {'role': 'system', 'content': '...'}.")
    roles = [m.get("role") for m in messages]
    if not roles or roles[0] != "system":
        _fail("start `messages` with a system message that tells the model who it is.")
    if "user" not in roles:
        _fail("add a user message with the customer's question after the system message.")
    system = str(messages[0].get("content", "")).lower()
    if not any(word in system for word in ("support", "agent", "assistant", "customer")):
        _fail("the system message should say the model is a customer-support agent for the telco.")
    if type(response).__name__ != "ChatCompletion":
        _fail("`response` should be what client.chat.completions.create(...) returns.")
    content = response.choices[0].message.content if response.choices else None
    if not content or not content.strip():
        _fail("the model returned an empty answer; check max_tokens is at least 20.")
    if response.usage is None or response.usage.completion_tokens <= 0:
        _fail("the response carries no token usage; was it made through the kit's client?")
    message = f"✅ First call done: {response.usage.completion_tokens} tokens of answer."
    print(message)
    return message
