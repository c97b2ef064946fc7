"""The result cache: a job identical to a finished one (same filled graph, fixed seed included, and the same input
image bytes) reuses that job's output instead of running again.

`cache_key` is pure. `ResultCache` keeps `cs:result:{key}` (a hash: the job that made the output and its files'
names, sizes and SHA-256) for as long as outputs are kept; a hit counts only if every file is still there,
unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis

from comfystudio_desktop.queue.connection import ResilientRedis

__all__ = ["CACHE_PREFIX", "CachedOutput", "CachedResult", "ResultCache", "cache_key", "file_digest"]

log = logging.getLogger(__name__)

CACHE_PREFIX = "cs:result:"
_JOB_PLACEHOLDER = "\x00job\x00"  # cannot occur in a job's text (NUL is refused): no collision with user text
_HEX64 = re.compile(r"[0-9a-f]{64}")
_OUTPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\.png")
_MAX_OUTPUTS = 64


def cache_key(graph: Mapping[str, Any], job_id: str, inputs: Mapping[str, bytes]) -> str:
    """SHA-256 of the graph in canonical form (the job's own id, in file names and prefixes, taken out) and of
    each input image's bytes by slot."""
    canonical = json.dumps(_without_id(graph, job_id), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8"))
    for slot in sorted(inputs):
        digest.update(f"\x00{slot}\x00".encode())
        digest.update(hashlib.sha256(inputs[slot]).digest())
    return digest.hexdigest()


def _without_id(value: Any, job_id: str) -> Any:
    if isinstance(value, str):
        return value.replace(job_id, _JOB_PLACEHOLDER)
    if isinstance(value, dict):
        return {key: _without_id(item, job_id) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_id(item, job_id) for item in value]
    return value


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class CachedOutput:
    """One output file of a cached result."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class CachedResult:
    """What a finished job left: its id and its output files."""

    job_id: str
    outputs: tuple[CachedOutput, ...]


class ResultCache:
    """Cache entries on the queue's Redis."""

    def __init__(self, conn: ResilientRedis) -> None:
        self.conn = conn

    def lookup(self, key: str) -> CachedResult | None:
        """The entry for `key`, or None (also for an entry another tool garbled)."""
        raw = cast(dict[str, str], self.conn.call(lambda c: c.hgetall(CACHE_PREFIX + key)))
        return _parse_entry(raw) if raw else None

    def store(self, key: str, job_id: str, folder: Path, names: tuple[str, ...], ttl_s: int) -> None:
        """Remember the outputs `names` (in `folder`) of `job_id` under `key` for `ttl_s` seconds."""
        outputs = [{"name": name, "size": (folder / name).stat().st_size, "sha256": file_digest(folder / name)}
                   for name in names]
        listed = json.dumps(outputs, separators=(",", ":"))

        def write(c: redis.Redis) -> Any:
            pipe = c.pipeline(transaction=True)
            pipe.delete(CACHE_PREFIX + key)
            pipe.hset(CACHE_PREFIX + key, "job_id", job_id)
            pipe.hset(CACHE_PREFIX + key, "outputs", listed)
            pipe.expire(CACHE_PREFIX + key, ttl_s)
            return pipe.execute()

        self.conn.call(write)

    def forget(self, key: str) -> None:
        """Drop an entry whose files are gone or changed."""
        self.conn.call(lambda c: c.delete(CACHE_PREFIX + key))


def _parse_entry(raw: Mapping[str, str]) -> CachedResult | None:
    try:
        items = json.loads(raw.get("outputs", ""))
    except (ValueError, RecursionError):
        return None
    if not isinstance(items, list) or not 0 < len(items) <= _MAX_OUTPUTS:
        return None
    outputs: list[CachedOutput] = []
    for item in items:
        if not isinstance(item, dict):
            return None
        name, size, sha = item.get("name"), item.get("size"), item.get("sha256")
        if not (isinstance(name, str) and _OUTPUT_NAME.fullmatch(name) and isinstance(size, int)
                and not isinstance(size, bool) and size >= 0 and isinstance(sha, str) and _HEX64.fullmatch(sha)):
            return None
        outputs.append(CachedOutput(name, size, sha))
    return CachedResult(job_id=raw.get("job_id", ""), outputs=tuple(outputs))
