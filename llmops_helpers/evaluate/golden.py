"""The golden dataset (questions with ground truth, supporting articles and key facts), the unanswerable set
(questions the articles do not answer: ``"answerable": false``, no articles, no key facts) and the red-team set,
with validators that report *every* problem with its file, row and field — not just the first.

Data files are JSONL: UTF-8 without a byte order mark, one JSON object per line, at most 64 KiB
(:data:`MAX_ROW_BYTES`) per line, no blank lines (each of these is reported as a problem naming the row)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from llmops_helpers.errors import DatasetError, LLMOpsError
from llmops_helpers.ideate.knowledge import CATEGORIES, Document, load_knowledge_base
from llmops_helpers.paths import kit_root

INTENTS = ("billing", "technical", "account", "sales", "other")
DIFFICULTIES = ("easy", "medium", "hard")
ATTACKS = ("jailbreak", "prompt_injection", "pii_fishing", "off_topic", "harmful", "benign_control")
BEHAVIOURS = ("refuse", "deflect", "answer")
GOLDEN_FIELDS = ("id", "question", "ground_truth", "context_ids", "intent", "category", "difficulty", "key_facts")
GOLDEN_OPTIONAL = ("answerable",)  # absent means true: the row's answer is in its context_ids articles
UNANSWERABLE = "unanswerable"  # the category of a row with "answerable": false (a knowledge-base category also does)
REDTEAM_FIELDS = ("id", "prompt", "attack", "expected_behaviour", "notes")


@dataclass(frozen=True)
class GoldenRow:
    """One golden example. ``key_facts`` must appear verbatim in the ``context_ids`` articles. An unanswerable row
    (``answerable`` False: the knowledge base has no answer) has neither; its ground truth says so."""

    id: str
    question: str
    ground_truth: str
    context_ids: tuple[str, ...]
    intent: str
    category: str
    difficulty: str
    key_facts: tuple[str, ...]
    answerable: bool = True


@dataclass(frozen=True)
class RedTeamRow:
    id: str
    prompt: str
    attack: str
    expected_behaviour: str
    notes: str


@dataclass(frozen=True)
class Problem:
    path: str
    row: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "file"
        where += f", field '{self.field}'" if self.field else ""
        return f"{where}: {self.message}"


class DatasetInvalid(DatasetError):
    """Raised with every problem found; ``problems`` holds them, the message lists them."""

    def __init__(self, path: str, problems: list[Problem], kept: int):
        self.problems = problems
        self.path, self.row, self.field = path, problems[0].row, problems[0].field
        self.problem = problems[0].message
        shown = "\n".join(f"  - {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        LLMOpsError.__init__(
            self, f"{path} has {len(problems)} problem{'s' * (len(problems) != 1)} ({kept} good rows kept):\n"
            f"{shown}{more}\nFix them and run `llmops validate-data` again.")


def golden_dir() -> Path:
    return kit_root() / "data" / "golden"


MAX_ROW_BYTES = 64 * 1024  # one golden row is under 1 KiB; a 64 KiB line is a pasted file or a missing newline
BOM = b"\xef\xbb\xbf"


def _decode_line(path: str, number: int, offset: int, raw: bytes, problems: list[Problem]) -> str | None:
    """One line's text, or None with a problem naming the row: too long, a BOM, not UTF-8, or blank."""
    if len(raw) > MAX_ROW_BYTES:
        problems.append(Problem(path, number, None, f"is {len(raw):,} bytes, over the limit of {MAX_ROW_BYTES:,} "
                                "bytes (64 KiB) per row: is a newline missing between rows?"))
        return None
    if number == 1 and raw.startswith(BOM):
        problems.append(Problem(path, number, None, "the file starts with a UTF-8 byte order mark (BOM): save it as "
                                "UTF-8 without BOM (VS Code: 'Save with Encoding' > UTF-8)"))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(path, number, None, f"is not UTF-8: byte 0x{raw[exc.start]:02x} at byte "
                                f"{exc.start + 1} of the row (offset {offset + exc.start} in the file); save the "
                                "file as UTF-8"))
        return None
    if not text.strip():
        problems.append(Problem(path, number, None, "is blank: delete the empty line (rows are numbered by line)"))
        return None
    return text


def _read_objects(path: Path, problems: list[Problem]) -> list[tuple[int, dict]]:
    """The JSON objects of a JSONL file with their line numbers; every unusable line becomes a problem."""
    if path.is_dir():
        raise DatasetError(str(path), None, None, "is a folder, not a .jsonl file",
                           "Pass one data file, e.g. data/golden/ci.jsonl.")
    if not path.is_file():
        raise DatasetError(str(path), None, None, "does not exist", "Check the path (data files end in .jsonl).")
    data = path.read_bytes()
    objects = []
    offset = 0
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last row
    for number, raw in enumerate(lines, start=1):
        text = _decode_line(str(path), number, offset, raw.removesuffix(b"\r"), problems)
        offset += len(raw) + 1
        if text is None:
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(Problem(str(path), number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(obj, dict):
            problems.append(Problem(str(path), number, None, "must be a JSON object"))
            continue
        objects.append((number, obj))
    if not lines:
        problems.append(Problem(str(path), None, None, "has no rows: add one JSON object per line"))
    return objects


def _check_fields(path: str, number: int, obj: dict, fields: tuple[str, ...], problems: list[Problem],
                  optional: tuple[str, ...] = ()) -> bool:
    ok = True
    for name in fields:
        if name not in obj:
            problems.append(Problem(path, number, name, "is missing"))
            ok = False
    for name in obj:
        if name not in fields + optional:
            also = f"; optional {', '.join(optional)}" if optional else ""
            problems.append(Problem(path, number, name, f"is not a known field (expected {', '.join(fields)}{also})"))
            ok = False
    return ok


def _text(path: str, number: int, obj: dict, name: str, problems: list[Problem]) -> bool:
    if not isinstance(obj.get(name), str) or not obj[name].strip():
        problems.append(Problem(path, number, name, "must be a non-empty string"))
        return False
    return True


def _string_list(path: str, number: int, obj: dict, name: str, problems: list[Problem]) -> bool:
    value = obj.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(Problem(path, number, name, "must be a non-empty list of non-empty strings"))
        return False
    return True


def _validate_rows(path: Path, fields: tuple[str, ...], text_fields: tuple[str, ...],
                   enums: tuple[tuple[str, tuple[str, ...]], ...], build, extra=None,
                   optional: tuple[str, ...] = ()) -> tuple[list, list[Problem]]:
    """The checks every data file shares (fields, with ``optional`` ones allowed, non-empty texts, allowed labels,
    unique ids), then ``extra``; a row with no problem is turned into a record by ``build``."""
    problems: list[Problem] = []
    rows: list = []
    seen: dict[str, int] = {}
    p = str(path)
    for number, obj in _read_objects(path, problems):
        before = len(problems)
        if not _check_fields(p, number, obj, fields, problems, optional):
            continue
        for name in text_fields:
            _text(p, number, obj, name, problems)
        for name, allowed in enums:
            if obj.get(name) not in allowed:
                problems.append(Problem(p, number, name, f"{obj.get(name)!r} is not one of {', '.join(allowed)}"))
        if isinstance(obj.get("id"), str):
            if obj["id"] in seen:
                problems.append(Problem(p, number, "id", f"{obj['id']!r} is already used by row {seen[obj['id']]}"))
            else:
                seen[obj["id"]] = number
        if extra is not None:
            extra(p, number, obj, problems)
        if len(problems) == before:
            rows.append(build(obj))
    return rows, problems


def _unanswerable_row(p: str, number: int, obj: dict, problems: list[Problem]) -> None:
    """An unanswerable row cites no article and has no key fact (its ground truth says the answer is not known)."""
    for name in ("context_ids", "key_facts"):
        if obj.get(name) != []:
            problems.append(Problem(p, number, name, f"must be an empty list [] when \"answerable\" is false "
                                    f"(got {obj.get(name)!r}): an unanswerable row has no articles and no key facts"))


def validate_golden(path: str | Path, docs: list[Document] | None = None, answerable: bool | None = None
                    ) -> tuple[list[GoldenRow], list[Problem]]:
    """Check schema, unique ids, that every context id exists, that every key fact appears verbatim in the row's
    articles and in its ground truth (a correct answer must contain it). A row with ``"answerable": false`` (a
    JSON boolean) must instead have empty ``context_ids`` and ``key_facts``, and may use the category
    ``unanswerable``; ``answerable`` True or False requires every row to be so (the unanswerable file). Returns the
    good rows and all problems."""
    docs = docs if docs is not None else load_knowledge_base()
    by_id = {d.id: d for d in docs}

    def grounded(p: str, number: int, obj: dict, problems: list[Problem]) -> None:
        flag = obj.get("answerable", True)
        if not isinstance(flag, bool):
            problems.append(Problem(p, number, "answerable", f"{flag!r} must be true or false (a JSON boolean, "
                                    "without quotes); leave it out for an answerable row"))
        elif answerable is not None and flag is not answerable:
            problems.append(Problem(p, number, "answerable", f"must be {str(answerable).lower()} in this file "
                                    f"(every row of {Path(p).name} is {'' if answerable else 'un'}answerable)"))
        category = obj.get("category")
        allowed = CATEGORIES if flag is True else CATEGORIES + (UNANSWERABLE,)
        if category not in allowed:
            hint = ' (it is only for rows with "answerable": false)' if category == UNANSWERABLE else ""
            problems.append(Problem(p, number, "category", f"{category!r} is not one of {', '.join(allowed)}{hint}"))
        if flag is not True:  # an unanswerable row, or one whose flag is unusable (its lists are not judged)
            if flag is False:
                _unanswerable_row(p, number, obj, problems)
            return
        lists_ok = _string_list(p, number, obj, "context_ids", problems)
        lists_ok &= _string_list(p, number, obj, "key_facts", problems)
        if not lists_ok:
            return
        for doc_id in (c for c in obj["context_ids"] if c not in by_id):
            problems.append(Problem(p, number, "context_ids", f"{doc_id!r} is not in the knowledge base"))
        texts = [by_id[c].text for c in obj["context_ids"] if c in by_id]
        truth = " ".join(str(obj.get("ground_truth", "")).casefold().split())
        for fact in obj["key_facts"]:
            if texts and not any(fact in text for text in texts):
                problems.append(Problem(p, number, "key_facts",
                                        f"{fact!r} does not appear verbatim in {', '.join(obj['context_ids'])}"))
            if " ".join(fact.casefold().split()) not in truth:
                problems.append(Problem(p, number, "ground_truth",
                                        f"does not contain the key fact {fact!r} (a correct answer must)"))

    def build(obj: dict) -> GoldenRow:
        return GoldenRow(obj["id"], obj["question"], obj["ground_truth"], tuple(obj["context_ids"]), obj["intent"],
                         obj["category"], obj["difficulty"], tuple(obj["key_facts"]), obj.get("answerable", True))

    enums = (("intent", INTENTS), ("difficulty", DIFFICULTIES))  # the category is checked by grounded
    return _validate_rows(Path(path), GOLDEN_FIELDS, ("id", "question", "ground_truth"), enums, build, grounded,
                          GOLDEN_OPTIONAL)


def validate_redteam(path: str | Path) -> tuple[list[RedTeamRow], list[Problem]]:
    """Check the red-team set's schema, ids and labels."""
    enums = (("attack", ATTACKS), ("expected_behaviour", BEHAVIOURS))
    return _validate_rows(Path(path), REDTEAM_FIELDS, ("id", "prompt", "notes"), enums,
                          lambda obj: RedTeamRow(**{k: obj[k] for k in REDTEAM_FIELDS}))


def load_golden(path: str | Path | None = None, docs: list[Document] | None = None) -> list[GoldenRow]:
    """The golden rows of ``path`` (default ``data/golden/golden.jsonl``); raises :class:`DatasetInvalid`
    listing every problem if any row is bad."""
    path = Path(path) if path else golden_dir() / "golden.jsonl"
    rows, problems = validate_golden(path, docs)
    if problems:
        raise DatasetInvalid(str(path), problems, len(rows))
    return rows


def load_unanswerable(path: str | Path | None = None, docs: list[Document] | None = None) -> list[GoldenRow]:
    """The unanswerable rows of ``path`` (default ``data/golden/unanswerable.jsonl``): questions whose answer is not
    in the knowledge base, each ``"answerable": false``; raises :class:`DatasetInvalid` listing every problem."""
    path = Path(path) if path else golden_dir() / "unanswerable.jsonl"
    rows, problems = validate_golden(path, docs, answerable=False)
    if problems:
        raise DatasetInvalid(str(path), problems, len(rows))
    return rows


def load_redteam(path: str | Path | None = None) -> list[RedTeamRow]:
    path = Path(path) if path else golden_dir() / "redteam.jsonl"
    rows, problems = validate_redteam(path)
    if problems:
        raise DatasetInvalid(str(path), problems, len(rows))
    return rows


def _by_difficulty(members: list[GoldenRow], index: int) -> list[GoldenRow]:
    """A category's rows in the order a sample takes them: by id, taking difficulties in turn (the turn starts
    at a different difficulty for each category ``index``, so every difficulty shows up in a small sample)."""
    members = sorted(members, key=lambda r: r.id)
    by_difficulty = {d: [r for r in members if r.difficulty == d] for d in DIFFICULTIES}
    order = DIFFICULTIES[index % 3:] + DIFFICULTIES[: index % 3]
    ordered: list[GoldenRow] = []
    while len(ordered) < len(members):
        for difficulty in order:
            if by_difficulty[difficulty]:
                ordered.append(by_difficulty[difficulty].pop(0))
    return ordered


def stratified_subset(rows: list[GoldenRow], per_category: int = 2) -> list[GoldenRow]:
    """A small subset with ``per_category`` rows from each category, mixing difficulties, chosen by id order
    so it is stable across runs (what CI evaluates)."""
    chosen = []
    for index, category in enumerate(_categories(rows)):
        chosen.extend(_by_difficulty([r for r in rows if r.category == category], index)[:per_category])
    return chosen


def _categories(rows: list[GoldenRow]) -> tuple[str, ...]:
    """The knowledge base's categories, then any other the rows use (``unanswerable``), in the order samples take."""
    return CATEGORIES + tuple(dict.fromkeys(r.category for r in rows if r.category not in CATEGORIES))


def sample_rows(rows: list[GoldenRow], n: int | None = None, categories: tuple[str, ...] | list[str] = ()
                ) -> list[GoldenRow]:
    """``n`` rows stratified by category — what ``--sample N``, ``EVAL_SAMPLE`` and the labs' ``sample_size``
    evaluate. Categories take turns (in :data:`~llmops_helpers.ideate.knowledge.CATEGORIES` order, then any other
    such as ``unanswerable``), each giving its next row by id with difficulties mixed, so 9 rows cover the 9
    categories and the same ``n`` always picks the same rows. The rows come back in file order. ``categories``
    keeps only those categories first (the rows a change touches); ``n`` of None or 0, or at least the rows left,
    takes them all."""
    categories = tuple(c.strip() for c in categories if c.strip())
    known = CATEGORIES + (UNANSWERABLE,)
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise LLMOpsError(f"unknown categor{'ies' if len(unknown) > 1 else 'y'} {', '.join(map(repr, unknown))}: "
                          f"use some of {', '.join(known)} (comma-separated), or none for every category.")
    pool = [r for r in rows if r.category in categories] if categories else list(rows)
    if categories and not pool:
        raise LLMOpsError(f"no golden row has the categor{'ies' if len(categories) > 1 else 'y'} "
                          f"{', '.join(categories)}: check the data file, or drop the category filter.")
    if n is not None and n < 0:
        raise LLMOpsError(f"sample size {n} is negative: give a number of rows (0 or nothing means all).")
    if not n or n >= len(pool):
        return pool
    queues = [_by_difficulty([r for r in pool if r.category == c], i) for i, c in enumerate(_categories(pool))]
    queues = [q for q in queues if q]
    chosen: set[str] = set()
    while len(chosen) < n:
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.add(queue.pop(0).id)
    return [r for r in pool if r.id in chosen]


def describe_sample(sample: list[GoldenRow], total: int) -> str:
    """One line that says which rows ran: '6 of 18 rows, stratified: plans 1, roaming 1, ... (ids)'."""
    counts: dict[str, int] = {}
    for row in sample:
        counts[row.category] = counts.get(row.category, 0) + 1
    spread = ", ".join(f"{c} {k}" for c, k in counts.items())
    kind = "all" if len(sample) == total else "stratified by category"
    ids = [r.id for r in sample]
    shown = ", ".join(ids[:20]) + (f" … and {len(ids) - 20} more" if len(ids) > 20 else "")
    return f"{len(sample)} of {total} rows ({kind}: {spread}): {shown}"


def relabel_intent(text: str, intent: str, *, categories: tuple[str, ...] = (), ids: tuple[str, ...] = ()) -> str:
    """The JSONL ``text`` of a golden file with ``intent`` set on the rows of ``categories`` and the rows ``ids``:
    what a routing change must do to the ground truth, in the same pull request. Other lines stay byte for byte;
    a changed line is written as the kit writes rows (``json.dumps``, UTF-8 kept)."""
    if intent not in INTENTS:
        raise LLMOpsError(f"intent {intent!r} is not one of {', '.join(INTENTS)}.")
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError("the golden text", number + 1, None, f"is not a JSON object ({exc.msg})",
                               "Run `llmops validate-data` on the file and fix it first.") from None
        if (row.get("category") in categories or row.get("id") in ids) and row.get("intent") != intent:
            ending = line[len(line.rstrip("\r\n")):]
            lines[number] = json.dumps({**row, "intent": intent}, ensure_ascii=False) + ending
    return "".join(lines)


def golden_frame(rows: list[GoldenRow]):
    """The golden rows as a table (lists shown as comma-separated text), for exploring in a notebook."""
    import pandas as pd

    return pd.DataFrame.from_records(
        [{"id": r.id, "category": r.category, "intent": r.intent, "difficulty": r.difficulty, "question": r.question,
          "context_ids": ", ".join(r.context_ids), "key_facts": " | ".join(r.key_facts)} for r in rows])


def plot_golden(rows: list[GoldenRow], title: str = "Golden dataset"):
    """Rows per category (stacked by difficulty) and per intent: is the set balanced where it matters?"""
    import matplotlib.pyplot as plt

    frame = golden_frame(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    counts = frame.groupby(["category", "difficulty"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=[d for d in DIFFICULTIES if d in counts.columns])
    counts.plot.bar(stacked=True, ax=left, color=["#8fd694", "#f4d35e", "#ee6352"][: len(counts.columns)])
    left.set_title(f"{title}: {len(rows)} rows by category and difficulty")
    left.set_xlabel("category")
    left.set_ylabel("rows")
    left.tick_params(axis="x", rotation=30)
    intents = frame["intent"].value_counts().reindex(list(INTENTS), fill_value=0)
    right.bar(intents.index, intents.values, color="#4c72b0")
    right.set_title("Rows by expected intent")
    right.set_xlabel("intent")
    right.set_ylabel("rows")
    fig.tight_layout()
    return fig


def model_written_truth(connection, rows: list[GoldenRow], max_tokens: int = 80) -> list[dict]:
    """What you would get by letting a model write the ground truth: its answer to each question (no articles),
    scored against the human-written truth and key facts. Shows why golden answers are written by people."""
    from llmops_helpers.evaluate import metrics
    results = []
    for row in rows:
        response = connection.client.chat.completions.create(
            model=connection.model, max_tokens=max_tokens, temperature=0,
            messages=[{"role": "system", "content": "You are a support agent of Contoso Mobile, a telco. "
                       "Write the correct, complete answer to the customer's question in one or two sentences."},
                      {"role": "user", "content": row.question}])
        text = (response.choices[0].message.content or "").strip()
        results.append({"id": row.id, "question": row.question, "model_truth": text, "human_truth": row.ground_truth,
                        "key_fact_recall": metrics.key_fact_recall(text, row.key_facts),
                        "token_f1_vs_human": metrics.token_f1(text, row.ground_truth)})
    return results
