"""The files of an evaluation run folder, one name each: the runner writes them, the gate reads the summary and
writes its decision, the comparison reads the rows, and a build packages the summary, metadata and decision as
its evidence."""

ROWS = "rows.jsonl"  # one scored row per line, appended as it is scored (a stopped run resumes from here)
SUMMARY = "summary.json"  # the run's metrics
METADATA = "metadata.json"  # what was evaluated: flow digest, data, rows, model, prompt, judges
GATE_JSON = "gate_decision.json"  # the gate's verdict, read by `llmops build` as evidence
GATE_MD = "gate_decision.md"  # the same, for people (the PR comment)
RUN_FILES = (ROWS, SUMMARY, METADATA, GATE_JSON, GATE_MD)
CACHED_FILES = (ROWS, SUMMARY, METADATA)  # what an evaluation cache keeps of a run
