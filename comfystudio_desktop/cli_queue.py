"""The queue's subcommands: submit (one job or a batch), status, cancel, retry, jobs, redis.

Imported only when one of them runs; Pillow is loaded only when a job carries images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from comfystudio_desktop.cli_args import EXIT_FAILED, EXIT_OK, CommandFailed, shown
from comfystudio_desktop.cli_batch_jobs import spread_jobs
from comfystudio_desktop.cli_status import exit_for, print_record
from comfystudio_desktop.home import Home
from comfystudio_desktop.job_batch import check_images
from comfystudio_desktop.jobs import Job, JobRecord, JobStatus, JobValidationError
from comfystudio_desktop.queue.job_batches import JobBatches
from comfystudio_desktop.queue.job_queue import CancelOutcome, SubmitOutcome
from comfystudio_desktop.runtime import Runtime
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis

__all__ = ["cmd_cancel", "cmd_jobs", "cmd_redis", "cmd_retry", "cmd_status", "cmd_submit"]


# -- submit ----------------------------------------------------------------------------------------------
def job_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The job fields `submit`'s options give (explicit sizes stay sizes; the ratio stays a ratio)."""
    if (args.width is None) != (args.height is None):
        raise CommandFailed("--width needs --height" if args.height is None else "--height needs --width")
    fields: dict[str, Any] = {
        "negative_prompt": args.negative, "model": args.model, "workflow": args.workflow, "seed": args.seed,
        "width": args.width, "height": args.height, "steps": args.steps, "cfg": args.cfg, "denoise": args.denoise,
        "batch_size": args.batch_size, "priority": args.priority, "images": dict(args.image),
        "text_encoder": args.text_encoder, "vae": args.vae, "no_cache": args.no_cache,
    }
    if args.aspect_ratio is not None:
        fields["aspect_ratio"] = args.aspect_ratio
    return fields


def _image_checker(settings: Settings) -> Any:
    def check(slot: str, path: str) -> str:
        from comfystudio_desktop.images import ImageValidationError, validate_image_file

        resolved = Path(path).expanduser()
        try:
            validate_image_file(resolved, settings.max_upload_mb * 1024 * 1024, settings.max_image_pixels)
        except ImageValidationError as exc:
            raise JobValidationError("images", f"{slot}: {exc}") from exc
        return str(resolved.resolve())
    return check


def build_jobs(args: argparse.Namespace, home: Home, settings: Settings) -> list[Job]:
    """Every job `submit` was asked for, validated as the window validates them (images and slots included)."""
    from comfystudio_desktop.comfy.workflow_templates import load_library

    library = load_library(home.workflows)
    check_file = _image_checker(settings)

    def check(job: Job) -> Job:
        return check_images(job, library.image_slots(job.workflow) if job.workflow in library else None, check_file)

    defaults = job_defaults(args)
    given = [name for name, value in (("--prompt", args.prompt), ("--from", args.from_file),
                                      ("--matrix", args.matrix)) if value is not None]
    if len(given) > 1:
        raise CommandFailed(f"{given[0]} and {given[1]} cannot be used together")
    if not given:
        raise CommandFailed("submit needs --prompt TEXT, --matrix TEXT or --from FILE")
    return spread_jobs(args, defaults, check)


def cmd_submit(args: argparse.Namespace, rt: Runtime) -> int:
    """Queue a job (or a batch, in one round trip); with --wait, wait for the end of a single job."""
    jobs = build_jobs(args, rt.home, rt.settings)
    if len(jobs) > 1 and args.wait:
        raise CommandFailed("--wait follows one job; it cannot be used with a batch")
    outcomes = JobBatches(rt.queue).submit(jobs[0].batch_id, jobs) if jobs[0].batch_id else \
        rt.queue.submit_many(jobs)
    if SubmitOutcome.OUTBOX in outcomes:
        print(f"Redis is unreachable; {len(jobs)} job(s) kept and queued when it is back.", file=sys.stderr)
    if not args.wait:
        for job, outcome in zip(jobs, outcomes, strict=True):
            print(json.dumps({"job_id": job.job_id, "outcome": outcome.value}) if args.json else job.job_id)
        return EXIT_OK
    record = _wait_terminal(rt, jobs[0].job_id, args.timeout)
    print_record(record, args.json)
    return exit_for(record)


def _wait_terminal(rt: Runtime, job_id: str, timeout: float) -> JobRecord:
    """Follow the event stream (push, no polling) until the job ends."""
    last_id = rt.queue.last_event_id()
    deadline = time.monotonic() + timeout
    while True:
        record = rt.queue.status(job_id)
        if record is None:
            raise CommandFailed(f"unknown job {shown(job_id)}")
        if record.status.is_terminal:
            return record
        while time.monotonic() < deadline:
            block_ms = max(1, min(1000, int((deadline - time.monotonic()) * 1000)))
            events = rt.queue.read_events(last_id, block_ms=block_ms)
            if events:
                last_id = events[-1][0]
            if any(e.job_id == job_id and e.status.is_terminal for _, e in events):
                break
            if not events:
                break  # re-check the hash now and then: it expires, other tools may write it
        if time.monotonic() >= deadline:
            raise TimeoutError(f"job {job_id} did not end within {timeout:g} s")


# -- one job -----------------------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace, rt: Runtime) -> int:
    """Print one job's status."""
    record = rt.queue.status(args.job_id)
    if record is None:
        raise CommandFailed(f"unknown job {shown(args.job_id)}")
    print_record(record, args.json)
    return exit_for(record)


def cmd_cancel(args: argparse.Namespace, rt: Runtime) -> int:
    """Cancel a job."""
    outcome = rt.queue.cancel(args.job_id)
    if outcome is CancelOutcome.NOT_FOUND:
        raise CommandFailed(f"unknown job {shown(args.job_id)}")
    print(outcome.value)
    return EXIT_OK if outcome in (CancelOutcome.CANCELLED, CancelOutcome.CANCELLING) else EXIT_FAILED


def cmd_retry(args: argparse.Namespace, rt: Runtime) -> int:
    """Queue a failed or cancelled job again."""
    if rt.queue.status(args.job_id) is None:
        raise CommandFailed(f"unknown job {shown(args.job_id)}")
    if not rt.queue.retry(args.job_id):
        print("only failed or cancelled jobs can be retried", file=sys.stderr)
        return EXIT_FAILED
    print("queued")
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace, rt: Runtime) -> int:
    """List jobs."""
    if args.status == JobStatus.QUEUED.value:
        return _queued_jobs(rt, as_json=args.json)
    records = rt.queue.jobs(JobStatus(args.status) if args.status else None)
    if args.json:
        print(json.dumps([r.to_dict() for r in records]))
    else:
        for record in records:
            print_record(record, False)
    return EXIT_OK


def _queued_jobs(rt: Runtime, *, as_json: bool) -> int:
    """Waiting jobs in the order they will run, with their position and priority."""
    from comfystudio_desktop.queue.ordering import QueueOrder

    queued = QueueOrder(rt.queue).queued()
    if as_json:
        print(json.dumps([q.record.to_dict() | {"position": q.position, "priority": q.priority.label}
                          for q in queued]))
        return EXIT_OK
    for q in queued:
        print(f"{q.position:>4}  {q.priority.label:<6}  ", end="")
        print_record(q.record, False)
    return EXIT_OK


# -- the server --------------------------------------------------------------------------------------------
def cmd_redis(args: argparse.Namespace, home: Home, settings: Settings) -> int:
    """Status, start or stop of the home's embedded Redis."""
    if settings.redis_mode == "external":
        raise CommandFailed("Redis is external (settings: redis_mode); the app does not manage it")
    server = EmbeddedRedis(home, settings.redis_binary or None)
    if args.action == "stop":
        if (stale := server.forget_stale_pidfile()) is not None:
            print(stale, file=sys.stderr)
        print("stopped" if server.stop(by_user=True) else "not running")
        return EXIT_OK
    if args.action == "start":
        server.ensure_running(by_user=True)
    record = server.running_record()
    info: dict[str, Any] = {"running": record is not None, "home": str(home.root)}
    if record is not None:
        endpoint = server.endpoint(record)
        info.update(pid=record.pid, port=endpoint.port, version=endpoint.version, bind="127.0.0.1")
    if args.json:
        print(json.dumps(info))
    elif record is None:
        print("not running")
    else:
        print(f"running: pid {info['pid']}, 127.0.0.1:{info['port']}, version {info['version']}")
    return EXIT_OK
