"""BM25 retrieval over the knowledge base (``bm25s``: no model, deterministic, milliseconds).
The index is built once per knowledge-base content and cached for the life of the process."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from llmops_helpers.ideate.knowledge import Document, fingerprint, load_knowledge_base, split_passages

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
# Customers name the country they travel to; the help centre says "EU" (roam like at home applies there).
EU_EEA = ("austria belgium bulgaria croatia cyprus czechia czech denmark estonia finland france germany greece "
          "hungary ireland italy latvia lithuania luxembourg malta netherlands holland poland portugal romania "
          "slovakia slovenia spain sweden iceland liechtenstein norway europe").split()
GLOSSARY.update({country: "roaming eu" for country in EU_EEA})
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

    def __init__(self, docs: list[Document], passage_words: int = 0):
        import bm25s
        import Stemmer

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs index building at DEBUG
        self.docs = docs
        #: the content address of the articles (what an index version or a run's metadata records)
        self.fingerprint = fingerprint(docs)
        #: what is indexed and returned: the articles, or their passages (see knowledge.split_passages)
        self.units = [unit for doc in docs for unit in split_passages(doc, passage_words)]
        self._stemmer = Stemmer.Stemmer("english")
        corpus = [f"{d.title}\n{d.title}\n{d.text}" for d in self.units]  # titles count twice: they name the topic
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
        """The ``k`` best articles for ``query``, best first, each as its best-matching passage when the retriever
        works on passages (articles scoring 0 are left out)."""
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
        # Every unit is ranked (a few hundred at most): with passages, an article counts once, by its best passage.
        ids, scores = self._index.retrieve([words], k=len(self.units), show_progress=False, n_threads=1)
        hits: dict[str, Hit] = {}
        for i, score in zip(ids[0], scores[0], strict=True):
            if score <= 0 or len(hits) == k:
                break
            unit = self.units[int(i)]
            hits.setdefault(unit.id, Hit(unit, float(score)))
        return list(hits.values())


_cache: dict[str, BM25Retriever] = {}
_lock = threading.Lock()


def get_retriever(folder: str | Path | None = None, passage_words: int = 0) -> BM25Retriever:
    """The cached retriever for the knowledge base in ``folder`` (rebuilt only if its content changed), over whole
    articles (``passage_words`` 0) or over passages of at most about that many words."""
    docs = load_knowledge_base(folder)
    key = f"{fingerprint(docs)}-{passage_words}"
    with _lock:
        if key not in _cache:
            _cache[key] = BM25Retriever(docs, passage_words)
        return _cache[key]
