"""The `comfystudio-desktop` command: the window with no arguments, the seed's REST API as subcommands.

Exit codes: 0 ok, 1 job failed or cancelled (or a check failed), 2 bad input or usage (one clear line on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from comfystudio_desktop import __version__
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import ASPECT_RATIOS, IMAGE_SLOTS, Job, JobRecord, JobStatus, JobValidationError
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_queue import CancelOutcome, SubmitOutcome
from comfystudio_desktop.queue.redis_server import EmbeddedRedis, RedisServerError
from comfystudio_desktop.runtime import Runtime, load_home_and_settings, open_queue
from comfystudio_desktop.settings import Settings, SettingsError
from comfystudio_desktop.supervise.child_env import release_dll_directory

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _image_arg(text: str) -> tuple[str, str]:
    slot, sep, path = text.partition("=")
    if not sep or slot not in IMAGE_SLOTS or not path:
        raise argparse.ArgumentTypeError(f"expected SLOT=PATH with SLOT one of {', '.join(IMAGE_SLOTS)}")
    return slot, path


def build_parser() -> argparse.ArgumentParser:
    """The full command line."""
    parser = _Parser(prog="comfystudio-desktop", description="Desktop front end for a local ComfyUI.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--home", help="home folder (config, logs, storage, Redis data); env COMFYSTUDIO_HOME")
    parser.add_argument("--comfy-url", help="ComfyUI base URL; env COMFYSTUDIO_COMFY_URL")
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug details to stderr")
    parser.add_argument("--self-test", action="store_true", help="run the self-test (frozen app) and exit")
    parser.add_argument("--exit-when-ready", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("submit", help="queue a job")
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative", default="")
    p.add_argument("--model", default="")
    p.add_argument("--workflow", default="text_to_image")
    p.add_argument("--seed", type=int, default=-1)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--aspect-ratio", default="1:1", help=f"one of {', '.join(ASPECT_RATIOS)} or W:H")
    size.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--cfg", type=float)
    p.add_argument("--denoise", type=float)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--image", action="append", type=_image_arg, default=[], metavar="SLOT=PATH")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--wait", action="store_true", help="wait until the job is finished, failed or cancelled")
    p.add_argument("--timeout", type=float, default=3600.0, help="with --wait: give up after this many seconds")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="a job's status (the seed's fields)")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("cancel", help="cancel a job")
    p.add_argument("job_id")

    p = sub.add_parser("retry", help="queue a failed or cancelled job again")
    p.add_argument("job_id")

    p = sub.add_parser("jobs", help="list jobs")
    p.add_argument("--status", choices=[s.value for s in JobStatus])
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("redis", help="the embedded Redis server")
    p.add_argument("action", choices=["status", "stop", "start"])
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("models", help="models grouped into UNET and Checkpoints")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("worker", help="run a headless worker against the queue")
    p.add_argument("--id", dest="worker_id", default="")

    p = sub.add_parser("services", help="state of the supervised services")
    p.add_argument("--json", action="store_true")

    sub.add_parser("self-test", help="check the app's parts end to end and exit")
    return parser


def _job_from_args(args: argparse.Namespace) -> Job:
    if args.width is not None and args.height is None:
        raise UsageError("--width needs --height")
    if args.height is not None and args.width is None:
        raise UsageError("--height needs --width")
    images: dict[str, str] = {}
    for slot, path in args.image:
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            raise UsageError(f"--image {slot}: no such file: {path}")
        images[slot] = str(resolved.resolve())
    return Job(prompt=args.prompt, negative_prompt=args.negative, model=args.model, workflow=args.workflow,
               seed=args.seed, aspect_ratio=args.aspect_ratio if args.width is None else f"{args.width}:{args.height}",
               width=args.width, height=args.height, steps=args.steps, cfg=args.cfg, denoise=args.denoise,
               batch_size=args.batch_size, images=images, priority=args.priority).validate()


def _print_record(record: JobRecord, as_json: bool) -> None:
    if as_json:
        print(json.dumps(record.seed_fields() | {"message": record.message, "attempts": record.attempts,
                                                 "seed_used": record.seed_used, "outputs": list(record.outputs)}))
    else:
        line = f"{record.job_id}  {record.status.value:<10} {record.progress:>3}%"
        if record.image_url:
            line += f"  {record.image_url}"
        if record.error:
            line += f"  error: {record.error}"
        elif record.message:
            line += f"  ({record.message})"
        print(line)


def _exit_for(record: JobRecord) -> int:
    return EXIT_OK if record.status in (JobStatus.FINISHED, JobStatus.QUEUED, JobStatus.PROCESSING) else EXIT_FAILED


def _wait_terminal(rt: Runtime, job_id: str, timeout: float) -> JobRecord:
    """Follow the event stream (push, no polling) until the job ends."""
    last_id = rt.queue.last_event_id()
    deadline = time.monotonic() + timeout
    while True:
        record = rt.queue.status(job_id)
        if record is None:
            raise UsageError(f"unknown job {job_id}")
        if record.status.is_terminal:
            return record
        while time.monotonic() < deadline:
            events = rt.queue.read_events(last_id, block_ms=1000)
            if events:
                last_id = events[-1][0]
            if any(e.job_id == job_id and e.status.is_terminal for _, e in events):
                break
            if not events:
                break  # re-check the hash now and then: it expires, other tools may write it
        if time.monotonic() >= deadline:
            raise TimeoutError(f"job {job_id} did not end within {timeout:.0f} s")


def cmd_submit(args: argparse.Namespace, rt: Runtime) -> int:
    """Queue a job; with --wait, wait for its end."""
    job = _job_from_args(args)
    outcome = rt.queue.submit(job)
    if outcome is SubmitOutcome.OUTBOX:
        print(f"Redis is unreachable; job {job.job_id} is kept and will be queued when it is back.",
              file=sys.stderr)
    if not args.wait:
        print(json.dumps({"job_id": job.job_id, "outcome": outcome.value}) if args.json else job.job_id)
        return EXIT_OK
    record = _wait_terminal(rt, job.job_id, args.timeout)
    _print_record(record, args.json)
    return _exit_for(record)


def cmd_status(args: argparse.Namespace, rt: Runtime) -> int:
    """Print one job's status."""
    record = rt.queue.status(args.job_id)
    if record is None:
        raise UsageError(f"unknown job {args.job_id}")
    _print_record(record, args.json)
    return _exit_for(record)


def cmd_cancel(args: argparse.Namespace, rt: Runtime) -> int:
    """Cancel a job."""
    outcome = rt.queue.cancel(args.job_id)
    if outcome is CancelOutcome.NOT_FOUND:
        raise UsageError(f"unknown job {args.job_id}")
    print(outcome.value)
    return EXIT_OK if outcome in (CancelOutcome.CANCELLED, CancelOutcome.CANCELLING) else EXIT_FAILED


def cmd_retry(args: argparse.Namespace, rt: Runtime) -> int:
    """Queue a failed or cancelled job again."""
    if rt.queue.status(args.job_id) is None:
        raise UsageError(f"unknown job {args.job_id}")
    if not rt.queue.retry(args.job_id):
        print("only failed or cancelled jobs can be retried", file=sys.stderr)
        return EXIT_FAILED
    print("queued")
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace, rt: Runtime) -> int:
    """List jobs."""
    records = rt.queue.jobs(JobStatus(args.status) if args.status else None)
    if args.json:
        print(json.dumps([r.to_dict() for r in records]))
    else:
        for record in records:
            _print_record(record, False)
    return EXIT_OK


def cmd_redis(args: argparse.Namespace, home: Home, settings: Settings) -> int:
    """Status, start or stop of the home's embedded Redis."""
    if settings.redis_mode == "external":
        raise UsageError("Redis is external (settings: redis_mode); the app does not manage it")
    server = EmbeddedRedis(home, settings.redis_binary or None)
    if args.action == "stop":
        print("stopped" if server.stop() else "not running")
        return EXIT_OK
    if args.action == "start":
        server.ensure_running()
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


_QUEUE_COMMANDS: dict[str, Callable[[argparse.Namespace, Runtime], int]] = {
    "submit": cmd_submit, "status": cmd_status, "cancel": cmd_cancel, "retry": cmd_retry, "jobs": cmd_jobs,
}


def _stderr_level(args: argparse.Namespace) -> int:
    """What reaches the terminal: warnings for one-shot commands; a headless worker narrates its jobs."""
    if args.verbose:
        return logging.DEBUG
    return logging.INFO if args.command == "worker" else logging.WARNING


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "self-test" or args.self_test:  # runs in a temporary home: leave the user's alone
        from comfystudio_desktop.self_test import run_self_test

        return run_self_test()
    home, settings = load_home_and_settings(args.home, comfy_url=args.comfy_url,
                                            stderr_level=_stderr_level(args))
    command = args.command
    if command in _QUEUE_COMMANDS:
        rt = open_queue(home, settings)
        try:
            return _QUEUE_COMMANDS[command](args, rt)
        finally:
            rt.close()
    if command == "redis":
        return cmd_redis(args, home, settings)
    return _dispatch_more(command, args, home, settings)


def _dispatch_more(command: str | None, args: argparse.Namespace, home: Home, settings: Settings) -> int:
    """Commands that live in other modules, imported only when used (keeps plain CLI calls light)."""
    if command == "models":
        from comfystudio_desktop.comfy.cli_models import cmd_models

        return cmd_models(args, home, settings)
    if command == "worker":
        from comfystudio_desktop.worker.headless import run_headless_worker

        return run_headless_worker(home, settings, worker_id=args.worker_id)
    if command == "services":
        from comfystudio_desktop.supervise.cli_services import cmd_services

        return cmd_services(args, home, settings)
    from comfystudio_desktop.ui.app import run_app

    return run_app(home, settings, exit_when_ready=args.exit_when_ready)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    release_dll_directory()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return _dispatch(args)
    except UsageError as exc:
        print(f"comfystudio-desktop: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (JobValidationError, SettingsError) as exc:
        print(f"comfystudio-desktop: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RedisUnavailable, RedisServerError, TimeoutError) as exc:
        print(f"comfystudio-desktop: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
