"""The retrieval index as an artifact (Lab 04): a versioned, content-addressed copy of the knowledge base that the
app searches, and the pointer that says which version each environment serves.

An index version is a folder ``<registry>/indexes/idx-<12 hex>/`` holding ``articles/`` (the knowledge base's
``*.md`` files, byte for byte) and ``manifest.json`` (each file's sha256, the passage size, the retriever's
settings, the counts, when and from where it was built). Its name is a **content address**: sha256 over the
articles' bytes, the passage size and the retriever's settings (the glossary, the stop words, the code of
``flow/retrieval.py`` and of ``split_passages``), so the same inputs always give the same version and a changed
byte gives another one. :func:`verify_index` recomputes it and refuses a folder that was edited after the build.

Which version an environment serves is ``<registry>/indexes/live-<env>.json`` (``version``, ``previous``,
``switched_at``, ``switched_by``), written whole by ``llmops index switch`` (``release.indexes``). The app reads it
through :class:`LiveIndex`, which notices a switch on the next request: an edited knowledge base goes live without
redeploying the flow, and goes back with ``llmops index rollback``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from llmops_helpers.errors import DatasetError, LLMOpsError
from llmops_helpers.flow.retrieval import GLOSSARY, BM25Retriever, get_retriever, stopwords
from llmops_helpers.ideate.knowledge import default_kb_dir, fingerprint, load_knowledge_base
from llmops_helpers.paths import registry_dir

log = logging.getLogger(__name__)

INDEX_MANIFEST = "manifest.json"
#: written beside the manifest by ``llmops index validate``; a version goes live only with a passing one
VALIDATION_FILE = "validation.json"
ARTICLES = "articles"
VERSION_PATTERN = re.compile(r"idx-[0-9a-f]{12}")
#: the environments that have a live pointer (the same names as ``release.state.ENVIRONMENTS``)
ENVIRONMENT_NAMES = ("dev", "qa", "prod")
#: what :class:`LiveIndex` calls the knowledge base it serves before any switch: ``kb:`` + its fingerprint
FALLBACK_PREFIX = "kb:"
_ADDRESS_SCHEME = "llmops-index/1"
_REQUIRED = {"version": (str, "a string"), "kb_hash": (str, "a string"), "passage_words": (int, "a whole number"),
             "retriever": (dict, "an object"), "files": (dict, "an object"), "articles": (int, "a whole number"),
             "passages": (int, "a whole number")}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folder_version(retriever: BM25Retriever) -> str:
    """The name of a knowledge base served straight from its folder (no index version): ``kb:`` + the first 12
    characters of its fingerprint."""
    return FALLBACK_PREFIX + retriever.fingerprint[:12]


def index_registry(registry: str | Path | None = None) -> Path:
    """Where index versions and the live pointers are kept: ``<registry>/indexes`` (default registry:
    ``$LLMOPS_REGISTRY``, else ``build/registry``)."""
    return Path(registry or registry_dir()) / "indexes"


@lru_cache(maxsize=1)
def _settings() -> tuple[tuple[str, Any], ...]:
    import inspect
    from importlib import metadata

    from llmops_helpers.flow import retrieval
    from llmops_helpers.ideate import knowledge

    code = Path(retrieval.__file__).read_text(encoding="utf-8").replace("\r\n", "\n")
    splitter = "\0".join([inspect.getsource(knowledge.split_passages), knowledge.PARAGRAPH.pattern,
                          knowledge.SENTENCE_END.pattern])
    words = stopwords()
    try:
        bm25s_version = metadata.version("bm25s")
    except metadata.PackageNotFoundError:
        bm25s_version = "?"
    parts = {"glossary": GLOSSARY, "stopwords": words, "retrieval_code": _sha256(code.encode()),
             "split_passages": _sha256(splitter.encode()), "bm25s": bm25s_version}
    digest = _sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode())
    return (("kind", "bm25"), ("settings", f"sha256:{digest}"), ("bm25s", bm25s_version), ("stemmer", "english"),
            ("glossary_terms", len(GLOSSARY)), ("stopwords", len(words)),
            ("retrieval_code", f"sha256:{parts['retrieval_code']}"),
            ("split_passages", f"sha256:{parts['split_passages']}"))


def retriever_settings() -> dict[str, Any]:
    """What decides what the BM25 retriever finds besides the articles, as this kit's code has it: ``kind``,
    ``settings`` (one digest over the glossary, the stop words, the code of ``flow/retrieval.py`` and of
    ``split_passages``, and the ``bm25s`` version) and those parts' sizes and digests, for the manifest."""
    return dict(_settings())


def _address(files: dict[str, str], passage_words: int, settings: str) -> str:
    digest = hashlib.sha256(f"{_ADDRESS_SCHEME}\0".encode())
    for relative in sorted(files):
        digest.update(f"{relative}\0{files[relative]}\0".encode())
    digest.update(f"passage_words={passage_words}\0retriever={settings}\0".encode())
    return "idx-" + digest.hexdigest()[:12]


@dataclass(frozen=True)
class IndexVersion:
    """One built index: its ``version`` (``idx-`` + 12 hex), its folder and its manifest. ``built`` is True when
    the call that returned it wrote it (False: it was already in the registry)."""

    version: str
    path: Path
    manifest: dict[str, Any]
    built: bool = field(default=False, compare=False)

    @property
    def passage_words(self) -> int:
        return int(self.manifest["passage_words"])

    @property
    def articles_dir(self) -> Path:
        return self.path / ARTICLES

    def retriever(self) -> BM25Retriever:
        """The BM25 retriever over this version's articles, with the passage size it was built with (cached per
        content, like :func:`~llmops_helpers.flow.retrieval.get_retriever`)."""
        retriever = get_retriever(self.articles_dir, self.passage_words)
        if retriever.fingerprint != self.manifest["kb_hash"]:
            raise DatasetError(str(self.articles_dir), None, None,
                               f"no longer holds the articles index {self.version} was built with",
                               _rebuild_advice(self.manifest))
        return retriever

    def validation(self) -> dict[str, Any] | None:
        """The version's ``validation.json`` (written by ``llmops index validate``), or None if it has none."""
        path = self.path / VALIDATION_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            raise DatasetError(str(path), None, None, "is not valid JSON",
                               f"Validate the version again with `llmops index validate {self.version}`.") from None


def _rebuild_advice(manifest: dict[str, Any] | None) -> str:
    source = (manifest or {}).get("source")
    kb = f" --kb {source}" if source else ""
    return (f"An index is never edited in place: rebuild it with `llmops index build{kb}` (which replaces a damaged "
            "copy of the same content), or build a new version from the edited articles, validate it and switch "
            "to that one.")


def _remove(folder: Path) -> None:
    def writable(function, path, _):
        os.chmod(path, stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
        function(path)

    shutil.rmtree(folder, onerror=writable)


def build_index(kb_folder: str | Path | None = None, passage_words: int = 80,
                registry: str | Path | None = None) -> IndexVersion:
    """Build the index of the knowledge base in ``kb_folder`` (default ``data/knowledge_base``) over passages of
    at most about ``passage_words`` words (0: whole articles), into ``<registry>/indexes/<version>/``.

    The articles are validated first (a bad file raises :class:`DatasetError` naming it, and nothing is written),
    copied into a temporary folder beside the registry's versions, indexed once with BM25 (which proves the copy
    works and counts its passages), described in ``manifest.json`` and renamed into place in one step. The same
    inputs give the same version: building them again writes nothing and returns the registered version after
    verifying it (a damaged copy is moved aside to ``.broken-<version>-<time>`` and built again)."""
    started = time.perf_counter()
    if isinstance(passage_words, bool) or not isinstance(passage_words, int) or passage_words < 0:
        raise LLMOpsError(f"passage_words must be 0 (index whole articles) or a positive number of words, not "
                          f"{passage_words!r}. The app's default is 80.")
    folder = Path(kb_folder) if kb_folder else default_kb_dir()
    docs = load_knowledge_base(folder)  # names the file and field of any problem, before anything is written
    sources = {f"{ARTICLES}/{Path(doc.path).name}": Path(doc.path).read_bytes() for doc in docs}
    files = {relative: _sha256(data) for relative, data in sorted(sources.items())}
    settings = retriever_settings()
    version = _address(files, passage_words, settings["settings"])
    root = index_registry(registry)
    target = root / version
    if target.exists():
        try:
            return verify_index(target)
        except DatasetError as exc:
            aside = root / f".broken-{version}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            log.warning("%s; moved it to %s and building it again", exc, aside)
            target.rename(aside)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{version}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        for relative, data in sources.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_bytes(data)
        copied = load_knowledge_base(staging / ARTICLES)
        if fingerprint(copied) != fingerprint(docs):
            raise DatasetError(str(folder), None, None, "changed while the index was being built",
                               "Save your edits, then build again.")
        retriever = BM25Retriever(copied, passage_words)  # built once here: the copy is searchable
        manifest = {
            "version": version, "kb_hash": fingerprint(docs), "passage_words": passage_words,
            "retriever": settings, "articles": len(docs), "passages": len(retriever.units), "files": files,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": str(folder.resolve()),
            "build_seconds": round(time.perf_counter() - started, 3),
        }
        (staging / INDEX_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        for path in staging.rglob("*"):
            if path.is_file():
                path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        try:
            staging.rename(target)
        except OSError:
            if (target / INDEX_MANIFEST).is_file():  # another build of the same content finished first
                return verify_index(target)
            raise
    finally:
        if staging.exists():
            _remove(staging)
    return IndexVersion(version, target, manifest, built=True)


def _version_folder(path_or_version: str | Path, registry: str | Path | None) -> Path:
    text = str(path_or_version)
    if VERSION_PATTERN.fullmatch(text):
        return index_registry(registry) / text
    path = Path(text)
    if path.is_dir() or "/" in text or os.sep in text:
        return path
    raise DatasetError(text, None, None, "is not an index version ('idx-' and 12 hex digits) or an index folder",
                       f"List the versions in {index_registry(registry)} with `llmops index list`.")


def verify_index(path_or_version: str | Path, registry: str | Path | None = None) -> IndexVersion:
    """The index version ``path_or_version`` (a version such as ``idx-0123456789ab`` in the registry, or a
    version's folder), after checking that it is exactly what was built: its manifest is there and valid JSON,
    every file it lists is there with the same sha256, no other file is, and the version recomputed from the
    content is the folder's name. Anything else raises :class:`DatasetError` naming the file and what to do."""
    folder = _version_folder(path_or_version, registry)
    manifest_path = folder / INDEX_MANIFEST
    if not folder.is_dir():
        known = ", ".join(p.name for p in index_folders(registry)) or "none"
        raise DatasetError(str(folder), None, None, "does not exist",
                           f"Build the index with `llmops index build`, or pick a built version (registered: {known}).")
    if not manifest_path.is_file():
        raise DatasetError(str(manifest_path), None, None, "is missing, so the index folder is incomplete "
                           "(an interrupted copy?) and cannot be trusted", _rebuild_advice(None))
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(str(manifest_path), None, None, f"is not valid JSON ({exc})",
                           _rebuild_advice(None)) from None
    if not isinstance(manifest, dict):
        raise DatasetError(str(manifest_path), None, None, "is not a JSON object", _rebuild_advice(None))
    for key, (kind, described) in _REQUIRED.items():
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise DatasetError(str(manifest_path), None, key, f"is missing or not {described}",
                               _rebuild_advice(manifest))
    version = manifest["version"]
    if folder.name != version:
        raise DatasetError(str(folder), None, None, f"holds index {version} under another name",
                           "Index folders are named by their version; do not rename or copy them by hand. "
                           + _rebuild_advice(manifest))
    files = manifest["files"]
    for relative, expected in sorted(files.items()):
        parts = Path(relative).parts
        if len(parts) != 2 or parts[0] != ARTICLES or not isinstance(expected, str):
            raise DatasetError(str(manifest_path), None, "files", f"lists {relative!r}, which is not an article",
                               _rebuild_advice(manifest))
        path = folder / relative
        if not path.is_file():
            raise DatasetError(str(path), None, None, f"is missing from index {version} (its manifest lists it)",
                               _rebuild_advice(manifest))
        actual = _sha256(path.read_bytes())
        if actual != expected:
            raise DatasetError(str(path), None, None, f"was changed after index {version} was built (sha256 "
                               f"{actual[:12]}…, the manifest says {expected[:12]}…)", _rebuild_advice(manifest))
    for path in sorted((folder / ARTICLES).rglob("*")):
        if path.is_file() and path.relative_to(folder).as_posix() not in files:
            raise DatasetError(str(path), None, None, f"is not part of index {version} (an extra file: the manifest "
                               "does not list it)", "Remove it; " + _rebuild_advice(manifest))
    for path in sorted(folder.iterdir()):
        if path.name not in (INDEX_MANIFEST, VALIDATION_FILE, ARTICLES) and not path.name.startswith("."):
            raise DatasetError(str(path), None, None, f"is not part of index {version} (an extra file)",
                               "Remove it; " + _rebuild_advice(manifest))
    if manifest["articles"] != len(files):
        raise DatasetError(str(manifest_path), None, "articles", f"says {manifest['articles']} but lists "
                           f"{len(files)} files", _rebuild_advice(manifest))
    settings = manifest["retriever"].get("settings")
    recomputed = _address(files, manifest["passage_words"], str(settings))
    if recomputed != version:
        raise DatasetError(str(manifest_path), None, "version", f"says {version}, but its content gives {recomputed}: "
                           "the manifest was edited after the build", _rebuild_advice(manifest))
    return IndexVersion(version, folder, manifest)


def index_folders(registry: str | Path | None = None) -> list[Path]:
    """The folders of the index versions in the registry (named ``idx-...``), by name; not verified."""
    root = index_registry(registry)
    return sorted(p for p in root.glob("idx-*") if p.is_dir() and VERSION_PATTERN.fullmatch(p.name))


def check_environment(environment: str) -> str:
    """``environment`` if it is one of :data:`ENVIRONMENT_NAMES`; else an error that lists them."""
    if environment not in ENVIRONMENT_NAMES:
        raise LLMOpsError(f"{environment!r} is not an environment; use one of {', '.join(ENVIRONMENT_NAMES)}.")
    return environment


def live_pointer_path(environment: str, registry: str | Path | None = None) -> Path:
    """The file that names the index ``environment`` serves: ``<registry>/indexes/live-<env>.json``."""
    return index_registry(registry) / f"live-{check_environment(environment)}.json"


def _parse_pointer(path: Path, text: str) -> dict[str, Any]:
    environment = path.stem.removeprefix("live-")
    fix = f"Switch again with `llmops index switch --env {environment} VERSION` (it rewrites the file whole)."
    try:
        pointer = json.loads(text)
    except ValueError:
        raise DatasetError(str(path), None, None, "is not valid JSON", fix) from None
    if not isinstance(pointer, dict) or not isinstance(pointer.get("version"), str):
        raise DatasetError(str(path), None, "version", "is missing or not a string", fix)
    return pointer


def read_live_pointer(environment: str, registry: str | Path | None = None) -> dict[str, Any] | None:
    """The live pointer of ``environment`` (``version``, ``previous``, ``switched_at``, ``switched_by``), or None
    if it was never switched."""
    path = live_pointer_path(environment, registry)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return _parse_pointer(path, text)


def live_index(environment: str, registry: str | Path | None = None) -> IndexVersion | None:
    """The verified index version ``environment`` serves, or None if it was never switched (it then serves the
    knowledge base the flow was deployed with)."""
    pointer = read_live_pointer(environment, registry)
    return None if pointer is None else verify_index(pointer["version"], registry)


class LiveIndex:
    """The retriever an app serves in ``environment``: the index version its live pointer names, picked up on the
    first request after a switch, without a restart.

    :meth:`current` costs one ``stat`` of the pointer per call while nothing changes. When the pointer changes,
    one caller verifies the newly named version and builds its retriever, while concurrent callers keep getting
    the version they had; a version that fails :func:`verify_index` (or cannot be read) is refused: the previous
    one stays in service and :attr:`last_error` says why, until the pointer changes again. With no pointer (never
    switched), it serves ``fallback_folder`` (default: the kit's knowledge base) over passages of
    ``passage_words``, named ``kb:`` + its fingerprint; an index version carries its own passage size."""

    def __init__(self, environment: str, registry: str | Path | None = None,
                 fallback_folder: str | Path | None = None, passage_words: int = 80):
        self.environment = check_environment(environment)
        self.indexes = index_registry(registry)
        self.pointer = self.indexes / f"live-{environment}.json"
        self.fallback_folder = Path(fallback_folder) if fallback_folder else None
        self.passage_words = int(passage_words)
        #: why the last version the pointer named is not served (None when it is)
        self.last_error: str | None = None
        #: "index" (a version from the registry) or "fallback" (the knowledge-base folder)
        self.source = ""
        self._served: tuple[str, BM25Retriever] | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._loading = threading.Lock()

    def _stamp_now(self) -> tuple[int, int, int] | None:
        try:
            found = os.stat(self.pointer)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.last_error = f"{self.pointer} cannot be read ({exc})"
            return self._stamp  # keep serving what is served
        return found.st_ino, found.st_mtime_ns, found.st_size

    @property
    def version(self) -> str | None:
        """The version served now (None before the first :meth:`current`)."""
        return self._served[0] if self._served else None

    def current(self) -> tuple[str, BM25Retriever]:
        """``(version, retriever)`` to answer this request with; thread-safe."""
        served = self._served
        if served is not None and self._stamp_now() == self._stamp:
            return served
        # first use, or the pointer changed: one thread loads; the others keep serving what they had meanwhile
        if not self._loading.acquire(blocking=served is None):
            return served  # type: ignore[return-value]
        try:
            if self._served is None or self._stamp_now() != self._stamp:
                self._load()
            return self._served  # type: ignore[return-value]
        finally:
            self._loading.release()

    def _fallback(self) -> tuple[str, BM25Retriever]:
        retriever = get_retriever(self.fallback_folder, self.passage_words)
        return folder_version(retriever), retriever

    def _load(self) -> None:
        try:
            with open(self.pointer, encoding="utf-8") as handle:
                found = os.fstat(handle.fileno())
                text = handle.read()
        except FileNotFoundError:
            if self.source != "fallback" or self._served is None:
                self._served, self.source = self._fallback(), "fallback"
            self._stamp, self.last_error = None, None
            return
        stamp = (found.st_ino, found.st_mtime_ns, found.st_size)
        try:
            version = _parse_pointer(self.pointer, text)["version"]
            if not (self.source == "index" and self.version == version):
                chosen = verify_index(self.indexes / version) if VERSION_PATTERN.fullmatch(version) else None
                if chosen is None:
                    raise DatasetError(str(self.pointer), None, "version", f"{version!r} is not an index version",
                                       f"Switch again with `llmops index switch --env {self.environment} VERSION`.")
                self._served, self.source = (version, chosen.retriever()), "index"
                log.info("%s: now serving index %s", self.environment, version)
            self.last_error = None
        except (LLMOpsError, OSError, ValueError) as exc:
            still = self.version or "the fallback knowledge base"
            self.last_error = f"{self.environment}: the live index was not changed, still serving {still}: {exc}"
            log.warning("%s", self.last_error)
            if self._served is None:
                self._served, self.source = self._fallback(), "fallback"
        self._stamp = stamp

    def info(self) -> dict[str, Any]:
        """What is served and why, for a health or status endpoint."""
        return {"environment": self.environment, "version": self.version, "source": self.source,
                "pointer": str(self.pointer), "last_error": self.last_error}
