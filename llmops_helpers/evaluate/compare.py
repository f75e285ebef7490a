"""Compare two evaluation runs: per-metric deltas with paired-bootstrap 95% intervals, per-category slices,
the rows that got worse, and a report (markdown for a PR comment, HTML with plots)."""

from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmops_helpers.evaluate import metrics
from llmops_helpers.evaluate.evaluation import read_rows
from llmops_helpers.evaluate.files import ROWS
from llmops_helpers.evaluate.gate import GateInputError, check_comparable, load_summary

GITHUB_COMMENT_LIMIT = 65_536
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")  # a cell boundary; ``\|`` is a pipe inside a cell
QUALITY_ORDER = ("key_fact_recall", "token_f1", "judge_groundedness", "judge_similarity", "exact_match")


@dataclass
class MetricDelta:
    metric: str
    base: float | None
    candidate: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    paired_rows: int

    @property
    def significant(self) -> bool:
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)


@dataclass
class Comparison:
    base: str
    candidate: str
    deltas: list[MetricDelta] = field(default_factory=list)
    by_category: dict[str, dict[str, float | None]] = field(default_factory=dict)
    worse_rows: list[dict[str, Any]] = field(default_factory=list)
    primary: str = ""
    intent_by_category: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_summary: dict[str, Any] = field(default_factory=dict)
    candidate_summary: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps({k: v for k, v in data.items() if not k.endswith("_summary")}, indent=2)


def _run_rows(folder: Path) -> dict[str, dict]:
    rows = read_rows(folder / ROWS)
    if not rows:
        raise GateInputError(f"{folder / ROWS}: no rows; is {folder} an evaluation run folder?")
    return {r["id"]: r for r in rows if "id" in r}


def bootstrap_interval(diffs: list[float], samples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95% interval of the mean of paired differences, by resampling rows (deterministic seed)."""
    if len(diffs) < 2:
        return None
    import numpy as np

    rng = np.random.default_rng(seed)
    values = np.asarray(diffs, dtype=float)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def compare_runs(base_dir: str | Path, candidate_dir: str | Path, primary: str | None = None) -> Comparison:
    """Pair the two runs' rows; runs of other rows (dataset, sample, row ids) are refused as by the gate."""
    base_dir, candidate_dir = Path(base_dir), Path(candidate_dir)
    base_summary, base_file = load_summary(base_dir)
    cand_summary, cand_file = load_summary(candidate_dir)
    check_comparable(cand_summary, cand_file, base_summary, base_file)
    base_rows, cand_rows = _run_rows(base_dir), _run_rows(candidate_dir)
    shared = sorted(set(base_rows) & set(cand_rows))
    names = sorted(set(base_summary["metrics"]) | set(cand_summary["metrics"]))
    deltas = []
    for name in names:
        pairs = [(base_rows[i]["scores"][name], cand_rows[i]["scores"][name]) for i in shared
                 if not base_rows[i].get("error") and not cand_rows[i].get("error")
                 and name in base_rows[i].get("scores", {}) and name in cand_rows[i].get("scores", {})]
        base_value, cand_value = base_summary["metrics"].get(name), cand_summary["metrics"].get(name)
        interval = bootstrap_interval([c - b for b, c in pairs]) if pairs else None
        delta = None if base_value is None or cand_value is None else cand_value - base_value
        deltas.append(MetricDelta(name, base_value, cand_value, delta, *(interval or (None, None)), len(pairs)))
    primary = primary or next((m for m in QUALITY_ORDER if m in names), names[0] if names else "")
    worse = []
    for row_id in shared:
        base_row, cand_row = base_rows[row_id], cand_rows[row_id]
        if cand_row.get("error") and not base_row.get("error"):
            worse.append({"id": row_id, "question": cand_row.get("question"), "base": None, "candidate": None,
                          "why": f"now errors: {cand_row['error']}"})
            continue
        b, c = base_row.get("scores", {}).get(primary), cand_row.get("scores", {}).get(primary)
        if b is not None and c is not None and c < b:
            worse.append({"id": row_id, "question": cand_row.get("question"), "base": b, "candidate": c,
                          "why": f"{primary} {_f(b)} → {_f(c)}"})
    categories = sorted(set(base_summary.get("by_category", {})) | set(cand_summary.get("by_category", {})))
    by_category = {}
    for category in categories:
        b = base_summary.get("by_category", {}).get(category, {}).get(primary)
        c = cand_summary.get("by_category", {}).get(category, {}).get(primary)
        by_category[category] = {"base": b, "candidate": c, "delta": None if b is None or c is None else c - b}
    return Comparison(str(base_dir), str(candidate_dir), deltas, by_category, worse, primary,
                      _intent_by_category(base_rows, cand_rows, shared), base_summary, cand_summary)


def _intent_by_category(base_rows: dict[str, dict], cand_rows: dict[str, dict], shared: list[str]
                        ) -> dict[str, dict[str, Any]]:
    """Per category: rows, and how many intents each run got right against the *candidate's* labels (a PR that
    changes routing relabels its golden rows, and both flows are judged by them); what each run said most."""
    table: dict[str, dict[str, Any]] = {}
    for row_id in shared:
        base_row, cand_row = base_rows[row_id], cand_rows[row_id]
        expected = cand_row.get("expected_intent")
        if not expected or base_row.get("error") or cand_row.get("error"):
            continue
        entry = table.setdefault(cand_row.get("category") or "?", {"rows": 0, "base": 0, "candidate": 0,
                                                                   "base_said": {}, "candidate_said": {}})
        entry["rows"] += 1
        for side, row in (("base", base_row), ("candidate", cand_row)):
            entry[side] += int(metrics.intent_accuracy(str(row.get("intent") or ""), expected))
            said = entry[f"{side}_said"]
            said[row.get("intent") or "(none)"] = said.get(row.get("intent") or "(none)", 0) + 1
    return dict(sorted(table.items()))


def _f(value: float | None, signed: bool = False, digits: int = 3) -> str:
    """``digits`` significant digits, so small costs stay visible (5.4e-05 → 0.0000540, not 0.000), written
    without an exponent from 1e-6 to 1e6; scores read as before (0.5 → 0.500)."""
    if value is None or not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    sign = "+" if signed else ""
    if not -6 <= magnitude < 6:
        return f"{value:{sign}.{digits - 1}e}"
    return f"{value:{sign}.{max(0, digits - 1 - magnitude)}f}"


def _cell(text: Any) -> str:
    """Text for a markdown table cell: a ``|`` would start a new cell and a newline would end the table."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text)).replace("|", "\\|")


def _shadow_line(base: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """When the runs' model was free (cost 0), one line on what the same tokens would cost on a hosted model."""
    b, c = base.get("shadow_cost") or {}, candidate.get("shadow_cost") or {}
    if not b or not c or (candidate["metrics"].get("cost_per_request_usd") or 0) > 0:
        return []
    return [f"Cost: this model is free; the same tokens on {c['model']} would cost "
            f"${_f(b['per_request_usd'])} (baseline) → ${_f(c['per_request_usd'])} (candidate) per answer.", ""]


def to_markdown(comparison: Comparison, gate_markdown: str = "", limit: int = GITHUB_COMMENT_LIMIT - 1_000) -> str:
    """A PR-comment report, trimmed (worse rows first) to stay under GitHub's comment limit."""
    b, c = comparison.base_summary, comparison.candidate_summary
    head = [
        "## Evaluation: candidate vs baseline", "",
        f"Rows: baseline {b.get('n_rows')} ({b.get('n_errors')} errors), candidate {c.get('n_rows')} "
        f"({c.get('n_errors')} errors). Intervals: paired bootstrap, 95%.", "",
        *_shadow_line(b, c),
        "| metric | baseline | candidate | delta | 95% interval | |", "|---|---|---|---|---|---|",
    ]
    for d in comparison.deltas:
        interval = "—" if d.ci_low is None else f"[{_f(d.ci_low, True)}, {_f(d.ci_high, True)}]"
        flag = ("▲" if d.ci_low > 0 else "▼") if d.significant else ""
        head.append(f"| {d.metric} | {_f(d.base)} | {_f(d.candidate)} | {_f(d.delta, True)} | {interval} | {flag} |")
    head += ["", f"### By category ({comparison.primary})", "", "| category | baseline | candidate | delta |",
             "|---|---|---|---|"]
    head += [f"| {_cell(k)} | {_f(v['base'])} | {_f(v['candidate'])} | {_f(v['delta'], True)} |"
             for k, v in comparison.by_category.items()]
    if comparison.intent_by_category:
        head += ["", "### Intent by category (right / rows, against this PR's labels)", "",
                 "| category | baseline | candidate | the candidate said |", "|---|---|---|---|"]
        for category, v in comparison.intent_by_category.items():
            said = ", ".join(f"{k} {n}" for k, n in sorted(v["candidate_said"].items(), key=lambda kv: -kv[1]))
            head.append(f"| {_cell(category)} | {v['base']}/{v['rows']} | {v['candidate']}/{v['rows']} | "
                        f"{_cell(said)} |")
    tail = ["", gate_markdown] if gate_markdown else []
    rows = [f"| {_cell(w['id'])} | {_cell(str(w['question'])[:90])} | {_cell(w['why'])} |"
            for w in comparison.worse_rows]
    section = ["", f"### Rows that got worse ({len(rows)})", "", "| id | question | change |", "|---|---|---|"]
    text = "\n".join(head + section + rows + tail) + "\n"
    while len(text) > limit and rows:
        rows = rows[: len(rows) // 2]
        note = [f"| … | {len(comparison.worse_rows) - len(rows)} more rows in comparison.json | |"]
        text = "\n".join(head + section + rows + note + tail) + "\n"
    return text


def plots(comparison: Comparison, base_dir: Path, candidate_dir: Path):
    """Metric bars with intervals, a latency histogram and cost per request: one figure."""
    import matplotlib.pyplot as plt

    quality = [d for d in comparison.deltas if d.base is not None and d.candidate is not None
               and not d.metric.startswith(("latency", "cost", "tokens")) and not d.metric.startswith("judge_")]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.8))
    x = range(len(quality))
    left.bar([i - 0.2 for i in x], [d.base for d in quality], width=0.4, label="baseline")
    errors = [[d.candidate - (d.base + d.ci_low) if d.ci_low is not None else 0 for d in quality],
              [(d.base + d.ci_high) - d.candidate if d.ci_high is not None else 0 for d in quality]]
    left.bar([i + 0.2 for i in x], [d.candidate for d in quality], width=0.4, label="candidate",
             yerr=[[max(0, e) for e in errors[0]], [max(0, e) for e in errors[1]]], capsize=3)
    left.set_xticks(list(x), [d.metric for d in quality], rotation=30, ha="right")
    left.set_title("Quality metrics (candidate with 95% interval)")
    left.set_ylabel("mean score (0–1)")
    left.legend()
    for label, folder in (("baseline", base_dir), ("candidate", candidate_dir)):
        latencies = [r["latency_s"] for r in read_rows(folder / ROWS) if r.get("latency_s") is not None]
        middle.hist(latencies, bins=10, alpha=0.6, label=label)
    middle.set_title("Latency per row")
    middle.set_xlabel("seconds")
    middle.set_ylabel("rows")
    middle.legend()
    costs = [comparison.base_summary["metrics"].get("cost_per_request_usd") or 0,
             comparison.candidate_summary["metrics"].get("cost_per_request_usd") or 0]
    right.bar(["baseline", "candidate"], costs, color=["#9ecae1", "#fdae6b"])
    right.set_title("Cost per request")
    right.set_ylabel("USD")
    fig.tight_layout()
    return fig


def write_report(comparison: Comparison, out_dir: str | Path, gate_markdown: str = "") -> dict[str, Path]:
    """``comparison.json``, ``report.md`` (PR comment), ``report.html`` (with the plots) and ``report.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(comparison, gate_markdown)
    fig = plots(comparison, Path(comparison.base), Path(comparison.candidate))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    fig.savefig(out / "report.png", bbox_inches="tight")
    plt.close(fig)
    image = base64.b64encode(buffer.getvalue()).decode()
    html = _html(markdown, image)
    paths = {"json": out / "comparison.json", "markdown": out / "report.md", "html": out / "report.html",
             "png": out / "report.png"}
    paths["json"].write_text(comparison.to_json() + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown, encoding="utf-8")
    paths["html"].write_text(html, encoding="utf-8")
    return paths


def _html(markdown: str, image_b64: str) -> str:
    """A self-contained HTML page: the markdown tables rendered as tables, then the plots."""
    import html as html_lib

    parts, table = [], []

    def flush() -> None:
        if table:
            cells = [[html_lib.escape(c.strip().replace("\\|", "|")) for c in UNESCAPED_PIPE.split(line.strip()[1:-1])]
                     for line in table if not set(line.replace("|", "").strip()) <= {"-"}]
            header, *body = cells
            parts.append("<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>" for row in body)
                         + "</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            parts.append(f"<h{level}>{html_lib.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            parts.append(f"<p>{html_lib.escape(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation report</title><style>{style}"
            f"</style></head><body>{''.join(parts)}<img alt='plots' src='data:image/png;base64,{image_b64}'>"
            "</body></html>\n")

