"""The library's exception types: one base, so callers can catch everything whypref raises."""

from __future__ import annotations

from pathlib import Path


class WhyprefError(Exception):
    """Base class of every error whypref raises on purpose."""


class InputError(WhyprefError):
    """Bad input: names the file, the line (or record) and the field, so the user can fix it."""

    def __init__(
        self,
        problem: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = Path(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file) + (f", line {self.line}" if self.line is not None else ""))
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{': '.join(where)}: {self.problem}" if where else self.problem


class StoreError(WhyprefError):
    """The concept store cannot be opened or does not hold what was asked for."""


class LLMError(WhyprefError):
    """An LLM stage could not get its answers. The message carries the endpoint's own words and a hint.

    Everything answered before the error is already cached in the store: a re-run resumes there.
    """

    def __init__(self, problem: str, *, endpoint: str, status: int | None = None, hint: str = "") -> None:
        self.problem, self.endpoint, self.status, self.hint = problem, endpoint, status, hint
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"LLM endpoint {endpoint}{code}: {problem}" + (f". Hint: {hint}" if hint else ""))


class LLMConfigurationError(LLMError):
    """The endpoint cannot be used as configured (base URL, model name, unsupported request)."""


class LLMAuthenticationError(LLMConfigurationError):
    """The endpoint refused the credentials (HTTP 401 / 403)."""


class LLMNotFoundError(LLMConfigurationError):
    """The endpoint has no such model or path (HTTP 404)."""


class LLMBadRequestError(LLMConfigurationError):
    """The endpoint rejected the request itself (HTTP 400 / 422), and no fallback applies."""


class LLMUnavailableError(LLMError):
    """Transient failures (rate limits, 5xx, timeouts, refused connections) outlasted the retries."""


class LLMAnswerError(LLMError):
    """The endpoint answered, but not one answer of a stage fit its schema (after the re-asks)."""
