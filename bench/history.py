"""History search: 100,000 ended jobs, search latency per kind of query and the time to show the first page.

Fills the history of a fresh embedded redis-server (AOF, appendfsync always) with 100,000 entries (prompts from a
2,000-word vocabulary with a Zipf-like spread, 6 models, 30 days, 1 % favourites), then times each query kind
(p50/p95 over repeated runs; dense and sparse word pairs, filters combined) and the first page the
history view shows (sync + newest 100 entries). Beside them, a naive baseline: one full read and scan of every
entry for one word. Goals: search < 100 ms, first page < 300 ms.

    python bench/history.py [--entries N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import log, pct
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.history import HISTORY_KEY, History, HistoryPage, HistoryQuery
from comfystudio_desktop.queue.history_entry import HistoryEntry, parse_entry, search_words
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis

MODELS = ["sd15.safetensors", "sdxl_base.safetensors", "flux1-dev.safetensors", "juggernaut.safetensors",
          "dreamshaper.safetensors", "realvis.safetensors"]
DAY_MS = 86_400_000


def make_entries(count: int, rng: random.Random, now_ms: int) -> list[HistoryEntry]:
    vocabulary = [f"w{i}" for i in range(2000)]
    vocabulary[:10] = ["portrait", "cat", "red", "city", "night", "forest", "studio", "light", "blue", "castle"]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    statuses = [JobStatus.FINISHED] * 90 + [JobStatus.FAILED] * 7 + [JobStatus.CANCELLED] * 3
    entries = []
    for i in range(count):
        words = rng.choices(vocabulary, weights, k=rng.randint(8, 25))
        words.append("day" if i % 2 else "dusk")  # two common words that rarely meet: a sparse intersection
        if i % 200 == 0:
            words.append("dusk" if i % 2 else "day")
        job = Job(prompt=" ".join(words) + ", highly detailed", job_id=f"job-{i:06d}", model=rng.choice(MODELS),
                  seed=rng.randrange(2**32), created_at="2026-11-01T00:00:00+00:00")
        entries.append(HistoryEntry(job=job, status=rng.choice(statuses), ended_ms=now_ms - rng.randrange(30 * DAY_MS),
                                    seed_used=job.seed, image_url=f"/outputs/{job.job_id}.png",
                                    outputs=(f"{job.job_id}.png",)))
    return entries


def timed(run: Callable[[], object], runs: int) -> tuple[float, float, object]:
    samples, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = run()
        samples.append((time.perf_counter() - start) * 1000)
    return round(pct(samples, 50), 2), round(pct(samples, 95), 2), result


def naive_scan(history: History, word: str) -> int:
    raw = history.conn.client.hgetall(HISTORY_KEY)
    hits = 0
    for job_id, data in raw.items():
        entry = parse_entry(data, job_id.decode() if isinstance(job_id, bytes) else job_id)
        if entry is not None and word in search_words(entry.job.prompt):
            hits += 1
    return hits


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(2026)
    now_ms = int(time.time() * 1000)
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp)).create()
        server = EmbeddedRedis(home)
        endpoint = server.ensure_running()
        conn = ResilientRedis(server.endpoint)
        try:
            history = History(conn)
            entries = make_entries(args.entries, rng, now_ms)
            memory_before = int(conn.client.info("memory")["used_memory"])
            start = time.perf_counter()
            history.add(entries)
            fill_s = time.perf_counter() - start
            memory_mb = (int(conn.client.info("memory")["used_memory"]) - memory_before) / 2**20
            log(f"filled {args.entries} entries in {fill_s:.1f} s")
            for e in rng.sample(entries, len(entries) // 100):
                history.star(e.job_id)
            seed = entries[1234].job.seed
            queries = {
                "all (no filter)": HistoryQuery(),
                "common word 'portrait'": HistoryQuery(text="portrait"),
                "two words 'red cat' (dense)": HistoryQuery(text="red cat"),
                "two words 'day dusk' (sparse: 0.5 %)": HistoryQuery(text="day dusk"),
                "rare word 'w1500'": HistoryQuery(text="w1500"),
                "three words + model": HistoryQuery(text="portrait city night", model=MODELS[2]),
                "model": HistoryQuery(model=MODELS[1]),
                "model + status failed": HistoryQuery(model=MODELS[1], status=JobStatus.FAILED),
                "status finished (90 %)": HistoryQuery(status=JobStatus.FINISHED),
                "seed": HistoryQuery(seed=seed),
                "last 3 days": HistoryQuery(since_ms=now_ms - 3 * DAY_MS),
                "word + last 3 days": HistoryQuery(text="cat", since_ms=now_ms - 3 * DAY_MS),
                "favourites": HistoryQuery(favourites=True),
                "favourites + word": HistoryQuery(favourites=True, text="red"),
                "common word + finished, page 50": HistoryQuery(text="light", status=JobStatus.FINISHED,
                                                                offset=5000, limit=100),
            }
            results: dict[str, object] = {}
            worst = 0.0
            for name, query in queries.items():
                p50, p95, page = timed(partial(history.search, query), args.runs)
                assert isinstance(page, HistoryPage)
                results[name] = {"p50_ms": p50, "p95_ms": p95, "matches": page.total,
                                 "count": "exact" if page.total_exact else "estimated"}
                worst = max(worst, p95)

            def first_page() -> object:
                history.sync()
                return history.search(HistoryQuery(limit=100))

            page_p50, page_p95, _ = timed(first_page, args.runs)
            naive_p50, _, naive_hits = timed(lambda: naive_scan(history, "portrait"), 1)
            indexed = results["common word 'portrait'"]
            assert isinstance(indexed, dict) and indexed["matches"] == naive_hits, (indexed, naive_hits)
            print(json.dumps({
                "server": f"{endpoint.version} (appendfsync always)",
                "entries": args.entries,
                "fill_s": round(fill_s, 1),
                "redis_memory_mb": round(memory_mb, 1),
                "search": results,
                "search_worst_p95_ms": worst,
                "search_goal": "< 100 ms",
                "first_page_100_entries": {"p50_ms": page_p50, "p95_ms": page_p95, "goal": "< 300 ms"},
                "naive_full_scan_one_word_ms": naive_p50,
                "ratio_naive_over_indexed_p50": round(naive_p50 / max(float(indexed["p50_ms"]), 0.01), 1),
            }, indent=2))
        finally:
            conn.close()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
