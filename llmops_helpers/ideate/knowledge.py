"""The telco knowledge base: markdown documents with front matter (``id``, ``title``, ``category``),
validated on load with errors that name the file and the field."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from llmops_helpers.errors import DatasetError
from llmops_helpers.paths import kit_root

CATEGORIES = ("plans", "roaming", "billing", "devices", "network", "account", "contracts", "support", "store")
REQUIRED_FIELDS = ("id", "title", "category")
FRONT_MATTER = re.compile(r"\A---\s*\n(?P<meta>.*?)\n---\s*\n(?P<body>.*)\Z", re.S)
ID_PATTERN = re.compile(r"^kb-[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Document:
    """One knowledge-base article, or one passage of it (``part`` 1, 2, ...; 0 is the whole article). A passage
    keeps its article's id, title and category: the model cites the article, and metrics count articles."""

    id: str
    title: str
    category: str
    text: str
    path: str
    part: int = 0

    def as_context(self) -> str:
        """How the document is shown to the model: its id (to cite), title and text."""
        return f"[{self.id}] {self.title}\n{self.text.strip()}"


PARAGRAPH = re.compile(r"\n\s*\n")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def split_passages(doc: Document, max_words: int) -> list[Document]:
    """``doc`` cut into passages of at most about ``max_words`` words, in order: paragraphs, with short neighbours
    joined and a heading kept with the paragraph after it; a paragraph longer than ``max_words`` is cut between
    sentences. Every passage keeps the article's id and title. ``max_words`` 0 keeps the whole article."""
    if max_words <= 0:
        return [doc]
    pieces: list[str] = []
    for paragraph in (p.strip() for p in PARAGRAPH.split(doc.text.strip())):
        if len(paragraph.split()) <= max_words:
            pieces.append(paragraph)
            continue
        current = ""  # a long paragraph: its lines (list items) first, then its sentences
        for line in paragraph.splitlines():
            units = [line] if len(line.split()) <= max_words else SENTENCE_END.split(line)
            for position, unit in enumerate(units):
                joiner = " " if position else "\n"  # a line starts on a new line; its sentences follow on it
                if current and len(f"{current} {unit}".split()) > max_words:
                    pieces.append(current)
                    current = unit
                else:
                    current = f"{current}{joiner}{unit}" if current else unit
        pieces.append(current)
    passages: list[str] = []
    for piece in pieces:
        last = passages[-1] if passages else ""
        heading = last.startswith("#") and "\n" not in last
        if passages and (heading or len(f"{last} {piece}".split()) <= max_words):
            passages[-1] = f"{last}\n\n{piece}"
        else:
            passages.append(piece)
    return [replace(doc, text=text, part=n) for n, text in enumerate(passages, start=1)]


def default_kb_dir() -> Path:
    return kit_root() / "data" / "knowledge_base"


def parse_document(path: Path) -> Document:
    """Read one document; raise :class:`DatasetError` naming the file and field on any problem."""
    text = path.read_text(encoding="utf-8")
    match = FRONT_MATTER.match(text)
    if not match:
        raise DatasetError(str(path), None, None, "no front matter",
                           "Start the file with a '---' line, the fields id, title and category, and another '---'.")
    try:
        meta = yaml.safe_load(match.group("meta")) or {}
    except yaml.YAMLError as exc:
        raise DatasetError(str(path), None, None, f"front matter is not valid YAML ({exc})") from None
    if not isinstance(meta, dict):
        raise DatasetError(str(path), None, None, "front matter must be 'key: value' lines")
    for field in REQUIRED_FIELDS:
        if not str(meta.get(field) or "").strip():
            raise DatasetError(str(path), None, field, "is missing or empty",
                               f"Add '{field}: ...' to the front matter.")
    doc_id, category = str(meta["id"]).strip(), str(meta["category"]).strip()
    if not ID_PATTERN.match(doc_id):
        raise DatasetError(str(path), None, "id", f"{doc_id!r} is not like 'kb-some-topic'")
    if doc_id != path.stem:
        raise DatasetError(str(path), None, "id", f"{doc_id!r} differs from the file name",
                           f"Rename the file to {doc_id}.md or change the id.")
    if category not in CATEGORIES:
        raise DatasetError(str(path), None, "category", f"{category!r} is not one of {', '.join(CATEGORIES)}")
    body = match.group("body").strip()
    if not body:
        raise DatasetError(str(path), None, "body", "is empty")
    return Document(doc_id, str(meta["title"]).strip(), category, body, str(path))


def load_knowledge_base(folder: str | Path | None = None) -> list[Document]:
    """All documents of ``folder`` (default ``data/knowledge_base``), sorted by id."""
    folder = Path(folder) if folder else default_kb_dir()
    paths = sorted(folder.glob("*.md"))
    if not paths:
        raise DatasetError(str(folder), None, None, "has no .md documents",
                           "Point the flow's knowledge_base setting at the kit's data/knowledge_base folder.")
    docs = [parse_document(p) for p in paths]
    seen: dict[str, str] = {}
    for doc in docs:
        if doc.id in seen:
            raise DatasetError(doc.path, None, "id", f"{doc.id!r} is also used by {seen[doc.id]}")
        seen[doc.id] = doc.path
    return docs


def fingerprint(docs: list[Document]) -> str:
    """A content hash of the knowledge base, to key caches."""
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(f"{doc.id}\0{doc.title}\0{doc.category}\0{doc.text}\0".encode())
    return digest.hexdigest()[:16]
