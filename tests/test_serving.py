"""A slot server answers a bad request with 400 or 413 and a JSON reason, never a 500 or a dropped connection,
and keeps serving; its flow is never called for one. The flow here is a fake: the handler is under test."""

import json

import pytest
from http_fakes import BAD_REQUESTS, _length, _raw, _slot, _stop, _url, deadline  # noqa: F401

from llmops_helpers.release.rollouts import http_json
from llmops_helpers.release.serving import MAX_QUESTION_CHARS


@pytest.mark.parametrize("name", [*BAD_REQUESTS, "question too long", "no question"])
def test_the_slot_server_answers_400_or_413_never_500(name):
    slot = _slot("blue")
    try:
        request, status, words = {
            **BAD_REQUESTS,
            "question too long": (_length(json.dumps({"question": "x" * 60_000}).encode()), 413,
                                  f"the limit is {MAX_QUESTION_CHARS}"),
            "no question": (_length(b'{"q": 1}'), 400, "field 'question'"),
        }[name]
        code, body, headers = _raw(_url(slot), request)
        assert code == status and words in body["error"], body
        assert headers["X-Artifact-Digest"] == "sha256:blue" and slot.questions == 0
        assert http_json(_url(slot) + "/score", {"question": "still serving?"})[0] == 200
    finally:
        _stop(slot)


def test_an_endpoint_in_a_thread_serves_reports_its_index_and_stops():
    from llmops_helpers.release.endpoints import http_json
    from llmops_helpers.release.serving import serving_in_thread

    class Flow:
        def __call__(self, question):
            return {"answer": f"echo {question}", "context_ids": [], "cited_ids": []}

        def index_info(self):
            return {"version": "idx-000000000000", "source": "index"}

    with serving_in_thread(Flow(), {"name": "agent", "version": "t", "environment": "dev"}) as url:
        assert http_json(url + "/score", {"question": "hi"}, timeout=10) == (200, {
            "answer": "echo hi", "context_ids": [], "cited_ids": [], "server_latency_s": pytest.approx(0, abs=1)})
        code, version = http_json(url + "/version", timeout=10)
        assert code == 200 and version["index"]["version"] == "idx-000000000000"
    with pytest.raises(OSError):
        import urllib.request

        urllib.request.urlopen(url + "/health", timeout=2)
