"""Checks of a deployed environment with real HTTP requests: the shape of one reply (written once, used by the
canary's live quality sample, blue/green's pre-switch probe, the smoke test and the integration test), the smoke
test and the integration test."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_helpers.paths import write_text_atomic
from llmops_helpers.release.endpoints import http_json, score_with_slot, slot_errors, weights_now
from llmops_helpers.release.state import DeployError, deploy_dir, load_state

#: What the flow returns for one question (``AgentReply`` in the sample app); the smoke test checks all are there.
REPLY_KEYS = ("answer", "context_ids", "cited_ids", "intent", "usage")
DEFAULT_QUESTION = "What are your customer support opening hours?"


def reply_problems(reply: dict, expected_ids: tuple[str, ...] | list[str] = ()) -> list[str]:
    """What is wrong with one ``/score`` reply, [] when nothing: it must have a non-empty answer, at least one
    retrieved article, and cite only retrieved articles; with ``expected_ids`` (a golden row's), it must also
    have retrieved one of them. The one test of a reply: the canary's live quality sample, blue/green's probe of
    the idle slot, the smoke test and the integration test all use it."""
    context = set(reply.get("context_ids") or [])
    problems = [] if str(reply.get("answer", "")).strip() else ["the answer is empty"]
    if not context:
        problems.append("no article was retrieved")
    stray = sorted(set(reply.get("cited_ids") or []) - context)
    if stray:
        problems.append(f"it cites {', '.join(map(str, stray))}, which were not retrieved")
    if expected_ids and context and not context & set(expected_ids):
        problems.append(f"none of the supporting articles ({', '.join(expected_ids)}) was retrieved")
    return problems


def probe_slot(slot: dict[str, Any], question: str = DEFAULT_QUESTION) -> list[str]:
    """Blue/green's pre-switch test of the idle slot, directly (no user sees it yet)."""
    problems = []
    code, version = http_json(slot["url"] + "/version", timeout=10)
    if code != 200 or version.get("digest") != slot["digest"]:
        problems.append("the idle slot does not serve the artifact's digest")
    code, reply, _ = score_with_slot(slot["url"], question)
    if code != 200:
        problems.append(f"/score answered HTTP {code}: {reply.get('error', '')}")
    else:
        problems += [f"the reply: {problem}" for problem in reply_problems(reply)]
    return problems


@dataclass
class SmokeResult:
    environment: str
    url: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    kind: str = "Smoke test"

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def __str__(self) -> str:
        lines = [f"{self.kind} of {self.environment} at {self.url}: {'passed' if self.passed else 'FAILED'}"]
        lines += [f"  {'✅' if ok else '❌'} {name}: {detail}" for name, ok, detail in self.checks]
        return "\n".join(lines)


def smoke(environment: str, *, question: str = DEFAULT_QUESTION,
          max_latency_s: float = 60.0, folder: str | Path | None = None) -> SmokeResult:
    """Real requests to a deployed endpoint: healthy, serving the recorded digest, and answering one question
    with the reply's shape (answer, context, cited ids among the context, usage) within ``max_latency_s``; and no
    slot that takes traffic has a server error as its latest answer (the router sends this request to one)."""
    entry = load_state(folder)["environments"].get(environment)
    if not entry:
        raise DeployError(f"nothing is deployed to {environment}; run `llmops deploy --env {environment}` first.")
    result = SmokeResult(environment, entry["url"])
    checks = result.checks
    phase = "health"
    try:
        code, health = http_json(entry["url"] + "/health", timeout=5)
        checks.append(("health", code == 200 and health.get("status") == "ok", f"HTTP {code}"))
        phase = "version"
        code, version = http_json(entry["url"] + "/version", timeout=5)
        same = version.get("digest") == entry["digest"]
        checks.append(("version", code == 200 and same, f"serves {version.get('version')} "
                       f"({'the recorded digest' if same else 'NOT the recorded digest'})"))
        phase = "score"
        started = time.perf_counter()
        code, reply, _ = score_with_slot(entry["url"], question, timeout=max_latency_s + 30)
        latency = time.perf_counter() - started
    except OSError as exc:
        checks.append((phase, False, f"no reply ({type(exc).__name__}: {exc})"))
        return result
    checks.append(("score", code == 200, f"HTTP {code}" + (f": {reply.get('error')}" if code != 200 else "")))
    if code == 200:
        missing = [key for key in REPLY_KEYS if key not in reply]
        checks.append(("shape", not missing, f"missing {', '.join(missing)}" if missing
                       else ", ".join(REPLY_KEYS) + " present"))
        problems = reply_problems(reply)
        checks.append(("context", not problems, "; ".join(problems) or f"{len(reply['context_ids'])} articles "
                       f"retrieved, the answer cites {reply.get('cited_ids') or 'none'} among them"))
    checks.append(("latency", latency <= max_latency_s, f"{latency:.1f} s (limit {max_latency_s:g} s)"))
    serving = [slot for slot, weight in weights_now(environment, folder, entry).items() if weight]
    errors = [p for p in (slot_errors(folder, f"{environment}.{slot}") for slot in serving) if p]
    checks.append(("slots", not errors, "; ".join(errors) or
                   f"latest answers of {', '.join(serving) or 'no slot'} were not server errors"))
    return result


def integration(environment: str, *, sample: int = 3, redteam: int = 0, max_latency_s: float = 60.0,
                min_retrieval: float = 0.8, folder: str | Path | None = None) -> SmokeResult:
    """Integration tests through the environment's router: ``sample`` CI golden questions (stratified by
    category) must each answer HTTP 200 with the full reply shape, cite only retrieved articles, and retrieve a
    supporting article (share at least ``min_retrieval``); the slowest answer must be within ``max_latency_s``.
    ``redteam`` attack prompts must be answered without a server error; their replies are saved for human review
    (UAT) in ``<deployments>/<env>.redteam.jsonl`` — the 135M model's refusals are not reliable enough to gate
    on."""
    from llmops_helpers.evaluate.golden import golden_dir, load_golden, load_redteam, sample_rows

    entry = load_state(folder)["environments"].get(environment)
    if not entry:
        raise DeployError(f"nothing is deployed to {environment}; run `llmops deploy --env {environment}` first.")
    result = SmokeResult(environment, entry["url"], kind="Integration test")
    rows = sample_rows(load_golden(golden_dir() / "ci.jsonl"), sample)
    latencies, shaped, retrieved, failures = [], 0, 0, []
    for row in rows:
        started = time.perf_counter()
        code, reply, _ = score_with_slot(entry["url"], row.question, timeout=max_latency_s + 60)
        latencies.append(time.perf_counter() - started)
        if code != 200:
            failures.append(f"{row.id}: HTTP {code} {reply.get('error', '')}".strip())
            continue
        shaped += not reply_problems(reply)
        retrieved += bool(set(reply.get("context_ids") or []) & set(row.context_ids))
    result.checks.append(("answers", not failures, f"{len(rows) - len(failures)} of {len(rows)} HTTP 200"
                          + (f" ({'; '.join(failures)})" if failures else "")))
    result.checks.append(("shape and citations", shaped == len(rows),
                          f"{shaped} of {len(rows)} answered from retrieved articles and cited only those"))
    share = retrieved / len(rows) if rows else 0.0
    result.checks.append(("retrieval", share >= min_retrieval,
                          f"{retrieved} of {len(rows)} retrieved a supporting article (min {min_retrieval:.0%})"))
    slowest = max(latencies, default=0.0)
    result.checks.append(("latency", slowest <= max_latency_s, f"slowest {slowest:.1f} s (limit {max_latency_s:g} s)"))
    if redteam:
        saved = deploy_dir(folder) / f"{environment}.redteam.jsonl"
        answered, lines = 0, []
        for row in load_redteam()[:redteam]:
            code, reply, _ = score_with_slot(entry["url"], row.prompt, timeout=max_latency_s + 60)
            answered += code == 200
            lines.append(json.dumps({"id": row.id, "attack": row.attack, "expected": row.expected_behaviour,
                                     "status": code, "answer": reply.get("answer", reply.get("error", ""))}))
        write_text_atomic(saved, "\n".join(lines) + "\n")
        result.checks.append(("red team", answered == len(lines),
                              f"{answered} of {len(lines)} attack prompts answered without a server error; "
                              f"replies for review in {saved}"))
    return result
