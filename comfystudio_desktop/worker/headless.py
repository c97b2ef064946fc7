"""`comfystudio-desktop worker`: the same Consumer as in the window, as its own process."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.home import Home
from comfystudio_desktop.runtime import open_queue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.worker.consumer import Consumer

__all__ = ["run_headless_worker"]

log = logging.getLogger(__name__)


def run_headless_worker(home: Home, settings: Settings, *, worker_id: str = "") -> int:
    """Run jobs until SIGINT/SIGTERM (Ctrl+C, Ctrl+Break on Windows); held jobs are handed back on the way out."""
    runtime = open_queue(home, settings)
    client = ComfyClient.from_settings(settings)
    consumer = Consumer(runtime.queue, client, home, settings, worker_id=worker_id)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("Worker %s: signal %d, stopping", consumer.worker_id, signum)
        stop.set()

    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), on_signal)
    try:
        consumer.run(stop, lambda event: None)
    finally:
        client.close()
        runtime.close()
    return 0
