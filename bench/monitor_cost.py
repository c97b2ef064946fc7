"""Monitor cost: sampling and charting CPU while idle, and GUI stalls with the Monitor dock charting beside 10,000 jobs.

Setup: a fresh home, its real embedded redis-server (AOF fsync always), 10,000 jobs run through the queue
(submit, claim, finish; so the event stream and the job hashes are full) and `--files` images in storage/outputs.

1. Sampling: the real `Sampler` against that Redis. First the catch-up over the 10,000 events, then `--ticks`
   ticks in distinct 10 s slots (the sample that one window writes) and as many in a taken slot (what every other
   window and worker does), with this process's CPU and redis-server's CPU per tick. The feed ticks every 5 s,
   so per 10 s it costs one winning and one losing tick: reported as % of one core (goal < 1 %).
2. Charting: the real `MonitorPanel` (pyqtgraph, 8 charts) holding a full day of samples (8,640), visible at
   1280x800: time of one redraw of the hour and the day range (one redraw per new sample, i.e. per 10 s).
3. Idle, whole process: the window's `MonitorFeed` + `MonitorDock` running on the qasync loop for `--idle-seconds`
   (real 10 s sampling, dock visible with a day of history) vs the same Qt loop with neither, side by side:
   CPU of this process and of redis-server, as % of one core.
4. GUI stalls: the real `JobsView` with 10,000 rows and the dock (a day of history, day range), a 5 ms heartbeat on
   the GUI thread; new samples arrive 10 times a second (100x real time: a coalesced redraw every second) while the
   feed's sampling step runs on a worker thread every second. The same without the dock, side by side. Goal: no
   gap over 16 ms caused by the monitor.

    python bench/monitor_cost.py [--jobs 10000] [--files 2000] [--ticks 30] [--idle-seconds 30] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import psutil  # noqa: E402
import qasync  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from bench._report import log  # noqa: E402
from bench.ui_stress import Heartbeat, make_records, run_for  # noqa: E402
from comfystudio_desktop.home import Home  # noqa: E402
from comfystudio_desktop.jobs import Job  # noqa: E402
from comfystudio_desktop.monitor.sampler import Sampler  # noqa: E402
from comfystudio_desktop.monitor.series import Resolution  # noqa: E402
from comfystudio_desktop.monitor.snapshot import StatsSnapshot  # noqa: E402
from comfystudio_desktop.queue.connection import ResilientRedis  # noqa: E402
from comfystudio_desktop.queue.job_queue import JobQueue  # noqa: E402
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis  # noqa: E402
from comfystudio_desktop.ui.jobs_model import JobsTableModel  # noqa: E402
from comfystudio_desktop.ui.jobs_view import JobsView  # noqa: E402
from comfystudio_desktop.ui.monitor_charts import CHARTS, MonitorPanel  # noqa: E402
from comfystudio_desktop.ui.monitor_dock import MonitorDock, MonitorFeed  # noqa: E402

INTERVAL_S = Resolution.FINE.interval_s


class CpuHeartbeat(Heartbeat):
    """The ui_stress heartbeat, plus the GUI thread's own CPU time between beats: on a busy shared machine a wall
    gap also counts time the OS gave to other processes; the CPU gap is only what this thread did."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu_gaps: list[float] = []
        self._last_cpu = 0.0

    def start(self) -> None:
        self.cpu_gaps.clear()
        self._last_cpu = time.thread_time()
        super().start()

    def _beat(self) -> None:
        super()._beat()
        now = time.thread_time()
        self.cpu_gaps.append(now - self._last_cpu)
        self._last_cpu = now

    def figures(self) -> dict[str, Any]:
        ms = sorted(g * 1000 for g in self.cpu_gaps)
        return {**super().figures(), "gui_cpu_max_ms": round(ms[-1], 2),
                "gui_cpu_p99_ms": round(ms[int(len(ms) * 0.99) - 1], 2),
                "gui_cpu_over_16_ms": sum(g > 16 for g in ms)}


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def fill_queue(queue: JobQueue, jobs: int, outputs: Path, files: int) -> None:
    batch = 1000
    for start in range(0, jobs, batch):
        ids = range(start, min(jobs, start + batch))
        queue.submit_many([Job(prompt=f"bench {n}", job_id=f"bench-{n}") for n in ids])
    lease = queue.claim("bench")
    done = 0
    while lease is not None:
        _, lease_next = queue.finish_and_claim(lease, f"/outputs/{lease.job_id}.png", [f"{lease.job_id}.png"])
        lease = lease_next
        done += 1
    for n in range(files):
        (outputs / f"bench-{n}.png").write_bytes(b"\x89PNG" + bytes(4096))
    log(f"{done} jobs finished, {files} files in outputs")


def sampling_cost(queue: JobQueue, home: Home, redis_proc: psutil.Process, ticks: int) -> dict[str, Any]:
    me = psutil.Process()
    clock = [time.time()]
    sampler = Sampler(queue, home.outputs, clock=lambda: clock[0])
    started, cpu0 = time.perf_counter(), time.process_time()
    sampler.tick()
    catch_up = {"wall_ms": round((time.perf_counter() - started) * 1000, 1),
                "cpu_ms": round((time.process_time() - cpu0) * 1000, 1)}

    def measure(advance: float) -> dict[str, float]:
        wall, cpu, server = [], [], []
        for _ in range(ticks):
            clock[0] += advance
            w0, c0, r0 = time.perf_counter(), _cpu(me), _cpu(redis_proc)
            sampler.tick()
            wall.append(time.perf_counter() - w0)
            cpu.append(_cpu(me) - c0)
            server.append(_cpu(redis_proc) - r0)
        return {"wall_ms": round(sum(wall) / ticks * 1000, 2), "cpu_ms": round(sum(cpu) / ticks * 1000, 2),
                "redis_cpu_ms": round(sum(server) / ticks * 1000, 2), "max_wall_ms": round(max(wall) * 1000, 2)}

    winning = measure(INTERVAL_S)
    losing = measure(0.0)
    per_interval_s = (winning["cpu_ms"] + winning["redis_cpu_ms"] + losing["cpu_ms"] + losing["redis_cpu_ms"]) / 1000
    return {"catch_up_10k_events": catch_up, "winning_tick": winning, "losing_tick": losing,
            "percent_of_one_core": round(per_interval_s / INTERVAL_S * 100, 3)}


def day_of_samples(template: StatsSnapshot) -> tuple[StatsSnapshot, ...]:
    now = time.time()
    return tuple(replace(template, at=now - INTERVAL_S * (Resolution.FINE.cap - n), queued=n % 37,
                         worker_cpu_percent=float(n % 11)) for n in range(Resolution.FINE.cap))


def charting_cost(app: QApplication, history: tuple[StatsSnapshot, ...]) -> dict[str, Any]:
    panel = MonitorPanel()
    panel.resize(1280, 800)
    panel.show()
    panel.set_samples(history)
    run_for(app, 0.3)
    figures: dict[str, Any] = {}
    for index, name in enumerate(("hour", "day")):
        panel.range_combo.setCurrentIndex(index)
        times = []
        for _ in range(10):
            started = time.perf_counter()
            panel.redraw()
            for view in panel.plots:
                view.viewport().repaint()
            times.append(time.perf_counter() - started)
        figures[f"redraw_{name}_ms"] = {"mean": round(sum(times) / len(times) * 1000, 2),
                                        "max": round(max(times) * 1000, 2)}
        chunks, chunks_cpu = [], []
        for _ in range(10):  # what one turn of the event loop does: one chart
            for chart in range(len(CHARTS)):
                started, started_cpu = time.perf_counter(), time.thread_time()
                panel._draw_chart(chart)
                panel.plots[chart].viewport().repaint()
                chunks.append(time.perf_counter() - started)
                chunks_cpu.append(time.thread_time() - started_cpu)
        figures[f"one_chart_{name}_ms"] = {"max": round(max(chunks) * 1000, 2),
                                           "cpu_max": round(max(chunks_cpu) * 1000, 2),
                                           "median": round(sorted(chunks)[len(chunks) // 2] * 1000, 2)}
    figures["percent_of_one_core_day"] = round(figures["redraw_day_ms"]["mean"] / 1000 / INTERVAL_S * 100, 3)
    panel.stop()
    panel.close()
    return figures


def idle_cost(app: QApplication, queue: JobQueue, home: Home, redis_proc: psutil.Process, seconds: float,
              history: tuple[StatsSnapshot, ...]) -> dict[str, Any]:
    me = psutil.Process()
    loop = qasync.QEventLoop(app, already_running=True)
    asyncio.set_event_loop(loop)

    def measure(with_monitor: bool) -> dict[str, float]:
        feed = MonitorFeed()
        dock = MonitorDock(feed) if with_monitor else None
        task = None
        if dock is not None:
            dock.resize(900, 800)
            dock.show()
            feed.history_loaded.emit(history)
            task = loop.create_task(feed.run(queue, home.outputs, lambda: "http://127.0.0.1:9", 0))
        run_for(app, 1.0)
        c0, r0, w0 = _cpu(me), _cpu(redis_proc), time.perf_counter()
        run_for(app, seconds)
        wall = time.perf_counter() - w0
        figures = {"app_percent": round((_cpu(me) - c0) / wall * 100, 3),
                   "redis_percent": round((_cpu(redis_proc) - r0) / wall * 100, 3)}
        if task is not None:
            task.cancel()
            deadline = time.monotonic() + 10
            while not task.done() and time.monotonic() < deadline:
                run_for(app, 0.05)
        if dock is not None:
            dock.stop()
            dock.close()
        return figures

    baseline = measure(False)
    monitored = measure(True)
    loop._QEventLoop__is_running = False  # as tests/ui/conftest.py: no exec() to leave
    loop.close()  # joins the executor's threads
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)
    return {"seconds": seconds, "qt_loop_alone": baseline, "feed_and_dock": monitored,
            "monitor_percent_of_one_core": round(monitored["app_percent"] + monitored["redis_percent"]
                                                 - baseline["app_percent"] - baseline["redis_percent"], 3)}


def stalls(app: QApplication, queue: JobQueue, home: Home, jobs: int, seconds: float,
           history: tuple[StatsSnapshot, ...]) -> dict[str, Any]:
    records = make_records(jobs, 20, home.outputs, with_files=0)
    model = JobsTableModel(lambda _url: None)
    view = JobsView(model, home.outputs)
    view.resize(1280, 800)
    view.show()
    model.upsert_records(records)
    run_for(app, 0.5)
    results: dict[str, Any] = {}
    for with_dock in (False, True):
        feed = MonitorFeed()
        dock = MonitorDock(feed) if with_dock else None
        if dock is not None:
            dock.resize(900, 800)
            dock.show()
            run_for(app, 0.5)  # the charts are built when the dock is first shown
            assert dock.panel is not None
            dock.panel.range_combo.setCurrentIndex(1)  # the day: the most points
            feed.history_loaded.emit(history)
            run_for(app, 1.5)
        stop = threading.Event()
        sampler = Sampler(queue, home.outputs, clock=time.time)

        def sample_in_background(sampler: Sampler = sampler, feed: MonitorFeed = feed,
                                 stop: threading.Event = stop) -> None:
            while not stop.wait(1.0):
                feed.step(sampler, queue)

        worker = threading.Thread(target=sample_in_background, daemon=True)
        heartbeat = CpuHeartbeat()
        fed = [0]

        def feed_sample(feed: MonitorFeed = feed, fed: list[int] = fed) -> None:
            fed[0] += 1
            feed.sample_added.emit(replace(history[-1], at=history[-1].at + fed[0], queued=fed[0] % 40))

        from PySide6.QtCore import QTimer

        feeder = QTimer()
        feeder.setInterval(100)
        feeder.timeout.connect(feed_sample)
        worker.start()
        heartbeat.start()
        feeder.start()
        run_for(app, seconds)
        feeder.stop()
        heartbeat.stop()
        stop.set()
        worker.join(10)
        results["table_and_dock" if with_dock else "table_alone"] = {**heartbeat.figures(), "samples_fed": fed[0]}
        if dock is not None:
            dock.stop()
            dock.close()
    view.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    with tempfile.TemporaryDirectory(prefix="cs-monitor-cost-") as tmp:
        home = Home(Path(tmp) / "home").create()
        server = EmbeddedRedis(home)
        server.ensure_running()
        try:
            record = server.running_record()
            assert record is not None
            redis_proc = psutil.Process(record.pid)
            queue = JobQueue(ResilientRedis(server.ensure_running, delay_s=0.2))
            log(f"filling the queue with {args.jobs} jobs")
            fill_queue(queue, args.jobs, home.outputs, args.files)
            log("1. sampling")
            sampling = sampling_cost(queue, home, redis_proc, args.ticks)
            template = Sampler(queue, home.outputs).take()
            history = day_of_samples(template)
            log("2. charting")
            charting = charting_cost(app, history)
            log(f"3. idle for {args.idle_seconds:.0f} s, twice")
            idle = idle_cost(app, queue, home, redis_proc, args.idle_seconds, history)
            log(f"4. GUI stalls for {args.seconds:.0f} s, twice")
            gui = stalls(app, queue, home, args.jobs, args.seconds, history)
            queue.conn.close()
        finally:
            server.stop()
    print(json.dumps({"sampling": sampling, "charting": charting, "idle": idle, "gui_stalls": gui}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
