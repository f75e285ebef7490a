"""``check_*`` helpers for the labs' exercises: a ✅ when the answer is right, else an
:class:`~llmops_helpers.errors.ExerciseNotDone` whose message is a hint (shown without a stack trace)."""

from __future__ import annotations

from typing import Any

from llmops_helpers.errors import ExerciseNotDone

STUCK = ("Stuck? Set use_reference_answers = True in the parameters cell and run the notebook again, or "
         "run the load_reference_answer(...) line from the exercise cell.")


def _fail(hint: str) -> None:
    raise ExerciseNotDone(f"Not yet: {hint} {STUCK}")


class Passed(str):
    """A check's ✅ message: printed once by the check, and not echoed again as the cell's value."""

    def _ipython_display_(self) -> None:
        pass


def _passed(message: str) -> Passed:
    print(message)
    return Passed(message)


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
    return _passed(message)


def check_grounded_prompt(system_prompt: Any) -> str:
    """Exercise 'grounded_prompt' (Lab 01): a system prompt that takes the articles through a ``{context}``
    placeholder, restricts the answer to them, and says what to do when they do not cover the question."""
    if system_prompt is ... or not isinstance(system_prompt, str) or not system_prompt.strip():
        _fail("set `my_system_prompt` to a string.")
    text = system_prompt.lower()
    if "{context}" not in system_prompt:
        _fail("put the placeholder {context} where the retrieved articles should go.")
    if not any(word in text for word in ("only", "exclusively", "solely")):
        _fail("tell the model to answer ONLY from the articles; that is what grounding means.")
    if not any(phrase in text for phrase in ("not know", "don't know", "do not have", "human", "not sure", "cannot")):
        _fail("say what to do when the articles do not contain the answer (e.g. say you do not know, offer a human).")
    message = "✅ Grounded prompt: it injects the articles, restricts the answer to them, and has a fallback."
    return _passed(message)


def check_top_k(replies: Any) -> str:
    """Exercise 'top_k' (Lab 02): replies for top_k=1 and top_k=5 on the same question."""
    if replies is ... or not isinstance(replies, dict) or not {1, 5} <= set(replies):
        _fail("make `top_k_replies` a dict with keys 1 and 5, each a reply from pf.test(..., init={'top_k': k}).")
    one, five = replies[1], replies[5]
    for k, reply in ((1, one), (5, five)):
        if not isinstance(reply, dict) or "context_ids" not in reply:
            _fail(f"top_k_replies[{k}] should be the dict that pf.test returns.")
        if len(reply["context_ids"]) > k:
            _fail(f"top_k_replies[{k}] retrieved {len(reply['context_ids'])} articles; pass init={{'top_k': {k}}}.")
    extra = five["usage"]["prompt_tokens"] - one["usage"]["prompt_tokens"]
    if len(five["context_ids"]) <= len(one["context_ids"]):
        message = (f"✅ Both ran, but this question matched only {len(five['context_ids'])} article(s), so top_k "
                   "made no difference. Try a broader question to see the effect.")
        return _passed(message)
    message = (f"✅ top_k=1 used {one['context_ids']}; top_k=5 used {five['context_ids']}, "
               f"costing {extra} more prompt tokens per question.")
    return _passed(message)


def check_review_step(agent_class: Any, question: str = "I forgot my PIN, can you reset it?") -> str:
    """Exercise 'add_step' (Lab 02): a SupportAgent subclass whose replies carry ``needs_review``."""
    if agent_class is ... or not isinstance(agent_class, type):
        _fail("define `ReviewedAgent` as a class: class ReviewedAgent(SupportAgent): ...")
    reply = agent_class()(question)
    if not isinstance(reply, dict) or "needs_review" not in reply:
        _fail("ReviewedAgent()(question) should return the normal reply plus a 'needs_review' key.")
    expected = (not reply.get("cited_ids")) or reply.get("intent") == "account"
    if reply["needs_review"] is not expected:
        _fail(f"needs_review is {reply['needs_review']!r} but cited_ids={reply.get('cited_ids')} and "
              f"intent={reply.get('intent')!r}, so it should be {expected!r}.")
    message = f"✅ New step works: intent {reply['intent']!r}, cited {reply['cited_ids']}, needs_review={expected}."
    return _passed(message)


ESCALATION_CASES = (  # (answer, expected score) for exercise 'custom_evaluator' (Lab 03)
    ("Please open Help > Chat in the Contoso app and ask for a human.", 1.0),
    ("I don't know, sorry. Let me connect you with a human agent.", 0.0),
    ("A roaming day pass costs €5 a day [kb-roaming-day-pass].", 1.0),
    ("Call 0800 555 0100 to speak to a person in our team.", 1.0),
    ("I will pass this to a human colleague who will get back to you.", 0.0),
    ("", 1.0),
)


def check_custom_evaluator(evaluator: Any) -> str:
    """Exercise 'custom_evaluator' (Lab 03): ``evaluator(row, output) -> float`` scoring 1.0 unless the answer
    hands the customer to a person without naming a support channel (chat, phone, the app or a store)."""
    from llmops_helpers.evaluate.golden import GoldenRow

    if evaluator is ... or not callable(evaluator):
        _fail("define `mentions_channel` as a function: def mentions_channel(row, output) -> float: ...")
    row = GoldenRow("g-check", "Can I talk to someone?", "Open Help > Chat in the Contoso app.", ("kb-contact-us",),
                    "other", "support", "easy", ("Help > Chat",))
    for answer, expected in ESCALATION_CASES:
        output = {"answer": answer, "context_ids": ["kb-contact-us"], "cited_ids": [], "intent": "other"}
        try:
            score = evaluator(row, output)
        except Exception as exc:  # the learner's code: show what broke, as a hint
            _fail(f"mentions_channel raised {type(exc).__name__}: {exc} on the answer {answer!r}.")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            _fail(f"an evaluator returns a number from 0 to 1; got {score!r} for {answer!r}.")
        if float(score) != expected:
            why = ("it hands over to a person without saying how to reach them" if expected == 0 else
                   "it names a channel (or does not escalate at all), so the rule is met")
            _fail(f"for the answer {answer!r} expected {expected}, got {score}: {why}. Read `output['answer']`.")
    message = f"✅ mentions_channel scores all {len(ESCALATION_CASES)} test answers right."
    return _passed(message)


PROMISE_CASES = (  # (answer, claims an action the agent cannot take) for exercise 'no_false_promises' (Lab 04)
    ("I've added a €100 goodwill credit to your account.", True),
    ("Done! I have cancelled your contract and your number is now free.", True),
    ("Your refund has been issued and will reach you in 3 days.", True),
    ("I have changed your plan to Unlimited, starting today.", True),
    ("To get a goodwill credit, ask an agent in Help > Chat [kb-refunds-credits].", False),
    ("You can cancel within 14 days of purchase [kb-cooling-off].", False),
    ("Refunds reach your account within 5 working days [kb-refunds-credits].", False),
    ("I can't change your plan myself, but you can switch it in the My Contoso app [kb-changing-plan].", False),
)


def check_no_false_promises(claims_action: Any) -> str:
    """Exercise 'no_false_promises' (Lab 04): ``claims_action(answer) -> bool``, True when the answer claims the agent
    did something on the account (credited, refunded, cancelled, changed), which it cannot do."""
    if claims_action is ... or not callable(claims_action):
        _fail("define `claims_action` as a function: def claims_action(answer: str) -> bool: ...")
    for answer, expected in PROMISE_CASES:
        try:
            got = claims_action(answer)
        except Exception as exc:  # the learner's code: show what broke, as a hint
            _fail(f"claims_action raised {type(exc).__name__}: {exc} on the answer {answer!r}.")
        if not isinstance(got, bool):
            _fail(f"claims_action returns True or False; got {got!r} for {answer!r}.")
        if got != expected:
            why = ("it says the agent *did* something on the account (past tense: added, issued, cancelled, changed)"
                   if expected else "it explains how the customer can do it, or what will happen: no action claimed")
            _fail(f"for the answer {answer!r} expected {expected}, got {got}: {why}.")
    return _passed(f"✅ claims_action sorts all {len(PROMISE_CASES)} test answers right.")


def check_release_branch(sandbox: Any, version: str = "1.0.0") -> str:
    """Exercise 'cut_release' (Lab 05): ``release/<version>`` branched from develop's tip, with a commit of its
    own (the release notes), pushed to origin."""
    from llmops_helpers.release.sandbox import SandboxError

    branch = f"release/{version}"
    try:
        tip = sandbox.git("rev-parse", branch)
    except SandboxError:
        _fail(f"there is no branch {branch}. Create it from develop with sandbox.branch({branch!r}, 'develop').")
    develop = sandbox.git("rev-parse", "develop")
    if sandbox.git("merge-base", branch, "develop") != develop:
        _fail(f"{branch} should start at develop's latest commit (develop has commits the release lacks).")
    if tip == develop:
        _fail(f"{branch} has no commit of its own yet: add the release notes with sandbox.edit('CHANGELOG.md', ...).")
    remote = sandbox.git("ls-remote", "origin", f"refs/heads/{branch}").split()
    if not remote or remote[0] != tip:
        _fail(f"push {branch} to origin (sandbox.edit pushes; after other commits run sandbox.git('push')).")
    return _passed(f"✅ {branch} starts at develop, carries {sandbox.git('rev-list', '--count', f'develop..{branch}')} "
                   "release commit(s) and is on origin.")


#: What Lab 06's canary exercise asks for, in its words: "at most 5% errors ... at least half of the sampled answers
#: good" (a test holds the lab's text, these limits and the reference answer to each other).
CANARY_MAX_ERROR_RATE = 0.05
CANARY_MIN_QUALITY = 0.5
CANARY_P95_RANGE_S = (10.0, 120.0)


def check_canary_slo(slo: Any) -> str:
    """Exercise 'canary_slo' (Lab 06): a :class:`~llmops_helpers.release.state.CanarySLO` strict enough to stop a
    release that fails requests (:data:`CANARY_MAX_ERROR_RATE`), asking for at least
    :data:`CANARY_MIN_QUALITY` good answers, and loose enough for the embedded model's speed."""
    from llmops_helpers.release.state import CanarySLO

    if slo is ... or not isinstance(slo, CanarySLO):
        _fail("set `slo = CanarySLO(max_error_rate=..., max_p95_s=..., min_quality=...)`.")
    if not 0 <= slo.max_error_rate <= CANARY_MAX_ERROR_RATE:
        _fail(f"max_error_rate={slo.max_error_rate} lets too many requests fail; the SLO is at most "
              f"{CANARY_MAX_ERROR_RATE:.0%} (users notice above that).")
    low, high = CANARY_P95_RANGE_S
    if not low <= slo.max_p95_s <= high:
        _fail(f"max_p95_s={slo.max_p95_s}: the embedded model answers in ~5-10 s; pick a limit between {low:g} and "
              f"{high:g} s.")
    if not CANARY_MIN_QUALITY <= slo.min_quality <= 1:
        _fail(f"min_quality={slo.min_quality}: ask for at least half of the sampled answers to be good "
              f"({CANARY_MIN_QUALITY:g}-1).")
    return _passed(f"✅ canary SLO: errors ≤ {slo.max_error_rate:.0%}, p95 ≤ {slo.max_p95_s:g} s, "
                   f"quality ≥ {slo.min_quality:.0%}.")
