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
