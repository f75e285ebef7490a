"""Running promptflow flows from notebooks and pipelines: a batch run with a progress bar and quiet logs,
and its results as one flat DataFrame (one row a line, nested outputs spread into columns)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from llmops_helpers.errors import DatasetError, LLMOpsError
from llmops_helpers.paths import kit_root

QUIET_LOGGERS = ("promptflow", "execution", "execution.bulk", "bm25s")


def read_jsonl(path: str | Path, required: tuple[str, ...] = (), missing_fix: str = "") -> list[dict]:
    """Rows of a JSON-lines file; a bad line raises :class:`DatasetError` with the file, row and field, and so does a
    missing file (with ``missing_fix`` as the advice) or one that is not UTF-8. Blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(str(path), None, None, "does not exist", missing_fix)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(str(path), None, None, f"is not UTF-8 (byte {exc.start})", "Save it as UTF-8.") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(str(path), number, None, f"is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DatasetError(str(path), number, None, "must be a JSON object")
        for field in required:
            if row.get(field) in (None, ""):
                raise DatasetError(str(path), number, field, "is missing or empty")
        rows.append(row)
    return rows


def write_jsonl(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@contextlib.contextmanager
def _quiet_promptflow(workers: int):
    with contextlib.suppress(ImportError):  # create promptflow's run loggers now, so they can be quietened
        import promptflow._sdk._orchestrator.run_submitter  # noqa: F401
    names = set(QUIET_LOGGERS) | {n for n in logging.root.manager.loggerDict if n.startswith(QUIET_LOGGERS)}
    saved = {name: logging.getLogger(name).level for name in names}
    old_env = {name: os.environ.get(name) for name in ("PF_WORKER_COUNT", "PF_LOGGING_LEVEL")}
    os.environ["PF_WORKER_COUNT"] = str(workers)
    os.environ["PF_LOGGING_LEVEL"] = "WARNING"  # also quiets the worker processes
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        for name, value in old_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_batch(
    flow: str | Path,
    data: str | Path,
    *,
    init: dict[str, Any] | None = None,
    column_mapping: dict[str, str] | None = None,
    name: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    timeout: float = 3600,
    provider: str | None = None,
):
    """``pf.run`` with a progress bar. Returns ``(run, details)`` where ``details`` is :func:`flatten_details`.

    ``provider`` (else ``LLMOPS_PROVIDER``) is chosen with :func:`~llmops_helpers.llm.client.use_provider`, so
    promptflow's worker processes use it too; for the local provider that starts the embedded model here first,
    so the workers share it (they inherit ``LLMOPS_LOCAL_BASE_URL``), and one worker is used: the model answers
    one request at a time anyway. Failed lines stay in ``details`` with their error, so nothing is lost."""
    from promptflow.client import PFClient
    from tqdm.auto import tqdm

    from llmops_helpers.llm.client import use_provider
    from llmops_helpers.llm.settings import resolve_settings

    settings = resolve_settings(provider)
    if provider or settings.provider == "local":
        use_provider(provider)
    rows = read_jsonl(data)
    total = len(rows)
    name = name or f"{Path(flow).name}_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}_{time.perf_counter_ns() % 10**6}"
    pf = PFClient()
    run_dir = Path(os.environ.get("PF_HOME_DIRECTORY", Path.home() / ".promptflow")) / ".runs" / name
    log_path = run_dir / "logs.txt"
    result: dict[str, Any] = {}

    def submit() -> None:
        try:
            result["run"] = pf.run(flow=str(flow), data=str(data), init=init or {}, name=name,
                                   column_mapping=column_mapping or {"question": "${data.question}"})
        except Exception as exc:  # reported in the caller's thread
            result["error"] = exc

    with _quiet_promptflow(workers or (1 if settings.provider == "local" else 4)):
        worker = threading.Thread(target=submit, name="pf-run", daemon=True)
        worker.start()
        bar = tqdm(total=total, desc=f"pf.run {name}", unit="line", disable=not progress)
        deadline = time.monotonic() + timeout
        while worker.is_alive() and time.monotonic() < deadline:
            worker.join(0.5)
            done = _finished_lines(run_dir)
            if done > bar.n:
                bar.update(done - bar.n)
        bar.update(max(0, (total if "run" in result else bar.n) - bar.n))
        bar.close()
    if worker.is_alive():
        raise LLMOpsError(f"pf.run {name} did not finish within {timeout:.0f} s; its log is {log_path}.")
    if "error" in result:
        raise LLMOpsError(f"pf.run {name} failed: {result['error']}. Its log is {log_path}.") from result["error"]
    run = result["run"]
    details = flatten_details(pf.get_details(run, all_results=True))
    if "line_number" in details:  # attach the data's own fields (ids, expected values) as data.<field>
        for field in sorted({k for row in rows for k in row}):
            details[f"data.{field}"] = [rows[int(n)].get(field) if int(n) < total else None
                                        for n in details["line_number"]]
    return run, details


def _finished_lines(run_dir: Path) -> int:
    """Lines done so far: promptflow writes one file per finished line under flow_artifacts/."""
    folder = run_dir / "flow_artifacts"
    return sum(1 for _ in folder.glob("*.jsonl")) if folder.is_dir() else 0


def flatten_details(details):
    """``pf.get_details`` output with ``inputs.``/``outputs.`` prefixes dropped and dict outputs (usage,
    timings) spread into ``usage.x`` / ``timings.x`` columns."""
    import pandas as pd

    frame = details.rename(columns=lambda c: c.split(".", 1)[1] if c.startswith(("inputs.", "outputs.")) else c)
    for column in list(frame.columns):
        if frame[column].map(lambda v: isinstance(v, dict)).any():
            spread = pd.json_normalize(frame[column].map(lambda v: v if isinstance(v, dict) else {}).tolist())
            spread.columns = [f"{column}.{c}" for c in spread.columns]
            spread.index = frame.index
            frame = pd.concat([frame.drop(columns=[column]), spread], axis=1)
    return frame


EVAL_COLUMNS = {
    "question": "${data.question}", "answer": "${run.outputs.answer}", "context_ids": "${run.outputs.context_ids}",
    "intent": "${run.outputs.intent}", "ground_truth": "${data.ground_truth}", "key_facts": "${data.key_facts}",
    "expected_context_ids": "${data.context_ids}", "expected_intent": "${data.intent}",
}


def evaluate_run(app_run: Any, data: str | Path, *, name: str | None = None):
    """Score a finished app run with the evaluation flow (``pf.run(..., run=app_run)``); returns
    ``(eval_run, metrics)`` where metrics come from the flow's ``__aggregate__``."""
    from promptflow.client import PFClient

    pf = PFClient()
    with _quiet_promptflow(1):
        run = pf.run(flow=str(kit_root() / "flows" / "evaluate_support_agent"), data=str(data), run=app_run,
                     column_mapping=EVAL_COLUMNS, name=name)
    return run, pf.get_metrics(run)


def side_by_side(runs: dict[str, Any], columns: tuple[str, ...] = ("answer",)):
    """Answers (or other columns) of several runs' details next to each other, one row a question."""
    import pandas as pd

    first = next(iter(runs.values()))
    frame = pd.DataFrame({"question": first["question"]})
    for label, details in runs.items():
        for column in columns:
            frame[f"{column} ({label})"] = details[column].values
    return frame


def run_summary(runs: dict[str, Any]):
    """Mean tokens, latency and cost per run: what a team compares before choosing a variant (with what the same
    tokens would cost on a hosted model, since the embedded one is free)."""
    import pandas as pd

    from llmops_helpers.llm.metering import SHADOW_MODEL, shadow_cost

    rows = {}
    for label, d in runs.items():
        rows[label] = {
            "lines": len(d), "failed lines": int(d["answer"].isna().sum()) if "answer" in d else len(d),
            "prompt tokens (mean)": d["usage.prompt_tokens"].mean(),
            "answer tokens (mean)": d["usage.completion_tokens"].mean(),
            "latency s (mean)": d["timings.total"].mean(), "cost USD (total)": d["usage.cost_usd"].sum(),
            f"same tokens on {SHADOW_MODEL} (USD, total)": sum(
                shadow_cost(p, c) or 0.0 for p, c in zip(d["usage.prompt_tokens"], d["usage.completion_tokens"],
                                                          strict=True)),
        }
    return pd.DataFrame(rows).T


def plot_step_timings(details, title: str = "Where the time goes, per question"):
    """A stacked bar per question: seconds spent retrieving, classifying and answering."""
    import matplotlib.pyplot as plt

    steps = [c for c in ("timings.retrieve", "timings.classify", "timings.answer") if c in details]
    labels = [str(v) for v in (details["data.id"] if "data.id" in details else range(1, len(details) + 1))]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    bottom = None
    for column in steps:
        values = details[column].fillna(0).values
        ax.bar(labels, values, bottom=bottom, label=column.split(".", 1)[1])
        bottom = values if bottom is None else bottom + values
    ax.set_title(title)
    ax.set_xlabel("question")
    ax.set_ylabel("seconds")
    ax.legend(title="step")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig
