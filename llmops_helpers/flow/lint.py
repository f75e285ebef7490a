"""Static checks of the app before anything runs it: the review a PR pipeline does in seconds.

``llmops lint`` checks that the flow's code passes ruff, that ``flow.flex.yaml``'s entry exists, that
``config.yaml`` loads for every environment with sane values, that every ``.prompty`` parses and renders with its
declared inputs (StrictUndefined, so a misspelt variable fails here rather than in production), and that the
golden and red-team data validate. Each finding names the file and what to fix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from llmops_helpers.ideate.prompts import load_prompty

SAMPLE_INPUTS = {"question": "How do I set up voicemail?", "context": "[kb-001] Voicemail\nDial 121."}


def lint_flow(flow_dir: str | Path) -> list[str]:
    """Problems found in a flow folder (empty when it is clean)."""
    from llmops_helpers.flow.app import load_flow_module

    flow_dir = Path(flow_dir)
    problems: list[str] = []
    spec = flow_dir / "flow.flex.yaml"
    if not spec.is_file():
        return [f"{flow_dir}: no flow.flex.yaml"]
    entry = str((yaml.safe_load(spec.read_text(encoding="utf-8")) or {}).get("entry", ""))
    module_name, _, class_name = entry.partition(":")
    if not (flow_dir / f"{module_name}.py").is_file() or not class_name:
        return problems + [f"{spec}: entry {entry!r} must be module:Class with {module_name}.py in the folder"]
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(ruff).is_file():
        done = subprocess.run([ruff, "check", "--quiet", str(flow_dir)], capture_output=True, text=True, check=False)
        problems += [f"ruff: {line}" for line in done.stdout.splitlines() if line.strip()]
    module = load_flow_module(flow_dir, module_name)
    config_path = flow_dir / "config.yaml"
    if config_path.is_file() and hasattr(module, "load_config"):
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        for environment in [""] + list(raw.get("environments") or {}):
            where = f"{config_path} ({environment or 'default'})"
            try:
                config = module.load_config(config_path, environment)
            except Exception as exc:  # noqa: BLE001 (report any failure to load as a finding)
                problems.append(f"{where}: {exc}")
                continue
            problems += _config_problems(where, config, flow_dir)
    for prompty in sorted((flow_dir / "prompts").glob("*.prompty")):
        try:
            template = load_prompty(prompty)
            template.render(**{name: SAMPLE_INPUTS.get(name, "sample") for name in template.inputs})
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{prompty}: {type(exc).__name__}: {exc}")
    return problems


def _config_problems(where: str, config: dict, flow_dir: Path) -> list[str]:
    problems = []
    try:
        temperature = float(config.get("temperature", 0))
        if not 0 <= temperature <= 2:
            problems.append(f"{where}: temperature {temperature} is outside 0-2")
    except (TypeError, ValueError):
        problems.append(f"{where}: temperature {config.get('temperature')!r} is not a number")
    top_k = config.get("top_k")
    if not isinstance(top_k, int) or top_k < 1:
        problems.append(f"{where}: top_k {top_k!r} must be a whole number of articles, at least 1")
    variant = config.get("prompt_variant")
    if not (flow_dir / "prompts" / f"answer_{variant}.prompty").is_file():
        problems.append(f"{where}: prompt_variant {variant!r} has no prompts/answer_{variant}.prompty")
    return problems
