"""The queue's outlook in words: ETA per row, the whole queue, pauses and when Resume applies (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from comfystudio_desktop.jobs import Job
from comfystudio_desktop.queue.forecast import EstimateSource, JobEta, QueueForecast
from comfystudio_desktop.queue.queue_pause import PauseReason, QueueGate
from comfystudio_desktop.ui.outlook_words import duration_words, outlook_words

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def eta(job_id: str, start_s: float, end_s: float) -> JobEta:
    return JobEta(job_id, NOW + timedelta(seconds=start_s), NOW + timedelta(seconds=end_s), end_s - start_s,
                  EstimateSource.EXACT)


def test_rows_and_summary_while_running() -> None:
    running, queued = eta(Job(prompt="a").job_id, 0, 90), eta("q1", 90, 150)
    forecast = QueueForecast(now=NOW, running=(running,), queued=(queued,), finish=queued.finish, workers=1)
    words = outlook_words(QueueGate(open=True), forecast, NOW)
    assert words.rows[running.job_id] == "≈ 2 min left"
    local = queued.start.astimezone()
    assert words.rows["q1"] == f"starts ≈ {local:%H:%M}"
    assert words.summary == f"Queue running · done ≈ {queued.finish.astimezone():%H:%M} (2 min)"
    assert not words.resumable and not words.out_of_memory


def test_out_of_memory_offers_resume_and_active_hours_do_not() -> None:
    empty = QueueForecast(now=NOW, running=(), queued=(), finish=None, workers=1)
    oom = outlook_words(QueueGate(open=False, reason=PauseReason.OUT_OF_MEMORY, message="CUDA"), empty, NOW)
    assert oom.resumable and oom.out_of_memory
    assert oom.summary == "Queue paused: ComfyUI ran out of memory (CUDA)"
    until = NOW + timedelta(hours=8)
    night = outlook_words(QueueGate(open=False, reason=PauseReason.OUTSIDE_ACTIVE_HOURS, until=until), empty, NOW)
    assert night.summary == f"Queue paused until {until:%H:%M}" and not night.resumable
    assert outlook_words(QueueGate(open=False, reason=PauseReason.USER), None, NOW).resumable
    assert outlook_words(QueueGate(open=True), empty, NOW).summary == "Queue empty"


def test_a_pause_without_an_end_promises_no_end_time_but_active_hours_do() -> None:
    queued = eta("q1", 90, 150)
    forecast = QueueForecast(now=NOW, running=(), queued=(queued,), finish=queued.finish, workers=1)
    for gate in (QueueGate(open=False, reason=PauseReason.USER),
                 QueueGate(open=False, reason=PauseReason.OUT_OF_MEMORY, message="CUDA")):
        words = outlook_words(gate, forecast, NOW)
        assert words.summary == "Queue " + gate.describe() and "done" not in words.summary
        assert words.rows["q1"] == f"starts ≈ {queued.start.astimezone():%H:%M}"  # if resumed now
    until = NOW + timedelta(seconds=90)
    night = outlook_words(QueueGate(open=False, reason=PauseReason.OUTSIDE_ACTIVE_HOURS, until=until), forecast, NOW)
    assert night.summary == f"Queue paused until {until:%H:%M} · done ≈ {queued.finish.astimezone():%H:%M} (2 min)"


def test_durations() -> None:
    assert [duration_words(s) for s in (-3, 0, 59.4, 61, 3599, 3600, 7380)] == \
        ["0 s", "0 s", "59 s", "1 min", "1 h 00 min", "1 h 00 min", "2 h 03 min"]
