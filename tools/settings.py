"""Settings, from the environment (prefix ``WHYPREF_``) or a ``.env`` file.

LLM endpoint: set ``WHYPREF_BASE_URL`` (or ``OPENAI_BASE_URL``; any OpenAI-compatible server:
OpenAI, vLLM, Ollama...), ``WHYPREF_MODEL`` and ``WHYPREF_API_KEY`` (or ``OPENAI_API_KEY``). With no
base URL, whypref runs its embedded local model (demo-grade; see README).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from tools.llm import Price


MAX_RESPONSE_CHARS = 6000  # responses are cut to this in prompts, unless set otherwise


def _default_cache() -> Path:
    import os

    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "whypref"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHYPREF_", env_file=".env", extra="ignore")

    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WHYPREF_BASE_URL", "OPENAI_BASE_URL"),
        description="OpenAI-compatible endpoint; several servers of one model: their URLs, comma-separated "
        "(calls go to them in turn); unset = embedded model.",
    )
    model: str = Field(default="gpt-4o-mini", description="Model name at the endpoint.")
    model_label: str | None = Field(
        default=None,
        description="What the cache and annotator names call the model (default: its name). Set it to tell "
        "apart two different models served under one name.",
    )
    api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("WHYPREF_API_KEY", "OPENAI_API_KEY"))
    gguf_path: Path | None = Field(default=None, description="Embedded: any local GGUF instead of the pinned one.")
    cache_dir: Path = Field(default_factory=_default_cache, description="Where the embedded model is assembled.")
    n_ctx: int = Field(default=4096, ge=512, description="Embedded: context window.")
    threads: int | None = Field(
        default=None, ge=1, description="Embedded: CPU threads (default: half the cores, at least 1)."
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_concurrency: int = Field(default=8, ge=1, description="Simultaneous LLM calls.")
    max_retries: int = Field(
        default=4, ge=0, description="Retries of a call after a transient failure (429, 5xx, timeout, refused)."
    )
    retry_deadline: float = Field(
        default=300.0, gt=0, description="A stage stops when no call has succeeded for this many seconds."
    )
    circuit_breaker: int = Field(default=8, ge=1, description="A stage stops after this many failed calls in a row.")
    validation_retries: int = Field(default=2, ge=0, description="Re-asks when an answer does not fit its schema.")
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="Seconds per call (default 120; 900 for the embedded model, one call at a time).",
    )
    requests_per_minute: float | None = Field(default=None, gt=0, description="Limit on the request rate.")
    batch_out: Path | None = Field(
        default=None,
        description="Write each LLM stage's uncached requests to this OpenAI Batch API JSONL instead of calling.",
    )
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description='USD per million prompt and completion tokens, by model: {"gpt-4o-mini": [0.15, 0.6]}.',
    )
    max_response_chars: int = Field(
        default=MAX_RESPONSE_CHARS,
        ge=200,
        description="Responses longer than this are cut (with a marker) in prompts.",
    )

    @property
    def base_urls(self) -> list[str]:
        """The endpoints' URLs (``base_url`` split at commas)."""
        return [url.strip() for url in (self.base_url or "").split(",") if url.strip()]

    def call_timeout(self, *, embedded: bool) -> float:
        """Seconds a call may take. The embedded model answers one call at a time on the CPU, so a long
        answer on a busy machine needs minutes; a client timeout there would throw it away."""
        if self.timeout is not None:
            return self.timeout
        return 900.0 if embedded else 120.0

    def price_of(self, model: str) -> Price | None:
        from tools.llm import Price

        found = self.prices.get(model)
        return Price(*found) if found else None
