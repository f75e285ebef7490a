"""The ``llmops`` commands of this stage: serve-model, doctor, bench."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path


def cmd_serve_model(args: argparse.Namespace) -> int:
    from llmops_helpers.llm import local as local_llm

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


def cmd_doctor(args: argparse.Namespace) -> int:
    from llmops_helpers.llm.client import connect
    from llmops_helpers.llm.doctor import environment_report

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


def cmd_bench(args: argparse.Namespace) -> int:
    from llmops_helpers.llm.bench import bench_dict, run_bench

    result = run_bench(args.requests, args.max_tokens)
    print(result.as_table())
    if args.json:
        Path(args.json).write_text(json.dumps(bench_dict(result), indent=2) + "\n", encoding="utf-8")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands to the ``llmops`` parser."""
    p = sub.add_parser("serve-model", help="run the embedded model as a standalone OpenAI-compatible server")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    p.set_defaults(func=cmd_serve_model)

    p = sub.add_parser("doctor", help="check the environment and make one call")
    p.add_argument("--provider", default=None)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("bench", help="measure the embedded model and the kit's overhead")
    p.add_argument("--requests", type=int, default=10)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--json", help="also write the figures to this file")
    p.set_defaults(func=cmd_bench)
