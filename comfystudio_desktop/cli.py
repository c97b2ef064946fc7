"""The `comfystudio-desktop` command: the window with no arguments, the seed's REST API as subcommands.

Exit codes: 0 ok, 1 job failed or cancelled (or a check failed), 2 bad input or usage (one clear line on stderr).
An unexpected error prints one line naming the crash log that holds its traceback, and exits 1.

Each subcommand is one `Command` row: its arguments, what it needs opened (nothing, the home, or the queue) and
its handler as "module:function", imported only when it runs, so `status` never loads Qt, Pillow or the ComfyUI
client. Options every subcommand uses (`--home`, `--verbose`, and `--comfy-url` where it matters) are accepted
before or after the subcommand name.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

from comfystudio_desktop import __version__
from comfystudio_desktop.cli_args import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    date_ms,
    finite_float,
    first_invalid_text,
    one_line,
    positive_seconds,
    shown,
    strict_int,
)
from comfystudio_desktop.jobs import ASPECT_RATIOS, IMAGE_SLOTS, JobStatus, valid_job_id
from comfystudio_desktop.supervise.child_env import release_dll_directory

__all__ = ["COMMANDS", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "Command", "Needs", "UsageError", "build_parser",
           "main"]

PROG = "comfystudio-desktop"
CRASH_LOG = "crash.log"
log = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class Needs(Enum):
    """What a command's handler is given besides its arguments."""

    NOTHING = "nothing"  # handler(args)
    FOLDER = "folder"  # handler(args, home): the home's paths only, its settings not loaded (they may be broken)
    HOME = "home"  # handler(args, home, settings)
    QUEUE = "queue"  # handler(args, runtime)


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: `arguments` adds its options, `handler` ("module:function") runs it."""

    name: str
    help: str
    handler: str
    needs: Needs
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    comfy_url: bool = False  # accepts --comfy-url after its name
    #: A QUEUE command's answer without opening the queue ("module:function", given args, home and settings);
    #: when it returns None the handler runs as usual.
    quick: str | None = None


# -- arguments ------------------------------------------------------------------------------------------------
def _image_arg(text: str) -> tuple[str, str]:
    slot, sep, path = text.partition("=")
    if not sep or slot not in IMAGE_SLOTS or not path:
        raise argparse.ArgumentTypeError(f"expected SLOT=PATH with SLOT one of {', '.join(IMAGE_SLOTS)}")
    return slot, path


def _job_id_arg(text: str) -> str:
    if not valid_job_id(text):
        raise argparse.ArgumentTypeError(f"not a job id: {shown(text)} (1-64 letters, digits, '-' or '_')")
    return text


def _submit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="one prompt per line, or JSON lines of job fields ('-' reads stdin); all or nothing")
    p.add_argument("--matrix", metavar="TEXT",
                   help="a prompt matrix: 'a {red|green} {cube|sphere}' makes 4 jobs (\\{ \\} \\| \\\\ are literal)")
    p.add_argument("--seeds", metavar="FIRST-LAST", help="one job per seed, e.g. 100-119 (with every prompt)")
    p.add_argument("--models", metavar="A,B,C", help="one job per model (with every prompt and seed)")
    p.add_argument("--no-cache", action="store_true", help="run on ComfyUI even if an identical job's result exists")
    p.add_argument("--negative", default="")
    p.add_argument("--model", default="")
    p.add_argument("--workflow", default="text_to_image")
    p.add_argument("--seed", type=strict_int, default=-1)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--aspect-ratio", help=f"one of {', '.join(ASPECT_RATIOS)} or W:H")
    size.add_argument("--width", type=strict_int, help="pixels, a multiple of 8 (with --height)")
    p.add_argument("--height", type=strict_int, help="pixels, a multiple of 8 (with --width)")
    p.add_argument("--steps", type=strict_int)
    p.add_argument("--cfg", type=finite_float)
    p.add_argument("--denoise", type=finite_float)
    p.add_argument("--batch-size", type=strict_int, default=1)
    p.add_argument("--image", action="append", type=_image_arg, default=[], metavar="SLOT=PATH")
    p.add_argument("--text-encoder", default="", help="UNET models: text encoder file (default: automatic)")
    p.add_argument("--vae", default="", help="UNET models: VAE file (default: automatic)")
    p.add_argument("--priority", type=_priority_arg, default=0, help="high, normal, low, or a number -100..100")
    p.add_argument("--wait", action="store_true", help="wait until the job is finished, failed or cancelled")
    p.add_argument("--timeout", type=positive_seconds, default=3600.0,
                   help="with --wait: give up after this many seconds")
    p.add_argument("--json", action="store_true")


_PRIORITY_WORDS = {"high": 10, "normal": 0, "low": -10}  # the values of queue.ordering.Priority


def _priority_arg(text: str) -> int:
    return _PRIORITY_WORDS[text] if text in _PRIORITY_WORDS else strict_int(text)


def _move_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job_id", type=_job_id_arg)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--top", action="store_true", help="run it next")
    where.add_argument("--bottom", action="store_true", help="run it last")
    where.add_argument("--before", type=_job_id_arg, metavar="ID", help="just before queued job ID")
    where.add_argument("--after", type=_job_id_arg, metavar="ID", help="just after queued job ID")


def _history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--search", metavar="TEXT", help="words of the prompt (all of them, whole words)")
    p.add_argument("--model", help="exact model name")
    p.add_argument("--seed", type=strict_int)
    p.add_argument("--status", choices=[s.value for s in JobStatus if s.is_terminal])
    p.add_argument("--since", type=date_ms, metavar="DATE", help="YYYY-MM-DD [HH:MM], local time")
    p.add_argument("--until", type=date_ms, metavar="DATE", help="YYYY-MM-DD [HH:MM], local time")
    p.add_argument("--favourites", action="store_true", help="starred jobs only")
    p.add_argument("--limit", type=_limit_arg, default=50, help="at most N entries (1..1000, default 50)")
    p.add_argument("--json", action="store_true")


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", action="append", choices=[s.value for s in JobStatus],
                   help="only jobs in this state (repeat for several; default: all)")
    p.add_argument("--with-outputs", action="store_true", help="include the output images")
    p.add_argument("file", metavar="FILE")


def _import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE")


def _limit_arg(text: str) -> int:
    value = strict_int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected 1..1000, got {value}")
    return value


def _job_id_arguments(*extra: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("job_id", type=_job_id_arg)
        for flag in extra:
            p.add_argument(flag, action="store_true")
    return add


def _jobs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", choices=[s.value for s in JobStatus])
    p.add_argument("--json", action="store_true")


def _batch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["status", "cancel", "retry", "rerun"],
                   help="status, cancel (every job not ended), retry (failed/cancelled ones), rerun (all, as new jobs)")
    p.add_argument("batch_id", type=_job_id_arg)
    p.add_argument("--json", action="store_true")


def _pause_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", action="store_true", help="only show whether the queue is paused, and why")
    p.add_argument("--json", action="store_true")


def _redis_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["status", "stop", "start"])
    p.add_argument("--json", action="store_true")


def _dead_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["list", "requeue", "clear"], default="list",
                   help="list (default), requeue N (validate again and queue), clear (drop all)")
    p.add_argument("index", nargs="?", type=strict_int, help="with requeue: the dead letter's number from the list")
    p.add_argument("--json", action="store_true")


def _fetch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job_id", type=_job_id_arg)
    p.add_argument("--to", metavar="DIR", help="also copy the images into this folder (made if missing)")
    p.add_argument("--json", action="store_true")


def _json_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")


def _worker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--id", dest="worker_id", default="")
    p.add_argument("--backend", default=None, type=_backend_name_arg,
                   help="run the worker of this configured backend (see `backends`)")


def _backend_name_arg(text: str) -> str:
    from comfystudio_desktop.backend_settings import BACKEND_NAME_RE

    if not BACKEND_NAME_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a backend name: {shown(text)} (1-32 letters, digits, '-' or '_')")
    return text


def _backends_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["list", "enable", "disable"], default="list",
                   help="list (default), enable NAME, disable NAME (finishes its running job, takes no more)")
    p.add_argument("name", nargs="?", type=_backend_name_arg)
    p.add_argument("--json", action="store_true")


def _config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["get", "set", "list"])
    p.add_argument("key", nargs="?")
    p.add_argument("value", nargs="?")
    p.add_argument("--json", action="store_true")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = strict_int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}")
        return value
    return parse


def _stats_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="the figures as one JSON object (a line per refresh)")
    p.add_argument("--watch", action="store_true", help="refresh until Ctrl+C")
    p.add_argument("--interval", type=_int_in(1, 60), default=2, help="with --watch: seconds between refreshes")


def _metrics_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=_int_in(1024, 65535), help="port on 127.0.0.1 (default: setting metrics_port)")


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to listen on (default: setting api_host, 127.0.0.1)")
    p.add_argument("--port", type=strict_int, help="port (default: setting api_port; 0: any free port)")
    p.add_argument("--i-understand-this-exposes-the-api", dest="expose", action="store_true",
                   help="allow an address other machines can reach (anyone with the token can then queue jobs)")


_Q = "comfystudio_desktop.cli_queue"
_M = "comfystudio_desktop.cli_monitor"
_H = "comfystudio_desktop.cli_history"
_C = "comfystudio_desktop.cli_queue_control"
COMMANDS: tuple[Command, ...] = (
    Command("submit", "queue a job, or a batch with --from", f"{_Q}:cmd_submit", Needs.QUEUE, _submit_arguments),
    Command("status", "a job's status (the seed's fields)", f"{_Q}:cmd_status", Needs.QUEUE,
            _job_id_arguments("--json"), quick="comfystudio_desktop.cli_status:quick_status"),
    Command("cancel", "cancel a job", f"{_Q}:cmd_cancel", Needs.QUEUE, _job_id_arguments()),
    Command("retry", "queue a failed or cancelled job again", f"{_Q}:cmd_retry", Needs.QUEUE, _job_id_arguments()),
    Command("jobs", "list jobs (--status queued: in the order they will run)", f"{_Q}:cmd_jobs", Needs.QUEUE,
            _jobs_arguments),
    Command("move", "reorder a queued job", f"{_H}:cmd_move", Needs.QUEUE, _move_arguments),
    Command("history", "search ended jobs, newest first", f"{_H}:cmd_history", Needs.QUEUE, _history_arguments),
    Command("fetch", "get a finished job's images onto this machine, wherever its worker ran",
            "comfystudio_desktop.cli_fetch:cmd_fetch", Needs.QUEUE, _fetch_arguments),
    Command("star", "keep an ended job and its output for good", f"{_H}:cmd_star", Needs.QUEUE,
            _job_id_arguments()),
    Command("unstar", "remove a job's star", f"{_H}:cmd_unstar", Needs.QUEUE, _job_id_arguments()),
    Command("export", "write jobs to a portable archive (zip)", f"{_H}:cmd_export", Needs.QUEUE, _export_arguments),
    Command("import", "add the jobs of an archive (idempotent by job id)", f"{_H}:cmd_import", Needs.QUEUE,
            _import_arguments),
    Command("batch", "status, cancel, retry or rerun a batch of jobs", f"{_C}:cmd_batch", Needs.QUEUE,
            _batch_arguments),
    Command("pause", "pause the whole queue (every worker), or --status", f"{_C}:cmd_pause", Needs.QUEUE,
            _pause_arguments),
    Command("resume", "resume the queue after a pause", f"{_C}:cmd_resume", Needs.QUEUE, _json_argument),
    Command("eta", "when queued jobs start and the queue ends, learned from run times", f"{_C}:cmd_eta",
            Needs.QUEUE, _json_argument),
    Command("dead", "entries of comfy_jobs that could not become jobs (dead letters)",
            "comfystudio_desktop.cli_dead:cmd_dead", Needs.QUEUE, _dead_arguments),
    Command("redis", "the embedded Redis server", f"{_Q}:cmd_redis", Needs.HOME, _redis_arguments),
    Command("config", "get, set or list settings", "comfystudio_desktop.cli_config:cmd_config", Needs.FOLDER,
            _config_arguments),
    Command("models", "models grouped into UNET and Checkpoints", "comfystudio_desktop.cli_models:cmd_models",
            Needs.HOME, _json_argument, comfy_url=True),
    Command("worker", "run a headless worker against the queue", f"{__name__}:_run_worker", Needs.HOME,
            _worker_arguments, comfy_url=True),
    Command("backends", "the ComfyUI backends the queue feeds: state, model, jobs; enable or disable one",
            "comfystudio_desktop.cli_backends:cmd_backends", Needs.QUEUE, _backends_arguments),
    Command("services", "state of the supervised services",
            "comfystudio_desktop.cli_services:cmd_services", Needs.HOME, _json_argument, comfy_url=True),
    Command("stats", "the monitored figures (--watch refreshes)", f"{_M}:cmd_stats", Needs.QUEUE,
            _stats_arguments, comfy_url=True),
    Command("metrics", "serve the figures as Prometheus text on 127.0.0.1", f"{_M}:cmd_metrics", Needs.QUEUE,
            _metrics_arguments, comfy_url=True),
    Command("serve", "serve the HTTP API (the seed's REST endpoints) without the window",
            "comfystudio_desktop.cli_serve:cmd_serve", Needs.HOME, _serve_arguments, comfy_url=True),
    Command("self-test", "check the app's parts end to end and exit", f"{__name__}:_run_self_test", Needs.NOTHING),
)


def _shared_options(*, comfy_url: bool, suppress: bool) -> _Parser:
    """The options accepted both before and after a subcommand; after it, unset ones leave the first's value."""
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parent = _Parser(add_help=False)
    parent.add_argument("--home", default=default(None),
                        help="home folder (config, logs, storage, Redis data); env COMFYSTUDIO_HOME")
    parent.add_argument("--verbose", "-v", action="store_true", default=default(False),
                        help="log debug details to stderr")
    if comfy_url:
        parent.add_argument("--comfy-url", default=default(None), help="ComfyUI base URL; env COMFYSTUDIO_COMFY_URL")
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The full command line."""
    parser = _Parser(prog=PROG, description="Desktop front end for a local ComfyUI.",
                     parents=[_shared_options(comfy_url=True, suppress=False)])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--self-test", action="store_true", help="run the self-test (frozen app) and exit")
    parser.add_argument("--exit-when-ready", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help,
                           parents=[_shared_options(comfy_url=command.comfy_url, suppress=True)])
        command.arguments(p)
    return parser


# -- running ----------------------------------------------------------------------------------------------------
@dataclass
class _Session:
    """What is known so far, for the crash log's place."""

    logs: Path | None = None


def _handler(command: Command) -> Callable[..., int]:
    return _function(command.handler)


def _function(where: str) -> Callable[..., Any]:
    """The function named "module:function", its module imported now."""
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _stderr_level(args: argparse.Namespace) -> int:
    """What reaches the terminal: warnings for one-shot commands; a headless worker narrates its jobs."""
    if args.verbose:
        return logging.DEBUG
    return logging.INFO if args.command in ("worker", "serve") else logging.WARNING


def _home_root(args: argparse.Namespace) -> Path:
    """The home folder's path, refused early if it (or the closest existing folder above it) is not a folder."""
    from comfystudio_desktop.home import resolve_home

    root = resolve_home(args.home)
    existing = next((p for p in (root, *root.parents) if p.exists()), root)
    if not existing.is_dir():
        raise UsageError(f"cannot use the home folder {shown(str(root), 120)}: {str(existing)!r} is not a folder")
    return root


def _open_home(args: argparse.Namespace, session: _Session) -> tuple[Any, Any]:
    from comfystudio_desktop.home_settings import load_home_and_settings

    try:
        root = _home_root(args)
        home, settings = load_home_and_settings(root, comfy_url=args.comfy_url, stderr_level=_stderr_level(args))
    except OSError as exc:
        where = exc.filename if exc.filename is not None else args.home
        raise UsageError(f"cannot use the home folder {shown(str(where), 120)}: {exc.strerror or exc}") from exc
    session.logs = home.logs
    return home, settings


def _dispatch(args: argparse.Namespace, session: _Session) -> int:
    if args.command == "self-test" or args.self_test:  # runs in a temporary home: leave the user's alone
        return _run_self_test(args)
    if args.command is None:
        from comfystudio_desktop.lazy_imports import defer_redis_asyncio

        defer_redis_asyncio()  # loaded when the window's event stream first connects, after the window is shown
        home, settings = _open_home(args, session)
        from comfystudio_desktop.ui.app import run_app

        return run_app(home, settings, exit_when_ready=args.exit_when_ready)
    command = next(c for c in COMMANDS if c.name == args.command)
    if command.needs is Needs.NOTHING:
        return _handler(command)(args)
    if command.needs is Needs.FOLDER:
        from comfystudio_desktop.home import Home

        try:
            return _handler(command)(args, Home(_home_root(args)))
        except OSError as exc:
            raise UsageError(f"cannot use the home folder {shown(str(args.home), 120)}: {exc.strerror or exc}") from exc
    if command.needs is Needs.QUEUE:
        from comfystudio_desktop.lazy_imports import defer_redis_asyncio

        defer_redis_asyncio()  # the queue's commands use redis-py's sync client only
    home, settings = _open_home(args, session)
    if command.needs is Needs.HOME:
        return _handler(command)(args, home, settings)
    return _run_on_queue(command, args, home, settings)


def _run_on_queue(command: Command, args: argparse.Namespace, home: Any, settings: Any) -> int:
    if command.quick is not None and (code := _function(command.quick)(args, home, settings)) is not None:
        return int(code)
    handler = _handler(command)
    from comfystudio_desktop.runtime import open_queue

    rt = open_queue(home, settings)
    try:
        return handler(args, rt)
    finally:
        rt.close()


def _run_worker(args: argparse.Namespace, home: Any, settings: Any) -> int:
    from comfystudio_desktop.worker.headless import run_headless_worker

    return run_headless_worker(home, settings, worker_id=args.worker_id, backend=args.backend or "")


def _run_self_test(_args: argparse.Namespace) -> int:
    from comfystudio_desktop.self_test import run_self_test

    return run_self_test()


# Expected failures by (module, class name) → exit code. Looked up in sys.modules: a module that was never
# imported cannot have raised, and a plain `status` stays free of imports it does not need.
_EXPECTED: tuple[tuple[str, str, int], ...] = (
    (__name__, "UsageError", EXIT_USAGE),
    ("comfystudio_desktop.cli_args", "CommandFailed", EXIT_USAGE),
    ("comfystudio_desktop.jobs", "JobValidationError", EXIT_USAGE),
    ("comfystudio_desktop.settings", "SettingsError", EXIT_USAGE),
    ("comfystudio_desktop.supervise.comfy_launcher", "ComfyLaunchError", EXIT_USAGE),
    ("comfystudio_desktop.job_batch", "BatchError", EXIT_USAGE),
    ("comfystudio_desktop.batch_expansion", "BatchSyntaxError", EXIT_USAGE),
    ("comfystudio_desktop.images", "ImageValidationError", EXIT_USAGE),
    ("comfystudio_desktop.queue.archive_format", "ArchiveError", EXIT_USAGE),
    ("comfystudio_desktop.home", "HomeError", EXIT_USAGE),
    ("comfystudio_desktop.supervise.pidfile", "PidFileError", EXIT_USAGE),
    ("comfystudio_desktop.queue.connection", "RedisStoppedUnavailable", EXIT_USAGE),  # before its base class
    ("comfystudio_desktop.queue.connection", "RedisUnavailable", EXIT_FAILED),
    ("comfystudio_desktop.supervise.redis_server", "RedisServerError", EXIT_FAILED),
    ("builtins", "TimeoutError", EXIT_FAILED),
)


def expected_exit_code(exc: BaseException) -> int | None:
    """The exit code for an expected failure, or None for an unexpected one (a bug)."""
    for module_name, class_name, code in _EXPECTED:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return code
    return None


def _record_crash(exc: BaseException, logs: Path | None) -> Path:
    """Append the traceback to the home's crash log (or one in the temp folder); return where it went."""
    import tempfile
    import traceback
    from datetime import datetime

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    record = f"=== {datetime.now().astimezone().isoformat(timespec='seconds')} {PROG} {__version__} " \
             f"pid {os.getpid()} argv {shown(sys.argv[1:], 400)}\n{text}\n"
    for folder in ([logs] if logs is not None else []) + [Path(tempfile.gettempdir())]:
        path = folder / (CRASH_LOG if folder == logs else "comfystudio-crash.log")
        try:
            with open(path, "a", encoding="utf-8", errors="backslashreplace") as fh:
                fh.write(record)
        except OSError:
            continue
        return path
    return Path("(no writable place for the crash log)")


def _say(message: str) -> None:
    # No usable stderr (closed, a windowed app): the exit code still tells.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(f"{PROG}: {one_line(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code. Never lets a traceback reach the terminal."""
    session = _Session()
    try:
        release_dll_directory()
        raw = list(sys.argv[1:] if argv is None else argv)
        invalid = first_invalid_text(raw)
        if invalid is not None:
            raise UsageError(invalid)
        args = build_parser().parse_args(raw)
        return _dispatch(args, session)
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:  # --help and --version print and exit 0
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except RecursionError as exc:
        _say(f"error: input nested too deeply ({shown(str(exc))})")
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the entry point turns every error into one line and an exit code, never a traceback
        code = expected_exit_code(exc)
        if code is not None:
            _say(f"error: {exc}")
            return code
        path = _record_crash(exc, session.logs)
        _say(f"unexpected error: {type(exc).__name__}: {exc} (details in {path})")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
