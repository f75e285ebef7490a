"""BM25 retrieval over the knowledge base (``bm25s``: no model, deterministic, milliseconds).
The index is built once per knowledge-base content and cached for the life of the process."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from .knowledge import Document, fingerprint, load_knowledge_base

# English function words plus the filler of chat messages ("whats", "please", "how much"); without them, a
# long conversational query matches articles on words like "what" and "do".
CHAT_FILLER = {"whats", "get", "got", "much", "many", "please", "thanks", "thank", "hi", "hello", "hey", "would",
               "could", "im", "ive", "dont", "cant", "someone", "something", "anything", "also", "know", "tell",
               "like", "want", "actually", "really", "just", "ok", "okay", "yes", "u", "ur", "pls"}


# A small domain glossary: words customers type -> the words the help centre uses. Search engines call this
# synonym expansion (Elasticsearch's synonym filter, for instance); it is content, reviewed like content.
GLOSSARY = {
    "stole": "stolen theft", "robbed": "stolen theft", "nicked": "stolen theft", "theft": "stolen",
    "guarantee": "warranty", "broken": "repair fault", "cracked": "repair damage", "touchscreen": "screen repair",
    "crawling": "slow speed", "slow": "speed", "gb": "data", "forgot": "late", "overdue": "late",
    "unpaid": "late payment", "abroad": "roaming", "holiday": "roaming travel", "cancel": "cancellation termination",
    "wifi": "wi-fi", "pay-as-you-go": "prepaid", "payg": "prepaid", "credit": "top-up", "hacked": "security",
    "code": "pin", "locked": "pin puk", "bill": "bill billing", "money back": "refund",
}
NEGATIONS = {"no", "not", "nor"}  # kept: "no SIM", "not working" are what customers type


def stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return sorted((set(STOPWORDS_EN_PLUS) | CHAT_FILLER) - NEGATIONS)


@dataclass(frozen=True)
class Hit:
    """A retrieved document and its BM25 score."""

    doc: Document
    score: float

    @property
    def id(self) -> str:
        return self.doc.id


class BM25Retriever:
    """Lexical retrieval with English stop words and Snowball stemming (so 'roaming' matches 'roam')."""

    def __init__(self, docs: list[Document]):
        import bm25s
        import Stemmer

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs index building at DEBUG
        self.docs = docs
        self._stemmer = Stemmer.Stemmer("english")
        corpus = [f"{d.title}\n{d.title}\n{d.text}" for d in docs]  # titles count twice: they name the topic
        self._stopwords = stopwords()
        tokens = bm25s.tokenize(corpus, stopwords=self._stopwords, stemmer=self._stemmer, show_progress=False)
        self._index = bm25s.BM25()
        self._index.index(tokens, show_progress=False)

    @staticmethod
    def expand(query: str) -> str:
        """The query plus the help centre's words for the customer's words (see :data:`GLOSSARY`). A 'SIM card'
        is just 'SIM' in the help centre, so 'card' next to 'SIM' is dropped."""
        text = query.lower()
        if "sim" in text:
            text = re.sub(r"\bsim[ -]?cards?\b", "sim", text)
        extra = [terms for word, terms in GLOSSARY.items() if re.search(rf"\b{re.escape(word)}\b", text)]
        return " ".join([text, *extra])

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The ``k`` best documents for ``query``, best first (documents scoring 0 are left out)."""
        import bm25s

        query = self.expand(query)
        k = max(1, min(k, len(self.docs)))
        # As strings, not ids: a query tokenized on its own has its own vocabulary, whose ids mean nothing to
        # the index. Words the index has never seen are dropped (they cannot match anything anyway).
        [words] = bm25s.tokenize([query], stopwords=self._stopwords, stemmer=self._stemmer, return_ids=False,
                                 show_progress=False)
        words = [w for w in words if w in self._index.vocab_dict]
        if not words:
            return []
        ids, scores = self._index.retrieve([words], k=k, show_progress=False, n_threads=1)
        return [Hit(self.docs[int(i)], float(s)) for i, s in zip(ids[0], scores[0], strict=True) if s > 0]


_cache: dict[str, BM25Retriever] = {}
_lock = threading.Lock()


def get_retriever(folder: str | Path | None = None) -> BM25Retriever:
    """The cached retriever for the knowledge base in ``folder`` (rebuilt only if its content changed)."""
    docs = load_knowledge_base(folder)
    key = fingerprint(docs)
    with _lock:
        if key not in _cache:
            _cache[key] = BM25Retriever(docs)
        return _cache[key]
