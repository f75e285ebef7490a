"""The ``llmops`` commands of this stage: redteam (the safety gate of Lab 04, run by CD on qa and by the nightly
job)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops_helpers.errors import LLMOpsError
from llmops_helpers.release.state import ENVIRONMENTS

#: ``--flow`` without an environment: the flow with its default settings (or SUPPORT_AGENT_ENV's).
DEFAULT_SETTINGS = "-"


def _load_rows(data: str | None, per_attack: int | None) -> tuple[list, Path]:
    """The red-team rows to send, and their file; a damaged file is one paragraph naming file, row and field."""
    from llmops_helpers.errors import DatasetError
    from llmops_helpers.evaluate.golden import DatasetInvalid, golden_dir, load_redteam
    from llmops_helpers.responsible.safety import first_per_attack

    path = Path(data) if data else golden_dir() / "redteam.jsonl"
    try:
        rows = load_redteam(path)
    except DatasetInvalid as exc:
        others = [str(p) for p in exc.problems[1:4]]
        more = len(exc.problems) - 1 - len(others)
        also = (f" (also {'; '.join(others)}" + (f"; and {more} more" if more else "") + ")") if others else ""
        raise DatasetError(exc.path, exc.row, exc.field, exc.problem + also,
                           "Fix the file and run the command again (`llmops validate-data FILE` lists every problem "
                           "when the file's name starts with redteam).") from None
    return first_per_attack(rows, per_attack), path


def _flow_target(environment: str, canary: str) -> tuple[Callable[[str], dict], str, str, tuple[str, ...], str]:
    """The flow in-process with ``environment``'s settings (none: the defaults): agent, description, canary,
    the company's own contacts, and where the canary came from."""
    from llmops_helpers.flow.app import import_flow_entry

    module = import_flow_entry()
    agent = module.SupportAgent(environment=environment, canary=canary)
    settings = agent.config["environment"]
    planted = str(agent.config.get("canary") or "")
    source = ("--canary (planted in the flow's system prompt)" if canary else
              f"the flow's config ({settings})" if planted else "")
    what = (f"the flow in-process with {settings} settings (guardrails {agent.config.get('guardrails') or 'none'}, "
            f"intent classifier {agent.classifier})")
    return agent, what, planted, tuple(getattr(module, "OWN_CONTACTS", ())), source


def _endpoint_target(environment: str, canary: str) -> tuple[Callable[[str], dict], str, str, tuple[str, ...], str]:
    """``environment``'s deployed endpoint (its router, as smoke and integration ask it): agent, description,
    canary (``--canary``, else the deployed artifact's flow config for the environment), own contacts, source."""
    from llmops_helpers.flow.app import import_flow_entry, support_agent_dir
    from llmops_helpers.release.state import DeployError, load_state
    from llmops_helpers.responsible.safety import endpoint_agent

    entry = load_state()["environments"].get(environment)
    if not entry or not entry.get("url"):
        raise DeployError(f"nothing is deployed to {environment}, so it has no endpoint to red-team. Deploy an "
                          f"artifact first (`llmops deploy --env {environment} --artifact ...`), or red-team the "
                          f"flow in-process with `llmops redteam --flow {environment}`.")
    module = import_flow_entry()
    slot = (entry.get("slots") or {}).get(entry.get("live") or "") or {}
    config = Path(slot["artifact"]) / "flow" / "config.yaml" if slot.get("artifact") else None
    deployed = config is not None and config.is_file()
    config = config if deployed else support_agent_dir() / "config.yaml"
    planted = canary or str(module.load_config(config, environment=environment).get("canary") or "")
    source = ("--canary" if canary else "" if not planted else
              f"the {'deployed artifact' if deployed else 'kit'}'s flow config for {environment}")
    what = f"{environment}'s endpoint at {entry['url']} ({entry.get('version') or 'unknown version'})"
    return endpoint_agent(entry["url"]), what, planted, tuple(getattr(module, "OWN_CONTACTS", ())), source


def _table(per_attack: dict[str, dict[str, Any]]) -> str:
    """The per-attack summary as a markdown table."""
    columns = ("prompts", "pass_rate", "leaks", "pii_disclosed", "complied")
    lines = ["| attack | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for attack, stats in per_attack.items():
        cells = [f"{stats[c]:.3f}" if c == "pass_rate" else str(stats[c]) for c in columns]
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cmd_redteam(args: argparse.Namespace) -> int:
    """Exit 0 when the run passed the safety gate (without --rules: when no row errored), 1 when it failed (or rows
    errored), 2 on unusable input (data file, rules file, an environment with nothing deployed)."""
    from llmops_helpers.evaluate.files import GATE_JSON, GATE_MD
    from llmops_helpers.paths import build_dir, write_text_atomic
    from llmops_helpers.responsible.safety import (
        REDTEAM_ROWS,
        REDTEAM_SUMMARY,
        load_safety_rules,
        run_redteam,
        safety_gate,
        write_redteam_run,
    )

    if args.per_attack is not None and args.per_attack < 1:
        raise LLMOpsError(f"--per-attack {args.per_attack}: give at least 1 (the first N prompts of each attack "
                          "category), or leave it out to send every prompt.")
    flow = args.flow
    if flow is not None and flow not in (DEFAULT_SETTINGS, *ENVIRONMENTS):
        raise LLMOpsError(f"--flow {flow}: the flow runs with the settings of {', '.join(ENVIRONMENTS)}, or with its "
                          "defaults when no environment follows --flow.")
    if args.rules:
        load_safety_rules(args.rules)  # a rules file that cannot gate stops the command before any prompt is sent
    rows, data = _load_rows(args.data, args.per_attack)
    if args.env:
        agent, what, canary, own, source = _endpoint_target(args.env, args.canary or "")
        name = args.env
    else:
        environment = "" if flow in (None, DEFAULT_SETTINGS) else flow
        agent, what, canary, own, source = _flow_target(environment, args.canary or "")
        name = f"flow-{environment}" if environment else "flow"
    out = Path(args.out) if args.out else build_dir() / "redteam" / name
    sample = f"{args.per_attack} per attack" if args.per_attack else "all"
    print(f"Red-team of {what}: {len(rows)} prompts ({sample}) from {data}")
    print(f"Canary: {source}; a reply that repeats it fails as a leak." if canary else
          "Canary: none, so a leak of the system prompt is NOT checked (set `canary` in the flow's config for this "
          "environment, or pass --canary TEXT).")
    started = time.perf_counter()
    frame = run_redteam(agent, rows, canary=canary, own_contacts=own, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - started
    about = {"target": what, "data": str(data), "per_attack": args.per_attack, "canary_checked": bool(canary),
             "seconds": round(seconds, 1)}
    summary = write_redteam_run(frame, out, about)
    print(f"\n{_table(summary['per_attack'])}\n")
    metrics = summary["metrics"]
    print("Safety metrics: " + ", ".join(f"{k} {v:g}" for k, v in metrics.items())
          + f"; {summary['n_errors']} of {summary['n_rows']} rows errored; {seconds:.1f} s")
    failed = frame[~frame["passed"]]
    for row in failed.head(10).itertuples():
        print(f"  ❌ {row.id} ({row.attack}, expected {row.expected}): {row.why}")
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more failed prompts")
    print(f"Run folder: {out} ({REDTEAM_ROWS}: every reply; {REDTEAM_SUMMARY})")
    if args.rules:
        decision = safety_gate(args.rules, frame)
        decision.candidate = str(out / REDTEAM_SUMMARY)
        write_text_atomic(out / GATE_JSON, decision.to_json() + "\n")
        write_text_atomic(out / GATE_MD, decision.to_markdown())
        print("\n" + decision.to_markdown())
        for result in decision.failed:
            observed = "no value" if result.observed is None else f"observed {result.observed:.4g}"
            print(f"FAILED {result.rule}: {observed}, threshold {result.threshold:g}: {result.message}",
                  file=sys.stderr)
        return 0 if decision.passed else 1
    if summary["n_errors"]:
        first = frame[frame["behaviour"] == "error"].iloc[0]
        print(f"error: {summary['n_errors']} of {summary['n_rows']} prompts errored, so this red-team run is "
              f"incomplete (the first, {first['id']}: {first['why']}). Check the target (`llmops smoke --env ENV` "
              "for an endpoint, `llmops doctor` for the model) and run the command again.", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands to the ``llmops`` parser."""
    p = sub.add_parser("redteam", help="send the red-team prompts to the flow or a deployed environment, score the "
                       "replies and, with --rules, apply the safety gate (exit 1 when it fails)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--env", choices=ENVIRONMENTS, help="ask this environment's deployed endpoint (its router)")
    target.add_argument("--flow", nargs="?", const=DEFAULT_SETTINGS, metavar="ENV",
                        help="run the flow in-process (the default), with ENV's settings when given (dev, qa, prod: "
                        "guardrails, canary), else its defaults")
    p.add_argument("--per-attack", type=int, metavar="N",
                   help="the first N prompts of each attack category, in the file's order (default: all 36)")
    p.add_argument("--data", help="red-team JSONL (default: data/golden/redteam.jsonl)")
    p.add_argument("--out", help="run folder (default: build/redteam/<env>, or build/redteam/flow[-<env>])")
    p.add_argument("--rules", help="rules YAML with a safety section (e.g. gates.yaml): apply the safety gate")
    p.add_argument("--canary", help="the canary to look for in replies (default: the flow's config for the "
                   "environment); with --flow it is also planted in the system prompt")
    p.set_defaults(func=cmd_redteam)
