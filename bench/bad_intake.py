"""Bad inputs against the queue side: the seed's `comfy_jobs`, the outbox, and hostile specs written into Redis.

A real embedded redis-server, a real headless worker process (`comfystudio-desktop worker`) on the test-suite's
fake ComfyUI, and generated bad inputs: entries with one field of a good job replaced by a hostile value (wrong
type, list, object, bool, huge number, text with a newline, a lone surrogate or NUL), random bytes, invalid UTF-8,
deep nesting, cut-off JSON, duplicate job ids; outbox files of the same kinds plus folders, FIFOs and links; and
job specs that an older validator let through, written straight into Redis. Good jobs are mixed in.

Prints: inputs tried, clean rejections (dead letters, rejected files, failed jobs with a reason), exceptions that
escaped (tracebacks), worker deaths, and good or earlier jobs lost or changed. Goal: 0, 0, 0.

    python bench/bad_intake.py [--intake 900] [--outbox 800] [--specs 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import log
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import PENDING_KEY, SEED_QUEUE_KEY, STATUS_PREFIX, WAKE_KEY, JobQueue
from comfystudio_desktop.queue.outbox import Outbox
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.fake_comfyui.process import REPO_ROOT, FakeComfyProcess

CHECKPOINT = "tiny/sd15-random.safetensors"
HOSTILE_VALUES: list[Any] = [
    5, -1, 2**70, 10**30, 1.5, float("1e308"), True, False, None, "", " ", "x\n", "abc\n", "\ud800", "a\x00b",
    "../../etc/passwd", "1:1\n", "9999:1", "x" * 5000, [], ["4", 0], [1, 2, 3], {}, {"input": 5}, {"a": {"b": []}},
    {"input": ["x"]}, {"mask": "/x.png"}, "NaN",
]
FIELDS = ["prompt", "job_id", "seed", "workflow", "model", "aspect_ratio", "batch_size", "images", "created_at",
          "negative_prompt", "width", "height", "steps", "cfg", "denoise", "priority", "attempts", "text_encoder",
          "vae", "colour"]


def good_job(rng: random.Random, tag: str) -> Job:
    return Job(prompt=f"good {tag}", model=CHECKPOINT, seed=rng.randint(0, 2**32), steps=2)


def bad_payload(rng: random.Random, existing_ids: list[str], *, duplicates: bool = True) -> bytes:
    """One hostile entry (always invalid as a job, or a duplicate of `existing_ids`)."""
    kind = rng.randrange(8 if duplicates else 7)
    base = json.loads(Job(prompt="bad", model=CHECKPOINT).to_json())
    if kind <= 2:  # one field replaced by a hostile value (keep only the ones that really are bad)
        while True:
            field, value = rng.choice(FIELDS), rng.choice(HOSTILE_VALUES)
            candidate = {**base, field: value}
            try:
                Job.from_dict(json.loads(json.dumps(candidate)))
            except Exception:
                return json.dumps(candidate).encode()
    if kind == 3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if kind == 4:
        return json.dumps(base).encode()[: rng.randrange(1, 40)]
    if kind == 5:
        depth = rng.choice([1_000, 5_000, 50_000])
        return b"[" * depth + b"]" * depth
    if kind == 6:
        return b'{"prompt":"' + bytes([0xFF, 0xFE, 0xC3]) + b'"}'
    return json.dumps({**base, "job_id": rng.choice(existing_ids)}).encode()  # a duplicate id


def write_outbox_junk(rng: random.Random, folder: Path, index: int) -> None:
    """One bad outbox file: junk content, or something that is not a regular file at all."""
    name = folder / f"bad-{index}.json"
    kind = rng.randrange(10)
    if kind == 0:
        name.mkdir()
    elif kind == 1 and hasattr(os, "mkfifo"):
        os.mkfifo(name)
    elif kind == 2 and sys.platform != "win32":
        name.symlink_to(folder / "nowhere")
    else:  # (a duplicate id is no error in the outbox: delivery is idempotent by id)
        name.write_bytes(bad_payload(rng, [], duplicates=False))


def hostile_spec(rng: random.Random, index: int) -> tuple[str, str]:
    """A spec an older, laxer validator stored: valid JSON, not a valid job now."""
    job_id = f"hostile-{index}"
    base = json.loads(Job(prompt="stored by an older version", model=CHECKPOINT, job_id=job_id).to_json())
    field, value = rng.choice([("negative_prompt", ["4", 0]), ("images", {"input": 5}), ("model", 5),
                               ("workflow", "text_to_image\n"), ("seed", True), ("prompt", "\ud800"),
                               ("width", 1000), ("aspect_ratio", {"w": 1})])
    return job_id, json.dumps({**base, field: value})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--intake", type=int, default=900, help="at most 1,000: cs:dead keeps the 1,000 newest")
    parser.add_argument("--outbox", type=int, default=800)
    parser.add_argument("--specs", type=int, default=300)
    parser.add_argument("--good", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("comfystudio_desktop").setLevel(logging.CRITICAL)  # rejections are counted, not printed
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="cs-bad-intake-") as tmp, \
            FakeComfyProcess(output_dir=Path(tmp) / "comfy-out", step_time=0.005) as fake:
        home = Home(Path(tmp) / "home").create()
        save_settings(home.config_file, Settings(comfy_url=fake.url, lease_seconds=5.0))
        server = EmbeddedRedis(home)
        server.ensure_running()
        queue = JobQueue(ResilientRedis(server.endpoint), outbox=Outbox(home.outbox))
        client = queue.conn.client
        try:
            return run(args, rng, home, queue, client, tmp)
        finally:
            queue.conn.close()
            server.stop()


def run(args: argparse.Namespace, rng: random.Random, home: Home, queue: JobQueue, client: Any, tmp: str) -> int:
    earlier = [good_job(rng, f"earlier {i}") for i in range(5)]
    for job in earlier:
        queue.submit(job)
    earlier_specs = {job.job_id: client.hget(STATUS_PREFIX + job.job_id, "spec") for job in earlier}
    ids = [job.job_id for job in earlier]
    worker_log = Path(tmp) / "worker.stderr"
    with worker_log.open("wb") as err:
        worker = subprocess.Popen([sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root), "worker"],
                                  stdout=subprocess.DEVNULL, stderr=err, cwd=REPO_ROOT)
    good: list[str] = []
    escaped = 0
    started = time.monotonic()
    try:
        log(f"pushing {args.intake} bad entries onto {SEED_QUEUE_KEY}, {args.good} good ones among them")
        for index in range(args.intake):
            client.rpush(SEED_QUEUE_KEY, bad_payload(rng, ids))
            if index % max(1, args.intake // args.good) == 0:
                job = good_job(rng, f"intake {index}")
                good.append(job.job_id)
                client.rpush(SEED_QUEUE_KEY, job.to_json())
        log(f"writing {args.outbox} bad outbox files")
        home.outbox.mkdir(parents=True, exist_ok=True)
        for index in range(args.outbox):
            write_outbox_junk(rng, home.outbox, index)
        for index in range(5):
            job = good_job(rng, f"outbox {index}")
            good.append(job.job_id)
            Outbox(home.outbox).put(job)
        log(f"writing {args.specs} hostile specs straight into Redis")
        for index in range(args.specs):
            job_id, spec = hostile_spec(rng, index)
            client.hset(STATUS_PREFIX + job_id, mapping={"job_id": job_id, "status": "queued", "spec": spec,
                                                         "score": str(index), "attempts": "0", "progress": "0"})
            client.zadd(PENDING_KEY, {job_id: index})
        client.rpush(WAKE_KEY, "1")
        for _ in range(200):  # this process pumps and delivers too, as a second worker or the window would
            try:
                queue.pump_intake()
                queue.deliver_outbox()
            except Exception as exc:
                escaped += 1
                log(f"escaped: {type(exc).__name__}: {exc}")
            if not client.llen(SEED_QUEUE_KEY):
                break
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and worker.poll() is None:
            states = [queue.status(job_id) for job_id in good]
            hostile_done = all((r := queue.status(f"hostile-{i}")) is not None and r.status.is_terminal
                               for i in range(args.specs))
            if all(s is not None and s.status.is_terminal for s in states) and hostile_done:
                break
            time.sleep(0.5)
    finally:
        worker_alive = worker.poll() is None
        worker.terminate()
        worker.wait(30)
    elapsed = time.monotonic() - started
    dead = len(queue.dead_letters())
    rejected_dir = home.outbox / "rejected"
    rejected = sum(1 for p in rejected_dir.iterdir() if not p.name.endswith(".reason.txt")) \
        if rejected_dir.is_dir() else 0
    failed_specs = sum(1 for i in range(args.specs)
                       if (r := queue.status(f"hostile-{i}")) is not None and r.status is JobStatus.FAILED and r.error)
    finished = sum(1 for job_id in good if (r := queue.status(job_id)) is not None and r.status is JobStatus.FINISHED)
    changed = sum(1 for job_id, spec in earlier_specs.items() if client.hget(STATUS_PREFIX + job_id, "spec") != spec)
    stderr = worker_log.read_text(encoding="utf-8", errors="replace")
    worker_deaths = 0 if worker_alive else 1
    died_with_traceback = "Traceback" in stderr and not worker_alive
    tried = args.intake + args.outbox + args.specs
    print(f"inputs tried                {tried} ({args.intake} intake, {args.outbox} outbox, {args.specs} specs)")
    print(f"clean rejections            {dead + rejected + failed_specs} "
          f"({dead} dead letters, {rejected} rejected files, {failed_specs} failed jobs with a reason)")
    print(f"exceptions escaped          {escaped + (1 if died_with_traceback else 0)}")
    print(f"worker deaths               {worker_deaths}")
    print(f"good jobs finished          {finished}/{len(good)}")
    print(f"jobs lost or changed        {len(good) - finished + changed}")
    print(f"elapsed                     {elapsed:.1f} s")
    ok = escaped == 0 and worker_deaths == 0 and finished == len(good) and changed == 0 \
        and dead + rejected + failed_specs == tried
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
