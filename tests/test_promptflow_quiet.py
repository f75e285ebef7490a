"""promptflow runs offline and quiet: no telemetry, no background service left on port 23333."""

import os
import subprocess
import sys
import textwrap

from conftest import CANARY_KEY
from llmops_helpers.flow.pf_setup import PF_SERVICE_PORT, configure_promptflow, service_running

FLOW = textwrap.dedent('''
    from llmops_helpers import connect

    def answer(question: str) -> str:
        llm = connect("local")
        reply = llm.client.chat.completions.create(
            model=llm.model, messages=[{"role": "user", "content": question}], max_tokens=8, temperature=0)
        return reply.choices[0].message.content
''')


def test_configure_writes_quiet_config(tmp_path, monkeypatch):
    monkeypatch.delenv("PF_HOME_DIRECTORY", raising=False)
    home = configure_promptflow(tmp_path / "pf")
    assert "enabled: false" in (home / "pf.yaml").read_text()
    assert "destination: none" in (home / "pf.yaml").read_text()


def test_pf_test_on_a_flex_flow_leaves_no_service(tmp_path):
    (tmp_path / "entry.py").write_text(FLOW)
    (tmp_path / "flow.flex.yaml").write_text("entry: entry:answer\n")
    script = textwrap.dedent(f'''
        import llmops_helpers  # configures promptflow before it is imported
        from promptflow.client import PFClient
        result = PFClient().test(flow={str(tmp_path)!r}, inputs={{"question": "Say hi."}})
        print("RESULT", type(result).__name__, bool(result))
    ''')
    env = {**os.environ, "PF_HOME_DIRECTORY": str(tmp_path / "pfhome"), "OPENAI_API_KEY": CANARY_KEY}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RESULT" in run.stdout
    assert "prompt flow service" not in run.stdout.lower()  # promptflow prints this when it starts one
    noisy = [line for line in run.stderr.splitlines()
             if "telemetry" in line.lower() or "applicationinsights" in line.lower()]
    assert not noisy, noisy
    assert not service_running(PF_SERVICE_PORT), "promptflow left its service running on 23333"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]  # pf home, and the flow folder's .promptflow/
    assert CANARY_KEY not in run.stdout + run.stderr
    assert not [p for p in written if CANARY_KEY in p.read_text(errors="ignore")], "a key reached promptflow's files"


def test_importing_the_kit_keeps_jsonschema_off_the_slow_iri_grammars():
    """rfc3987_syntax compiles its grammars at import (2-4 s a process); the kit skips it and jsonschema still
    validates everything else, formats included."""
    script = textwrap.dedent('''
        import sys, time
        import llmops_helpers
        started = time.perf_counter()
        import jsonschema
        checker = jsonschema.Draft7Validator.FORMAT_CHECKER
        validator = jsonschema.Draft7Validator({"type": "object", "required": ["uri"],
                                                "properties": {"uri": {"type": "string", "format": "uri"}}},
                                               format_checker=checker)
        print(sys.modules.get("rfc3987_syntax", "absent"), "iri" in checker.checkers,
              validator.is_valid({"uri": "https://example.org/a"}), validator.is_valid({"uri": "not a uri"}),
              validator.is_valid({}))
    ''')
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["None", "False", "True", "False", "False"]
