"""Thousands of generated bad inputs against a real embedded redis-server and a headless worker on the fake ComfyUI.

Good jobs are submitted before and after the bad input; all must finish with the parameters they were given.
Classes: CLI argv (in-process `main()`, plus some real processes with undecodable bytes), `comfy_jobs` intake
entries (raw bytes RPUSHed as other tools would), outbox files, image files given to `submit --image`, and home
paths. Good jobs submitted first must all finish unchanged; the worker process must never die.

Counts printed: tried, clean (refused with one line / dead-lettered / rejected, or accepted as valid), tracebacks
(or any non-clean outcome), worker deaths, jobs lost or changed. Goal: 0 / 0 / 0.

    python bench/bad_inputs.py [--seed 1] [--per-class 500]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comfystudio_desktop.cli import main as cli_main
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.outbox import Outbox
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.fake_comfyui.process import FakeComfyProcess

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = "tiny/sd15-random.safetensors"
FIELDS = ["prompt", "job_id", "seed", "workflow", "model", "aspect_ratio", "batch_size", "images", "negative_prompt",
          "width", "height", "steps", "cfg", "denoise", "priority", "attempts", "created_at"]


class Tally:
    """Outcomes per input class."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}
        self.examples: dict[str, str] = {}

    def add(self, kind: str, outcome: str, example: object = "") -> None:
        self.counts.setdefault(kind, Counter())[outcome] += 1
        if outcome not in ("clean", "accepted"):
            self.examples.setdefault(f"{kind}/{outcome}", repr(example)[:160])

    def total(self, outcome: str | None = None) -> int:
        return sum(c[outcome] if outcome else sum(c.values()) for c in self.counts.values())


# -- generated values ------------------------------------------------------------------------------------------
def hostile_value(rng: random.Random, depth: int = 0) -> object:
    """Any JSON value, biased to what breaks parsers."""
    choice = rng.randrange(14)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 1, 2**63, -(2**64), 10**30, 7])
    if choice == 3:
        return rng.choice([0.5, -0.0, 1e308, 1e-308, float("nan"), float("inf")])
    if choice == 4:
        return rng.choice(["", "x", "abc\n", "\ud800", "a" * 70, "../../etc/passwd", "1:1", "16:9", "1024:1024",
                           "text_to_image", "\x00", "é" * 3, "{}", CHECKPOINT])
    if choice == 5 and depth < 3:
        return [hostile_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    if choice == 6 and depth < 3:
        return {rng.choice([*FIELDS, "input", "x"]): hostile_value(rng, depth + 1) for _ in range(rng.randrange(3))}
    if choice == 7:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 20)))
    return rng.choice(["a cat", "", " ", 5, [], {}, {"input": 5}, {"input": "/etc/passwd"}])


def hostile_text(rng: random.Random) -> str:
    """Argv-like text: random, undecodable bytes as surrogates, numbers, NaN/inf, huge values."""
    choice = rng.randrange(8)
    if choice == 0:
        return os.fsdecode(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))))
    if choice == 1:
        return rng.choice(["nan", "inf", "-inf", "1e999", "9" * 5000, "-1", "0", "1_0", "0x10", "١٢", " 1"])
    if choice == 2:
        return str(rng.choice([2**64, -(2**70), 17, 1024, 16384, 16392, 63]))
    if choice == 3:
        return "".join(chr(rng.randrange(1, 0x10FFFF)) for _ in range(rng.randrange(1, 8))
                       ).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    text = hostile_value(rng)
    return text if isinstance(text, str) else json.dumps(text)


# -- the parts under test ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def cli_outcome(argv: list[str]) -> tuple[str, str]:
    """Run `main(argv)` in-process: ('clean'|'accepted'|'traceback'|'bad-exit'|'not-one-line', stderr)."""
    with captured() as (_out, err):
        try:
            code = cli_main(argv)
        except BaseException as exc:  # main() must never raise
            return "traceback", f"{type(exc).__name__}: {exc}"
    text = err.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    if "Traceback" in text:
        return "traceback", text
    if code not in (0, 1, 2):
        return "bad-exit", text
    if code == 0:
        return "accepted", text
    return ("clean" if len(lines) == 1 else "not-one-line"), text


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


class Worker:
    """The headless worker as its own process; restarted (and counted) if it dies."""

    def __init__(self, home: Path, comfy_url: str, log_dir: Path) -> None:
        self.argv = [sys.executable, "-m", "comfystudio_desktop", "--home", str(home), "--comfy-url", comfy_url,
                     "worker"]
        self.log_dir = log_dir
        self.deaths = 0
        self.starts = 0
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        log = (self.log_dir / f"worker-{self.starts}.log").open("wb")
        return subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def check(self) -> None:
        if self.proc.poll() is not None:
            self.deaths += 1
            self.proc = self._start()

    def tracebacks(self, crash_log: Path) -> int:
        """Tracebacks the worker printed, or that its exits left in the home's crash log."""
        logs = [*self.log_dir.glob("worker-*.log"), *([crash_log] if crash_log.exists() else [])]
        return sum(p.read_text(errors="replace").count("Traceback") for p in logs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# -- classes of input ----------------------------------------------------------------------------------------------
def run_cli_class(rng: random.Random, tally: Tally, home: Path, n: int, special: list[str]) -> None:
    commands = [["submit", "--prompt"], ["status"], ["cancel"], ["retry"], ["jobs", "--status"], ["config", "get"],
                ["submit", "--prompt", "x", "--width"], ["submit", "--prompt", "x", "--cfg"],
                ["submit", "--prompt", "x", "--seed"], ["submit", "--prompt", "x", "--aspect-ratio"],
                ["submit", "--prompt", "x", "--workflow", "image_to_image", "--image"],
                ["submit", "--prompt", "x", "--from"], ["submit", "--prompt", "x", "--wait", "--timeout"],
                ["submit", "--prompt", "x", "--model"], ["submit", "--prompt", "x", "--image"]]
    for _ in range(n):
        head = rng.choice(commands)
        value = rng.choice([hostile_text(rng), rng.choice(special), f"input={rng.choice(special)}"])
        if head[-1] == "--timeout":
            value = rng.choice(["nan", "inf", "-1", "0", "-0.0", "1e999", "abc"])  # a valid one would wait for real
        argv = ["--home", str(home), *head, value]
        if head[0] in ("status", "cancel", "retry"):
            argv = ["--home", str(home), head[0], "--", value]
        outcome, err = cli_outcome(argv)
        tally.add("cli", outcome, (argv[2:], err[-200:]))
    for raw in ([b"status", b"\xff\xfe"], [b"submit", b"--prompt", b"caf\xe9"], [b"jobs", b"--status", b"\xed\xa0\x80"],
                [b"submit", b"--prompt", b"x", b"--cfg", b"nan"], [b"cancel", b"a\nb"]):
        done = subprocess.run([sys.executable, "-m", "comfystudio_desktop", "--home", str(home), *raw],
                              capture_output=True, timeout=120, cwd=REPO)
        err = done.stderr.decode("utf-8", "replace")
        clean = done.returncode == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
        tally.add("cli-process", "clean" if clean else "traceback", (raw, err[-200:]))


def intake_entries(rng: random.Random, n: int, existing_id: str) -> Iterator[bytes]:
    for i in range(n):
        kind = i % 8
        if kind == 0:
            yield json.dumps(hostile_value(rng)).encode()
        elif kind == 1:  # a job with one field of a wrong type
            data: dict[str, object] = {"prompt": "a cat", rng.choice(FIELDS): hostile_value(rng)}
            yield json.dumps(data).encode()
        elif kind == 2:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        elif kind == 3:
            yield b'{"prompt": "\\ud800", "model": "x"}'
        elif kind == 4:
            yield b"[" * 50_000 + b"]" * 50_000
        elif kind == 5:
            yield json.dumps({"prompt": "dup", "job_id": existing_id}).encode()
        elif kind == 6:
            yield json.dumps({k: hostile_value(rng) for k in rng.sample(FIELDS, 4)}).encode()
        else:
            yield json.dumps({"prompt": "x", "job_id": "abc\n", "images": {"input": 5}}).encode()


def run_intake_class(rng: random.Random, tally: Tally, queue: JobQueue, worker: Worker, n: int,
                     existing_id: str) -> None:
    client = queue.conn.client
    dead_before = client.llen("cs:dead") or 0
    jobs_before = client.zcard("cs:jobs")
    entries = list(intake_entries(rng, n, existing_id))
    for entry in entries:
        client.rpush("comfy_jobs", entry)
    deadline = time.monotonic() + 90
    deaths_before = worker.deaths
    while time.monotonic() < deadline and worker.deaths - deaths_before < 25:  # past that: a crash loop
        worker.check()
        if client.llen("comfy_jobs") == 0 and client.llen("cs:intake:processing") == 0:
            break
        time.sleep(0.2)
    stuck = client.llen("comfy_jobs") + client.llen("cs:intake:processing")
    handled = (client.llen("cs:dead") - dead_before) + (client.zcard("cs:jobs") - jobs_before)
    # What was not dead-lettered or queued is either still stuck (the queue stopped) or silently dropped.
    for index in range(len(entries)):
        if index < min(handled, len(entries)):
            tally.add("intake", "clean")
        elif index < min(handled, len(entries)) + stuck:
            tally.add("intake", "stuck", entries[index][:80])
        else:
            tally.add("intake", "dropped-silently", entries[index][:80])
    if stuck:  # leave nothing behind that would block the classes after this one
        client.delete("comfy_jobs", "cs:intake:processing")


def run_outbox_class(rng: random.Random, tally: Tally, home: Path, n: int) -> None:
    outbox = home / "outbox"
    for i in range(n):
        kind = i % 4
        if kind == 0:
            data = json.dumps(hostile_value(rng)).encode()
        elif kind == 1:
            data = json.dumps({"prompt": "x", rng.choice(FIELDS): hostile_value(rng)}).encode()
        elif kind == 2:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        else:
            data = b"[" * 30_000
        path = outbox / f"bad-{i}.json"
        path.write_bytes(data)
        outcome, err = cli_outcome(["--home", str(home), "jobs", "--json"])
        if outcome == "accepted":  # the command worked; the file must be delivered or set aside, not left to block
            outcome = "left-in-outbox" if path.exists() else "clean"
        elif outcome == "clean":
            outcome = "blocked-a-command"  # one clean line, but a bad file must not stop `jobs`
        tally.add("outbox", outcome, (data[:60], err[-160:]))
        path.unlink(missing_ok=True)


def run_image_class(rng: random.Random, tally: Tally, home: Path, folder: Path, n: int) -> None:
    good = png_header(64, 64)
    for i in range(n):
        kind = i % 7
        path = folder / f"img-{i}.png"
        if kind == 0:
            path.write_bytes(b"")
        elif kind == 1:
            path.write_bytes(good[: rng.randrange(1, len(good))])
        elif kind == 2:
            path.write_bytes(png_header(rng.choice([20000, 65535, 100000]), rng.choice([20000, 1, 65535])))
        elif kind == 3:
            path.write_text("just text renamed .png\n")
        elif kind == 4:
            path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))))
        elif kind == 5 and os.name == "posix":
            os.mkfifo(path)
        else:
            path = Path(rng.choice(["/etc/passwd", "/proc/self/environ", "/dev/zero", str(folder), "/nonexistent.png"]))
        outcome, err = cli_outcome(["--home", str(home), "submit", "--prompt", "x", "--workflow", "image_to_image",
                                    "--image", f"input={path}"])
        if outcome == "accepted":
            outcome = "bad-image-accepted"
        tally.add("image", outcome, (str(path), err[-160:]))


def run_home_class(rng: random.Random, tally: Tally, root: Path, n: int) -> None:
    a_file = root / "a-file"
    a_file.write_text("x")
    names = ['q"uote\nmaxclients 77', "back\\slash", "new\nline", "sp ace", "é" * 40, "x" * 240, "tab\t",
             "bind 0.0.0.0", '"', "..", ".", "-dash", "\u202e"]
    for i in range(n):
        kind = i % 4
        if kind == 0:
            home = root / "homes" / f"{i}-{rng.choice(names)}"
        elif kind == 1:
            home = a_file / f"under-a-file-{i}"
        elif kind == 2:
            home = a_file
        else:
            home = root / "homes" / "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(12)).replace("/", "_")
        command = rng.choice([["config", "list"], ["redis", "status"], ["config", "get", "comfy_url"]])
        outcome, err = cli_outcome(["--home", str(home), *command])
        tally.add("home", outcome, (str(home), err[-160:]))


def check_redis_conf_injection(tally: Tally, root: Path) -> None:
    """A few hostile homes with a real server start: redis.conf must not gain a directive from the name."""
    for name in ['inj"\nmaxclients 77\n"', "inj\\x"]:
        home = root / "conf-homes" / name
        outcome, err = cli_outcome(["--home", str(home), "redis", "start"])
        conf = home / "redis" / "redis.conf"
        injected = conf.exists() and any(line.strip() == "maxclients 77" for line in conf.read_text().splitlines())
        tally.add("home-redis-conf", "config-injected" if injected else outcome, (name, err[-160:]))
        with captured():
            cli_main(["--home", str(home), "redis", "stop"])


# -- the run ---------------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-class", type=int, default=500, help="inputs per class (CLI gets twice as many)")
    parser.add_argument("--good-jobs", type=int, default=10)
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp_name, \
            FakeComfyProcess(step_time=0.005, output_dir=Path(tmp_name) / "comfy-out") as fake:
        tmp = Path(tmp_name)
        home = Home(tmp / "home").create()
        server = EmbeddedRedis(home)
        server.ensure_running()
        conn = ResilientRedis(server.ensure_running, delay_s=0.2)
        queue = JobQueue(conn, outbox=Outbox(home.outbox))
        (tmp / "worker-logs").mkdir()
        worker = Worker(home.root, fake.url, tmp / "worker-logs")
        try:
            good = [Job(prompt=f"good {i}", model=CHECKPOINT, seed=i) for i in range(opts.good_jobs)]
            for job in good:
                queue.submit(job)
            special = [str(tmp), "/dev/zero", "/proc/self/environ", "/etc/passwd", str(tmp / "missing"), ""]
            (tmp / "images").mkdir()
            started = time.monotonic()
            steps: list[tuple[str, Callable[[], None]]] = [
                ("cli", lambda: run_cli_class(rng, tally, home.root, 2 * opts.per_class, special)),
                ("intake", lambda: run_intake_class(rng, tally, queue, worker, opts.per_class, good[0].job_id)),
                ("outbox", lambda: run_outbox_class(rng, tally, home.root, opts.per_class // 2)),
                ("image", lambda: run_image_class(rng, tally, home.root, tmp / "images", opts.per_class // 2)),
                ("home", lambda: run_home_class(rng, tally, tmp, opts.per_class // 2)),
                ("home-redis-conf", lambda: check_redis_conf_injection(tally, tmp)),
            ]
            for name, step in steps:
                t0 = time.monotonic()
                try:
                    step()
                except Exception as exc:  # the bench itself must finish and report
                    tally.add(name, "bench-step-crashed", f"{type(exc).__name__}: {exc}")
                worker.check()
                print(f"  {name}: {sum(tally.counts.get(name, Counter()).values())} inputs "
                      f"in {time.monotonic() - t0:.1f} s", flush=True)
            # Good jobs after all the bad input: the queue must still run them (nothing stopped it).
            after = [Job(prompt=f"good after {i}", model=CHECKPOINT, seed=100 + i) for i in range(opts.good_jobs)]
            for job in after:
                queue.submit(job)
            lost_or_changed = wait_good_jobs(queue, worker, good + after)
            elapsed = time.monotonic() - started
        finally:
            worker.stop()
            conn.close()
            server.stop()
        report(tally, worker, lost_or_changed, elapsed, worker.tracebacks(home.logs / "crash.log"))
    return 0


def wait_good_jobs(queue: JobQueue, worker: Worker, good: list[Job], timeout: float = 120.0) -> int:
    """How many of the good jobs did not finish, or finished with other parameters than submitted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.check()
        records = [queue.status(job.job_id) for job in good]
        if all(r is not None and r.status.is_terminal for r in records):
            break
        time.sleep(0.5)
    bad = 0
    for job in good:
        record = queue.status(job.job_id)
        if record is None or record.status is not JobStatus.FINISHED or record.job != job:
            bad += 1
    return bad


def report(tally: Tally, worker: Worker, lost_or_changed: int, elapsed: float, worker_tracebacks: int) -> None:
    print(f"\nbad inputs in {elapsed:.0f} s (seed and sizes in the command line)")
    print(f"{'class':<16}{'tried':>7}{'clean':>7}{'valid':>7}{'other':>7}  outcomes")
    for kind, counts in tally.counts.items():
        clean, valid = counts["clean"], counts["accepted"]
        other = sum(counts.values()) - clean - valid
        details = ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("clean", "accepted"))
        print(f"{kind:<16}{sum(counts.values()):>7}{clean:>7}{valid:>7}{other:>7}  {details}")
    tracebacks = tally.total() - tally.total("clean") - tally.total("accepted")
    print(f"\ntried: {tally.total()}")
    print(f"clean errors: {tally.total('clean')} (and {tally.total('accepted')} inputs that were valid and accepted)")
    print(f"tracebacks or unclean outcomes: {tracebacks} (+ {worker_tracebacks} in the worker's output and crash log)")
    print(f"worker deaths: {worker.deaths}")
    print(f"jobs lost or changed: {lost_or_changed}")
    for key, example in list(tally.examples.items())[:12]:
        print(f"  e.g. {key}: {example}")


if __name__ == "__main__":
    sys.exit(main())
