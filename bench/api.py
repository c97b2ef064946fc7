"""The HTTP API under load: 100 clients polling status while 1,000 jobs flow through the queue.

`comfystudio-desktop serve` runs as its own process (on the embedded redis-server of a temporary home). This
process runs the load: 100 asyncio clients each polling `GET /api/status/{id}` of a recent job once a second (the
seed's page interval), submitters posting 1,000 jobs to `POST /api/generate`, and one Server-Sent Events client.
No ComfyUI: two worker threads here finish jobs directly through the queue API (claim, one progress step, finish),
so every job makes queued -> processing -> progress -> finished events, and the API is what is measured.

Push latency is the time from the state change (the event's `updated_at`, stamped by the worker just before it
writes) to the SSE client reading it. Goals: status p95 < 10 ms, submit p95 < 20 ms, push p95 < 50 ms.

    python bench/api.py [--jobs 1000] [--clients 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import log, pct
from comfystudio_desktop.api.api_token import token_path
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]


def run_workers(queue: JobQueue, stop: threading.Event, count: int, done: list[int]) -> list[threading.Thread]:
    def work(name: str) -> None:
        while not stop.is_set():
            lease = queue.claim(name, block_s=0.5)
            if lease is None:
                continue
            time.sleep(0.002)  # "running"
            queue.progress(lease, 60, "running")
            queue.finish(lease, f"outputs/{lease.job_id}.png")
            done.append(1)

    threads = [threading.Thread(target=work, args=(f"bench-{i}",), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    return threads


async def load(base: str, token: str, jobs: int, clients: int, done: list[int],
               server: EmbeddedRedis) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}
    status_ms: list[float] = []
    redis_ms: list[float] = []
    submit_ms: list[float] = []
    push_ms: list[float] = []
    job_ids: list[str] = []
    finished = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=clients + 20)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as session:
        async def listen() -> None:
            async with session.get("/api/events", timeout=aiohttp.ClientTimeout(total=None)) as answer:
                async for raw in answer.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("data: "):
                        event = json.loads(line[6:])
                        changed = datetime.fromisoformat(event["updated_at"]).timestamp()
                        push_ms.append((time.time() - changed) * 1000)
                    if finished.is_set():
                        return

        async def submit(n: int) -> None:
            for i in range(n):
                start = time.perf_counter()
                async with session.post("/api/generate", json={"prompt": f"bench {i}"}) as answer:
                    body = await answer.json()
                submit_ms.append((time.perf_counter() - start) * 1000)
                assert answer.status == 200, body
                job_ids.append(body["job_id"])
                await asyncio.sleep(0.1)

        async def poll() -> None:
            await asyncio.sleep(random.random())
            while not finished.is_set():
                if job_ids:
                    job_id = random.choice(job_ids[-200:])
                    start = time.perf_counter()
                    async with session.get(f"/api/status/{job_id}") as answer:
                        await answer.read()
                    status_ms.append((time.perf_counter() - start) * 1000)
                    assert answer.status == 200
                await asyncio.sleep(1.0)  # the seed's interval

        async def redis_baseline() -> None:
            import redis.asyncio as aioredis

            endpoint = server.endpoint()
            client = aioredis.Redis(host=endpoint.host, port=endpoint.port, password=endpoint.password)
            while not finished.is_set():
                if job_ids:
                    start = time.perf_counter()
                    await client.hgetall(f"job:status:{random.choice(job_ids[-200:])}")
                    redis_ms.append((time.perf_counter() - start) * 1000)
                await asyncio.sleep(0.01)
            await client.aclose()

        listener = asyncio.create_task(listen())
        baseline = asyncio.create_task(redis_baseline())
        pollers = [asyncio.create_task(poll()) for _ in range(clients)]
        await asyncio.sleep(0.5)
        submitters = 10
        await asyncio.gather(*(submit(jobs // submitters) for _ in range(submitters)))
        while len(done) < jobs:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        finished.set()
        await asyncio.gather(*pollers, baseline)
        listener.cancel()
    return {"status": status_ms, "submit": submit_ms, "push": push_ms, "redis": redis_ms}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:  # redis may still be flushing
        home = Home(Path(tmp) / "home").create()
        server = EmbeddedRedis(home)
        server.ensure_running()
        serve = subprocess.Popen([sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root), "serve",
                                  "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        stop = threading.Event()
        try:
            assert serve.stdout is not None
            line = serve.stdout.readline().decode()
            base = line.split()[2].rstrip(";")
            token = token_path(home).read_text(encoding="ascii").strip()
            queue = JobQueue(ResilientRedis(server.ensure_running))
            done: list[int] = []
            run_workers(queue, stop, 2, done)
            log(f"API at {base}; {args.clients} pollers, {args.jobs} jobs")
            started = time.perf_counter()
            figures = asyncio.run(load(base, token, args.jobs, args.clients, done, server))
            elapsed = time.perf_counter() - started
        finally:
            stop.set()
            serve.terminate()
            serve.wait(20)
            server.stop()
    goals = {"status": 10.0, "submit": 20.0, "push": 50.0}
    load_avg = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"{args.jobs} jobs, {args.clients} polling clients, {elapsed:.1f} s, {os.cpu_count()} CPUs, "
          f"load average {load_avg}")
    for name, values in figures.items():
        p95 = pct(values, 95)
        verdict = f"goal p95 < {goals[name]:.0f} ms  {'ok' if p95 < goals[name] else 'MISSED'}" if name in goals \
            else "baseline: a bare HGETALL from the same client process, same moment"
        print(f"{name:>6}: n={len(values):>6}  p50 {pct(values, 50):6.2f} ms  p95 {p95:6.2f} ms  "
              f"p99 {pct(values, 99):6.2f} ms  {verdict}")
    ratio = pct(figures["status"], 95) / max(pct(figures["redis"], 95), 1e-3)
    print(f"status p95 / bare Redis p95 = {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
