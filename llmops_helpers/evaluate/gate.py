"""The quality gate: rules in a YAML file, checked against an evaluation run's ``summary.json`` (and a
baseline's), giving a pass/fail decision with every failed rule spelled out.

Exit codes of ``llmops gate``: 0 pass, 1 a rule failed, 2 unusable input (the message names the file), which
includes a rules file with an unknown key, a negative or non-finite threshold, or a ``max_drop``/``max_rise`` of 1
or more (they are fractions: 0.05 is 5%), and a baseline that is not comparable with the candidate (another
dataset, sample size or set of rows).

Errors never pass: the error rate is always checked (and, for runs with LLM judges, the share of rows whose judge
failed, against the same ``max_error_rate``), and a metric a rule needs but the summary lacks (or holds as
NaN/infinity) fails. A relative rule against a baseline of exactly 0 (the local model's cost) is *not applicable*:
a relative change from 0 is undefined, so the rule is reported as "n/a" and passes; the absolute SLOs (e.g.
``cost_per_request_usd max``) still bound the candidate. ``gate_decision.json`` is strict JSON: a non-finite
number is written as null, with the reason in the rule's message."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_helpers.errors import LLMOpsError
from llmops_helpers.evaluate.files import GATE_JSON, GATE_MD, METADATA, SUMMARY
from llmops_helpers.paths import write_text_atomic

RULE_KEYS = {"metric", "min", "max", "max_drop", "max_rise"}
#: Each section's bounds. ``safety`` holds SLOs for a red-team run (``llmops redteam --rules``, Lab 04); the gate
#: of an evaluation run never applies them.
SECTION_BOUNDS = {"slos": ("min", "max"), "relative": ("max_drop", "max_rise"), "safety": ("min", "max")}
DEFAULT_MAX_ERROR_RATE = 0.0


class GateInputError(LLMOpsError):
    """A rules file or summary cannot be used (exit code 2)."""


@dataclass
class RuleResult:
    rule: str
    metric: str
    passed: bool
    observed: float | None
    threshold: float | None
    baseline: float | None = None
    delta: float | None = None
    message: str = ""
    applicable: bool = True  # False: a relative rule against a baseline of 0 (see the module docstring)


@dataclass
class Decision:
    passed: bool
    results: list[RuleResult] = field(default_factory=list)
    candidate: str = ""
    baseline: str | None = None
    rules: str = ""
    kind: str = "Quality gate"  # the markdown's heading: the safety gate of a red-team run says "Safety gate"

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    def to_json(self) -> str:
        """Strict JSON (no bare NaN/Infinity, which many parsers reject): a non-finite number becomes null."""
        results = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(r).items()}
                   for r in self.results]
        return json.dumps({"passed": self.passed, "candidate": self.candidate, "baseline": self.baseline,
                           "rules": self.rules, "results": results}, indent=2, allow_nan=False)

    def to_markdown(self) -> str:
        verdict = "✅ passed" if self.passed else f"❌ failed ({len(self.failed)} rule(s))"
        head = f"### {self.kind}: {verdict}"
        lines = [head, "", "| rule | observed | threshold | baseline | delta | result |", "|---|---|---|---|---|---|"]
        for r in self.results:
            lines.append(f"| {r.rule} | {_fmt(r.observed)} | {_fmt(r.threshold)} | {_fmt(r.baseline)} | "
                         f"{_fmt(r.delta, signed=True)} | {_verdict(r)} |")
        return "\n".join(lines) + "\n"


def _verdict(result: RuleResult) -> str:
    if not result.applicable:
        return f"n/a: {result.message}"
    return "pass" if result.passed else "**FAIL**: " + result.message


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def load_summary(path: str | Path) -> tuple[dict[str, Any], str]:
    """A run folder's ``summary.json`` (or the file itself), checked for ``metrics``, ``n_rows``, ``n_errors``."""
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY
    if not path.is_file():
        raise GateInputError(f"{path}: no such summary file. Pass a run folder or its summary.json.")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GateInputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    if not isinstance(summary, dict):
        raise GateInputError(f"{path}: must be a JSON object with metrics, n_rows and n_errors.")
    problems = []
    if not isinstance(summary.get("metrics"), dict):
        problems.append("'metrics' must be an object of metric name -> number")
    for key in ("n_rows", "n_errors", "n_judge_errors"):
        if key == "n_judge_errors" and key not in summary:
            continue
        if not isinstance(summary.get(key), int) or isinstance(summary.get(key), bool) or summary.get(key) < 0:
            problems.append(f"'{key}' must be a whole number >= 0")
    for key in ("n_errors", "n_judge_errors"):
        if not problems and summary.get(key, 0) > summary["n_rows"]:
            problems.append(f"'{key}' is larger than 'n_rows'")
    if not problems and summary["n_rows"] == 0:
        problems.append("'n_rows' is 0: an evaluation of nothing cannot pass a gate")
    if problems:
        raise GateInputError(f"{path}: " + "; ".join(problems) + ".")
    return summary, str(path)


def _run_metadata(summary_file: str | Path) -> dict[str, Any]:
    """The ``metadata.json`` beside a summary ({} when there is none, e.g. a summary written by hand)."""
    path = Path(summary_file).parent / METADATA
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GateInputError(f"{path}: not valid JSON ({exc}), so the run's dataset cannot be checked. Re-run the "
                             "evaluation with --fresh.") from None
    return meta if isinstance(meta, dict) else {}


def comparability_problems(candidate: dict[str, Any], candidate_file: str | Path, baseline: dict[str, Any],
                           baseline_file: str | Path) -> list[str]:
    """What makes two runs incomparable: another number of rows, another dataset (``metadata.json``'s
    ``dataset_hash``) or sample, other row ids (``summary.json``'s ``row_ids``). Checks what both runs record."""
    problems = []
    if candidate["n_rows"] != baseline["n_rows"]:
        problems.append(f"number of rows: candidate {candidate['n_rows']}, baseline {baseline['n_rows']}")
    cand_meta, base_meta = _run_metadata(candidate_file), _run_metadata(baseline_file)
    cand_hash, base_hash = cand_meta.get("dataset_hash"), base_meta.get("dataset_hash")
    if cand_hash and base_hash and cand_hash != base_hash:
        problems.append(f"dataset hash: candidate {cand_hash!r} ({cand_meta.get('dataset', '?')}), "
                        f"baseline {base_hash!r} ({base_meta.get('dataset', '?')})")
    if "sample" in cand_meta and "sample" in base_meta and cand_meta["sample"] != base_meta["sample"]:
        problems.append(f"sample size: candidate {cand_meta['sample']}, baseline {base_meta['sample']}")
    cand_ids, base_ids = candidate.get("row_ids"), baseline.get("row_ids")
    if isinstance(cand_ids, list) and isinstance(base_ids, list) and set(cand_ids) != set(base_ids):
        only_cand, only_base = sorted(set(cand_ids) - set(base_ids)), sorted(set(base_ids) - set(cand_ids))

        def some(ids: list) -> str:
            return (", ".join(map(str, ids[:5])) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")) or "none"

        problems.append(f"row ids: only in the candidate {some(only_cand)}; only in the baseline {some(only_base)}")
    return problems


def check_comparable(candidate: dict[str, Any], candidate_file: str | Path, baseline: dict[str, Any],
                     baseline_file: str | Path) -> None:
    """Raise :class:`GateInputError` listing every difference when the runs did not evaluate the same rows."""
    problems = comparability_problems(candidate, candidate_file, baseline, baseline_file)
    if problems:
        raise GateInputError(
            f"{candidate_file} and {baseline_file} are not comparable: " + "; ".join(problems) + ". Evaluate the "
            "baseline and the candidate on the same data file and --sample (e.g. re-run one of them with the "
            "other's --data and --sample, and --fresh).")


def load_rules(path: str | Path) -> dict[str, Any]:
    """Rules YAML: ``slos`` (absolute min/max), ``relative`` (max_drop/max_rise as fractions of the baseline),
    ``safety`` (min/max on a red-team run's metrics, applied only by the safety gate), ``max_error_rate``
    (default 0)."""
    path = Path(path)
    if not path.is_file():
        raise GateInputError(f"{path}: no such rules file.")
    try:
        rules = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise GateInputError(f"{path}: not valid YAML ({exc}).") from None
    if not isinstance(rules, dict):
        raise GateInputError(f"{path}: must be a mapping with slos, relative, safety and max_error_rate.")
    unknown = set(rules) - {*SECTION_BOUNDS, "max_error_rate"}
    if unknown:
        raise GateInputError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}.")
    for section, allowed in SECTION_BOUNDS.items():
        entries = rules.get(section) or []
        if not isinstance(entries, list):
            raise GateInputError(f"{path}: '{section}' must be a list of rules.")
        for index, rule in enumerate(entries, start=1):
            _check_rule(f"{path}: {section} rule {index}", rule, allowed)
    rate = rules.get("max_error_rate", DEFAULT_MAX_ERROR_RATE)
    if not _is_number(rate) or not 0 <= rate <= 1:
        raise GateInputError(f"{path}: max_error_rate must be a number from 0 to 1 (it is {rate!r}).")
    return rules


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_rule(where: str, rule: Any, allowed: tuple[str, ...]) -> None:
    """One rule of a section: a metric name, known keys only, and finite thresholds in range."""
    if not isinstance(rule, dict) or not isinstance(rule.get("metric"), str) or not rule["metric"].strip():
        raise GateInputError(f"{where} needs a 'metric' name.")
    name = f"{where} ({rule['metric']})"
    unknown = sorted(str(key) for key in rule if key != "metric" and key not in allowed)
    if unknown:
        raise GateInputError(f"{name}: unknown key(s) {', '.join(repr(k) for k in unknown)}; a rule has 'metric' "
                             f"and {' and/or '.join(repr(k) for k in allowed)}. Put notes in YAML comments (# ...).")
    bounds = [key for key in allowed if key in rule]
    if not bounds:
        raise GateInputError(f"{name} must set {' or '.join(sorted(allowed))}.")
    for key in bounds:
        value = rule[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise GateInputError(f"{name}: '{key}' must be a number (it is {value!r}).")
        if not math.isfinite(value):
            raise GateInputError(f"{name}: '{key}' is {value}, not a finite number. Write a number such as 0.05.")
        if value < 0:
            raise GateInputError(f"{name}: '{key}' is {value:g}, but thresholds cannot be negative (every metric "
                                 "is 0 or more).")
        if key in ("max_drop", "max_rise") and value >= 1:
            raise GateInputError(f"{name}: '{key}' is {value:g}, but it is a fraction of the baseline below 1 "
                                 f"(0.05 = 5%); {value:g} would let the metric change by {value:.0%}. Write e.g. "
                                 f"{key}: 0.05.")


def metric_value(summary: dict[str, Any], name: str) -> float | None:
    """A finite metric from a summary, else None; ``error_rate`` is derived from ``n_errors / n_rows`` and
    ``judge_error_rate`` from ``n_judge_errors / n_rows``."""
    if name == "error_rate":
        return summary["n_errors"] / summary["n_rows"]
    if name == "judge_error_rate":
        return summary.get("n_judge_errors", 0) / summary["n_rows"]
    value = summary["metrics"].get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _unusable(summary: dict[str, Any], name: str, which: str) -> str:
    """Why ``metric_value`` gave None: missing, or present but not a finite number (NaN, infinity, text)."""
    if summary["metrics"].get(name) is None:
        return f"metric missing from the {which} summary"
    return f"metric is {summary['metrics'][name]!r} in the {which} summary, not a finite number"


def _slo_results(rule: dict[str, Any], candidate: dict[str, Any]) -> list[RuleResult]:
    name = rule["metric"]
    value = metric_value(candidate, name)
    results = []
    for bound, ok in (("min", lambda v, t: v >= t), ("max", lambda v, t: v <= t)):
        if bound not in rule:
            continue
        label = f"{name} {'>=' if bound == 'min' else '<='} {rule[bound]:g}"
        if value is None:
            results.append(RuleResult(label, name, False, None, rule[bound],
                                      message=_unusable(candidate, name, "candidate")))
        else:
            results.append(RuleResult(label, name, ok(value, rule[bound]), value, rule[bound],
                                      message="" if ok(value, rule[bound]) else "outside the SLO"))
    return results


def _relative_results(rule: dict[str, Any], candidate: dict[str, Any],
                      baseline: dict[str, Any] | None) -> list[RuleResult]:
    """``max_drop``/``max_rise`` as fractions of the baseline. A baseline of 0 makes a relative change undefined:
    the rule is marked not applicable (and passes) instead of failing every candidate that is not also 0."""
    name = rule["metric"]
    results = []
    for bound in ("max_drop", "max_rise"):
        if bound not in rule:
            continue
        limit = float(rule[bound])
        label = f"{name} {'drops' if bound == 'max_drop' else 'rises'} at most {limit:.0%} vs baseline"
        value = metric_value(candidate, name)
        if baseline is None:
            results.append(RuleResult(label, name, False, value, None, message="no baseline run was given"))
            continue
        base = metric_value(baseline, name)
        if value is None or base is None:
            reason = _unusable(candidate, name, "candidate") if value is None else _unusable(baseline, name,
                                                                                              "baseline")
            results.append(RuleResult(label, name, False, value, None, base, message=reason))
            continue
        if base == 0:
            results.append(RuleResult(label, name, True, value, None, base, message=(
                "not applicable: the baseline is 0, so a relative change is undefined (absolute SLOs still apply)"),
                applicable=False))
            continue
        if bound == "max_drop":
            threshold = base * (1 - limit)
            passed = value >= threshold
        else:
            threshold = base * (1 + limit)
            passed = value <= threshold
        results.append(RuleResult(label, name, passed, value, threshold, base, (value - base) / base,
                                  "" if passed else f"changed {value - base:+.4g} from the baseline"))
    return results


def apply_gate(rules: dict[str, Any], candidate: dict[str, Any], baseline: dict[str, Any] | None = None) -> Decision:
    """Check every rule; missing or non-finite metrics fail, relative rules without a baseline fail too. The
    ``safety`` section is not applied here: it gates a red-team run (the responsible stage's ``safety_gate``)."""
    results = []
    rate = float(rules.get("max_error_rate", DEFAULT_MAX_ERROR_RATE))
    observed_rate = metric_value(candidate, "error_rate")
    results.append(RuleResult(f"error_rate <= {rate:g}", "error_rate", observed_rate <= rate, observed_rate, rate,
                              message=f"{candidate['n_errors']} of {candidate['n_rows']} rows errored"))
    if "n_judge_errors" in candidate:  # runs since judge failures stopped turning rows into error rows
        observed = metric_value(candidate, "judge_error_rate")
        results.append(RuleResult(f"judge_error_rate <= {rate:g}", "judge_error_rate", observed <= rate, observed,
                                  rate, message=f"{candidate['n_judge_errors']} of {candidate['n_rows']} rows have a "
                                  "failed LLM judge (the judge's mean covers only the other rows)"))
    for rule in rules.get("slos") or []:
        results += _slo_results(rule, candidate)
    for rule in rules.get("relative") or []:
        results += _relative_results(rule, candidate, baseline)
    return Decision(all(r.passed for r in results), results)


def run_gate(rules_path: str | Path, candidate_path: str | Path, baseline_path: str | Path | None = None,
             out_dir: str | Path | None = None, absolute_only: bool = False) -> Decision:
    """Load everything, decide, and write ``gate_decision.json`` and ``gate_decision.md`` into ``out_dir``
    (default: the candidate's folder). ``absolute_only`` applies the error-rate and SLO rules and leaves out the
    relative ones, for pipelines that have no baseline (a build of a branch, the nightly run)."""
    rules = load_rules(rules_path)
    if absolute_only:
        if baseline_path:
            raise GateInputError("absolute_only with a baseline: drop one of them.")
        rules = {key: value for key, value in rules.items() if key != "relative"}
    candidate, candidate_file = load_summary(candidate_path)
    baseline, baseline_file = load_summary(baseline_path) if baseline_path else (None, None)
    if baseline is not None:
        check_comparable(candidate, candidate_file, baseline, baseline_file)
    decision = apply_gate(rules, candidate, baseline)
    decision.candidate, decision.baseline, decision.rules = candidate_file, baseline_file, str(rules_path)
    target = Path(out_dir) if out_dir else Path(candidate_file).parent
    target.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target / GATE_JSON, decision.to_json() + "\n")  # a build reads it as evidence
    write_text_atomic(target / GATE_MD, decision.to_markdown())
    return decision
