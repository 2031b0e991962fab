"""Your own OpenAI-compatible model endpoint: its settings from the environment, and the client.

Off unless configured. Two ways (AZCHAT_LLM_* wins when both are set):

- any OpenAI-compatible server (Ollama, llama.cpp's server, vLLM, OpenAI itself):
  AZCHAT_LLM_BASE_URL, AZCHAT_LLM_MODEL, and AZCHAT_LLM_API_KEY when the server wants one;
- Azure OpenAI: AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT, AZURE_OPENAI_API_VERSION (or
  OPENAI_API_VERSION) and AZURE_OPENAI_API_KEY.

AZCHAT_LLM_TIMEOUT (seconds, default 60) bounds each wait for the endpoint; AZCHAT_LLM_TEMPERATURE is sent only
when set. The key comes from the environment only and is never logged or shown: it is held in a Secret whose
repr and str are "***", and every message built from an endpoint's error goes through redact().
The `openai` package is imported here, and this module only when a written answer is asked for.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import AzchatError

DEFAULT_TIMEOUT = 60.0
MAX_RETRIES = 1                    # one retry (a 429 or a dropped connection); a timeout is not waited twice


class LLMConfigError(AzchatError):
    """The endpoint settings are incomplete or malformed."""

    exit_code = 2


class Secret:
    """A value that never shows itself: repr, str and format give "***"; reveal() gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __reduce__(self):
        raise TypeError("a Secret is not serialized")


@dataclass(frozen=True)
class LLMConfig:
    """Where the written answer comes from. `model` is the model name, or the Azure deployment."""

    provider: str                  # "openai" (any OpenAI-compatible server) or "azure"
    base_url: str
    model: str
    api_version: str = ""
    timeout: float = DEFAULT_TIMEOUT
    temperature: float | None = None
    api_key: Secret = field(default_factory=lambda: Secret(""), repr=False, compare=False)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc or self.base_url


def _env(environ, *names: str) -> str:
    for name in names:
        value = (environ.get(name) or "").strip()
        if value:
            return value
    return ""


def _number(environ, name: str, default, positive: bool = True):
    raw = _env(environ, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise LLMConfigError(f"{name} must be a number, not {raw!r}.") from None
    if positive and value <= 0:
        raise LLMConfigError(f"{name} must be more than 0.")
    return value


def _url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LLMConfigError(f"{name} must be an http:// or https:// address, like http://127.0.0.1:11434/v1.")
    return value.rstrip("/")


def load_config(environ=None) -> LLMConfig | None:
    """The endpoint from the environment; None when none is configured. Half a configuration (a base URL
    without a model, an Azure endpoint without a deployment or API version) is an LLMConfigError."""
    env = os.environ if environ is None else environ
    timeout = _number(env, "AZCHAT_LLM_TIMEOUT", DEFAULT_TIMEOUT)
    temperature = _number(env, "AZCHAT_LLM_TEMPERATURE", None, positive=False)
    base, model = _env(env, "AZCHAT_LLM_BASE_URL"), _env(env, "AZCHAT_LLM_MODEL")
    if base or model:
        if not base or not model:
            missing = "AZCHAT_LLM_MODEL" if base else "AZCHAT_LLM_BASE_URL"
            raise LLMConfigError(f"{missing} is not set: a written answer needs both AZCHAT_LLM_BASE_URL and "
                                 "AZCHAT_LLM_MODEL.")
        return LLMConfig("openai", _url(base, "AZCHAT_LLM_BASE_URL"), model, timeout=timeout,
                         temperature=temperature, api_key=Secret(_env(env, "AZCHAT_LLM_API_KEY")))
    endpoint = _env(env, "AZURE_OPENAI_ENDPOINT")
    if not endpoint:
        return None
    deployment = _env(env, "AZURE_OPENAI_DEPLOYMENT", "AZURE_OPENAI_DEPLOYMENT_NAME")
    version = _env(env, "AZURE_OPENAI_API_VERSION", "OPENAI_API_VERSION")
    missing = [n for n, v in (("AZURE_OPENAI_DEPLOYMENT", deployment), ("AZURE_OPENAI_API_VERSION", version))
               if not v]
    if missing:
        raise LLMConfigError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: Azure "
                             "OpenAI needs AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT and "
                             "AZURE_OPENAI_API_VERSION.")
    return LLMConfig("azure", _url(endpoint, "AZURE_OPENAI_ENDPOINT"), deployment, api_version=version,
                     timeout=timeout, temperature=temperature, api_key=Secret(_env(env, "AZURE_OPENAI_API_KEY")))


def configured(environ=None) -> bool:
    """An endpoint is configured (completely or not): the front ends offer the written answer."""
    env = os.environ if environ is None else environ
    return bool(_env(env, "AZCHAT_LLM_BASE_URL", "AZCHAT_LLM_MODEL", "AZURE_OPENAI_ENDPOINT"))


def redact(text: str, config: LLMConfig | None) -> str:
    """text without the API key (nor any 8+ character piece of it that an error message may echo)."""
    key = config.api_key.reveal() if config is not None else ""
    if not key:
        return text
    text = text.replace(key, "***")
    if len(key) >= 16:                 # "Incorrect API key provided: sk-abc1****wxyz" style echoes
        for size in (12, 8):
            for i in range(0, len(key) - size + 1):
                piece = key[i:i + size]
                if piece in text:
                    text = text.replace(piece, "***")
    return text


_clients: dict = {}
_clients_lock = threading.Lock()


def client_for(config: LLMConfig):
    """One `openai` client per configuration (reused by the chat's concurrent requests)."""
    cache_key = (config, config.api_key.reveal())
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = _clients[cache_key] = _open(config)
        return client


def _open(config: LLMConfig):
    import openai

    key = config.api_key.reveal()
    if config.provider == "azure":
        if not key:
            raise LLMConfigError("AZURE_OPENAI_API_KEY is not set.")
        return openai.AzureOpenAI(azure_endpoint=config.base_url, api_version=config.api_version, api_key=key,
                                  timeout=config.timeout, max_retries=MAX_RETRIES)
    # Local servers (Ollama, llama.cpp) take any key; the SDK insists on one, so a placeholder goes instead of
    # falling back to OPENAI_API_KEY, which is never sent to a server the user did not name for it.
    return openai.OpenAI(base_url=config.base_url, api_key=key or "no-key", timeout=config.timeout,
                         max_retries=MAX_RETRIES)
