"""A requeued job's row: progress never goes backwards, "retrying (attempt N)"; a user's retry starts over."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from comfystudio_desktop.jobs import Job, JobEvent, JobRecord, JobStatus
from comfystudio_desktop.ui.jobs_model import Column, JobsTableModel, ProgressRole, RetryAttemptRole

JOB = "00000000-0000-4000-8000-000000000001"


def at(step: int) -> str:
    """Strictly increasing ISO times, one per step."""
    minutes, seconds = divmod(step, 60)
    hours, minutes = divmod(minutes, 60)
    return f"2025-01-01T{10 + hours:02d}:{minutes:02d}:{seconds:02d}.000+00:00"


@dataclass
class Queue:
    """What the real queue holds for the job, as far as the test drives it."""

    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0
    progress: int = 0


def test_requeue_keeps_progress_and_says_which_attempt(qapp: QApplication) -> None:
    model = JobsTableModel()
    model.upsert_record(JobRecord(JOB, JobStatus.QUEUED, created_at=at(0), updated_at=at(0),
                                  job=Job(prompt="a cat", job_id=JOB)))
    model.apply_event(JobEvent(JOB, JobStatus.PROCESSING, 10, updated_at=at(1)))
    model.apply_event(JobEvent(JOB, JobStatus.PROCESSING, 52, updated_at=at(2)))
    # The queue of today resets progress to 0 on a requeue and puts the reason in the message.
    model.apply_event(JobEvent(JOB, JobStatus.QUEUED, 0, updated_at=at(3), message="ComfyUI lost the job",
                               attempts=1))
    index = model.index(0, Column.PROGRESS)
    assert index.data(ProgressRole) == 52
    assert index.data(RetryAttemptRole) == 2
    assert not model.needs_record(JOB)  # the event carries the attempt count: no read of the record
    assert index.data(Qt.ItemDataRole.ToolTipRole) == "retrying (attempt 2): ComfyUI lost the job"
    model.upsert_record(JobRecord(JOB, JobStatus.QUEUED, progress=0, attempts=1, updated_at=at(3),
                                  message="ComfyUI lost the job"))
    assert (index.data(ProgressRole), index.data(RetryAttemptRole), model.needs_record(JOB)) == (52, 2, False)
    model.apply_event(JobEvent(JOB, JobStatus.PROCESSING, 10, updated_at=at(4), attempts=1))  # the second run
    assert index.data(ProgressRole) == 52 and index.data(RetryAttemptRole) is None
    model.apply_event(JobEvent(JOB, JobStatus.PROCESSING, 70, updated_at=at(5), attempts=1))
    model.apply_event(JobEvent(JOB, JobStatus.FAILED, 70, updated_at=at(6), error="boom", attempts=1))
    model.apply_event(JobEvent(JOB, JobStatus.QUEUED, 0, updated_at=at(7), message="retry"))  # the user's retry
    assert (index.data(ProgressRole), index.data(RetryAttemptRole)) == (0, None)
    record = model.record(JOB)
    assert record is not None and record.attempts == 0


def test_an_uncounted_release_is_not_called_a_retry(qapp: QApplication) -> None:
    model = JobsTableModel()
    model.apply_event(JobEvent(JOB, JobStatus.PROCESSING, 40, updated_at=at(1)))
    model.apply_event(JobEvent(JOB, JobStatus.QUEUED, 0, updated_at=at(2), message="released by a stopping worker"))
    index = model.index(0, Column.PROGRESS)
    assert (index.data(ProgressRole), index.data(RetryAttemptRole)) == (40, None)


_STEPS = st.lists(st.tuples(st.sampled_from(["progress", "requeue", "record", "fail", "cancel", "retry"]),
                            st.integers(min_value=0, max_value=100)), max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_STEPS)
def test_progress_is_monotonic_within_an_attempt_sequence(qapp: QApplication, steps: list[tuple[str, int]]) -> None:
    """Any interleaving of progress, requeues, record reloads, failures and user retries, as the queue makes them."""
    model = JobsTableModel()
    queue = Queue()
    model.upsert_record(JobRecord(JOB, JobStatus.QUEUED, created_at=at(0), updated_at=at(0),
                                  job=Job(prompt="a cat", job_id=JOB)))
    shown_max = 0  # the furthest progress the row has shown since the last user retry
    for number, (step, value) in enumerate(steps, start=1):
        when = at(number)
        active = queue.status in (JobStatus.QUEUED, JobStatus.PROCESSING)
        if step == "progress" and active:
            queue.status, queue.progress = JobStatus.PROCESSING, max(queue.progress, value)
            model.apply_event(JobEvent(JOB, JobStatus.PROCESSING, queue.progress, updated_at=when,
                                       attempts=queue.attempts))
        elif step == "requeue" and queue.status is JobStatus.PROCESSING:
            queue.status, queue.attempts, queue.progress = JobStatus.QUEUED, queue.attempts + 1, 0
            model.apply_event(JobEvent(JOB, JobStatus.QUEUED, 0, updated_at=when, message="worker died",
                                       attempts=queue.attempts))
        elif step == "record":
            model.upsert_record(JobRecord(JOB, queue.status, progress=queue.progress, attempts=queue.attempts,
                                          updated_at=when))
        elif step in ("fail", "cancel") and active:
            queue.status = JobStatus.FAILED if step == "fail" else JobStatus.CANCELLED
            model.apply_event(JobEvent(JOB, queue.status, queue.progress, updated_at=when, attempts=queue.attempts))
        elif step == "retry" and queue.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            queue.status, queue.attempts, queue.progress = JobStatus.QUEUED, 0, 0
            shown_max = 0
            model.apply_event(JobEvent(JOB, JobStatus.QUEUED, 0, updated_at=when, message="retry"))
        else:
            continue
        shown_max = max(shown_max, queue.progress)
        index = model.index(0, Column.PROGRESS)
        assert index.data(ProgressRole) == shown_max
        attempt = queue.attempts + 1
        expected = attempt if queue.status is JobStatus.QUEUED and attempt >= 2 else None
        assert index.data(RetryAttemptRole) == expected
        assert not model.needs_record(JOB)  # the parameters are known and the events carry the attempts
