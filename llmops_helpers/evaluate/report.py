"""An evaluation run as tables and plots: its rows as a DataFrame (one run or several side by side), intent
accuracy per category and the confusion matrix behind it, and one run at a glance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops_helpers.evaluate import metrics
from llmops_helpers.evaluate.evaluation import read_rows
from llmops_helpers.evaluate.files import ROWS, SUMMARY


def run_frame(out_dir: str | Path):
    """A run's rows as a table: one row a question, with its scores, latency, tokens, cost (and what the same
    tokens would cost on a hosted model, :data:`~llmops_helpers.llm.metering.SHADOW_MODEL`) and error."""
    import pandas as pd

    from llmops_helpers.llm.metering import SHADOW_COLUMN, shadow_cost

    records = []
    for r in read_rows(Path(out_dir) / ROWS):
        record = {k: r.get(k) for k in ("id", "category", "question", "answer", "intent", "expected_intent",
                                        "latency_s", "total_tokens", "cost_usd", "error")}
        record[SHADOW_COLUMN] = shadow_cost(r.get("prompt_tokens"), r.get("completion_tokens"))
        record.update(r.get("scores") or {})
        records.append(record)
    return pd.DataFrame.from_records(records)


def runs_frame(runs: dict[str, str | Path]):
    """Several runs' rows in one table, with a ``variant`` column naming the run they came from."""
    import pandas as pd

    return pd.concat([run_frame(folder).assign(variant=name) for name, folder in runs.items()], ignore_index=True)


def intent_confusion(expected, predicted):
    """Expected intent (rows) against the classifier's intent (columns), as counts: where a single accuracy
    hides *how* a classifier is wrong (a model that answers "billing" to everything scores the share of billing
    rows). Every intent of :data:`~llmops_helpers.evaluate.golden.INTENTS` gets a row and a column; an empty or unknown
    prediction is counted under its own column."""
    import pandas as pd

    from llmops_helpers.evaluate.golden import INTENTS

    predicted = [str(p).strip().lower() if p else "(none)" for p in predicted]  # as metrics.intent_accuracy reads it
    columns = list(INTENTS) + sorted({p for p in predicted if p not in INTENTS})
    table = pd.crosstab(pd.Series(list(expected), name="expected"), pd.Series(predicted, name="predicted"))
    return table.reindex(index=list(INTENTS), columns=columns, fill_value=0)


def intent_by_category(frame):
    """Intent accuracy per golden category from a table with ``category``, ``expected_intent`` and ``intent``
    columns (:func:`run_frame`): rows, correct, accuracy — where a routing change should (and should not) move."""
    scored = frame.dropna(subset=["intent", "expected_intent"])
    scored = scored.assign(correct=[int(metrics.intent_accuracy(str(said), str(expected)))
                                    for said, expected in zip(scored["intent"], scored["expected_intent"],
                                                              strict=True)])
    table = scored.groupby("category", sort=False).agg(rows=("correct", "size"), correct=("correct", "sum"))
    return table.assign(accuracy=(table["correct"] / table["rows"]).round(2))


def plot_intent_confusion(expected, predicted, title: str = "", ax: Any = None):
    """The confusion matrix as a heat map with counts in the cells; the diagonal is what the classifier got
    right. The title says the accuracy and which intent it predicted most, so a one-label classifier shows."""
    import matplotlib.pyplot as plt

    table = intent_confusion(expected, predicted)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.2, 4.2))
    ax.imshow(table.values, cmap="Blues", vmin=0, vmax=max(1, int(table.values.max())))
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(table.index)), table.index)
    ax.set_xlabel("the classifier said")
    ax.set_ylabel("the golden row expects")
    top = int(table.values.max()) or 1
    for i in range(len(table.index)):
        for j in range(len(table.columns)):
            value = int(table.values[i, j])
            ax.text(j, i, str(value), ha="center", va="center", fontsize=9,
                    color="white" if value > top / 2 else ("black" if value else "#bbbbbb"))
    total = int(table.values.sum())
    right = sum(int(table.at[i, i]) for i in table.index if i in table.columns)
    said = table.sum(axis=0)
    most = said.idxmax() if total else "-"
    ax.set_title(title or f"Intent: {right} of {total} right; '{most}' said {int(said.max())} times")
    ax.figure.tight_layout()
    return ax


def plot_run(out_dir: str | Path, title: str = ""):
    """One run at a glance: mean quality scores (0–1) on the left, latency and tokens per row on the right."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    summary = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    frame = run_frame(out)
    quality = {k: v for k, v in summary["metrics"].items()
               if not k.startswith(("latency", "cost", "tokens", "judge_"))}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    left.barh(list(quality), list(quality.values()), color="#4c72b0")
    left.set_xlim(0, 1)
    left.set_xlabel("mean score (0–1)")
    left.set_title(f"Quality, {summary['n_rows']} rows ({summary['n_errors']} errors)")
    left.invert_yaxis()
    right.bar(frame["id"], frame["latency_s"], color="#dd8452")
    right.set_ylabel("latency (s)")
    right.set_xlabel("golden row")
    right.tick_params(axis="x", rotation=45)
    tokens = right.twinx()
    tokens.plot(frame["id"], frame["total_tokens"], "o-", color="#55a868")
    tokens.set_ylabel("tokens per row", color="#55a868")
    right.set_title("Latency (bars) and tokens (line) per row")
    fig.suptitle(title or out.name)
    fig.tight_layout()
    return fig


def plot_grouped_bars(tables: dict[str, Any], column: str, *, ylabel: str, title: str, ax: Any = None,
                      rotation: int = 30, label_values: bool = False):
    """One group of bars per row label of the named ``tables`` (e.g. {"guardrails off": ..., "on": ...}), one bar
    per table, of ``column``, on a 0–1 axis; an ``all`` row goes last. ``label_values`` prints each bar's value
    (a 0 is a result too)."""
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.5))
    groups = list(dict.fromkeys(g for t in tables.values() for g in t.index if g != "all")) + ["all"]
    width = 0.8 / max(1, len(tables))
    x = np.arange(len(groups))
    for n, (name, table) in enumerate(tables.items()):
        bars = ax.bar(x + n * width - 0.4 + width / 2, [table[column].get(g, np.nan) for g in groups], width,
                      label=name)
        if label_values:
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, [g.replace("_", " ") for g in groups], rotation=rotation, ha="right")
    ax.set_ylim(0, 1.12 if label_values else 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.figure.tight_layout()
    return ax
