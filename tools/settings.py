"""Settings, from the environment (prefix ``WHYPREF_``) or a ``.env`` file.

LLM endpoint: set ``WHYPREF_BASE_URL`` (any OpenAI-compatible server: OpenAI, vLLM, Ollama...),
``WHYPREF_MODEL`` and ``WHYPREF_API_KEY`` (or ``OPENAI_API_KEY``). With no base URL, whypref runs
its embedded local model (demo-grade; see README).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache() -> Path:
    import os

    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "whypref"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHYPREF_", env_file=".env", extra="ignore")

    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint; unset = embedded model.")
    model: str = Field(default="gpt-4o-mini", description="Model name at the endpoint.")
    api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("WHYPREF_API_KEY", "OPENAI_API_KEY"))
    gguf_path: Path | None = Field(default=None, description="Embedded: any local GGUF instead of the pinned one.")
    cache_dir: Path = Field(default_factory=_default_cache, description="Where the embedded model is assembled.")
    n_ctx: int = Field(default=4096, ge=512, description="Embedded: context window.")
    threads: int | None = Field(default=None, ge=1, description="Embedded: CPU threads (default: all cores).")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_concurrency: int = Field(default=8, ge=1, description="Simultaneous LLM calls.")
    max_retries: int = Field(
        default=4, ge=0, description="Transport retries (rate limits, 5xx, timeouts), with backoff."
    )
    validation_retries: int = Field(default=2, ge=0, description="Re-asks when an answer does not fit its schema.")
    timeout: float = Field(default=120.0, gt=0, description="Seconds per call.")
    max_response_chars: int = Field(
        default=6000, ge=200, description="Responses longer than this are cut (with a marker) in prompts."
    )
