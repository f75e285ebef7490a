"""The ``llmops`` commands of this stage: build-labs, check-notebooks, clean-notebooks, rehearse, workshop,
make-images, test."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from llmops_helpers.llm.commands import cmd_doctor
from llmops_helpers.paths import build_dir, kit_root


def cmd_build_labs(args: argparse.Namespace) -> int:
    from llmops_helpers.course.labs import build_labs

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
    from llmops_helpers.course.labs import lint_notebook

    problems = [p for path in _all_notebooks() for p in lint_notebook(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{len(_all_notebooks())} notebooks are clean and parameterised.")
    return 1 if problems else 0


def cmd_clean_notebooks(args: argparse.Namespace) -> int:
    from llmops_helpers.course.labs import clean_notebooks

    changed = clean_notebooks(_all_notebooks())
    print("Cleaned: " + ", ".join(str(p) for p in changed) if changed else "Nothing to clean.")
    return 0


def cmd_rehearse(args: argparse.Namespace) -> int:
    from llmops_helpers.course.runner import rehearse

    results = rehearse(args.folder, Path(args.output) if args.output else None, ci=args.ci, only=args.only)
    for r in results:
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.notebook:<28} {r.seconds:6.1f} s  {r.output}")
        if r.error:
            print(f"     {r.error}")
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed or not results else 0


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


def cmd_make_images(args: argparse.Namespace) -> int:
    from llmops_helpers.course.figures import make_images

    for path in make_images():
        print(f"wrote {path}")
    return 0


def parallel_workers(requested: int | None = None, cores: int | None = None) -> int:
    """How many pytest workers ``llmops test`` runs side by side: ``--workers``, else ``LLMOPS_TEST_WORKERS``,
    else 2 on a machine with 2 or more cores (much of the suite waits on processes, imports and sockets rather
    than the model, so two workers with one model thread each beat one worker with two), else 1."""
    from llmops_helpers.llm.settings import whole_number_setting

    if requested is None:
        requested = whole_number_setting("LLMOPS_TEST_WORKERS", "workers", "Set it to 1 (one test at a time) or "
                                         "more, or unset it for the default.")
    if requested is not None:
        return max(1, requested)
    return 2 if (cores or os.cpu_count() or 1) >= 2 else 1


def cmd_test(args: argparse.Namespace) -> int:
    """The whole suite: labs in sync, notebook hygiene, lint, unit tests, every solution through papermill
    and every lab through nbval, then a check that no server was left listening."""
    from llmops_helpers.course.runner import (
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


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands to the ``llmops`` parser."""
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

    p = sub.add_parser("workshop", help="launch JupyterLab on labs/ (extra options go to jupyter lab)")
    p.set_defaults(func=cmd_workshop, passthrough="jupyter_args")

    sub.add_parser("make-images", help="redraw the kit's images").set_defaults(func=cmd_make_images)

    p = sub.add_parser("test", help="run the whole test suite")
    p.add_argument("--fast", action="store_true", help="skip notebook execution")
    p.add_argument("--app", action="store_true", help="only the app's own tests (flows/*/tests), in seconds")
    p.add_argument("--workers", type=int, help="tests run side by side (default: 2 on 2+ cores; 1 = one at a time)")
    p.set_defaults(func=cmd_test, passthrough="pytest_args")  # extra options go to pytest
