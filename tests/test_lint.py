"""llmops lint: the sample flow is clean; each kind of mistake is found and named with its file."""

import shutil
import subprocess
import sys

from llmops_helpers.flow.app import support_agent_dir
from llmops_helpers.flow.lint import lint_flow


def test_the_sample_flow_is_clean():
    assert lint_flow(support_agent_dir()) == []


def test_mistakes_are_found_and_named(tmp_path):
    flow = shutil.copytree(support_agent_dir(), tmp_path / "flow", ignore=shutil.ignore_patterns("__pycache__"))
    config = flow / "config.yaml"
    config.write_text(config.read_text().replace("  dev: {}", '  dev:\n    temperature: "zero"\n    top_k: 0'))
    prompt = flow / "prompts" / "answer_friendly.prompty"
    prompt.write_text(prompt.read_text().replace("{{question}}", "{{questoin}}").replace("{{ question }}",
                                                                                         "{{ questoin }}"))
    (flow / "support_agent.py").write_text((flow / "support_agent.py").read_text() + "\nimport os\n")
    problems = "\n".join(lint_flow(flow))
    assert "config.yaml (dev): temperature 'zero' is not a number" in problems
    assert "config.yaml (dev): top_k 0 must be a whole number" in problems
    assert "answer_friendly.prompty: UndefinedError: 'questoin' is undefined" in problems
    assert "ruff:" in problems and "support_agent.py" in problems
    assert "config.yaml (prod)" not in problems


def test_lint_command_exit_code(tmp_path):
    clean = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "lint"], capture_output=True, text=True,
                           check=False)
    assert clean.returncode == 0 and "✅ lint" in clean.stdout
