"""LLM access: one factory for the chat model and one client for every call whypref makes.

Every call has a pydantic output schema, is asked for schema-constrained JSON (``response_format``
json_schema), and is re-asked with the validation errors a bounded number of times; an answer that
never validates is recorded as missing and the run goes on. Calls are cached in the store by content
hash (model + messages + schema + parameters), so re-running a stage costs nothing; they run with
bounded concurrency, and the OpenAI client retries rate limits, 5xx and timeouts with backoff.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ValidationError

from tools.settings import Settings
from tools.store import CachedCall, ConceptStore, content_key

T = TypeVar("T", bound=BaseModel)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


@dataclass(frozen=True)
class Request(Generic[T]):
    """One structured question: messages (role, content), the schema of the answer, a stage for
    accounting, and the completion tokens it is expected to need (for --dry-run estimates)."""

    stage: str
    messages: tuple[tuple[str, str], ...]
    schema: type[T]
    max_tokens: int = 512
    expected_tokens: int = 100


class StageUsage(BaseModel):
    calls: int = 0  # requests sent to the model (re-asks included)
    cached: int = 0  # answers taken from the store's cache
    missing: int = 0  # answers that never validated, or calls that failed
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Estimate(BaseModel):
    calls: int
    cached: int
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Usage:
    stages: dict[str, StageUsage] = field(default_factory=dict)

    def stage(self, name: str) -> StageUsage:
        return self.stages.setdefault(name, StageUsage())

    @property
    def total(self) -> StageUsage:
        total = StageUsage()
        for usage in self.stages.values():
            for name in StageUsage.model_fields:
                setattr(total, name, getattr(total, name) + getattr(usage, name))
        return total

    def line(self) -> str:
        t = self.total
        return (
            f"{t.calls} LLM calls ({t.cached} cached, {t.missing} missing), "
            f"{t.prompt_tokens:,} prompt + {t.completion_tokens:,} completion tokens"
        )


def estimate_tokens(text: str) -> int:
    """Rough token count (about 4 characters a token for English), for estimates only."""
    return max(1, len(text) // 4)


def _parse(content: str, schema: type[T]) -> T:
    fenced = _FENCE.match(content)
    return schema.model_validate_json(fenced.group(1) if fenced else content)


def _response_format(schema: type[BaseModel]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()}}


def _messages(pairs: Sequence[tuple[str, str]]) -> list[BaseMessage]:
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[role](content=content) for role, content in pairs]


class LLM:
    """Structured, cached, concurrent calls to one chat model."""

    def __init__(
        self,
        chat: BaseChatModel,
        model_id: str,
        *,
        store: ConceptStore | None = None,
        temperature: float = 0.0,
        max_concurrency: int = 8,
        validation_retries: int = 2,
    ) -> None:
        self.chat = chat
        self.model_id = model_id
        self.store = store
        self.temperature = temperature
        self.max_concurrency = max_concurrency
        self.validation_retries = validation_retries
        self.usage = Usage()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, store: ConceptStore | None = None) -> LLM:
        chat, model_id = chat_model(settings := settings or Settings())
        return cls(
            chat,
            model_id,
            store=store,
            temperature=settings.temperature,
            # The embedded server has one slot: calls queued there would spend their timeout waiting.
            max_concurrency=settings.max_concurrency if settings.base_url else 1,
            validation_retries=settings.validation_retries,
        )

    def key(self, request: Request[Any]) -> str:
        return content_key(
            {
                "model": self.model_id,
                "messages": request.messages,
                "schema": request.schema.model_json_schema(),
                "temperature": self.temperature,
                "max_tokens": request.max_tokens,
            }
        )

    def estimate(self, requests: Sequence[Request[Any]]) -> Estimate:
        """What running these requests would cost: calls not in the cache, and their tokens."""
        todo = [r for r in requests if self.store is None or self.store.cached_call(self.key(r)) is None]
        return Estimate(
            calls=len(todo),
            cached=len(requests) - len(todo),
            prompt_tokens=sum(estimate_tokens(c) + 4 for r in todo for _, c in r.messages),
            completion_tokens=sum(r.expected_tokens for r in todo),
        )

    async def ask(self, request: Request[T]) -> T | None:
        usage = self.usage.stage(request.stage)
        key = self.key(request)
        if self.store is not None and (hit := self.store.cached_call(key)) is not None:
            usage.cached += 1
            answer = hit.response
            if not isinstance(answer, dict) or answer.get("missing"):
                usage.missing += 1
                return None
            return request.schema.model_validate(answer["parsed"])
        parsed, raw, tokens = await self._ask_model(request, usage)
        if parsed is None:
            usage.missing += 1
        if self.store is not None and raw is not None:  # transport failures are not cached: retry next run
            response = {"missing": True, "raw": raw} if parsed is None else {"parsed": parsed.model_dump(mode="json")}
            self.store.cache_call(
                CachedCall(
                    key=key,
                    model=self.model_id,
                    request={"messages": [list(m) for m in request.messages], "schema": request.schema.__name__},
                    response=response,
                    prompt_tokens=tokens[0],
                    completion_tokens=tokens[1],
                )
            )
        return parsed

    async def _ask_model(self, request: Request[T], usage: StageUsage) -> tuple[T | None, str | None, tuple[int, int]]:
        bound = self.chat.bind(
            response_format=_response_format(request.schema),
            temperature=self.temperature,
            max_tokens=request.max_tokens,
        )
        conversation = list(request.messages)
        raw: str | None = None
        tokens = (0, 0)
        for _ in range(1 + self.validation_retries):
            try:
                message = await bound.ainvoke(_messages(conversation))
            except Exception:  # noqa: BLE001 - a failed call is recorded as missing, never fatal
                usage.calls += 1
                return None, raw, tokens
            usage.calls += 1
            meta = getattr(message, "usage_metadata", None) or {}
            usage.prompt_tokens += meta.get("input_tokens", 0)
            usage.completion_tokens += meta.get("output_tokens", 0)
            tokens = (tokens[0] + meta.get("input_tokens", 0), tokens[1] + meta.get("output_tokens", 0))
            raw = message.content if isinstance(message.content, str) else json.dumps(message.content)
            try:
                return _parse(raw, request.schema), raw, tokens
            except (ValidationError, ValueError) as error:
                conversation += [("assistant", raw), ("user", _feedback(error))]
        return None, raw, tokens

    async def ask_many(
        self, requests: Sequence[Request[T]], progress: Callable[[int], None] | None = None
    ) -> list[T | None]:
        semaphore = asyncio.Semaphore(self.max_concurrency)
        done = 0

        async def one(request: Request[T]) -> T | None:
            nonlocal done
            async with semaphore:
                answer = await self.ask(request)
            done += 1
            if progress is not None:
                progress(done)
            return answer

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def run(self, requests: Sequence[Request[T]], progress: Callable[[int], None] | None = None) -> list[T | None]:
        """Synchronous entry point: answer every request (None where no valid answer came).

        Every run of the process goes through one long-lived event loop: chat clients pool their HTTP
        connections per loop, and a fresh loop per run would find the pooled ones bound to a closed loop.
        ``progress`` is called on the caller's thread (rich displays and MCP relays expect that).
        """
        ticks: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        future = asyncio.run_coroutine_threadsafe(self.ask_many(requests, ticks.put), _shared_loop())
        future.add_done_callback(lambda _: ticks.put(None))
        try:
            while (done := ticks.get()) is not None:
                if progress is not None:
                    progress(done)
            return future.result()
        except BaseException:  # Ctrl-C or an error in ``progress``: stop the calls still queued
            future.cancel()
            raise


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _shared_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="whypref-llm", daemon=True).start()
        return _loop


def _feedback(error: Exception) -> str:
    if isinstance(error, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in error.errors()[:8])
    else:
        problems = str(error)
    return f"Your answer did not match the required JSON schema ({problems}). Reply again with only the JSON object."


def chat_model(settings: Settings) -> tuple[BaseChatModel, str]:
    """ChatOpenAI for the configured endpoint, or for the embedded local model when none is set."""
    from langchain_openai import ChatOpenAI

    if settings.base_url:
        key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
        chat = ChatOpenAI(
            base_url=settings.base_url,
            api_key=key,
            model=settings.model,  # type: ignore[arg-type]
            max_retries=settings.max_retries,
            timeout=settings.timeout,
        )
        return chat, f"{settings.model}@{settings.base_url}"
    from tools.embedded import start_embedded

    server = start_embedded(settings)
    chat = ChatOpenAI(
        base_url=server.base_url,
        api_key="local",
        model="local",  # type: ignore[arg-type]
        max_retries=settings.max_retries,
        timeout=settings.timeout,
    )
    return chat, server.model_id
