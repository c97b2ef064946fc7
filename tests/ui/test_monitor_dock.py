"""The Monitor dock opens offscreen and charts the samples stored in Redis; the feed samples off the GUI thread."""

from __future__ import annotations

import time

import qasync
from pytestqt.qtbot import QtBot

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job
from comfystudio_desktop.monitor.sampler import Sampler
from comfystudio_desktop.monitor.snapshot import StatsSnapshot
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.ui.monitor_charts import CHARTS
from comfystudio_desktop.ui.monitor_dock import MonitorDock, MonitorFeed
from tests.fake_comfyui.process import FakeComfyProcess


def _store_samples(queue: JobQueue, home: Home, fake: FakeComfyProcess) -> list[StatsSnapshot]:
    stored: list[StatsSnapshot] = []
    start = time.time() - 60
    with ComfyClient(fake.url) as client:
        for n in range(3):
            queue.submit(Job(prompt=f"p{n}", job_id=f"monitored-{n}"))
            sampler = Sampler(queue, home.outputs, system_stats=client.system_stats,
                              clock=lambda n=n: start + 10 * n)  # type: ignore[misc]
            snapshot = sampler.tick()
            assert snapshot is not None
            stored.append(snapshot)
    return stored


def test_dock_charts_the_stored_samples_and_adds_new_ones(qtbot: QtBot, loop: qasync.QEventLoop, queue: JobQueue,
                                                          home: Home, fake: FakeComfyProcess) -> None:
    stored = _store_samples(queue, home, fake)
    assert [s.queued for s in stored] == [1, 2, 3]
    assert all(s.gpu is not None and s.gpu.name == "cpu" and s.gpu.vram_total > 0 for s in stored)
    feed = MonitorFeed()
    dock = MonitorDock(feed)
    qtbot.addWidget(dock)
    dock.show()
    task = loop.create_task(feed.run(queue, home.outputs, lambda: fake.url, 0))
    try:
        qtbot.waitUntil(lambda: dock.panel is not None, timeout=10_000)  # built when first shown
        panel = dock.panel
        assert panel is not None
        queued_curve = panel.curves[("Queue length", "queued")]
        gpu_curve = panel.curves[("GPU memory used", "used")]

        def charted(points: int = 3) -> bool:  # every chart is drawn, one per turn of the event loop
            return all(c.getData()[0] is not None and len(c.getData()[0]) >= points for c in panel.curves.values())

        qtbot.waitUntil(charted, timeout=10_000)
        xs, ys = queued_curve.getData()
        assert list(xs[:3]) == [s.at for s in stored]
        assert list(ys[:3]) == [1.0, 2.0, 3.0]
        _, gpu = gpu_curve.getData()
        assert list(gpu[:3]) == [s.gpu.vram_used / 1_000_000 for s in stored]  # type: ignore[union-attr]
        assert panel.figures["Queue"].text().startswith("3 queued")
        assert panel.figures["GPU"].text().startswith("cpu: ")
        assert len(panel.curves) == sum(len(c.lines) for c in CHARTS)
        # The feed's own sample (taken on a worker thread of the loop) arrives as a newer sample.
        with qtbot.waitSignal(feed.sample_added, timeout=15_000) as added:
            pass
        fresh = added.args[0]
        assert isinstance(fresh, StatsSnapshot) and fresh.at > stored[-1].at and fresh.queued == 3
        assert fresh.worker_rss is not None and fresh.worker_rss > 0
        qtbot.waitUntil(lambda: charted(4), timeout=5_000)
    finally:
        task.cancel()
        qtbot.waitUntil(task.done, timeout=10_000)
        dock.stop()
    assert task.cancelled()


def test_range_switch_shows_only_the_last_hour(qtbot: QtBot) -> None:
    feed = MonitorFeed()
    dock = MonitorDock(feed)
    qtbot.addWidget(dock)
    dock.show()
    now = time.time()
    base = {"queued": 0, "running": 0, "finished": 0, "failed": 0, "cancelled": 0, "images_total": 0,
            "images_last_hour": 0, "processing": None, "waiting": None, "redis_memory": None,
            "worker_cpu_percent": None, "worker_rss": None, "gpu": None, "outputs_bytes": 0, "outputs_images": 0}
    samples = tuple(StatsSnapshot(at=now - age, **base) for age in (7200.0, 1800.0, 0.0))  # type: ignore[arg-type]
    feed.history_loaded.emit(samples)  # before the charts exist: kept for them
    qtbot.waitUntil(lambda: dock.panel is not None, timeout=10_000)
    panel = dock.panel
    assert panel is not None
    panel.redraw()
    curve = panel.curves[("Queue length", "queued")]
    assert list(curve.getData()[0]) == [now - 1800.0, now]
    panel.range_combo.setCurrentIndex(1)  # schedules a redraw, one chart per turn of the event loop
    qtbot.waitUntil(lambda: len(curve.getData()[0]) == 3, timeout=5_000)
    assert list(curve.getData()[0]) == [now - 7200.0, now - 1800.0, now]
    dock.stop()


def test_window_feed_serves_metrics_only_when_a_port_is_set(qtbot: QtBot, loop: qasync.QEventLoop,
                                                            queue: JobQueue, home: Home) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    queue.submit(Job(prompt="counted", job_id="metrics-1"))
    Sampler(queue, home.outputs, clock=lambda: time.time() - 20).tick()
    for metrics_port in (0, port):
        feed = MonitorFeed()
        task = loop.create_task(feed.run(queue, home.outputs, lambda: "http://127.0.0.1:9", metrics_port))
        try:
            with qtbot.waitSignal(feed.history_loaded, timeout=10_000):
                pass
            if metrics_port == 0:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
                except OSError:
                    pass
                else:
                    raise AssertionError("metrics served although metrics_port is 0")
            else:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
                    text = reply.read().decode("utf-8")
                assert 'comfystudio_queue_jobs{state="queued"} 1.0' in text
        finally:
            task.cancel()
            qtbot.waitUntil(task.done, timeout=10_000)
    with socket.socket() as s:  # the endpoint was stopped with the feed: nothing listens there any more
        assert s.connect_ex(("127.0.0.1", port)) != 0
