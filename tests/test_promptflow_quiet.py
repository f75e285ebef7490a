"""promptflow runs offline and quiet: no telemetry, no background service left on port 23333."""

import subprocess
import sys
import textwrap

from llmops_helpers.pf_setup import PF_SERVICE_PORT, configure_promptflow, service_running

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
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PF_HOME_DIRECTORY": str(tmp_path / "pfhome")})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RESULT" in run.stdout
    noisy = [line for line in run.stderr.splitlines()
             if "telemetry" in line.lower() or "applicationinsights" in line.lower()]
    assert not noisy, noisy
    assert not service_running(PF_SERVICE_PORT), "promptflow left its service running on 23333"
