"""The knowledge base loader and the real knowledge base's shape."""

from collections import Counter

import pytest

from llmops_helpers.errors import DatasetError
from llmops_helpers.ideate.knowledge import CATEGORIES, load_knowledge_base, split_passages


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


LONG = ("---\nid: kb-long\ntitle: Long\ncategory: billing\n---\n\n## Fees\n\n" + "First fee applies. " * 30 + "\n\n"
        "Short tail.\n\nSteps:\n- one two three four five six\n- seven eight nine ten eleven twelve\n")


def test_passages_keep_the_article_and_every_word_in_order(tmp_path):
    write(tmp_path, "kb-long.md", LONG)
    [doc] = load_knowledge_base(tmp_path)
    passages = split_passages(doc, 20)
    assert len(passages) > 3 and [p.part for p in passages] == list(range(1, len(passages) + 1))
    assert {(p.id, p.title, p.category) for p in passages} == {("kb-long", "Long", "billing")}
    assert " ".join(p.text for p in passages).split() == doc.text.split()  # nothing lost, nothing repeated
    assert all(len(p.text.split()) <= 20 for p in passages)
    assert passages[0].text.startswith("## Fees\n\nFirst fee")  # a heading stays with what follows it
    assert passages[-1].as_context().startswith("[kb-long] Long\n")  # cited by the article's id


def test_passage_words_zero_keeps_the_whole_article(tmp_path):
    write(tmp_path, "kb-good.md", GOOD)
    [doc] = load_knowledge_base(tmp_path)
    assert split_passages(doc, 0) == [doc] and doc.part == 0


def test_the_kits_articles_cut_into_short_passages():
    docs = load_knowledge_base()
    passages = [p for doc in docs for p in split_passages(doc, 80)]
    assert len(passages) > 2 * len(docs)
    assert max(len(p.text.split()) for p in passages) <= 80
