"""The ``llmops`` commands of this stage: eval, gate, compare, lint, validate-data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmops_helpers.evaluate.files import GATE_MD, METADATA, ROWS
from llmops_helpers.llm.settings import redact_secrets
from llmops_helpers.paths import build_dir, kit_root


def cmd_gate(args: argparse.Namespace) -> int:
    """Exit 0 on pass, 1 if any rule failed, 2 on unusable input (raised as GateInputError)."""
    from llmops_helpers.evaluate.gate import run_gate

    decision = run_gate(args.rules, args.candidate, args.baseline, args.out, absolute_only=args.absolute_only)
    print(decision.to_markdown())
    if args.absolute_only:
        print("Relative rules not applied (--absolute-only): this pipeline has no baseline to compare with.")
    for result in decision.failed:
        facts = [f"{label} {value:.4g}" for label, value in (("observed", result.observed), ("threshold",
                 result.threshold), ("baseline", result.baseline), ("delta", result.delta)) if value is not None]
        print(f"FAILED {result.rule}: {', '.join(facts) or 'no value'}: {result.message}", file=sys.stderr)
    return 0 if decision.passed else 1


def _errored_rows(out: Path, n_errors: int, n_rows: int) -> str:
    """Why ``llmops eval`` failed: how many rows errored, where they are, the first reason, and what to do."""
    from llmops_helpers.evaluate.evaluation import read_rows

    first = next((r for r in read_rows(out / ROWS) if r.get("error")), {})
    reason = str(first.get("error", ""))
    reason = reason if len(reason) <= 300 else reason[:299] + "…"
    return (f"error: {n_errors} of {n_rows} rows errored, so this evaluation is incomplete: the rows with an "
            f"'error' field in {out / ROWS} say why (the first, {first.get('id')!r}: {reason}). Fix the "
            "cause (`llmops doctor` checks the provider), then run the command again with --fresh: a resumed run "
            "keeps errored rows as they are.")


def cmd_eval(args: argparse.Namespace) -> int:
    """Exit 0 when every row was scored, 1 when any row errored (so a pipeline stops at the evaluation)."""
    from llmops_helpers.evaluate.evaluation import evaluate_support_agent, load_evaluator
    from llmops_helpers.flow.app import flow_at_ref

    extra = dict(load_evaluator(spec) for spec in args.evaluator)
    flow = flow_at_ref(args.flow_ref, args.flow) if args.flow_ref else args.flow
    judges = tuple(j for j in args.judges.split(",") if j and j != "none")
    name = f"{args.variant or 'configured'}-{Path(args.data).stem}"
    out = Path(args.out) if args.out else build_dir() / "runs" / name
    summary = evaluate_support_agent(args.data, out, variant=args.variant, sample=args.sample, judges=judges,
                                     concurrency=args.concurrency, top_k=args.top_k, extra_evaluators=extra,
                                     fresh=args.fresh, flow_dir=flow, cache=args.cache,
                                     categories=tuple(args.categories.split(",")) if args.categories else ())
    print(json.dumps({k: summary[k] for k in ("metrics", "n_rows", "n_errors")}, indent=2))
    rows = json.loads((out / METADATA).read_text(encoding="utf-8")).get("rows")
    if rows:
        print(f"Rows: {rows}")
    print(f"Run folder: {out}")
    if summary["n_errors"]:
        print(redact_secrets(_errored_rows(out, summary["n_errors"], summary["n_rows"])), file=sys.stderr)
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from llmops_helpers.evaluate.compare import compare_runs, write_report

    comparison = compare_runs(args.base, args.candidate, args.primary)
    gate_file = Path(args.candidate) / GATE_MD
    paths = write_report(comparison, args.out or Path(args.candidate) / "compare",
                         gate_file.read_text(encoding="utf-8") if gate_file.is_file() else "")
    print(paths["markdown"].read_text(encoding="utf-8"))
    print("Wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    from llmops_helpers.flow.app import support_agent_dir
    from llmops_helpers.flow.lint import lint_flow

    flows = [Path(f) for f in args.flow] if args.flow else [support_agent_dir()]
    problems = [p for flow in flows for p in lint_flow(flow)]
    for problem in problems:
        print(f"❌ {problem}")
    data = cmd_validate_data(argparse.Namespace(folder=None))
    print(f"{'✅' if not problems else '❌'} lint of {', '.join(str(f) for f in flows)}: {len(problems)} problem(s)")
    return 1 if problems or data else 0


def cmd_validate_data(args: argparse.Namespace) -> int:
    """Exit 0 when every file is valid, 1 when a file has problems, 2 when there is nothing to check."""
    from llmops_helpers.errors import DatasetError
    from llmops_helpers.evaluate.golden import golden_dir, validate_golden, validate_redteam

    target = Path(getattr(args, "path", None) or args.folder or golden_dir())
    if target.is_file():
        files = [target]
    elif target.is_dir():
        files = sorted(target.glob("*.jsonl"))
        if not files:
            raise DatasetError(str(target), None, None, "holds no .jsonl files, so there is nothing to validate",
                               "Pass the folder of the golden and red-team files (default data/golden) or one file.")
    else:
        raise DatasetError(str(target), None, None, "does not exist",
                           "Pass a folder of .jsonl files (default data/golden) or one .jsonl file.")
    total = 0
    for path in files:
        if path.stem.startswith("redteam"):
            rows, problems = validate_redteam(path)
        else:  # an unanswerable file's rows must all say "answerable": false
            rows, problems = validate_golden(path, answerable=False if path.stem.startswith("unanswerable") else None)
        total += len(problems)
        print(f"{path}: {len(rows)} good rows, {len(problems)} problem(s)")
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    return 1 if total else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands to the ``llmops`` parser."""
    p = sub.add_parser("eval", help="evaluate the support agent on golden rows into a run folder (resumable)")
    p.add_argument("--data", default=str(kit_root() / "data" / "golden" / "ci.jsonl"),
                   help="golden JSONL (default: the CI subset data/golden/ci.jsonl)")
    p.add_argument("--variant", default="",
                   help="prompt variant prompts/answer_<variant>.prompty (default: the flow's config.yaml)")
    p.add_argument("--sample", type=int, help="evaluate N rows, stratified by category (the same N, the same rows)")
    p.add_argument("--categories", default="", help="only these categories, comma-separated (e.g. roaming,devices): "
                                                    "the rows a change touches; empty means every category")
    p.add_argument("--out", help="run folder (default build/runs/<variant>-<data>); an existing one resumes")
    p.add_argument("--judges", default="groundedness",
                   help="comma-separated LLM judges (groundedness,relevance,coherence,fluency,similarity) or none")
    p.add_argument("--concurrency", type=int, help="parallel requests (default 1 for local, 4 for hosted)")
    p.add_argument("--top-k", type=int, default=0, help="articles per prompt (default: config.yaml)")
    p.add_argument("--cache", help="folder of finished evaluations by content: reuse one of the same flow, articles, "
                                   "data, rows, model and kit code instead of evaluating again, and keep this one")
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming an existing run folder")
    p.add_argument("--flow", help="flow folder to evaluate (default: flows/support_agent)")
    p.add_argument("--flow-ref", help="evaluate the flow as committed at this git ref (e.g. origin/develop): "
                   "the baseline of a pull request")
    p.add_argument("--evaluator", action="append", default=[], metavar="[NAME=]MODULE:FUNCTION",
                   help="add a custom evaluator (row, output) -> 0..1, from a module or a .py file; repeatable")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("gate", help="apply quality-gate rules to an evaluation run (exit 0 pass, 1 fail, 2 bad input)")
    p.add_argument("--rules", default=str(kit_root() / "gates.yaml"), help="rules YAML (default: gates.yaml)")
    p.add_argument("--candidate", required=True, help="the run folder (or its summary.json) to judge")
    p.add_argument("--baseline", help="a baseline run folder or summary.json, for the relative rules")
    p.add_argument("--out", help="where gate_decision.json/.md go (default: the candidate's folder)")
    p.add_argument("--absolute-only", action="store_true",
                   help="apply only the error-rate and SLO rules (for builds and nightly runs without a baseline)")
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser("compare", help="compare two run folders: deltas with bootstrap intervals, slices, report")
    p.add_argument("base", help="the baseline run folder")
    p.add_argument("candidate", help="the candidate run folder")
    p.add_argument("--primary", help="metric for slices and 'rows that got worse' (default key_fact_recall)")
    p.add_argument("--out", help="report folder (default <candidate>/compare)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("lint", help="static checks of the flow (ruff, entry, config per environment, prompts) and data")
    p.add_argument("--flow", action="append", help="flow folder (default: flows/support_agent; repeatable)")
    p.set_defaults(func=cmd_lint)

    p = sub.add_parser("validate-data", help="check every golden, unanswerable and red-team file, listing every "
                       "problem (exit 1 on a problem, 2 if there is nothing to check)")
    p.add_argument("path", nargs="?", help="a .jsonl file or a folder of them (default: data/golden)")
    p.add_argument("--folder", help="same as PATH (kept for existing scripts)")
    p.set_defaults(func=cmd_validate_data)
