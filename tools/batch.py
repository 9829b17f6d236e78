"""Batch files for the LLM stages: a stage's uncached requests written as an OpenAI Batch API input
file (``vllm run-batch`` reads the same JSONL), and a results file read back into the store's cache.

The custom id of every request is its cache key, so importing the results makes a re-run of the stage
find every answer in the cache and make no call. Until then the request waits in the cache as pending
(with the JSON schema its answer must fit); an answer that does not fit, or a line that failed, is
reported and stays pending, so the next run writes it out again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import BaseModel, Field, JsonValue

from tools.errors import InputError, WhyprefError
from tools.store import CachedCall, ConceptStore

CHAT_URL = "/v1/chat/completions"
WRITE_CHUNK = 1000  # answers written to the cache at a time


class BatchWritten(WhyprefError):
    """A stage wrote its uncached requests to a batch file instead of calling the endpoint (not a failure:
    the stage resumes from the cache once the results are imported)."""

    def __init__(self, path: Path, stage: str, written: int, cached: int) -> None:
        self.path, self.stage, self.written, self.cached = path, stage, written, cached
        super().__init__(
            f"wrote {written} {stage} requests to {path} ({cached} already answered). Run the file with the "
            f"OpenAI Batch API or `vllm run-batch`, then `whypref batch import RESULTS`, and run this command "
            "again: it continues from the cache."
        )


class PendingRequest(BaseModel):
    """What a batch request's answer must be: JSON fitting ``json_schema``, or, for a one-token question
    over ``options``, the option probabilities read from the first token's log-probabilities."""

    stage: str
    json_schema: dict[str, JsonValue] | None = None
    options: list[str] | None = None


class ImportReport(BaseModel):
    lines: int
    cached: int = Field(description="Answers now in the cache.")
    already: int = Field(description="Lines whose request was answered before (left as they were).")
    problems: list[str] = Field(description="Lines not cached, each with its line number and reason.")


def request_line(key: str, body: dict[str, Any]) -> str:
    """One line of an OpenAI Batch API input file."""
    return json.dumps({"custom_id": key, "method": "POST", "url": CHAT_URL, "body": body}, ensure_ascii=False)


def write_batch(
    store: ConceptStore,
    path: Path,
    model: str,
    lines: Sequence[tuple[str, dict[str, Any], PendingRequest, Any]],
) -> int:
    """Append ``(key, body, pending, request)`` lines to ``path`` and keep each request as pending in the
    cache (a request already pending is written again: its earlier answer failed or never came)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            for key, body, _, _ in lines:
                out.write(request_line(key, body) + "\n")
    except OSError as error:  # before anything is kept as pending
        raise WhyprefError(f"{path}: cannot write the batch file ({error.strerror or error})") from error
    store.cache_calls(
        [
            CachedCall(key=key, model=model, request=request, response={"pending": pending.model_dump(mode="json")})
            for key, _, pending, request in lines
        ]
    )
    return len(lines)


def _content(body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    choices = body.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return None, []
    message = choices[0].get("message") or {}
    logprobs = (choices[0].get("logprobs") or {}).get("content") or []
    content = message.get("content")
    return (content if isinstance(content, str) else None), logprobs


def option_probabilities(first_token: dict[str, Any], options: Sequence[str]) -> dict[str, float] | None:
    """Probabilities of ``options`` among a token's top log-probabilities (case and spaces aside)."""
    mass = dict.fromkeys(options, 0.0)
    for candidate in first_token.get("top_logprobs") or []:
        token = str(candidate.get("token", "")).strip().lower()
        if token in mass:
            mass[token] += math.exp(float(candidate["logprob"]))
    total = sum(mass.values())
    return None if total <= 0 else {k: v / total for k, v in mass.items()}


def parse_json_answer(content: str) -> Any:
    """The JSON of an answer, inside a code fence or not."""
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return json.loads(text)


@cache
def _validator(schema: str) -> jsonschema.protocols.Validator:
    """A checked validator per schema: building one costs milliseconds, and answers are many."""
    loaded = json.loads(schema)
    kind = jsonschema.validators.validator_for(loaded)
    kind.check_schema(loaded)
    return kind(loaded)


def _answer(pending: PendingRequest, body: dict[str, Any]) -> JsonValue:
    """The parsed answer of one result body; ValueError says why it does not fit."""
    content, logprobs = _content(body)
    if pending.options is not None:
        probabilities = option_probabilities(logprobs[0], pending.options) if logprobs else None
        if probabilities is None:
            raise ValueError(f"no option of {pending.options} among the first token's log-probabilities")
        return {"probabilities": dict(probabilities)}
    if content is None:
        raise ValueError("the result has no message content")
    try:
        parsed = parse_json_answer(content)
    except json.JSONDecodeError as error:
        raise ValueError(f"the answer is not JSON ({error.msg})") from error
    if pending.json_schema is not None:
        misfit = jsonschema.exceptions.best_match(_validator(json.dumps(pending.json_schema)).iter_errors(parsed))
        if misfit is not None:
            raise ValueError(f"the answer does not fit its schema ({misfit.message})")
    return parsed


def import_results(store: ConceptStore, path: Path) -> ImportReport:
    """Read an OpenAI Batch API (or ``vllm run-batch``) output file into the cache; report every line
    that could not be cached (bad JSON, an error, an unknown id, an answer that does not fit)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    cached = already = lines = 0
    problems: list[str] = []
    answers: list[CachedCall] = []
    with store.atomic(), path.open(encoding="utf-8") as results:
        for number, raw in enumerate(results, 1):
            if not raw.strip():
                continue
            lines += 1
            where = f"{path}:{number}"
            try:
                line = json.loads(raw)
            except json.JSONDecodeError as error:
                problems.append(f"{where}: not JSON ({error.msg})")
                continue
            key = line.get("custom_id") if isinstance(line, dict) else None
            if not isinstance(key, str):
                problems.append(f"{where}: no custom_id")
                continue
            hit = store.cached_call(key)
            if hit is None:
                problems.append(f"{where}: custom_id {key} is no request of this store")
                continue
            response = hit.response if isinstance(hit.response, dict) else {}
            if "parsed" in response:
                already += 1
                continue
            result = line.get("response") or {}
            status = result.get("status_code")
            if line.get("error") or status != 200:
                failure = line.get("error") or (result.get("body") or {}).get("error") or f"status {status}"
                problems.append(f"{where}: the request failed: {json.dumps(failure)[:200]}")
                continue
            body = result.get("body") or {}
            try:
                answer = _answer(PendingRequest.model_validate(response.get("pending")), body)
            except ValueError as error:
                problems.append(f"{where}: {error}")
                continue
            usage = body.get("usage") or {}
            answers.append(
                hit.model_copy(
                    update={
                        "response": {"parsed": answer},
                        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                        "completion_tokens": int(usage.get("completion_tokens") or 0),
                    }
                )
            )
            if len(answers) == WRITE_CHUNK:
                store.cache_calls(answers)
                cached, answers = cached + len(answers), []
        store.cache_calls(answers)
    return ImportReport(lines=lines, cached=cached + len(answers), already=already, problems=problems)
