"""Batch files through an endpoint's Batch API (OpenAI's ``/v1/files`` and ``/v1/batches``): submit a
file that ``--batch-out`` wrote, follow the batch, and bring its results into the cache when it is done.

Only for endpoints that offer the Batch API (OpenAI, and servers that copy it); with ``vllm run-batch``
there is nothing to submit: run the file and ``whypref batch import`` its output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
from pydantic import BaseModel, Field

from tools.errors import InputError, LLMConfigurationError, LLMUnavailableError, WhyprefError
from tools.settings import Settings

FINISHED = ("completed", "failed", "expired", "cancelled")


class BatchJob(BaseModel):
    """A batch at the endpoint, as it last said."""

    id: str
    status: str = Field(
        description="validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled"
    )
    total: int = 0
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[str] = Field(default_factory=list, description="Why the endpoint refused the batch, if it did.")

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _client(settings: Settings) -> tuple[openai.OpenAI, str]:
    if not settings.base_urls:
        raise LLMConfigurationError(
            "the Batch API is an endpoint's: set WHYPREF_BASE_URL (and WHYPREF_API_KEY)", endpoint="none"
        )
    url = settings.base_urls[0]
    key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
    return openai.OpenAI(base_url=url, api_key=key, max_retries=2, timeout=settings.call_timeout(embedded=False)), url


@contextmanager
def _calling(url: str) -> Iterator[None]:
    """The endpoint's own error, named, instead of the SDK's."""
    try:
        yield
    except openai.APIStatusError as error:
        raise LLMConfigurationError(
            f"the Batch API answered {error.status_code}: {error.message}",
            endpoint=url,
            status=error.status_code,
            hint="the endpoint may not offer the Batch API: run the file yourself (e.g. vllm run-batch) and "
            "`whypref batch import` its output",
        ) from error
    except openai.APIConnectionError as error:
        raise LLMUnavailableError(f"no connection to the Batch API ({error})", endpoint=url) from error


def _job(batch: openai.types.Batch) -> BatchJob:
    counts = batch.request_counts
    return BatchJob(
        id=batch.id,
        status=batch.status,
        total=counts.total if counts else 0,
        completed=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        errors=[e.message or e.code or "" for e in (batch.errors.data or [])] if batch.errors else [],
    )


def submit(settings: Settings, path: Path) -> BatchJob:
    """Upload a batch input file (as ``--batch-out`` writes it) and start its batch."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    client, url = _client(settings)
    with _calling(url), path.open("rb") as data:
        uploaded = client.files.create(file=(path.name, data), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",  # CHAT_URL, as the SDK's type spells it
            completion_window="24h",  # the only window the Batch API offers
        )
    return _job(batch)


def status(settings: Settings, batch_id: str) -> BatchJob:
    client, url = _client(settings)
    with _calling(url):
        return _job(client.batches.retrieve(batch_id))


def download(settings: Settings, job: BatchJob, out: Path) -> Path:
    """Write a finished batch's results (answers, then the failed lines) to ``out``, one result per line:
    what ``whypref batch import`` reads."""
    if not job.finished:
        raise WhyprefError(f"batch {job.id} is {job.status}: its results are not ready")
    client, url = _client(settings)
    with _calling(url):
        contents = [client.files.content(f).read() for f in (job.output_file_id, job.error_file_id) if f]
    out.write_bytes(b"".join(c if not c or c.endswith(b"\n") else c + b"\n" for c in contents))
    return out
