"""Prompt files: the ``.prompty`` format (YAML front matter + a Jinja2 body with ``system:`` / ``user:`` /
``assistant:`` role markers), rendered into chat messages for the plain ``openai`` client."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_helpers.errors import DatasetError

ROLE_MARKER = re.compile(r"^\s*(system|user|assistant)\s*:\s*$", re.M)


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded ``.prompty`` file."""

    name: str
    description: str
    body: str
    path: str
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)

    def render(self, **variables: Any) -> list[dict[str, str]]:
        """Fill the template and split it into ``[{"role": ..., "content": ...}, ...]``."""
        import jinja2

        missing = [name for name in self.inputs if name not in variables]
        if missing:
            raise DatasetError(self.path, None, "inputs", f"render() is missing {', '.join(missing)}")
        text = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(
            self.body).render(**variables)
        return split_roles(text, self.path)


def split_roles(text: str, where: str = "prompt") -> list[dict[str, str]]:
    """Split rendered text at role markers; text before the first marker is an error."""
    parts = ROLE_MARKER.split(text)
    if parts[0].strip():
        raise DatasetError(where, None, "body", "text before the first role marker",
                           "Start the body with a line 'system:' (or 'user:').")
    pairs = zip(parts[1::2], parts[2::2], strict=True)  # split() with one group alternates marker, text
    messages = [{"role": role, "content": content.strip()} for role, content in pairs]
    if not messages:
        raise DatasetError(where, None, "body", "has no 'system:' or 'user:' role marker")
    return messages


def load_prompty(path: str | Path) -> PromptTemplate:
    """Read a ``.prompty`` file; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(str(path), None, None, "does not exist", "Check the prompt_variant setting.")
    text = path.read_text(encoding="utf-8")
    match = re.match(r"\A---\s*\n(.*?)\n---\s*\n(.*)\Z", text, re.S)
    if not match:
        raise DatasetError(str(path), None, None, "no front matter between '---' lines")
    meta = yaml.safe_load(match.group(1)) or {}
    if not meta.get("name"):
        raise DatasetError(str(path), None, "name", "is missing")
    model = meta.get("model") or {}
    return PromptTemplate(
        name=str(meta["name"]), description=str(meta.get("description", "")), body=match.group(2), path=str(path),
        parameters=dict(model.get("parameters") or {}), inputs=dict(meta.get("inputs") or {}),
    )
