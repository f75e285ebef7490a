"""Keep promptflow quiet and local: its home folder inside the kit (or a temp dir), telemetry off, traces
going nowhere, and no background "prompt flow service" on port 23333 left behind."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from llmops_helpers.paths import kit_root

PF_SERVICE_PORT = 23333
PF_CONFIG = "telemetry:\n  enabled: false\ntrace:\n  destination: none\n"
QUIET_VARIABLES = {
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
}


def configure_promptflow(home: str | os.PathLike | None = None) -> Path:
    """Point ``PF_HOME_DIRECTORY`` at a folder whose ``pf.yaml`` disables telemetry and tracing, and set the
    Application Insights switches. Call before promptflow is imported; idempotent. Returns the home folder."""
    if home is None:
        home = os.environ.get("PF_HOME_DIRECTORY")
    if home is None:
        root = kit_root()
        in_kit = (root / "solutions").is_dir() and os.access(root, os.W_OK)
        home = root / ".promptflow" if in_kit else Path(tempfile.gettempdir()) / "llmops-promptflow"
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "pf.yaml"
    if not config.is_file() or config.read_text(encoding="utf-8") != PF_CONFIG:
        config.write_text(PF_CONFIG, encoding="utf-8")
    os.environ["PF_HOME_DIRECTORY"] = str(home)
    for name, value in QUIET_VARIABLES.items():
        os.environ.setdefault(name, value)
    skip_slow_iri_checker()
    return home


def skip_slow_iri_checker() -> bool:
    """Keep jsonschema from importing ``rfc3987_syntax``, which compiles ~35 Earley grammars at import time to
    check the ``iri`` string format: 2-4 s in every process that imports promptflow or nbformat on a 2-core
    machine (jsonschema issue 1428), for a format no schema here uses. jsonschema treats the package as absent
    and skips only that format. Returns True if the import is now skipped (False if it already happened)."""
    if sys.modules.get("rfc3987_syntax") is not None:
        return False
    sys.modules["rfc3987_syntax"] = None  # `import rfc3987_syntax` now raises ImportError
    return True


def service_running(port: int = PF_SERVICE_PORT) -> bool:
    """True if something listens on promptflow's service port on 127.0.0.1."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
