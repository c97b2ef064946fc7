"""The window's decisions as pure functions, tested with tables (no Qt: these modules must not need it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from comfystudio_desktop.jobs import JobEvent, JobRecord, JobStatus
from comfystudio_desktop.queue.redis_endpoint import RedisEndpoint
from comfystudio_desktop.supervise.service_state import ServiceState, State
from comfystudio_desktop.ui.status_values import (
    LinkStatus,
    WorkerMode,
    WorkerStatus,
    comfy_status,
    describe_endpoint,
    redis_service_status,
    redis_status,
    worker_status,
)
from comfystudio_desktop.ui.window_summary import (
    ActiveJobs,
    FaultNotice,
    Notification,
    StatusBoard,
    TrayState,
    ViewerContent,
    about_html,
    counts_text,
    job_notification,
    service_fault,
    short_prompt,
    tray_summary,
    viewer_content,
)
from tests.conftest import REPO_ROOT

JOB = "00000000-0000-4000-8000-000000000001"


def test_the_decision_modules_load_without_qt() -> None:
    code = ("import sys; import comfystudio_desktop.ui.status_values, comfystudio_desktop.ui.window_summary, "
            "comfystudio_desktop.ui.workflow_choices, comfystudio_desktop.ui.refresh_coalescer, "
            "comfystudio_desktop.ui.operations; "
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'qasync'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("state", "paused", "expected", "text"), [
    (ServiceState("worker", State.RUNNING), False, WorkerStatus(WorkerMode.RUNNING), "running"),
    (ServiceState("worker", State.RUNNING), True, WorkerStatus(WorkerMode.PAUSED), "paused"),
    (ServiceState("worker", State.RESTARTING, restart_in_s=4.2), False, WorkerStatus(WorkerMode.RESTARTING, 4.2),
     "restarting in 4 s"),
    (ServiceState("worker", State.RESTARTING), True, WorkerStatus(WorkerMode.RESTARTING), "restarting"),
    (ServiceState("worker", State.FATAL), False, WorkerStatus(WorkerMode.CRASH_LOOP), "crash loop (see Services)"),
    (ServiceState("worker", State.STOPPED), True, WorkerStatus(WorkerMode.STOPPED), "stopped"),
    (ServiceState("worker", State.STARTING), False, WorkerStatus(WorkerMode.STARTING), "starting"),
])
def test_worker_status(state: ServiceState, paused: bool, expected: WorkerStatus, text: str) -> None:
    status = worker_status(state, paused)
    assert (status, status.text) == (expected, text)


_EMBEDDED = RedisEndpoint("127.0.0.1", 6390, "s3cret", embedded=True, version="8.0.2")
_EXTERNAL = RedisEndpoint("", 0, None, embedded=False, url="redis://:pw@db.example:6379/0")


@pytest.mark.parametrize(("endpoint", "text"), [
    (_EMBEDDED, "embedded Redis 8.0.2 at 127.0.0.1:6390"),
    (_EXTERNAL, "external Redis at db.example:6379/0"),
])
def test_describe_endpoint_never_shows_the_password(endpoint: RedisEndpoint, text: str) -> None:
    assert describe_endpoint(endpoint) == text
    assert "s3cret" not in text and "pw" not in text


@pytest.mark.parametrize(("endpoint", "connected", "expected"), [
    (_EMBEDDED, True, LinkStatus(True, "Redis embedded 8.0.2")),
    (_EXTERNAL, True, LinkStatus(True, "Redis external")),
    (None, True, LinkStatus(True, "Redis")),
    (_EMBEDDED, False, LinkStatus(False, "Redis reconnecting…")),
])
def test_redis_status(endpoint: RedisEndpoint | None, connected: bool, expected: LinkStatus) -> None:
    assert redis_status(endpoint, connected=connected) == expected


@pytest.mark.parametrize(("stats", "expected"), [
    (None, LinkStatus(False, "ComfyUI unreachable at http://127.0.0.1:8188")),
    ({"system": {"comfyui_version": "0.3.64"}}, LinkStatus(True, "ComfyUI 0.3.64")),
    ({}, LinkStatus(True, "ComfyUI")),
    ({"system": {"comfyui_version": "0.3.64"},
      "devices": [{"name": "cuda:0 NVIDIA RTX 4090 : cudaMallocAsync", "vram_free": 2**33, "vram_total": 2**34}]},
     LinkStatus(True, "ComfyUI 0.3.64 on cudaMallocAsync, VRAM 8.0/16.0 GB free")),
    ({"devices": [{"name": "cpu"}]}, LinkStatus(True, "ComfyUI on cpu")),
])
def test_comfy_status(stats: dict[str, object] | None, expected: LinkStatus) -> None:
    assert comfy_status(stats, "http://127.0.0.1:8188") == expected


@pytest.mark.parametrize(("queued", "running", "redis_up", "comfy_up", "faults", "state", "problem"), [
    (0, 0, True, True, {}, TrayState.IDLE, ""),
    (3, 1, True, True, {}, TrayState.WORKING, ""),
    (3, 0, True, True, {}, TrayState.IDLE, ""),
    (0, 1, False, True, {}, TrayState.ERROR, "Redis is reconnecting"),
    (0, 1, False, False, {}, TrayState.ERROR, "ComfyUI is unreachable"),
    (0, 0, False, False, {"worker": "worker: fatal", "comfyui": "comfyui: hung"}, TrayState.ERROR,
     "comfyui: hung; worker: fatal"),
])
def test_tray_summary(queued: int, running: int, redis_up: bool, comfy_up: bool, faults: dict[str, str],
                      state: TrayState, problem: str) -> None:
    summary = tray_summary(queued, running, redis_up=redis_up, comfy_up=comfy_up, faults=faults)
    assert (summary.state, summary.queued, summary.running, summary.problem) == (state, queued, running, problem)


@pytest.mark.parametrize(("state", "previous", "expected"), [
    (ServiceState("comfyui", State.RUNNING), "comfyui: hung", None),
    (ServiceState("comfyui", State.STOPPED), "", None),
    (ServiceState("comfyui", State.HUNG), "", FaultNotice("comfyui: hung", show_message=True, alarm=False)),
    (ServiceState("comfyui", State.RESTARTING, message="exited 1"), "",
     FaultNotice("comfyui: restarting — exited 1", show_message=True, alarm=False)),
    # The countdown ticks of a restart already shown stay off the status bar.
    (ServiceState("comfyui", State.RESTARTING, message="exited 1"), "comfyui: restarting — exited 1",
     FaultNotice("comfyui: restarting — exited 1", show_message=False, alarm=False)),
    (ServiceState("comfyui", State.FATAL, message="crash loop"), "comfyui: restarting — exited 1",
     FaultNotice("comfyui: fatal — crash loop", show_message=True, alarm=True)),
    # Fatal once: the dock opens and the user is notified once, not at every repeat of the state.
    (ServiceState("comfyui", State.FATAL, message="crash loop"), "comfyui: fatal — crash loop",
     FaultNotice("comfyui: fatal — crash loop", show_message=True, alarm=False)),
])
def test_service_fault(state: ServiceState, previous: str, expected: FaultNotice | None) -> None:
    assert service_fault(state, previous) == expected


@pytest.mark.parametrize(("event", "enabled", "expected"), [
    (JobEvent(JOB, JobStatus.FINISHED, 100), True, Notification("Image ready", "a cat", JOB)),
    (JobEvent(JOB, JobStatus.FAILED, 40, error="boom"), True, Notification("Job failed", "a cat\nboom", JOB, True)),
    (JobEvent(JOB, JobStatus.CANCELLED, 40), True, None),
    (JobEvent(JOB, JobStatus.FINISHED, 100), False, None),
    (JobEvent(JOB, JobStatus.PROCESSING, 40), True, None),
])
def test_job_notification(event: JobEvent, enabled: bool, expected: Notification | None) -> None:
    assert job_notification(event, "a cat", enabled=enabled) == expected


@pytest.mark.parametrize(("prompt", "expected"), [
    ("", ""), ("x" * 60, "x" * 60), ("x" * 61, "x" * 57 + "…"),
])
def test_short_prompt(prompt: str, expected: str) -> None:
    assert short_prompt(prompt) == expected and len(short_prompt(prompt)) <= 60


@pytest.mark.parametrize(("seen", "announced"), [
    ([JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.FINISHED], [False, False, True]),
    ([JobStatus.FINISHED], [False]),  # history from before this session: no notification
    ([JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.FAILED], [False, True, False]),  # once per end
    ([JobStatus.QUEUED, JobStatus.CANCELLED, JobStatus.QUEUED, JobStatus.FINISHED], [False, True, False, True]),
])
def test_active_jobs_announce_each_end_once(seen: list[JobStatus], announced: list[bool]) -> None:
    jobs = ActiveJobs()
    assert [jobs.saw(JOB, status) for status in seen] == announced


def test_counts_text() -> None:
    assert counts_text(2, 1) == "2 queued · 1 running"


def test_status_board_keeps_faults_until_the_service_is_healthy() -> None:
    board = StatusBoard()
    board.queued, board.running = 2, 1
    assert board.tray().state is TrayState.WORKING
    notice = board.service_changed(ServiceState("comfyui", State.FATAL, message="crash loop"))
    assert notice is not None and notice.alarm
    again = board.service_changed(ServiceState("comfyui", State.FATAL, message="crash loop"))
    assert again is not None and not again.alarm  # the same fault again: no second alarm
    assert (board.tray().state, board.tray().problem) == (TrayState.ERROR, "comfyui: fatal — crash loop")
    assert board.service_changed(ServiceState("comfyui", State.RUNNING, healthy=True)) is None
    assert (board.tray().state, board.tray().problem) == (TrayState.WORKING, "")


_OUT = Path("/outputs/abc.png")


@pytest.mark.parametrize(("record", "output", "expected"), [
    (JobRecord(JOB, JobStatus.FINISHED, 100, seed_used=42), _OUT, ViewerContent(_OUT, "abc.png · seed 42")),
    (JobRecord(JOB, JobStatus.FINISHED, 100), _OUT, ViewerContent(_OUT, "abc.png")),
    (JobRecord(JOB, JobStatus.FAILED, 40, error="boom"), None, ViewerContent(None, "Failed: boom")),
    (JobRecord(JOB, JobStatus.PROCESSING, 40), None, ViewerContent(None, "Processing · 40%", follow=True)),
    (JobRecord(JOB, JobStatus.FINISHED, 100), None, ViewerContent(None, "Finished · 100%", follow=True)),
])
def test_viewer_content(record: JobRecord, output: Path | None, expected: ViewerContent) -> None:
    assert viewer_content(record, output) == expected


def test_about_html_escapes_every_value() -> None:
    text = about_html(version="1.0", data_folder="/home/<b>me</b>", queue="embedded Redis 8 at 127.0.0.1:1",
                      comfy_url="http://x/?a=1&b=2", qt_version="6.8", python_version="3.12.1")
    assert "&lt;b&gt;me&lt;/b&gt;" in text and "a=1&amp;b=2" in text and "<b>me</b>" not in text
    assert "ComfyStudio Desktop 1.0" in text and "embedded Redis 8 at 127.0.0.1:1" in text


@pytest.mark.parametrize(("state", "expected"), [
    (ServiceState("redis-server", State.RUNNING, healthy=True), LinkStatus(True, "Redis")),
    (ServiceState("redis-server", State.EXTERNAL, healthy=True), LinkStatus(True, "Redis")),
    (ServiceState("redis-server", State.RUNNING, healthy=None), LinkStatus(False, "Redis: Redis is running")),
    (ServiceState("redis-server", State.FATAL, message="the AOF is damaged"),
     LinkStatus(False, "Redis: the AOF is damaged")),
    (ServiceState("redis-server", State.STARTING), LinkStatus(False, "Redis: Redis is starting")),
])
def test_redis_service_status(state: ServiceState, expected: LinkStatus) -> None:
    assert redis_service_status(state) == expected
