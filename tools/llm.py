"""LLM access: one factory for the chat model and one client for every call whypref makes.

Every call either has a pydantic output schema and asks for schema-constrained JSON (``json_schema``,
``strict`` where the endpoint accepts it), re-asked with the validation errors a bounded number of
times, or asks for a one-token answer among given options and reads their probabilities from the
token log-probabilities (:class:`Choice`). Answers are cached in the store by content hash (model,
messages, schema or options, parameters), so re-running a stage costs nothing; an answer that never
fits its schema is *not* cached, so a later run asks again.

Failures are loud (:mod:`tools.errors`): wrong credentials, an unknown model or a request the
endpoint rejects stop the stage at once with the endpoint's own message and a hint. Transient ones
(429 with Retry-After, 5xx, timeouts, refused connections) are retried with backoff, until a call's
retries run out, the stage has seen no success for ``retry_deadline`` seconds, or ``circuit_breaker``
calls in a row have failed; then the stage stops with :class:`tools.errors.LLMUnavailableError`.
Where an endpoint rejects ``strict``, ``json_schema`` or ``temperature``, the client falls back once
(``strict`` off, then ``json_object`` with the schema in the prompt; no temperature) and says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import openai
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.utils.function_calling import convert_to_openai_function
from pydantic import BaseModel, ValidationError

from tools.batch import BatchWritten, PendingRequest, option_probabilities, write_batch
from tools.errors import (
    LLMAnswerError,
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMConfigurationError,
    LLMError,
    LLMNotFoundError,
    LLMUnavailableError,
)
from tools.progress import Progress, silent
from tools.settings import MAX_RESPONSE_CHARS, Settings
from tools.store import CachedCall, ConceptStore, content_key

T = TypeVar("T", bound=BaseModel)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_TOP_LOGPROBS = 10
logger = logging.getLogger("whypref.llm")


class Choice(BaseModel):
    """The probability of each answer option, read from the model's token log-probabilities
    (normalised over the options; case and surrounding spaces of the token do not matter)."""

    probabilities: dict[str, float]


@dataclass(frozen=True)
class Request(Generic[T]):
    """One question: messages (role, content), the schema of the answer, a stage for accounting, and
    the completion tokens it is expected to need (for --dry-run estimates). With ``options`` it is a
    one-token question whose answer is a :class:`Choice` over them (``schema`` must be ``Choice``)."""

    stage: str
    messages: tuple[tuple[str, str], ...]
    schema: type[T]
    max_tokens: int = 512
    expected_tokens: int = 100
    options: tuple[str, ...] | None = None


def choice_request(stage: str, messages: tuple[tuple[str, str], ...], options: tuple[str, ...]) -> Request[Choice]:
    return Request(stage, messages, Choice, max_tokens=1, expected_tokens=1, options=options)


class StageUsage(BaseModel):
    calls: int = 0  # requests sent to the model (re-asks included)
    cached: int = 0  # answers taken from the store's cache
    missing: int = 0  # answers that never fit their schema (not cached: asked again next run)
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Estimate(BaseModel):
    calls: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    usd: float | None = None  # with a known price


@dataclass(frozen=True)
class Price:
    """USD per million prompt and completion tokens."""

    prompt: float
    completion: float

    def of(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


@dataclass
class Usage:
    stages: dict[str, StageUsage] = field(default_factory=dict)
    price: Price | None = None

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
        money = "" if self.price is None else f", ${self.price.of(t.prompt_tokens, t.completion_tokens):.4f}"
        return (
            f"{t.calls} LLM calls ({t.cached} cached, {t.missing} without a valid answer), "
            f"{t.prompt_tokens:,} prompt + {t.completion_tokens:,} completion tokens{money}"
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried. ``retry_timeouts=False`` for a local one-slot server, which
    goes on generating a timed-out answer: asking again would queue behind it."""

    max_retries: int = 4
    deadline: float = 300.0
    circuit_breaker: int = 8
    base_delay: float = 0.5
    max_delay: float = 20.0
    retry_timeouts: bool = True


class _Junk(openai.APIError):
    """An answer that is not an API response at all (e.g. a proxy's HTML error page)."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.message, self.body = message, None
        self.request = None  # type: ignore[assignment]  # no request: the answer was not an API response


class _Health:
    """The transient failures of one run of calls, shared by its concurrent calls."""

    def __init__(self, policy: RetryPolicy, endpoint: str) -> None:
        self.policy, self.endpoint = policy, endpoint
        self.in_a_row = 0
        self.last_success = time.monotonic()

    def succeeded(self) -> None:
        self.in_a_row = 0
        self.last_success = time.monotonic()

    def delay(self, error: openai.APIError, attempt: int) -> float:
        """Seconds to wait before retrying ``error``, or raise when retrying should stop."""
        self.in_a_row += 1
        status = getattr(error, "status_code", None)
        problem = _describe(error)
        if isinstance(error, openai.APITimeoutError) and not self.policy.retry_timeouts:
            raise LLMUnavailableError(
                f"no answer within the timeout ({problem})",
                endpoint=self.endpoint,
                hint="a loaded machine slows the embedded model: raise WHYPREF_TIMEOUT, or set WHYPREF_THREADS=1",
            ) from error
        if attempt >= self.policy.max_retries:
            raise LLMUnavailableError(
                f"still failing after {attempt} retries: {problem}", endpoint=self.endpoint, status=status, hint=_HINT
            ) from error
        if self.in_a_row >= self.policy.circuit_breaker:
            raise LLMUnavailableError(
                f"{self.in_a_row} calls in a row failed, the last: {problem}",
                endpoint=self.endpoint,
                status=status,
                hint=_HINT,
            ) from error
        waited = time.monotonic() - self.last_success
        wait = _retry_after(error)
        if wait is None:
            wait = min(self.policy.max_delay, self.policy.base_delay * 2**attempt) * (0.5 + random.random() / 2)
        if waited + wait > self.policy.deadline:
            raise LLMUnavailableError(
                f"no successful call for {waited:.0f} s (deadline {self.policy.deadline:.0f} s), the last: {problem}",
                endpoint=self.endpoint,
                status=status,
                hint=_HINT,
            ) from error
        logger.info("LLM call failed (%s); retry %d in %.1f s", problem, attempt + 1, wait)
        return wait


_HINT = "check that the endpoint is up and reachable (WHYPREF_BASE_URL); answers so far are cached, re-run to resume"


def _describe(error: openai.APIError) -> str:
    """The endpoint's own message, without the client's wrapping."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    if isinstance(error, openai.APITimeoutError):
        return "the request timed out"
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error.__context__
        return f"connection failed ({cause})" if cause else "connection failed"
    return str(error.message if hasattr(error, "message") else error)


def _retry_after(error: openai.APIError) -> float | None:
    """Seconds the server asked to wait (Retry-After / retry-after-ms), if it did."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue  # an HTTP date: the backoff applies instead
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def _fatal(error: openai.APIError, endpoint: str) -> LLMError | None:
    """The typed error for a failure that retrying cannot fix, or None for a transient one."""
    status = getattr(error, "status_code", None)
    message = _describe(error)
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return LLMAuthenticationError(
            f"authentication refused: {message}",
            endpoint=endpoint,
            status=status,
            hint="check WHYPREF_API_KEY (or OPENAI_API_KEY)",
        )
    if isinstance(error, openai.NotFoundError):
        return LLMNotFoundError(
            f"not found: {message}",
            endpoint=endpoint,
            status=status,
            hint="check WHYPREF_MODEL, and that WHYPREF_BASE_URL ends with the API root (e.g. /v1)",
        )
    if isinstance(error, openai.BadRequestError | openai.UnprocessableEntityError):
        return LLMBadRequestError(f"request rejected: {message}", endpoint=endpoint, status=status)
    if (
        isinstance(error, openai.APIStatusError)
        and status is not None
        and status < 500
        and status not in (408, 409, 429)
    ):
        return LLMBadRequestError(f"request failed: {message}", endpoint=endpoint, status=status)
    return None


_SCHEMAS: dict[tuple[type[BaseModel], bool], dict[str, Any]] = {}


def json_schema(schema: type[BaseModel], *, strict: bool = False) -> dict[str, Any]:
    """The JSON schema of an answer model, or with ``strict`` its strict OpenAI ``json_schema`` form;
    computed once per class (every request's cache key holds it, and requests are many)."""
    if (schema, strict) not in _SCHEMAS:
        made = convert_to_openai_function(schema, strict=True)["parameters"] if strict else schema.model_json_schema()
        _SCHEMAS[schema, strict] = made
    return _SCHEMAS[schema, strict]


def estimate_tokens(text: str) -> int:
    """Rough token count (about 4 characters a token for English), for estimates only."""
    return max(1, len(text) // 4)


def _parse(content: str, schema: type[T]) -> T:
    fenced = _FENCE.match(content)
    return schema.model_validate_json(fenced.group(1) if fenced else content)


def _messages(pairs: Sequence[tuple[str, str]]) -> list[BaseMessage]:
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[role](content=content) for role, content in pairs]


def _choice(message: AIMessage, options: Sequence[str]) -> Choice | None:
    """Probabilities of ``options`` among the first token's top log-probabilities (None: none of them)."""
    logprobs = (message.response_metadata or {}).get("logprobs") or {}
    content = logprobs.get("content") or []
    probabilities = option_probabilities(content[0], options) if content else None
    return None if probabilities is None else Choice(probabilities=probabilities)


class LLM:
    """Structured, cached, concurrent calls to one chat model (served by one endpoint, or by several in
    turn: ``chat`` may be a list of clients of the same model)."""

    def __init__(
        self,
        chat: BaseChatModel | Sequence[BaseChatModel],
        name: str,
        *,
        store: ConceptStore | None = None,
        temperature: float = 0.0,
        max_concurrency: int = 8,
        validation_retries: int = 2,
        policy: RetryPolicy | None = None,
        price: Price | None = None,
        endpoint: str | None = None,
        embedded: bool = False,
        batch_out: Path | None = None,
        served_model: str | None = None,
        max_response_chars: int = MAX_RESPONSE_CHARS,
    ) -> None:
        self.chats = [chat] if isinstance(chat, BaseChatModel) else list(chat)
        self._turn = 0  # the next call goes to chats[_turn % len(chats)]
        self.embedded = embedded  # the built-in local model (demo-grade; Prob-rep by default)
        self.name = name  # what cache keys and annotator names call the model (WHYPREF_MODEL_LABEL)
        self.store = store
        self.temperature = temperature
        self.max_concurrency = max_concurrency
        self.validation_retries = validation_retries
        self.policy = policy or RetryPolicy()
        self.endpoint = endpoint or name
        self.usage = Usage(price=price)
        # Batch mode: uncached requests go to this file (OpenAI Batch API JSONL) instead of the endpoint.
        self.batch_out = batch_out
        self.served_model = served_model or name  # the model name the endpoint knows
        self.max_response_chars = max_response_chars  # responses are cut to this in every prompt
        # What this endpoint accepts, learnt from its refusals (once each).
        self._strict = True
        self._json_schema = True
        self._send_temperature = True
        self._last_invalid = ""

    @classmethod
    def from_settings(cls, settings: Settings | None = None, store: ConceptStore | None = None) -> LLM:
        settings = settings or Settings()
        if settings.batch_out is not None and settings.base_url is None:
            raise LLMConfigurationError(
                "batch files are for an endpoint's model: set WHYPREF_BASE_URL and WHYPREF_MODEL (the model the "
                "batch will run on) with --batch-out",
                endpoint="none",
            )
        chat, name, endpoint = chat_model(settings)
        embedded = settings.base_url is None
        return cls(
            chat,
            name,
            store=store,
            temperature=settings.temperature,
            # The embedded server has one slot: calls queued there would spend their timeout waiting.
            max_concurrency=1 if embedded else settings.max_concurrency,
            validation_retries=settings.validation_retries,
            policy=RetryPolicy(
                max_retries=settings.max_retries,
                deadline=settings.retry_deadline,
                circuit_breaker=settings.circuit_breaker,
                retry_timeouts=not embedded,
            ),
            price=Price(0.0, 0.0) if embedded else settings.price_of(settings.model),
            endpoint=endpoint,
            embedded=embedded,
            batch_out=settings.batch_out,
            served_model=settings.model,
            max_response_chars=settings.max_response_chars,
        )

    def key(self, request: Request[Any]) -> str:
        content: dict[str, Any] = {
            "model": self.name,
            "messages": request.messages,
            "schema": json_schema(request.schema),
            "temperature": self.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.options is not None:
            content["options"] = request.options
        return content_key(content)

    def estimate(self, requests: Sequence[Request[Any]]) -> Estimate:
        """What running these requests would cost: calls not in the cache, and their tokens."""
        keys = [self.key(r) for r in requests]  # hashing a request is not free: once each
        hits = self._cached(keys)
        todo = [r for r, key in zip(requests, keys, strict=True) if key not in hits]
        prompt = sum(estimate_tokens(c) + 4 for r in todo for _, c in r.messages)
        completion = sum(r.expected_tokens for r in todo)
        price = self.usage.price
        return Estimate(
            calls=len(todo),
            cached=len(requests) - len(todo),
            prompt_tokens=prompt,
            completion_tokens=completion,
            usd=None if price is None else price.of(prompt, completion),
        )

    def _cached(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The cached answers of these keys, read at once (not answers marked missing by older stores,
        nor batch requests still pending)."""
        hits = self.store.cached_calls(keys) if self.store is not None else {}
        return {
            key: hit.response
            for key, hit in hits.items()
            if isinstance(hit.response, dict) and "parsed" in hit.response
        }

    def _from_cache(self, requests: Mapping[str, Request[T]]) -> dict[str, T]:
        """The cached answers (by key) that still fit their request's schema (one imported from a batch
        file was checked against the JSON schema only): one that does not is asked again."""
        answers = {}
        for key, cached in self._cached(list(requests)).items():
            try:
                answers[key] = requests[key].schema.model_validate(cached["parsed"])
            except ValidationError:
                logger.info("a cached %s answer does not fit its schema: asking again", requests[key].stage)
        return answers

    async def ask(self, request: Request[T], key: str, health: _Health, keep: Callable[[CachedCall], None]) -> T | None:
        """The model's answer to one request not in the cache; a valid one is handed to ``keep``."""
        usage = self.usage.stage(request.stage)
        parsed, tokens = await self._ask_model(request, usage, health)
        if parsed is None:
            usage.missing += 1
        else:
            keep(
                CachedCall(
                    key=key,
                    model=self.name,
                    request={"messages": [list(m) for m in request.messages], "schema": request.schema.__name__},
                    response={"parsed": parsed.model_dump(mode="json")},
                    prompt_tokens=tokens[0],
                    completion_tokens=tokens[1],
                )
            )
        return parsed

    def _options(self, request: Request[Any]) -> dict[str, Any]:
        """Call parameters, as far as this endpoint accepts them."""
        options: dict[str, Any] = {"max_tokens": request.max_tokens}
        if self._send_temperature:
            options["temperature"] = self.temperature
        if request.options is not None:
            options |= {"logprobs": True, "top_logprobs": _TOP_LOGPROBS}
        elif self._json_schema:
            schema = json_schema(request.schema, strict=self._strict)
            format_ = {"name": request.schema.__name__, "schema": schema} | ({"strict": True} if self._strict else {})
            options["response_format"] = {"type": "json_schema", "json_schema": format_}
        else:
            options["response_format"] = {"type": "json_object"}
        return options

    def _conversation(self, request: Request[Any], conversation: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if request.options is not None or self._json_schema:
            return conversation
        # json_object mode: the schema goes into the system prompt instead (chat templates want one, first).
        schema = json.dumps(json_schema(request.schema))
        note = f"Reply with one JSON object that follows this JSON schema: {schema}"
        if conversation and conversation[0][0] == "system":
            return [("system", f"{conversation[0][1]}\n\n{note}"), *conversation[1:]]
        return [("system", note), *conversation]

    def _fall_back(self, error: openai.APIError, request: Request[Any], sent: dict[str, Any]) -> bool:
        """Stop sending what the endpoint just refused, if that is what it refused; True to ask again.

        ``sent`` are the options of the refused call: calls in flight when another one's refusal changed
        what is sent just ask again with the new options."""
        if not isinstance(error, openai.BadRequestError | openai.UnprocessableEntityError):
            return False
        text = _describe(error).lower()
        schema = (sent.get("response_format") or {}).get("json_schema")
        if "temperature" in text and "temperature" in sent:
            if self._send_temperature:
                self._send_temperature = False
                logger.warning("%s does not accept temperature; sending none (%s)", self.endpoint, _describe(error))
            return True
        if request.options is None and any(
            word in text for word in ("strict", "json_schema", "response_format", "schema")
        ):
            if schema is not None and schema.get("strict"):
                if self._strict:
                    self._strict = False
                    logger.warning(
                        "%s refused a strict json_schema; sending it without strict (%s)", self.endpoint, text
                    )
                return True
            if schema is not None:
                if self._json_schema:
                    self._json_schema = False
                    logger.warning(
                        "%s refused json_schema; asking for json_object with the schema in the prompt", self.endpoint
                    )
                return True
        return False

    async def _invoke(self, request: Request[Any], conversation: list[tuple[str, str]], health: _Health) -> AIMessage:
        """One answer from the model: fallbacks on refusals, retries on transient failures."""
        attempt = 0
        while True:
            options = self._options(request)
            # Several endpoints take the calls in turn, so a retry goes to the next one.
            chat = self.chats[self._turn % len(self.chats)]
            self._turn += 1
            # An error names the endpoint that gave it (one of several, maybe).
            where = getattr(chat, "openai_api_base", None) or self.endpoint
            try:
                message = await chat.ainvoke(_messages(self._conversation(request, conversation)), **options)
            except openai.APIError as error:
                if self._fall_back(error, request, options):
                    continue
                if (fatal := _fatal(error, where)) is not None:
                    if request.options is not None and "logprob" in fatal.problem.lower():
                        raise LLMBadRequestError(
                            fatal.problem,
                            endpoint=where,
                            status=fatal.status,
                            hint="this endpoint gives no token log-probabilities: use --representation comp",
                        ) from error
                    raise fatal from error
                await asyncio.sleep(health.delay(error, attempt))
                attempt += 1
                continue
            except json.JSONDecodeError as error:  # a body that is not JSON (a proxy's error page): transient
                await asyncio.sleep(health.delay(_Junk(f"the answer was not JSON ({error})"), attempt))
                attempt += 1
                continue
            except openai.LengthFinishReasonError as error:
                # The answer reached max_tokens and the SDK's parser refuses it: a cut answer, re-asked
                # like one that does not fit.
                health.succeeded()
                return _cut_answer(error.completion)
            health.succeeded()
            assert isinstance(message, AIMessage)
            return message

    async def _ask_model(
        self, request: Request[T], usage: StageUsage, health: _Health
    ) -> tuple[T | None, tuple[int, int]]:
        conversation = list(request.messages)
        tokens = (0, 0)
        for _ in range(1 + self.validation_retries):
            message = await self._invoke(request, conversation, health)
            usage.calls += 1
            meta = getattr(message, "usage_metadata", None) or {}
            usage.prompt_tokens += meta.get("input_tokens", 0)
            usage.completion_tokens += meta.get("output_tokens", 0)
            tokens = (tokens[0] + meta.get("input_tokens", 0), tokens[1] + meta.get("output_tokens", 0))
            if request.options is not None:
                choice = _choice(message, request.options)
                if choice is None:
                    logger.info("no option of %s among the answer's top tokens: %r", request.options, message.content)
                return choice, tokens  # type: ignore[return-value]  # schema is Choice for option requests
            raw = message.content if isinstance(message.content, str) else json.dumps(message.content)
            try:
                return _parse(raw, request.schema), tokens
            except (ValidationError, ValueError) as error:
                cut = (message.response_metadata or {}).get("finish_reason") == "length"
                conversation += [("assistant", raw), ("user", _CUT_FEEDBACK if cut else _feedback(error))]
        logger.info("no valid answer after %d re-asks (stage %s): %.200s", self.validation_retries, request.stage, raw)
        self._last_invalid = raw
        return None, tokens

    async def ask_many(
        self, requests: Mapping[str, Request[T]], tick: Callable[[str], None], keep: Callable[[CachedCall], None]
    ) -> dict[str, T | None]:
        """Answer every request (by key) from the model, calling ``tick(key)`` as each one is done. The
        first error that stops the stage cancels the calls still going."""
        semaphore = asyncio.Semaphore(self.max_concurrency)
        health = _Health(self.policy, self.endpoint)

        async def one(key: str) -> T | None:
            async with semaphore:
                answer = await self.ask(requests[key], key, health, keep)
            tick(key)
            return answer

        try:
            async with asyncio.TaskGroup() as group:
                tasks = {key: group.create_task(one(key)) for key in requests}
        except BaseExceptionGroup as failures:
            raise _first_error(failures) from None
        return {key: task.result() for key, task in tasks.items()}

    def run(self, requests: Sequence[Request[T]], progress: Progress | None = None) -> list[T | None]:
        """Synchronous entry point: answer every request (None where no valid answer came).

        Every run of the process goes through one long-lived event loop: chat clients pool their HTTP
        connections per loop, and a fresh loop per run would find the pooled ones bound to a closed loop.
        ``progress`` is called on the caller's thread (rich displays and MCP relays expect that), with
        the requests' stage, from 0 to their number.
        """
        if self.batch_out is not None:
            self._write_batch(requests)
        keys = [self.key(r) for r in requests]
        distinct = dict(zip(keys, requests, strict=True))  # identical requests are asked once
        answered: dict[str, T | None] = dict(self._from_cache(distinct))
        for key in answered:
            self.usage.stage(distinct[key].stage).cached += 1
        todo = {key: r for key, r in distinct.items() if key not in answered}
        report = progress or silent
        if requests:  # before any call starts: a progress that raises here leaves nothing in flight
            report(requests[0].stage, 0, len(requests))
        if todo:
            copies = Counter(keys)
            done = len(requests) - sum(copies[key] for key in todo)  # answered from the cache

            def tick(key: str) -> None:
                nonlocal done
                done += copies[key]
                report(requests[0].stage, done, len(requests))

            if done:
                report(requests[0].stage, done, len(requests))
            answered |= self._ask_todo(todo, tick)
        answers = [answered[key] for key in keys]
        if requests and all(answer is None for answer in answers):
            stage = requests[0].stage
            raise LLMAnswerError(
                f"not one of the {len(requests)} {stage} answers fit its schema after {self.validation_retries} "
                f"re-asks (the last: {self._last_invalid[:160]!r}); nothing of this stage was stored",
                endpoint=self.endpoint,
                hint="a stronger model follows the schema better; re-running asks again (invalid answers are not kept)",
            )
        return answers

    def _ask_todo(self, todo: dict[str, Request[T]], tick: Callable[[str], None]) -> dict[str, T | None]:
        """The model's answers to requests not in the cache, asked on the shared event loop. Answers are
        written to the cache here, on the caller's thread (which owns the store), a batch at a time:
        the loop only queues them."""
        ticks: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        kept: queue.SimpleQueue[CachedCall] = queue.SimpleQueue()
        started, finished = threading.Event(), threading.Event()
        writer = _CacheWriter(self.store, kept)

        async def ask_all() -> dict[str, T | None]:
            started.set()
            try:
                return await self.ask_many(todo, ticks.put, kept.put)
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(ask_all(), _shared_loop())
        future.add_done_callback(lambda _: ticks.put(None))
        try:
            while (key := ticks.get()) is not None:
                writer.write()
                tick(key)
            answers = future.result()
        except BaseException:  # Ctrl-C, a cancellation or an error in ``progress``: stop the calls
            future.cancel()
            # Wait until the calls in flight have stopped, then keep every answer paid for: the caller
            # may close the store as soon as this returns.
            if started.is_set():
                finished.wait(_STOP_WAIT)
            writer.write(everything=True)
            raise
        writer.write(everything=True)
        return answers

    def batch_body(self, request: Request[Any]) -> dict[str, Any]:
        """The chat completion request an endpoint would get, as a batch file's ``body``."""
        messages = [
            {"role": role, "content": content} for role, content in self._conversation(request, [*request.messages])
        ]
        return {"model": self.served_model, "messages": messages, **self._options(request)}

    def _write_batch(self, requests: Sequence[Request[Any]]) -> None:
        """Write the requests not answered yet to the batch file and stop the stage (BatchWritten); with
        every one answered, the stage goes on from the cache."""
        assert self.batch_out is not None
        distinct = {self.key(r): r for r in requests}
        answered = self._from_cache(distinct)
        todo = {key: r for key, r in distinct.items() if key not in answered}
        if not todo:
            return
        if self.store is None:
            raise LLMConfigurationError(
                "batch files need a store to keep their requests pending", endpoint=self.endpoint
            )
        lines: list[tuple[str, dict[str, Any], PendingRequest, Any]] = [
            (
                key,
                self.batch_body(r),
                PendingRequest(
                    stage=r.stage,
                    json_schema=None if r.options is not None else json_schema(r.schema),
                    options=None if r.options is None else list(r.options),
                ),
                {"messages": [list(m) for m in r.messages], "schema": r.schema.__name__},
            )
            for key, r in todo.items()
        ]
        written = write_batch(self.store, self.batch_out, self.name, lines)
        raise BatchWritten(self.batch_out, requests[0].stage, written, len(answered))


def _first_error(failures: BaseExceptionGroup) -> BaseException:
    """The error to report from a group: an LLM error if there is one, else the first."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [failures]
    while stack:
        error = stack.pop(0)
        if isinstance(error, BaseExceptionGroup):
            stack = list(error.exceptions) + stack
        else:
            flat.append(error)
    return next((e for e in flat if isinstance(e, LLMError)), flat[0])


_STOP_WAIT = 30.0  # seconds to wait for cancelled calls to stop
_WRITE_EVERY = 1.0  # seconds between two cache writes of a stage, at most...
_WRITE_BATCH = 256  # ...unless this many answers wait


class _CacheWriter:
    """Writes the answers queued by the event loop to the store in batches (one transaction each)."""

    def __init__(self, store: ConceptStore | None, kept: queue.SimpleQueue[CachedCall]) -> None:
        self.store, self.kept = store, kept
        self.waiting: list[CachedCall] = []
        self.last = time.monotonic()

    def write(self, *, everything: bool = False) -> None:
        while not self.kept.empty():
            self.waiting.append(self.kept.get())
        due = len(self.waiting) >= _WRITE_BATCH or time.monotonic() - self.last >= _WRITE_EVERY
        if self.waiting and (everything or due):
            if self.store is not None:
                self.store.cache_calls(self.waiting)
            self.waiting, self.last = [], time.monotonic()


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _shared_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="whypref-llm", daemon=True).start()
        return _loop


_CUT_FEEDBACK = (
    "Your answer was cut off at the length limit. Reply again with only the JSON object, shorter: brief strings."
)


def _cut_answer(completion: Any) -> AIMessage:
    """The text of a completion that stopped at its token limit, as a message (with its usage)."""
    usage = completion.usage
    tokens = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
    return AIMessage(
        content=completion.choices[0].message.content or "" if completion.choices else "",
        response_metadata={"finish_reason": "length"},
        usage_metadata={"input_tokens": tokens[0], "output_tokens": tokens[1], "total_tokens": sum(tokens)},
    )


def _feedback(error: Exception) -> str:
    if isinstance(error, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in error.errors()[:8])
    else:
        problems = str(error)
    return f"Your answer did not match the required JSON schema ({problems}). Reply again with only the JSON object."


def chat_model(settings: Settings) -> tuple[list[BaseChatModel], str, str]:
    """(ChatOpenAI per endpoint, model id, endpoint) for the configured endpoints, or for the embedded
    local model.

    Retries are whypref's own (``RetryPolicy``), so the client's are off. Several endpoints share one
    rate limit.
    """
    from langchain_openai import ChatOpenAI

    limiter = None
    if settings.requests_per_minute:
        from langchain_core.rate_limiters import InMemoryRateLimiter

        limiter = InMemoryRateLimiter(requests_per_second=settings.requests_per_minute / 60.0, max_bucket_size=1)
    if settings.base_url:
        key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
        chats: list[BaseChatModel] = [
            ChatOpenAI(
                base_url=url,
                api_key=key,  # type: ignore[arg-type]
                model=settings.model,
                max_retries=0,
                timeout=settings.call_timeout(embedded=False),
                rate_limiter=limiter,
            )
            for url in settings.base_urls
        ]
        # The cache and the annotator name key on the model, not on where it is served from.
        return chats, settings.model_label or settings.model, ", ".join(settings.base_urls)
    from tools.embedded import start_embedded

    server = start_embedded(settings)
    chat = ChatOpenAI(
        base_url=server.base_url,
        api_key="local",  # type: ignore[arg-type]
        model="local",
        max_retries=0,
        timeout=settings.call_timeout(embedded=True),
    )
    return [chat], server.model_id, f"embedded {server.model_id} ({server.base_url})"
