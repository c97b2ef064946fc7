"""ETA accuracy: a replay of 300 jobs across four models of different speeds on the fake ComfyUI, with the real
worker, queue and learned run times.

All jobs are queued at once, in two replays: shuffled (models, step counts and sizes mixed), and model by model
(as `submit --models` queues a batch: fast models first, slow ones last). After every job that ends, the queue's
finish is forecast from the run times learned so far, and its remaining time compared with the time the queue
really took to empty. Scored: forecasts made once every model left in the queue has at least 5 samples (goal:
median absolute error <= 15 %); also printed, all forecasts from the first job on, and the naive forecast "jobs
left x mean time per job so far" for comparison.

    python bench/eta.py [--jobs 300] [--seed 7] [--order shuffled|by-model|both]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import log, pct
from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.run_times import RunTimes
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from comfystudio_desktop.worker.consumer import Consumer
from tests.fake_comfyui.process import FakeComfyProcess

# Seconds per sampler step: a fast distilled model up to a slow large one.
MODELS = {"fast-turbo.safetensors": 0.004, "mid-sd15.safetensors": 0.012, "slow-sdxl.safetensors": 0.025,
          "large-xl.safetensors": 0.04}
STEPS = (4, 8, 12, 20)
RATIOS = ("1:1", "16:9")
MIN_SAMPLES = 5


def make_jobs(count: int, rng: random.Random, order: str) -> list[Job]:
    jobs = [Job(prompt=f"eta replay {i}", model=rng.choice(list(MODELS)), steps=rng.choice(STEPS),
                aspect_ratio=rng.choice(RATIOS), seed=i) for i in range(count)]
    rng.shuffle(jobs)
    if order == "by-model":
        jobs.sort(key=lambda job: MODELS[job.model])
    return jobs


def replay(jobs: list[Job]) -> dict[str, object]:
    """Run `jobs` through a fresh home, Redis, fake ComfyUI and worker; score the forecasts."""
    fake_args = ["--model-step-times", json.dumps({name.split("-")[0]: t for name, t in MODELS.items()})]
    with tempfile.TemporaryDirectory() as tmp, \
            FakeComfyProcess(step_time=0.01, models={"checkpoints": list(MODELS)}, extra_args=fake_args) as fake:
        home = Home(Path(tmp) / "home").create()
        server = EmbeddedRedis(home)
        server.ensure_running()
        conn = ResilientRedis(server.endpoint)
        queue = JobQueue(conn, lease_seconds=30.0)
        times = RunTimes(queue)
        settings = Settings(comfy_url=fake.url, pipeline_depth=2, result_cache=False)
        client = ComfyClient(fake.url)
        consumer = Consumer(queue, client, home, settings, worker_id="eta-bench")
        stop = threading.Event()
        forecasts: list[tuple[float, float, float, bool]] = []  # (at, remaining s: forecast, naive; learned)
        done_by_model = dict.fromkeys(MODELS, 0)
        last_id = queue.last_event_id()
        queue.submit_many(jobs)
        start = time.monotonic()
        thread = threading.Thread(target=consumer.run, args=(stop, lambda event: None))
        thread.start()
        ended = 0
        models = {job.job_id: job.model for job in jobs}
        try:
            while ended < len(jobs):
                for entry_id, event in queue.read_events(last_id, block_ms=1000):
                    last_id = entry_id
                    if not event.status.is_terminal or event.job_id not in models:
                        continue
                    if event.status is not JobStatus.FINISHED:
                        raise RuntimeError(f"job {event.job_id} ended {event.status}: {event.error}")
                    ended += 1
                    if ended % 50 == 0:
                        log(f"{ended} jobs done")
                    model = models[event.job_id]
                    done_by_model[model] += 1
                    if ended < len(jobs):
                        now = time.monotonic()
                        result = times.forecast(datetime.now().astimezone())
                        assert result.finish is not None
                        naive = (now - start) / ended * (len(jobs) - ended)
                        forecasts.append((now, (result.finish - result.now).total_seconds(), naive,
                                          _learned(done_by_model, jobs, ended)))
            finished = time.monotonic()
        finally:
            stop.set()
            thread.join(30)
            client.close()
            conn.close()
            server.stop()
    def error(at: float, predicted: float) -> float:
        return abs(predicted - (finished - at)) / (finished - at)

    scored = [error(at, predicted) for at, predicted, _, learned in forecasts if learned]
    naive_errors = [error(at, naive) for at, _, naive, learned in forecasts if learned]
    every = [error(at, predicted) for at, predicted, _, _ in forecasts]
    return {
        "total_s": round(finished - start, 1),
        "forecasts_scored": len(scored),
        "queue_finish_median_abs_error_pct": round(100 * statistics.median(scored), 1),
        "queue_finish_p90_abs_error_pct": round(100 * pct(scored, 90), 1),
        "naive_mean_time_median_abs_error_pct": round(100 * statistics.median(naive_errors), 1),
        "all_forecasts_median_abs_error_pct": round(100 * statistics.median(every), 1),
        "met": statistics.median(scored) <= 0.15,
    }


def _learned(done_by_model: dict[str, int], jobs: list[Job], ended: int) -> bool:
    """Every model the rest of the queue uses has its 5 samples (a model never run yet has no figure to learn
    from; its jobs are estimated from the other models' time per step until then)."""
    remaining = {job.model for job in jobs[max(0, ended - 2):]}  # the pipeline may still hold two earlier jobs
    return all(done_by_model[model] >= MIN_SAMPLES for model in remaining)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--order", choices=["shuffled", "by-model", "both"], default="both")
    args = parser.parse_args()
    orders = ["shuffled", "by-model"] if args.order == "both" else [args.order]
    results = {}
    for order in orders:
        log(f"replay: {args.jobs} jobs, {order}")
        results[order] = replay(make_jobs(args.jobs, random.Random(args.seed), order))
    print(json.dumps({"jobs": args.jobs, "models_s_per_step": MODELS, "workers": 1, "pipeline_depth": 2,
                      "replays": results, "goal": "queue-finish median abs error <= 15 % once a model has 5 samples",
                      "met": all(r["met"] for r in results.values())}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
