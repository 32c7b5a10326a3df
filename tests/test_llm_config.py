"""FLOWNOVA_LLM_URL: one variable pointing FlowNova at any OpenAI-compatible server, with its key and default
model; and what the pages can tell, without LiteLLM, about whether a model has a provider configured."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pytest_django import Settings

from flownova.llm_config import LLMServer, llm_server_parse, model_for_server, provider_configured
from tests.conftest import ROOT, service_env
from tests.llm_server import Answer, ScriptedLLM


def test_a_local_server_with_its_model() -> None:
    server = llm_server_parse("http://127.0.0.1:11434/v1#llama3.2")
    assert server == LLMServer(base_url="http://127.0.0.1:11434/v1", api_key=None, model="openai/llama3.2")


def test_a_hosted_server_with_its_key_as_the_password() -> None:
    server = llm_server_parse("https://:sk-abc%2Fdef@api.openai.com/v1/#gpt-4o-mini")
    assert server == LLMServer(base_url="https://api.openai.com/v1", api_key="sk-abc/def", model="openai/gpt-4o-mini")
    assert "sk-abc" not in repr(server)
    # The key alone before the @ works too.
    assert llm_server_parse("https://sk-xyz@api.example.com/v1") == LLMServer(
        base_url="https://api.example.com/v1", api_key="sk-xyz", model=None
    )


def test_model_names_keep_their_slashes_and_query_strings_stay() -> None:
    server = llm_server_parse("http://[::1]:8000/v1?api-version=2024#Qwen/Qwen2.5-7B-Instruct")
    assert server is not None
    assert server.base_url == "http://[::1]:8000/v1?api-version=2024"
    assert server.model == "openai/Qwen/Qwen2.5-7B-Instruct"
    assert llm_server_parse("http://h/v1#openai/llama3").model == "openai/llama3"  # type: ignore[union-attr]
    assert llm_server_parse("  ") is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("127.0.0.1:11434/v1", "must be an http:// or https:// URL with a host"),
        ("ftp://models.example.com/", "must be an http:// or https:// URL with a host"),
        ("http:///v1", "must be an http:// or https:// URL with a host"),
        ("http://127.0.0.1:port/v1", "FLOWNOVA_LLM_URL is not a URL"),
    ],
)
def test_a_bad_url_is_refused_naming_the_variable(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        llm_server_parse(value)
    assert "FLOWNOVA_LLM_URL" in str(refused.value) and "http://127.0.0.1:11434/v1#llama3.2" in str(refused.value)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=service_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_settings_take_the_default_model_from_the_url_unless_it_is_set() -> None:
    show = "from django.conf import settings; print(settings.FLOWNOVA_DEFAULT_MODEL, settings.FLOWNOVA_LLM_SERVER)"
    from_url = run_python(show, FLOWNOVA_LLM_URL="http://127.0.0.1:11434/v1#llama3.2")
    assert from_url.returncode == 0, from_url.stderr
    assert from_url.stdout.startswith("openai/llama3.2 LLMServer(base_url='http://127.0.0.1:11434/v1'")
    chosen = run_python(show, FLOWNOVA_LLM_URL="http://h/v1#llama3.2", FLOWNOVA_DEFAULT_MODEL="openai/mistral")
    assert chosen.stdout.startswith("openai/mistral ")
    neither = run_python(show)
    assert neither.stdout.strip() == "openai/gpt-4o-mini None"


def test_a_bad_url_stops_the_process_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=service_env(FLOWNOVA_LLM_URL="ollama:11434"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "FLOWNOVA_LLM_URL must be an http:// or https:// URL with a host" in result.stderr


def test_what_the_pages_can_tell_about_a_provider() -> None:
    server = llm_server_parse("http://127.0.0.1:11434/v1#llama3.2")
    assert model_for_server("llama3.2", server) == "openai/llama3.2"
    assert model_for_server("llama3.2", None) == "llama3.2"
    assert provider_configured("openai/llama3.2", server=server, environ={}) is True
    assert provider_configured("openai/gpt-4o-mini", server=None, environ={}) is False
    assert provider_configured("openai/gpt-4o-mini", server=None, environ={"OPENAI_API_KEY": "k"}) is True
    assert provider_configured("openai/local", server=None, environ={"OPENAI_API_BASE": "http://h/v1"}) is True
    assert provider_configured("anthropic/claude-sonnet-4", server=server, environ={}) is False
    assert provider_configured("anthropic/claude-sonnet-4", server=None, environ={"ANTHROPIC_API_KEY": "k"}) is True
    # Providers configured in ways the environment does not show, and bare names LiteLLM guesses: not judged.
    assert provider_configured("ollama/llama3", server=None, environ={}) is None
    assert provider_configured("gpt-4o-mini", server=None, environ={}) is None


def test_calls_go_to_the_server_the_url_names_with_its_key(
    llm_server: ScriptedLLM, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    from runs import llm  # imports LiteLLM: only the tests that call it pay for that

    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = llm_server.model(Answer(content="hello from the one variable"))
    base = llm_server.base_url.replace("http://", "http://:secret-key@")
    settings.FLOWNOVA_LLM_SERVER = llm_server_parse(f"{base}#{model.removeprefix('openai/')}")
    settings.FLOWNOVA_DEFAULT_MODEL = settings.FLOWNOVA_LLM_SERVER.model

    resolved = llm.resolve_model(None)
    assert resolved == model
    assert llm.provider_kwargs(resolved) == {"api_base": llm_server.base_url, "api_key": "secret-key"}
    answer = llm.chat(model=resolved, messages=[{"role": "user", "content": "Hi"}])
    assert answer.content == "hello from the one variable"
    assert len(llm_server.requests(model)) == 1
    # A model named without a provider goes to the same server.
    assert llm.resolve_model(model.removeprefix("openai/")) == model
