"""`comfystudio-desktop worker`: the same Consumer as in the window, as its own process."""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import replace

from comfystudio_desktop.backend_settings import Backend
from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.home import Home
from comfystudio_desktop.monitor.sampler import sample_until
from comfystudio_desktop.runtime import Runtime, open_queue
from comfystudio_desktop.settings import Settings, SettingsError, load_settings
from comfystudio_desktop.settings_watch import SETTINGS_POLL_S, SettingsWatch
from comfystudio_desktop.stop_signals import stop_on_signals
from comfystudio_desktop.supervise.backends import supervise_backend
from comfystudio_desktop.worker.backend_worker import BackendConsumer, make_backend_consumer
from comfystudio_desktop.worker.consumer import Consumer

__all__ = ["SETTINGS_POLL_S", "follow_settings", "run_headless_worker"]

log = logging.getLogger(__name__)


def run_headless_worker(home: Home, settings: Settings, *, worker_id: str = "", backend: str = "") -> int:
    """Run jobs until SIGINT/SIGTERM (Ctrl+C, Ctrl+Break on Windows); held jobs are handed back on the way out.

    With `backend`, run the worker of that configured backend: it takes only jobs whose model its ComfyUI has.
    """
    chosen = settings.backend(backend) if backend else None  # SettingsError (exit 2) for an unknown name
    watchdog = None
    if chosen is not None:
        watchdog, chosen = supervise_backend(home, settings, chosen)  # a managed backend's ComfyUI, started
    try:
        return _run(home, settings, worker_id, chosen)
    finally:
        if watchdog is not None:
            watchdog.stop()


def _run(home: Home, settings: Settings, worker_id: str, chosen: Backend | None) -> int:
    runtime = open_queue(home, settings)
    client = ComfyClient.from_settings(settings)
    consumer = make_backend_consumer(home, settings, chosen, runtime.queue, worker_id=worker_id) \
        if chosen is not None else Consumer(runtime.queue, client, home, settings, worker_id=worker_id)
    stop = threading.Event()
    signals = stop_on_signals(stop)  # logged after the loop, not from the handler
    watcher = threading.Thread(target=follow_settings, args=(home, consumer, runtime, stop),
                               name="settings-watch", daemon=True)
    watcher.start()
    sampling = threading.Thread(target=sample_until, args=(runtime.queue, home.outputs, settings.comfy_url, stop),
                                name="monitor", daemon=True)  # this worker's CPU/memory, and samples when no window
    sampling.start()
    try:
        consumer.run(stop, lambda event: None)
    finally:
        if signals:
            log.info("Worker %r: stopped by signal %d", consumer.worker_id, signals[0])
        stop.set()
        watcher.join(5.0)
        sampling.join(5.0)
        client.close()
        runtime.close()
    if consumer.fatal_error is not None:
        print(f"comfystudio-desktop: error: {consumer.fatal_error}", file=sys.stderr)
        return 2
    return 0


def follow_settings(home: Home, consumer: Consumer, runtime: Runtime, stop: threading.Event,
                    interval_s: float = SETTINGS_POLL_S) -> None:
    """Until `stop`: apply changes of `config.json` that need no restart to the running consumer and queue."""
    try:
        baseline = load_settings(home.config_file)
    except SettingsError:
        baseline = consumer.settings
    watch = SettingsWatch(home.config_file, baseline)
    while not stop.wait(interval_s):
        change = watch.poll()
        if change is None:
            continue
        live = {name: getattr(change.settings, name) for name in change.live}
        if isinstance(consumer, BackendConsumer):
            live.pop("pipeline_depth", None)  # a backend's own depth (in `backends`) wins
        consumer.settings = replace(consumer.settings, **live)  # one attribute swap: the loop reads it whole
        runtime.queue.max_attempts = consumer.settings.max_attempts
        runtime.queue.lease_seconds = consumer.settings.lease_seconds
        if change.need_restart:
            log.warning("Worker %s: %s changed; restart the worker to use the new value",
                        consumer.worker_id, ", ".join(sorted(change.need_restart)))
