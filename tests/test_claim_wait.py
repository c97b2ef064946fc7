"""A claim that waits on the wake-up list asks again whether it is still wanted before it takes a job."""

from __future__ import annotations

import threading

from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.job_queue import JobQueue, Lease
from tests.helpers import wait_until


def _blocked_on_wake_list(queue: JobQueue) -> bool:
    return any(client.get("cmd") == "blpop" for client in queue.conn.client.client_list())


def _claim_in_thread(queue: JobQueue, wanted: threading.Event) -> tuple[threading.Thread, list[Lease | None]]:
    result: list[Lease | None] = []
    thread = threading.Thread(target=lambda: result.append(
        queue.claim("waiting-worker", block_s=10, still_wanted=wanted.is_set)))
    thread.start()
    wait_until(lambda: _blocked_on_wake_list(queue), message="the claim waiting on the wake-up list")
    return thread, result


def test_a_worker_paused_while_it_waited_takes_nothing(queue: JobQueue) -> None:
    thread, result = _claim_in_thread(queue, threading.Event())  # never wanted: paused while waiting
    queue.submit(Job(job_id="woken-for", prompt="p", model="m.safetensors"))
    thread.join(timeout=30)
    assert not thread.is_alive() and result == [None]
    record = queue.status("woken-for")
    assert record is not None and record.status is JobStatus.QUEUED


def test_a_worker_still_wanted_takes_the_job_it_was_woken_for(queue: JobQueue) -> None:
    wanted = threading.Event()
    wanted.set()
    thread, result = _claim_in_thread(queue, wanted)
    queue.submit(Job(job_id="woken-for", prompt="p", model="m.safetensors"))
    thread.join(timeout=30)
    assert not thread.is_alive() and len(result) == 1
    lease = result[0]
    assert lease is not None and lease.job_id == "woken-for"
