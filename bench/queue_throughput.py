"""Queue throughput: 20,000 jobs through JobQueue (enqueue + claim + finish) against a naive RPUSH/BLPOP loop.

Both run in the same process against the same embedded redis-server (AOF, appendfsync always), one after the
other, so the ratio compares like with like. Goal: JobQueue rate / naive rate >= 0.5.

    python bench/queue_throughput.py [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis


def run_job_queue(queue: JobQueue, jobs: list[Job]) -> float:
    start = time.perf_counter()
    for job in jobs:
        queue.submit(job)
    # A busy worker finishes a job and claims the next in one round trip.
    lease = queue.claim("bench")
    done = 0
    while lease is not None:
        _state, lease_next = queue.finish_and_claim(lease, f"outputs/{lease.job_id}.png")
        done += 1
        lease = lease_next
    assert done == len(jobs)
    return time.perf_counter() - start


def run_naive(conn: ResilientRedis, jobs: list[Job]) -> float:
    client = conn.client
    blocking = conn.blocking
    start = time.perf_counter()
    for job in jobs:
        client.rpush("naive_jobs", job.to_json())
    for _ in jobs:
        item = blocking.blpop(["naive_jobs"], timeout=5)
        assert item is not None
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp)).create()
        server = EmbeddedRedis(home)
        endpoint = server.ensure_running()
        try:
            conn = ResilientRedis(server.endpoint)
            queue = JobQueue(conn)
            jobs = [Job(prompt=f"benchmark job {i}", seed=i) for i in range(args.jobs)]
            naive_s = run_naive(conn, jobs)
            queue_s = run_job_queue(queue, jobs)
            naive_rate, queue_rate = args.jobs / naive_s, args.jobs / queue_s
            result = {
                "server": f"{endpoint.version} (appendfsync always)",
                "jobs": args.jobs,
                "naive_rpush_blpop_jobs_per_s": round(naive_rate),
                "jobqueue_enqueue_claim_finish_jobs_per_s": round(queue_rate),
                "ratio_jobqueue_over_naive": round(queue_rate / naive_rate, 3),
                "goal": ">= 0.5",
            }
            print(json.dumps(result, indent=2))
            conn.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
