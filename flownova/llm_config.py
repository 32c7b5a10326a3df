"""Where LLM calls go, from one environment variable, and whether a model has a provider configured.

`FLOWNOVA_LLM_URL` points FlowNova at any OpenAI-compatible server: its base URL, with the API key (when the
server needs one) as the URL's password and the default model as its fragment:

    http://127.0.0.1:11434/v1#llama3.2                 a local Ollama
    http://127.0.0.1:8000/v1#Qwen/Qwen2.5-7B-Instruct   a local vLLM
    https://:sk-...@api.openai.com/v1#gpt-4o-mini       OpenAI (or any hosted OpenAI-compatible API)

Models named `openai/<name>` (and any model without a provider prefix) are sent there. LiteLLM's own variables
(`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `OPENAI_API_BASE`...) still work for everything else.

The pages ask `provider_configured` before anything runs, to say what to set; it reads the environment only,
since the web process never imports LiteLLM (runs/llm.py). It answers None for providers it cannot judge, so a
notice is shown only when a call would certainly fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

VARIABLE = "FLOWNOVA_LLM_URL"
EXAMPLE = "http://127.0.0.1:11434/v1#llama3.2"
# LiteLLM's provider prefix for OpenAI-compatible servers.
OPENAI_PREFIX = "openai/"
# The variable each hosted provider's key is read from (as LiteLLM reads them); providers not listed (Ollama,
# Bedrock, Vertex...) are configured in ways a glance at the environment cannot judge.
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "cohere": ("COHERE_API_KEY", "CO_API_KEY"),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"),
    "azure": ("AZURE_API_KEY",),
}


@dataclass(frozen=True)
class LLMServer:
    """An OpenAI-compatible server: where to send requests, the key to send, the model to use by default."""

    base_url: str
    api_key: str | None
    model: str | None  # a LiteLLM model string, openai/<name>

    def __repr__(self) -> str:  # the key stays out of logs and error pages
        key = "***" if self.api_key else None
        return f"LLMServer(base_url={self.base_url!r}, api_key={key!r}, model={self.model!r})"


def llm_server_parse(value: str) -> LLMServer | None:
    """The server FLOWNOVA_LLM_URL names (None when it is empty); ValueError saying what is wrong otherwise."""
    value = value.strip()
    if not value:
        return None
    try:
        parts = urlsplit(value)
        port = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise ValueError(f"{VARIABLE} is not a URL ({exc}); e.g. {EXAMPLE}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{VARIABLE} must be an http:// or https:// URL with a host, e.g. {EXAMPLE}")
    key = unquote(parts.password or parts.username or "") or None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{port}" if port is not None else host
    base_url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), parts.query, ""))
    name = unquote(parts.fragment).strip()
    model = None
    if name:
        model = name if name.startswith(OPENAI_PREFIX) else OPENAI_PREFIX + name
    return LLMServer(base_url=base_url, api_key=key, model=model)


def model_for_server(model: str, server: LLMServer | None) -> str:
    """With a server configured, a model named without a provider goes to it (`llama3.2` -> `openai/llama3.2`)."""
    if server is not None and "/" not in model:
        return OPENAI_PREFIX + model
    return model


def provider_configured(model: str, *, server: LLMServer | None, environ: Mapping[str, str]) -> bool | None:
    """Whether a call to `model` has somewhere to go: True, False (it would fail at once, for want of a
    setting), or None when that cannot be told from the environment."""
    model = model_for_server(model, server)
    if "/" not in model:
        return None  # LiteLLM guesses the provider of a bare name; so would we
    provider = model.split("/", 1)[0]
    if provider == "openai" and (
        server is not None or environ.get("OPENAI_API_BASE") or environ.get("OPENAI_BASE_URL")
    ):
        return True
    keys = PROVIDER_KEYS.get(provider)
    if keys is None:
        return None
    return any(environ.get(key) for key in keys)
