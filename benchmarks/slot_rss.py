"""How much memory a deployed slot takes: build the sample app as an artifact, start its serving process, ask it
one question, and report the resident memory of the slot and its children (the embedded model included).

    python benchmarks/slot_rss.py                      # the kit's own environment
    python benchmarks/slot_rss.py --runtime-venv DIR   # a fresh venv holding only the artifact's requirements.lock
    python benchmarks/slot_rss.py --kit /path/to/an/older/checkout   # the same for another version of the kit

``--runtime-venv`` is the app on its own feet: it creates DIR, installs exactly the lock's pins there with
``pip install --no-deps`` (from the package index), puts the kit's source on PYTHONPATH (the lock pins the kit
itself; here it is the checkout) and serves the artifact with that venv's Python. Needs the package index once.
Prints one JSON line: the slot's RSS after start and after the answer, start time, answer time, pins in the lock.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil


def tree_rss_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kit", default=str(Path(__file__).resolve().parents[1]), help="the kit checkout to use")
    parser.add_argument("--runtime-venv", help="serve from a new venv at this path holding only the lock's pins")
    args = parser.parse_args()
    kit = Path(args.kit).resolve()
    env = {**os.environ, "PYTHONPATH": str(kit), "LLMOPS_PROVIDER": "local"}
    env.pop("LLMOPS_LOCAL_BASE_URL", None)
    scratch = Path(tempfile.mkdtemp(prefix="slot-rss-"))
    build = subprocess.run([sys.executable, "-m", "llmops_helpers.cli", "build", "--version", "0.0.1", "--no-gate",
                            "slot memory benchmark", "--registry", str(scratch / "registry")], cwd=kit, env=env,
                           capture_output=True, text=True, timeout=300)
    if build.returncode:
        print(build.stderr, file=sys.stderr)
        return 1
    artifact = next((scratch / "registry").glob("*/*/manifest.json")).parent
    pins = sum("==" in line for line in (artifact / "requirements.lock").read_text().splitlines())
    python = sys.executable
    if args.runtime_venv:
        venv = Path(args.runtime_venv)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        python = str(venv / "bin" / "python")
        pins_file = scratch / "runtime-pins.txt"  # the lock without the kit's own pin: its source is on PYTHONPATH
        pins_file.write_text("".join(line + "\n" for line in (artifact / "requirements.lock").read_text().splitlines()
                                     if "==" in line and not line.startswith("llmops-workshop-kit==")))
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "-r",
                        str(pins_file)], check=True, timeout=1800)
    new = (kit / "llmops_helpers" / "release" / "serving.py").is_file()
    module = "llmops_helpers.release.serving" if new else "llmops_helpers.serving"
    ready = scratch / "slot.ready"
    started = time.perf_counter()
    slot = subprocess.Popen([python, "-m", module, "--artifact", str(artifact), "--env", "dev", "--port", "0",
                             "--ready-file", str(ready)], cwd=kit, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(scratch / "slot.log", "w"), start_new_session=True)  # noqa: SIM115
    try:
        deadline = time.monotonic() + 180
        while not ready.is_file():
            if slot.poll() is not None or time.monotonic() > deadline:
                print((scratch / "slot.log").read_text()[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.1)
        url = f"http://127.0.0.1:{json.loads(ready.read_text())['port']}"
        up_s = time.perf_counter() - started
        rss_up = tree_rss_mb(slot.pid)
        asked = time.perf_counter()
        request = urllib.request.Request(url + "/score", json.dumps({"question": "How do I set up voicemail?"})
                                         .encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as response:
            reply = json.loads(response.read())
        answer_s = time.perf_counter() - asked
        print(json.dumps({"kit": str(kit), "python": python, "module": module, "lock_pins": pins,
                          "ready_s": round(up_s, 2), "rss_ready_mb": round(rss_up), "answer_s": round(answer_s, 2),
                          "rss_after_answer_mb": round(tree_rss_mb(slot.pid)), "answered": bool(reply.get("answer")),
                          "modules_note": "RSS of the slot process and its children (the embedded model)"}))
    finally:
        os.killpg(slot.pid, 15)
        slot.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
