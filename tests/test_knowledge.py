"""The knowledge base loader and the real knowledge base's shape."""

from collections import Counter

import pytest

from llmops_helpers.errors import DatasetError
from llmops_helpers.knowledge import CATEGORIES, load_knowledge_base


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


GOOD = "---\nid: kb-good\ntitle: Good\ncategory: billing\n---\n\nBills are issued monthly.\n"


def test_loads_valid_documents(tmp_path):
    write(tmp_path, "kb-good.md", GOOD)
    [doc] = load_knowledge_base(tmp_path)
    assert (doc.id, doc.title, doc.category) == ("kb-good", "Good", "billing")
    assert doc.as_context().startswith("[kb-good] Good\n")


@pytest.mark.parametrize("name, text, field, problem", [
    ("kb-a.md", "no front matter", None, "no front matter"),
    ("kb-a.md", "---\nid: kb-a\ncategory: billing\n---\n\nx", "title", "missing"),
    ("kb-a.md", "---\nid: kb-a\ntitle: A\ncategory: pets\n---\n\nx", "category", "not one of"),
    ("kb-a.md", "---\nid: kb-b\ntitle: A\ncategory: billing\n---\n\nx", "id", "differs from the file name"),
    ("kb-a.md", "---\nid: kb-a\ntitle: A\ncategory: billing\n---\n\n", "body", "empty"),
    ("kb-a.md", "---\nid: [kb-a\ntitle: A\n---\n\nx", None, "not valid YAML"),
])
def test_bad_documents_name_the_file_and_field(tmp_path, name, text, field, problem):
    write(tmp_path, name, text)
    with pytest.raises(DatasetError, match=problem) as info:
        load_knowledge_base(tmp_path)
    assert info.value.path.endswith(name) and info.value.field == field
    assert name in str(info.value)


def test_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="has no .md documents"):
        load_knowledge_base(tmp_path)


def test_the_kits_knowledge_base():
    docs = load_knowledge_base()
    counts = Counter(d.category for d in docs)
    assert len(docs) >= 40
    assert set(counts) == set(CATEGORIES) and min(counts.values()) >= 3, counts
