"""Result cache: from submit to FINISHED for a job identical to a finished one (fixed seed), against the same job
with other seeds run on ComfyUI, in one run with the same worker, embedded redis-server and fake ComfyUI.

Each job is submitted alone and timed until its FINISHED event arrives on the Redis event stream (what the window
follows). Goal: cache hit p95 < 20 ms.

    python bench/result_cache.py [--hits 200] [--misses 20] [--step-time 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import log, pct
from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from comfystudio_desktop.worker.consumer import Consumer
from tests.fake_comfyui.process import FakeComfyProcess

CHECKPOINT = "tiny/sd15-random.safetensors"


def submit_and_wait(queue: JobQueue, job: Job, timeout: float = 60.0) -> tuple[float, bool]:
    """Seconds from submit to the FINISHED event, and whether the result came from the cache."""
    last_id = queue.last_event_id()
    start = time.perf_counter()
    queue.submit(job)
    deadline = start + timeout
    while time.perf_counter() < deadline:
        for entry_id, event in queue.read_events(last_id, block_ms=1000):
            last_id = entry_id
            if event.job_id == job.job_id and event.status.is_terminal:
                elapsed = time.perf_counter() - start
                if event.status is not JobStatus.FINISHED:
                    raise RuntimeError(f"job {job.job_id} ended {event.status}: {event.error}")
                record = queue.status(job.job_id)
                return elapsed, record is not None and record.from_cache
    raise TimeoutError(job.job_id)


def summary_ms(values_s: list[float]) -> dict[str, float | int]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50": round(pct(ms, 50), 2), "p95": round(pct(ms, 95), 2), "max": round(max(ms), 2)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hits", type=int, default=200)
    parser.add_argument("--misses", type=int, default=20)
    parser.add_argument("--step-time", type=float, default=0.05)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeComfyProcess(step_time=args.step_time) as fake:
        home = Home(Path(tmp) / "home").create()
        server = EmbeddedRedis(home)
        endpoint = server.ensure_running()
        conn = ResilientRedis(server.endpoint)
        queue = JobQueue(conn, lease_seconds=30.0)
        settings = Settings(comfy_url=fake.url, pipeline_depth=1)
        client = ComfyClient(fake.url)
        consumer = Consumer(queue, client, home, settings, worker_id="bench")
        stop = threading.Event()
        thread = threading.Thread(target=consumer.run, args=(stop, lambda event: None))
        thread.start()
        try:
            original = Job(prompt="result cache benchmark", model=CHECKPOINT, seed=1234, steps=8)
            first_s, cached = submit_and_wait(queue, original)
            assert not cached
            log(f"first run on ComfyUI: {first_s * 1000:.0f} ms")
            hits: list[float] = []
            for _ in range(args.hits):
                elapsed, cached = submit_and_wait(queue, replace(original.rerun()))
                assert cached, "expected a cache hit"
                hits.append(elapsed)
            log(f"{len(hits)} hits done")
            misses: list[float] = []
            for index in range(args.misses):  # another seed each: really sampled on ComfyUI
                elapsed, cached = submit_and_wait(queue, replace(original.rerun(), seed=5000 + index))
                assert not cached
                misses.append(elapsed)
            hit, miss = summary_ms(hits), summary_ms(misses)
            print(json.dumps({
                "server": f"{endpoint.version} (appendfsync always)",
                "load_average_1m": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
                "fake_comfyui_step_time_s": args.step_time, "steps": original.steps,
                "cache_hit_submit_to_finished_ms": hit,
                "run_on_comfyui_ms": miss,
                "ratio_hit_p50_over_run_p50": round(float(hit["p50"]) / float(miss["p50"]), 4),
                "goal": "cache hit p95 < 20 ms",
                "met": float(hit["p95"]) < 20.0,
            }, indent=2))
        finally:
            stop.set()
            thread.join(30)
            client.close()
            conn.close()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
