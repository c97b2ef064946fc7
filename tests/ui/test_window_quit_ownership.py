"""Quitting the window stops only what it started: a redis-server that serves a headless worker keeps running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import qasync
from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.outbox import Outbox
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from comfystudio_desktop.supervise.services import REDIS_SERVICE
from tests.conftest import REPO_ROOT
from tests.helpers import wait_until
from tests.ui.window_session import CHECKPOINT, Session


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Stop the headless worker as a user would (Ctrl+C / SIGTERM; Ctrl+Break on Windows)."""
    if worker.poll() is None:
        if sys.platform == "win32":
            worker.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


def test_quitting_the_window_leaves_the_server_of_a_headless_worker_running(
        qtbot: QtBot, loop: qasync.QEventLoop, home: Home, settings: Settings) -> None:
    server = EmbeddedRedis(home)
    creationflags = 0  # the default
    if sys.platform == "win32":
        creationflags = subprocess.CREATE_NEW_PROCESS_GROUP
    # The headless worker's first queue access starts the home's redis-server (as any CLI command does).
    worker = subprocess.Popen([sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root), "worker"],
                              cwd=REPO_ROOT, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, creationflags=creationflags)
    queue: JobQueue | None = None
    try:
        record = wait_until(server.running_record, timeout=60, message="the worker's redis-server")
        session = Session(qtbot, loop, home, settings)
        try:
            services = session.app.controller.services
            assert services is not None and services.watchdog.adopted(REDIS_SERVICE)
            assert services.states()[REDIS_SERVICE].pid == record.pid
        finally:
            session.close()
        still = server.running_record()
        assert psutil.pid_exists(record.pid) and still is not None and still.pid == record.pid  # not stopped
        # ... and still serving the headless worker: a new job runs to the end on it.
        queue = JobQueue(ResilientRedis(server.endpoint, delay_s=0.2), outbox=Outbox(home.outbox))
        job = Job(prompt="after the window quit", model=CHECKPOINT)
        queue.submit(job)
        done = wait_until(lambda: r if (r := queue.status(job.job_id)) is not None and r.status.is_terminal else None,
                          timeout=60, message="the job run by the headless worker")
        assert done.status is JobStatus.FINISHED, done.error
        assert worker.poll() is None
    finally:
        if queue is not None:
            queue.conn.close()
        stop_worker(worker)
        server.stop()
