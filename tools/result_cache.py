"""Analyses kept in the store by what they were computed from: a repeated one is read, not redone.

A key names every input and the code (a digest of the library's source: any other version or edit
counts), so what other code computed is computed again, never reused as if this code had (as
joblib.Memory checks a function's code). Results are deterministic (seeded): a stored one is the one
the code would return.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydantic import BaseModel

from tools.store import ConceptStore, content_key

R = TypeVar("R", bound=BaseModel)


@cache
def code_version() -> str:
    library = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(library.rglob("*.py")):
        digest.update(path.relative_to(library).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def array_digest(*arrays: np.ndarray) -> str:
    """A digest of the arrays' types, shapes and values."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def stored_result(
    store: ConceptStore, kind: str, inputs: Sequence[object], result_type: type[R], compute: Callable[[], R]
) -> R:
    """``compute()``, or what it returned before for the same inputs (JSON values) and code."""
    key = content_key([kind, code_version(), *inputs])
    stored = store.result(key)
    if stored is not None:
        return result_type.model_validate_json(stored)
    result = compute()
    store.save_result(key, kind, result.model_dump_json())
    return result
