"""Routing experiments (Lab 04): two intent classifiers on the same golden rows, compared on accuracy per intent,
latency and model calls, so the evaluation (not taste) chooses which one the app uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def classify_rows(predict: Callable[[str], str], rows: list, name: str, progress: bool = True):
    """``predict`` (question -> intent) on every golden row: one row each with the expected and predicted intent,
    whether they match, and the seconds it took. An error on a row is kept on that row (``predicted`` "error")."""
    import pandas as pd
    from tqdm.auto import tqdm

    records = []
    for row in tqdm(rows, desc=name, unit="row", disable=not progress):
        started = time.perf_counter()
        try:
            predicted, error = predict(row.question), ""
        except Exception as exc:  # noqa: BLE001 - a failed row is a wrong answer, and the others still run
            predicted, error = "error", f"{type(exc).__name__}: {exc}"
        records.append({"classifier": name, "id": row.id, "category": row.category, "expected": row.intent,
                        "predicted": predicted, "correct": predicted == row.intent,
                        "seconds": time.perf_counter() - started, "error": error})
    return pd.DataFrame.from_records(records)


def routing_summary(*frames: Any):
    """One row per classifier: accuracy overall and per expected intent, the share of rows it labels with its most
    common intent (1.0 = a constant), and the median and total seconds."""
    import pandas as pd

    table = {}
    for frame in frames:
        name = frame["classifier"].iloc[0]
        row: dict[str, Any] = {"rows": len(frame), "accuracy": round(float(frame["correct"].mean()), 3)}
        for intent, part in frame.groupby("expected"):
            row[f"acc_{intent}"] = round(float(part["correct"].mean()), 3)
        row["top_label_share"] = round(float(frame["predicted"].value_counts(normalize=True).iloc[0]), 3)
        row["p50_ms"] = round(float(frame["seconds"].median()) * 1000, 2)
        row["total_s"] = round(float(frame["seconds"].sum()), 2)
        table[name] = row
    return pd.DataFrame.from_dict(table, orient="index")
