"""Where the kit lives on disk, so notebooks and tests never depend on the current directory."""

from __future__ import annotations

import os
from pathlib import Path


def kit_root() -> Path:
    """The repository root: ``LLMOPS_KIT_ROOT`` if set, else the folder holding this package's
    ``pyproject.toml`` (an editable install), else the current directory."""
    env = os.environ.get("LLMOPS_KIT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "solutions").is_dir():
        return here
    return Path.cwd().resolve()


def build_dir() -> Path:
    """Scratch output (executed notebooks, run artefacts); git-ignored."""
    return kit_root() / "build"


def git_output(*args: str, cwd: str | Path | None = None, timeout: float = 30) -> str:
    """``git <args>``'s output in ``cwd`` (default: the kit), stripped; "" when git or the repository is
    missing or the command fails."""
    import subprocess

    try:
        return subprocess.run(["git", *args], cwd=cwd or kit_root(), capture_output=True, text=True, check=True,
                              timeout=timeout).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
