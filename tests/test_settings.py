import logging

import pytest

from conftest import CANARY_KEY
from llmops_helpers.errors import ConfigError, MissingCredentialError
from llmops_helpers.llm.settings import (
    RedactingFilter,
    Secret,
    install_log_redaction,
    resolve_settings,
)


def test_local_is_the_default(clean_env):
    settings = resolve_settings()
    assert settings.provider == "local"
    assert settings.api_key is None


def test_environment_variable_selects_provider(clean_env):
    clean_env.setenv("LLMOPS_PROVIDER", "openai")
    clean_env.setenv("OPENAI_API_KEY", CANARY_KEY)
    settings = resolve_settings()
    assert settings.provider == "openai" and settings.model == "gpt-4o-mini"
    assert settings.api_key.reveal() == CANARY_KEY


def test_argument_beats_environment(clean_env):
    clean_env.setenv("LLMOPS_PROVIDER", "openai")
    assert resolve_settings("local").provider == "local"


def test_dotenv_file_is_read_and_environment_wins(clean_env, tmp_path):
    (tmp_path / ".env").write_text(f"LLMOPS_PROVIDER=openai\nOPENAI_API_KEY={CANARY_KEY}\nLLMOPS_MODEL=from-file\n")
    settings = resolve_settings()
    assert (settings.provider, settings.model) == ("openai", "from-file")
    clean_env.setenv("LLMOPS_MODEL", "from-env")
    assert resolve_settings().model == "from-env"


def test_missing_openai_key_names_the_variable_and_the_fix(clean_env):
    with pytest.raises(MissingCredentialError) as info:
        resolve_settings("openai")
    message = str(info.value)
    assert "OPENAI_API_KEY" in message and ".env" in message and "provider='local'" in message
    assert "\n" not in message  # one paragraph


def test_missing_azure_settings_are_all_named_at_once(clean_env):
    clean_env.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    with pytest.raises(MissingCredentialError) as info:
        resolve_settings("azure")
    assert info.value.missing == ["AZURE_OPENAI_API_KEY", "AZURE_OPENAI_DEPLOYMENT"]


def test_azure_settings(clean_env):
    clean_env.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    clean_env.setenv("AZURE_OPENAI_API_KEY", CANARY_KEY)
    clean_env.setenv("AZURE_OPENAI_DEPLOYMENT", "support-gpt4o")
    settings = resolve_settings("azure")
    assert settings.model == "support-gpt4o" and settings.api_version


def test_unknown_provider(clean_env):
    with pytest.raises(ConfigError, match="Choose one of local, openai, azure"):
        resolve_settings("antropic")


def test_bad_number(clean_env):
    clean_env.setenv("LLMOPS_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="LLMOPS_TIMEOUT"):
        resolve_settings()


def test_secrets_never_show_in_reprs(clean_env):
    clean_env.setenv("OPENAI_API_KEY", CANARY_KEY)
    settings = resolve_settings("openai")
    for text in (repr(settings), str(settings), repr(settings.api_key), str(settings.describe())):
        assert CANARY_KEY not in text
    assert repr(Secret("x")) == "Secret('***')"


def test_log_redaction(clean_env, caplog):
    clean_env.setenv("OPENAI_API_KEY", CANARY_KEY)
    flt = install_log_redaction()
    logger = logging.getLogger("llmops.test")
    caplog.handler.addFilter(flt)
    logger.warning("calling with key %s", CANARY_KEY)
    assert CANARY_KEY not in caplog.text and "***" in caplog.text
    assert RedactingFilter(["abc"]).secrets == []  # too short to redact safely
