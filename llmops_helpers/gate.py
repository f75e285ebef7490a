"""The quality gate: rules in a YAML file, checked against an evaluation run's ``summary.json`` (and a
baseline's), giving a pass/fail decision with every failed rule spelled out.

Exit codes of ``llmops gate``: 0 pass, 1 a rule failed, 2 unusable input (the message names the file).
Errors never pass: the error rate is always checked, and a metric a rule needs but the summary lacks fails."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import LLMOpsError

RULE_KEYS = {"metric", "min", "max", "max_drop", "max_rise"}
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


@dataclass
class Decision:
    passed: bool
    results: list[RuleResult] = field(default_factory=list)
    candidate: str = ""
    baseline: str | None = None
    rules: str = ""

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    def to_json(self) -> str:
        return json.dumps({"passed": self.passed, "candidate": self.candidate, "baseline": self.baseline,
                           "rules": self.rules, "results": [asdict(r) for r in self.results]}, indent=2)

    def to_markdown(self) -> str:
        verdict = "✅ passed" if self.passed else f"❌ failed ({len(self.failed)} rule(s))"
        head = f"### Quality gate: {verdict}"
        lines = [head, "", "| rule | observed | threshold | baseline | delta | result |", "|---|---|---|---|---|---|"]
        for r in self.results:
            lines.append(f"| {r.rule} | {_fmt(r.observed)} | {_fmt(r.threshold)} | {_fmt(r.baseline)} | "
                         f"{_fmt(r.delta, signed=True)} | {'pass' if r.passed else '**FAIL**: ' + r.message} |")
        return "\n".join(lines) + "\n"


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def load_summary(path: str | Path) -> tuple[dict[str, Any], str]:
    """A run folder's ``summary.json`` (or the file itself), checked for ``metrics``, ``n_rows``, ``n_errors``."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
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
    for key in ("n_rows", "n_errors"):
        if not isinstance(summary.get(key), int) or isinstance(summary.get(key), bool) or summary.get(key) < 0:
            problems.append(f"'{key}' must be a whole number >= 0")
    if not problems and summary["n_errors"] > summary["n_rows"]:
        problems.append("'n_errors' is larger than 'n_rows'")
    if not problems and summary["n_rows"] == 0:
        problems.append("'n_rows' is 0: an evaluation of nothing cannot pass a gate")
    if problems:
        raise GateInputError(f"{path}: " + "; ".join(problems) + ".")
    return summary, str(path)


def load_rules(path: str | Path) -> dict[str, Any]:
    """Rules YAML: ``slos`` (absolute min/max), ``relative`` (max_drop/max_rise as fractions of the baseline),
    ``max_error_rate`` (default 0)."""
    path = Path(path)
    if not path.is_file():
        raise GateInputError(f"{path}: no such rules file.")
    try:
        rules = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise GateInputError(f"{path}: not valid YAML ({exc}).") from None
    if not isinstance(rules, dict):
        raise GateInputError(f"{path}: must be a mapping with slos, relative and max_error_rate.")
    unknown = set(rules) - {"slos", "relative", "max_error_rate"}
    if unknown:
        raise GateInputError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}.")
    for section, allowed in (("slos", {"min", "max"}), ("relative", {"max_drop", "max_rise"})):
        entries = rules.get(section) or []
        if not isinstance(entries, list):
            raise GateInputError(f"{path}: '{section}' must be a list of rules.")
        for index, rule in enumerate(entries, start=1):
            where = f"{path}: {section} rule {index}"
            if not isinstance(rule, dict) or not isinstance(rule.get("metric"), str):
                raise GateInputError(f"{where} needs a 'metric' name.")
            bounds = set(rule) - {"metric"}
            if not bounds or not bounds <= allowed:
                raise GateInputError(f"{where} ({rule['metric']}) must set {' or '.join(sorted(allowed))}.")
            for key in bounds:
                if not isinstance(rule[key], (int, float)) or isinstance(rule[key], bool):
                    raise GateInputError(f"{where} ({rule['metric']}): '{key}' must be a number.")
    rate = rules.get("max_error_rate", DEFAULT_MAX_ERROR_RATE)
    if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise GateInputError(f"{path}: max_error_rate must be a number from 0 to 1.")
    return rules


def metric_value(summary: dict[str, Any], name: str) -> float | None:
    """A metric from a summary; ``error_rate`` is derived from ``n_errors / n_rows``."""
    if name == "error_rate":
        return summary["n_errors"] / summary["n_rows"]
    value = summary["metrics"].get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def apply_gate(rules: dict[str, Any], candidate: dict[str, Any], baseline: dict[str, Any] | None = None) -> Decision:
    """Check every rule; missing metrics fail, relative rules without a baseline fail too."""
    results = []
    rate = float(rules.get("max_error_rate", DEFAULT_MAX_ERROR_RATE))
    observed_rate = metric_value(candidate, "error_rate")
    results.append(RuleResult(f"error_rate <= {rate:g}", "error_rate", observed_rate <= rate, observed_rate, rate,
                              message=f"{candidate['n_errors']} of {candidate['n_rows']} rows errored"))
    for rule in rules.get("slos") or []:
        name = rule["metric"]
        value = metric_value(candidate, name)
        for bound, ok in (("min", lambda v, t: v >= t), ("max", lambda v, t: v <= t)):
            if bound not in rule:
                continue
            label = f"{name} {'>=' if bound == 'min' else '<='} {rule[bound]:g}"
            if value is None:
                results.append(RuleResult(label, name, False, None, rule[bound],
                                          message="metric missing from the candidate summary"))
            else:
                results.append(RuleResult(label, name, ok(value, rule[bound]), value, rule[bound],
                                          message="" if ok(value, rule[bound]) else "outside the SLO"))
    for rule in rules.get("relative") or []:
        name = rule["metric"]
        for bound in ("max_drop", "max_rise"):
            if bound not in rule:
                continue
            limit = float(rule[bound])
            label = f"{name} {'drops' if bound == 'max_drop' else 'rises'} at most {limit:.0%} vs baseline"
            value = metric_value(candidate, name)
            base = metric_value(baseline, name) if baseline is not None else None
            if baseline is None:
                results.append(RuleResult(label, name, False, value, None, message="no baseline run was given"))
                continue
            if value is None or base is None:
                missing = "candidate" if value is None else "baseline"
                results.append(RuleResult(label, name, False, value, None, base,
                                          message=f"metric missing from the {missing} summary"))
                continue
            if bound == "max_drop":
                threshold = base * (1 - limit)
                passed = value >= threshold
            else:
                threshold = base * (1 + limit)
                passed = value <= threshold
            delta = (value - base) / base if base else (0.0 if value == base else None)
            results.append(RuleResult(label, name, passed, value, threshold, base,
                                      None if delta is None else delta,
                                      "" if passed else f"changed {value - base:+.4g} from the baseline"))
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
    decision = apply_gate(rules, candidate, baseline)
    decision.candidate, decision.baseline, decision.rules = candidate_file, baseline_file, str(rules_path)
    target = Path(out_dir) if out_dir else Path(candidate_file).parent
    target.mkdir(parents=True, exist_ok=True)
    (target / "gate_decision.json").write_text(decision.to_json() + "\n", encoding="utf-8")
    (target / "gate_decision.md").write_text(decision.to_markdown(), encoding="utf-8")
    return decision
