"""Reproduce nbclient issue 312 (a widget cell waits out its whole timeout) and show the kit's fix.

    .venv/bin/python benchmarks/widget_hang_loop.py --runs 60 --timeout 30            # the kit's runner
    .venv/bin/python benchmarks/widget_hang_loop.py --runs 60 --timeout 30 --plain    # papermill as shipped

Executes a two-cell notebook (Lab 01's PromptPlayground with a stand-in client, so the model is not the point)
``--runs`` times and counts the runs that took longer than ``--slow`` seconds. With plain papermill a run now and
then sits until ``--timeout``; with the kit's runner (sliced polling) none should.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill
from nbformat.v4 import new_code_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from llmops_helpers.course.runner import kernel_manager_class  # noqa: E402

SETUP = '''
from types import SimpleNamespace
class _Completions:  # a stand-in client: this benchmark measures the notebook runner, not the model
    def create(self, **kw):
        message = SimpleNamespace(content="An answer of %d characters." % len(str(kw["messages"])))
        usage = SimpleNamespace(prompt_tokens=10, completion_tokens=5)
        return SimpleNamespace(choices=[SimpleNamespace(message=message)], usage=usage, model="stand-in")
llm = SimpleNamespace(client=SimpleNamespace(chat=SimpleNamespace(completions=_Completions())), model="stand-in",
                      provider="local")
from llmops_helpers.ideate.prompt_lab import GROUNDING, ROLE, PromptPlayground
'''
PLAYGROUND = '''playground = PromptPlayground(llm, lambda q: [], prompt_a=ROLE, prompt_b=ROLE + " " + GROUNDING,
                              question="How do I top up?")
playground'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--timeout", type=int, default=30, help="papermill's per-cell timeout, seconds")
    parser.add_argument("--slow", type=float, default=15, help="a run longer than this counts as a hang, seconds")
    parser.add_argument("--plain", action="store_true", help="papermill's own kernel client (shows the hang)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="widget-hang-"))
    notebook = folder / "playground.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(SETUP), new_code_cell(PLAYGROUND)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), str(notebook))
    extra = {} if args.plain else {"kernel_manager_class": kernel_manager_class()}
    times = []
    for run in range(args.runs):
        started = time.perf_counter()
        papermill.execute_notebook(str(notebook), str(folder / "out.ipynb"), kernel_name="python3",
                                   progress_bar=False, execution_timeout=args.timeout, **extra)
        times.append(time.perf_counter() - started)
        if times[-1] > args.slow:
            print(f"run {run + 1}: {times[-1]:.1f} s", flush=True)
    slow = sum(t > args.slow for t in times)
    print(f"{'plain papermill' if args.plain else 'kit runner'}: {args.runs} runs, {slow} over {args.slow:g} s; "
          f"median {statistics.median(times):.1f} s, max {max(times):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
