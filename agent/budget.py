"""LLM spending of a run: counted call by call in the store, checked before every LLM stage.

Counting in the store (not in the process) means a killed run keeps the count of every call it made,
and a resumed one adds only what it pays for (answers already cached cost nothing and are not counted).
A stage starts only if its worst case fits what is left: every uncached request re-asked as often as
the client may re-ask, so the call budget is never crossed. Tokens are checked the same way against
estimated tokens (about 4 characters a token), so that budget holds up to the estimate's error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from agent.config import AgentConfig
from tools.errors import WhyprefError
from tools.llm import LLM, Estimate
from tools.store import ConceptStore


class BudgetExhausted(WhyprefError):
    """The next stage could cross a budget; the run stops with this reason."""


class UsageRecorder(BaseCallbackHandler):
    """Adds every chat-model call (answered or failed) to the run's usage in the store.

    LangChain may call it from a thread of its own, so it writes through a connection of its own,
    used under a lock; SQLite queues its writes with the run's other ones.
    """

    run_inline = True

    def __init__(self, store_path: Path, run_id: str) -> None:
        self.store, self.run_id, self._lock = ConceptStore(store_path, create=False), run_id, threading.Lock()

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        usage: dict[str, int] = {}
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or usage
        self._add(usage.get("input_tokens", 0), usage.get("output_tokens", 0))

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self._add(0, 0)

    def _add(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.store.add_run_usage(self.run_id, 1, prompt_tokens, completion_tokens)


@contextmanager
def recording_usage(llm: LLM, store: ConceptStore, run_id: str) -> Iterator[None]:
    """Count this LLM's calls towards the run while inside."""
    recorder = UsageRecorder(store.path, run_id)
    others = [
        [c for c in chat.callbacks or [] if not isinstance(c, UsageRecorder)]  # type: ignore[union-attr]
        for chat in llm.chats
    ]
    for chat, callbacks in zip(llm.chats, others, strict=True):
        chat.callbacks = [*callbacks, recorder]
    try:
        yield
    finally:
        for chat, callbacks in zip(llm.chats, others, strict=True):
            chat.callbacks = callbacks
        recorder.store.close()


def check_stage(
    store: ConceptStore, run_id: str, config: AgentConfig, llm: LLM, stage: str, estimate: Estimate
) -> None:
    """Raise :class:`BudgetExhausted` unless the stage's worst case fits what the run has left."""
    spent = store.run_usage(run_id)
    attempts = 1 + llm.validation_retries
    calls = estimate.calls * attempts
    if spent.calls + calls > config.max_calls:
        raise BudgetExhausted(
            f"call budget: {stage} could need {calls} calls ({estimate.calls} requests, each asked up to "
            f"{attempts} times); {config.max_calls - spent.calls} of {config.max_calls} left"
        )
    tokens = (estimate.prompt_tokens + estimate.completion_tokens) * attempts
    if config.max_tokens is not None and spent.tokens + tokens > config.max_tokens:
        raise BudgetExhausted(
            f"token budget: {stage} could need about {tokens:,} tokens; "
            f"{config.max_tokens - spent.tokens:,} of {config.max_tokens:,} left"
        )
