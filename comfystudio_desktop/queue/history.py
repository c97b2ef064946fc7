"""The lasting history of ended jobs: kept as long as their outputs, searchable, with favourites.

Layout in Redis:

- `cs:history:inbox` (hash id → JSON of the job's status hash): written by the queue's Lua scripts in the same
  step that ends a job, so no ended job is missed even if nobody files it before its record expires.
- `cs:history` (hash id → compact entry JSON, see `history_entry.py`), filed from the inbox by `sync()`.
- Indexes, sorted sets scored by the end time in ms (newest first is a reverse range): `cs:history:time` (all),
  `cs:history:w:{word}` (prompt words), `cs:history:m:{model}`, `cs:history:s:{status}`, `cs:history:seed:{n}`
  and `cs:history:fav` (favourites).

A search with one filter reads its index directly (ZCOUNT and ZREVRANGEBYSCORE ... LIMIT within the date range).
With several, one Lua script walks the smallest index newest first, checking the others with ZSCORE, and stops once
the page is full (the total is then estimated from the share that matched); if a few thousand entries gave no full
page the matches are sparse, and the same script intersects the indexes in C (ZINTERSTORE into a temporary key,
read, DEL, none of it propagated to the AOF), whose result is then small. Measured on 100,000 entries
(bench/history.py): counting every match by walking took 235 ms for two common words, ZINTERSTORE in a MULTI for
every search 71 ms p50 (building a 30,000-member result, and an fsync'd AOF write per search); the mix stays in
the tens of ms for dense and sparse matches alike.

Entries older than the output retention are pruned with their index entries; favourites never are.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis
from redis.client import NEVER_DECODE

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.history_entry import HistoryEntry, entry_from_record, parse_entry, search_words
from comfystudio_desktop.queue.job_records import decode_hash, record_from_hash, reply_text

__all__ = ["FAVOURITES_KEY", "HISTORY_KEY", "INBOX_KEY", "TIME_KEY", "History", "HistoryPage", "HistoryQuery",
           "StarOutcome"]

log = logging.getLogger(__name__)

HISTORY_KEY = "cs:history"
INBOX_KEY = "cs:history:inbox"
TIME_KEY = "cs:history:time"
FAVOURITES_KEY = "cs:history:fav"
WORD_PREFIX = "cs:history:w:"
MODEL_PREFIX = "cs:history:m:"
STATUS_INDEX_PREFIX = "cs:history:s:"
SEED_PREFIX = "cs:history:seed:"
TEMP_PREFIX = "cs:history:tmp:"
_BATCH = 500
MAX_LIMIT = 1_000

# Walk the smallest of the indexes (KEYS but the last, at least two) newest first within the score range, checking
# membership in the others, until the page is full or `budget` entries were looked at; then the matches are sparse
# and ZINTERSTORE into the temporary key (the last KEY) counts them in C, its small result read and deleted at once.
# That write is never propagated (set_repl REPL_NONE): nothing reaches the fsync'd AOF, and no one can see the key.
# ARGV: min_ms, max_ms, offset, limit, budget. Returns {exact (1|0), total, id, ...}; an estimated total (0) comes
# from the share of the walked entries that matched.
SEARCH = """
local lo, hi = ARGV[1], ARGV[2]
local offset, limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local indexes, temp = {}, KEYS[#KEYS]
for i = 1, #KEYS - 1 do indexes[i] = KEYS[i] end
local best, best_n = nil, -1
for _, k in ipairs(indexes) do
  local n = redis.call('ZCOUNT', k, lo, hi)
  if best == nil or n < best_n then best, best_n = k, n end
end
local others = {}
for _, k in ipairs(indexes) do if k ~= best then others[#others + 1] = k end end
local first = redis.call('ZCOUNT', best, '(' .. hi, '+inf')
local out, matches, walked = {1, 0}, 0, 0
while walked < best_n do
  if walked >= budget then
    if redis.replicate_commands then redis.replicate_commands() end  -- Redis < 7: effects replication first
    redis.set_repl(redis.REPL_NONE)
    redis.call('ZINTERSTORE', temp, #indexes, unpack(indexes))
    local ids = redis.call('ZREVRANGEBYSCORE', temp, hi, lo, 'LIMIT', offset, limit)
    local total = redis.call('ZCOUNT', temp, lo, hi)
    redis.call('DEL', temp)
    table.insert(ids, 1, total)
    table.insert(ids, 1, 1)
    return ids
  end
  local stop = math.min(best_n, walked + math.min(256, budget)) - 1
  for _, id in ipairs(redis.call('ZREVRANGE', best, first + walked, first + stop)) do
    local match = true
    for _, k in ipairs(others) do
      if not redis.call('ZSCORE', k, id) then match = false break end
    end
    if match then
      matches = matches + 1
      if matches > offset and #out - 2 < limit then out[#out + 1] = id end
    end
  end
  walked = stop + 1
  if #out - 2 >= limit and walked < best_n then
    out[1], out[2] = 0, math.floor(matches * best_n / walked + 0.5)
    return out
  end
end
out[2] = matches
return out
"""
# KEYS: inbox; ARGV: field, value, field, value, ... Removes each inbox record that still holds the value filed.
UNFILE = """
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 0
"""
WALK_BUDGET = 4_096  # entries a walk may look at (besides twice the page's end) before an intersection is cheaper


class StarOutcome(StrEnum):
    """The result of starring or unstarring a job."""

    STARRED = "starred"
    UNSTARRED = "unstarred"
    NOT_IN_HISTORY = "not_in_history"  # unknown, or not ended yet


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """What to look for; every filter given must match (words: all of them, whole words, any case)."""

    text: str = ""
    model: str = ""
    seed: int | None = None
    status: JobStatus | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    favourites: bool = False
    offset: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a search, newest first, and how many entries match in all (`total_exact`: counted, or else
    estimated from the part of the index a walk looked at)."""

    entries: tuple[HistoryEntry, ...]
    total: int
    total_exact: bool = True


class History:
    """Files, searches, stars and prunes the history of ended jobs. Safe to share between threads."""

    def __init__(self, conn: ResilientRedis, *, walk_budget: int = WALK_BUDGET) -> None:
        self.conn = conn
        self.walk_budget = walk_budget
        self._search = conn.client.register_script(SEARCH)
        self._unfile = conn.client.register_script(UNFILE)

    # -- filing ------------------------------------------------------------------------------------------
    def sync(self) -> int:
        """File every ended job waiting in the inbox; return how many entries were written."""
        filed = 0
        cursor = 0
        while True:
            reply: Any = self._read("HSCAN", INBOX_KEY, cursor, "COUNT", _BATCH)
            cursor, raw = int(reply[0]), reply[1]
            if isinstance(raw, list):  # without redis-py's reply parsing: [field, value, ...]
                raw = dict(zip(raw[::2], raw[1::2], strict=True))
            if raw:
                filed += self.file(raw)
            if cursor == 0:
                return filed

    def file(self, records: Mapping[bytes, bytes]) -> int:
        """File inbox records (job id → the JSON its Lua step wrote) as entries; return how many became entries.

        Each record leaves the inbox only if it is unchanged: a job that ended again meanwhile is filed next time.
        """
        entries = [e for f, v in records.items() if (e := _inbox_entry(f, v)) is not None]
        self._write(entries, filed_records=records)
        return len(entries)

    def add(self, entries: Sequence[HistoryEntry]) -> None:
        """Write entries (an import, a benchmark); an existing entry with the same id is replaced."""
        for start in range(0, len(entries), _BATCH):
            self._write(entries[start:start + _BATCH])

    def _write(self, entries: Sequence[HistoryEntry], filed_records: Mapping[bytes, bytes] | None = None) -> None:
        old = self._entries([e.job_id for e in entries]) if entries else {}

        def write(c: redis.Redis) -> None:
            pipe = c.pipeline(transaction=True)
            for entry in entries:
                previous = old.get(entry.job_id)
                if previous is not None:
                    for key in _index_keys(previous):
                        pipe.zrem(key, entry.job_id)
                pipe.hset(HISTORY_KEY, entry.job_id, entry.to_json())
                for key in _index_keys(entry):
                    pipe.zadd(key, {entry.job_id: entry.ended_ms})
                pipe.zadd(FAVOURITES_KEY, {entry.job_id: entry.ended_ms}, xx=True)
            if filed_records:
                pairs = [item for pair in filed_records.items() for item in pair]
                self._unfile(keys=[INBOX_KEY], args=pairs, client=pipe)
            pipe.execute()

        self.conn.call(write)

    # -- reading -----------------------------------------------------------------------------------------
    def search(self, query: HistoryQuery = HistoryQuery()) -> HistoryPage:
        """The entries matching `query`, newest first, with the total count."""
        keys = _query_keys(query)
        lo = "-inf" if query.since_ms is None else query.since_ms
        hi = "+inf" if query.until_ms is None else query.until_ms
        limit = max(0, min(query.limit, MAX_LIMIT))
        offset = max(0, query.offset)

        args = [lo, hi, offset, limit]
        exact = True
        if len(keys) == 1:
            total, ids = self._read_index(keys[0], args)
        else:
            budget = self.walk_budget + 2 * (offset + limit)  # a deep page is still cheaper to walk to
            temp = f"{TEMP_PREFIX}{secrets.token_hex(8)}"
            reply = self.conn.call(lambda c: self._search(keys=[*keys, temp], args=[*args, budget], client=c))
            exact, total, ids = int(reply[0]) == 1, int(reply[1]), [reply_text(i) for i in reply[2:]]
        found = self._entries(ids, with_favourites=True)
        return HistoryPage(tuple(found[i] for i in ids if i in found), total, exact)

    def _read_index(self, key: str, args: list[Any]) -> tuple[int, list[str]]:
        lo, hi, offset, limit = args

        def run(c: redis.Redis) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            pipe.zcount(key, lo, hi)
            _undecoded(pipe, "ZREVRANGEBYSCORE", key, hi, lo, "LIMIT", offset, limit)
            return pipe.execute()

        total, ids = self.conn.call(run)
        return int(total), [reply_text(i) for i in ids]

    def get(self, job_id: str) -> HistoryEntry | None:
        """One job's entry, or None."""
        return self._entries([job_id], with_favourites=True).get(job_id)

    def count(self) -> int:
        """How many entries the history holds."""
        return int(self.conn.call(lambda c: c.zcard(TIME_KEY)))

    def favourite_ids(self) -> set[str]:
        """The ids of every starred job (their outputs are never cleaned up)."""
        return {reply_text(i) for i in self._read("ZRANGE", FAVOURITES_KEY, 0, -1)}

    def _entries(self, ids: Sequence[str], *, with_favourites: bool = False) -> dict[str, HistoryEntry]:
        if not ids:
            return {}

        def fetch(c: redis.Redis) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            _undecoded(pipe, "HMGET", HISTORY_KEY, *ids)
            if with_favourites:
                for job_id in ids:
                    pipe.zscore(FAVOURITES_KEY, job_id)
            return pipe.execute()

        raw, *stars = self.conn.call(fetch)
        found: dict[str, HistoryEntry] = {}
        for index, (job_id, data) in enumerate(zip(ids, raw, strict=True)):
            if data is None:
                continue
            entry = parse_entry(data, job_id)
            if entry is not None:
                found[job_id] = entry.with_favourite(bool(stars) and stars[index] is not None)
        return found

    # -- favourites and retention ------------------------------------------------------------------------
    def star(self, job_id: str) -> StarOutcome:
        """Mark an ended job as a favourite: kept in the history and its output kept on disk, for good."""
        entry = self._entries([job_id]).get(job_id)
        if entry is None:
            return StarOutcome.NOT_IN_HISTORY
        self.conn.call(lambda c: c.zadd(FAVOURITES_KEY, {job_id: entry.ended_ms}))
        log.info("Job %r starred", job_id)
        return StarOutcome.STARRED

    def unstar(self, job_id: str) -> StarOutcome:
        """Remove the star; the entry and its output then follow the retention again."""
        if not self.conn.call(lambda c: c.hexists(HISTORY_KEY, job_id)):
            return StarOutcome.NOT_IN_HISTORY
        self.conn.call(lambda c: c.zrem(FAVOURITES_KEY, job_id))
        log.info("Job %r unstarred", job_id)
        return StarOutcome.UNSTARRED

    def prune(self, retention_days: int, *, now: float | None = None) -> int:
        """Drop entries that ended more than `retention_days` ago, favourites excepted; return how many."""
        cutoff = int(((time.time() if now is None else now) - retention_days * 86_400) * 1000)
        favourites = self.favourite_ids()
        ids = [i for i in (reply_text(r) for r in self._read("ZRANGEBYSCORE", TIME_KEY, "-inf", f"({cutoff}"))
               if i not in favourites]
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start:start + _BATCH]
            entries = self._entries(chunk)

            def drop(c: redis.Redis, chunk: list[str] = chunk, entries: dict[str, HistoryEntry] = entries) -> None:
                pipe = c.pipeline(transaction=True)
                for job_id in chunk:
                    entry = entries.get(job_id)
                    for key in _index_keys(entry) if entry is not None else [TIME_KEY]:
                        pipe.zrem(key, job_id)
                    pipe.zrem(TIME_KEY, job_id)
                    pipe.hdel(HISTORY_KEY, job_id)
                pipe.execute()

            self.conn.call(drop)
        if ids:
            log.info("History: %d entr%s past the retention removed", len(ids), "y" if len(ids) == 1 else "ies")
        return len(ids)

    def _read(self, *command: Any) -> Any:
        return self.conn.call(lambda c: _undecoded(c, *command))


def _index_keys(entry: HistoryEntry) -> list[str]:
    keys = [TIME_KEY, STATUS_INDEX_PREFIX + entry.status.value, MODEL_PREFIX + entry.job.model]
    keys.extend(WORD_PREFIX + w for w in search_words(entry.job.prompt))
    seed = entry.seed_used if entry.seed_used is not None else entry.job.seed
    if seed >= 0:
        keys.append(f"{SEED_PREFIX}{seed}")
    return keys


def _query_keys(query: HistoryQuery) -> list[str]:
    """The indexes a query intersects (all entries when it filters nothing)."""
    keys = [WORD_PREFIX + w for w in search_words(query.text)]  # punctuation alone is no filter
    if query.model:
        keys.append(MODEL_PREFIX + query.model)
    if query.status is not None:
        keys.append(STATUS_INDEX_PREFIX + query.status.value)
    if query.seed is not None:
        keys.append(f"{SEED_PREFIX}{query.seed}")
    if query.favourites:
        keys.append(FAVOURITES_KEY)
    return keys or [TIME_KEY]


def _inbox_entry(field: bytes, value: bytes) -> HistoryEntry | None:
    """An inbox record (the JSON array of a status hash's fields and values) as an entry, or None."""
    job_id = reply_text(field)
    try:
        flat = json.loads(reply_text(value))
    except (ValueError, RecursionError):
        flat = None
    if not isinstance(flat, list) or len(flat) % 2 or not all(isinstance(x, str) for x in flat):
        log.warning("History inbox record %r skipped: not a list of fields", job_id)
        return None
    data = decode_hash(dict(zip(flat[::2], flat[1::2], strict=True)))
    return entry_from_record(record_from_hash(data), fallback_ms=int(time.time() * 1000))


def _undecoded(client: Any, *command: Any) -> Any:
    return client.execute_command(*command, **{NEVER_DECODE: True})


