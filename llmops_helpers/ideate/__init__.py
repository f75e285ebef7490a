"""Ideation and prompt engineering (Lab 01). The prompt playground and variant runs, prompty files, the
help-centre articles prompts are grounded on, and the table style the labs show results in.
"""

from llmops_helpers._lazy import lazy_exports

_EXPORTS = {
    # knowledge
    "CATEGORIES": "knowledge",
    "default_kb_dir": "knowledge",
    "Document": "knowledge",
    "fingerprint": "knowledge",
    "FRONT_MATTER": "knowledge",
    "ID_PATTERN": "knowledge",
    "load_knowledge_base": "knowledge",
    "PARAGRAPH": "knowledge",
    "parse_document": "knowledge",
    "REQUIRED_FIELDS": "knowledge",
    "SENTENCE_END": "knowledge",
    "split_passages": "knowledge",
    # prompt_lab
    "BLOCKLIST": "prompt_lab",
    "build_messages": "prompt_lab",
    "compare_prompts": "prompt_lab",
    "context_text": "prompt_lab",
    "FEW_SHOT": "prompt_lab",
    "GROUNDING": "prompt_lab",
    "NUMBER": "prompt_lab",
    "PII": "prompt_lab",
    "PromptPlayground": "prompt_lab",
    "PromptResult": "prompt_lab",
    "ROLE": "prompt_lab",
    "run_prompt": "prompt_lab",
    "run_variants": "prompt_lab",
    "simple_checks": "prompt_lab",
    "summarize_variants": "prompt_lab",
    "VARIANTS": "prompt_lab",
    # prompts
    "load_prompty": "prompts",
    "PromptTemplate": "prompts",
    "ROLE_MARKER": "prompts",
    "split_roles": "prompts",
    # tables
    "full_text": "tables",
    "WRAP_FROM_CHARS": "tables",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
