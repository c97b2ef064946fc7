"""`comfystudio-desktop dead [--json]`, `dead requeue N`, `dead clear`: the entries the intake rejected."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from comfystudio_desktop.jobs import JobValidationError
from comfystudio_desktop.queue.dead_letters import DeadLetter, DeadLetterNotFound

if TYPE_CHECKING:
    from comfystudio_desktop.runtime import Runtime

__all__ = ["cmd_dead", "format_dead_letter"]

_EXIT_OK, _EXIT_FAILED, _EXIT_USAGE = 0, 1, 2
_PREVIEW_CHARS = 100


def format_dead_letter(index: int, letter: DeadLetter) -> str:
    """One line: number, time, reason and the start of the raw entry (escaped, so it stays one line)."""
    raw = letter.raw if len(letter.raw) <= _PREVIEW_CHARS else letter.raw[:_PREVIEW_CHARS] + "…"
    cut = f" (cut from {letter.size} bytes)" if letter.truncated else ""
    return f"{index:>4}  {_printable(letter.at)}  {_printable(letter.reason)}  raw: {json.dumps(raw)}{cut}"


def _printable(text: str) -> str:
    """Text from Redis for a terminal: control characters (newlines, escape sequences) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def cmd_dead(args: argparse.Namespace, rt: Runtime) -> int:
    """List, requeue or clear dead letters."""
    if args.action == "requeue":
        return _requeue(args, rt)
    if args.index is not None:
        return _usage(f"dead {args.action} takes no number")
    if args.action == "clear":
        count = rt.queue.clear_dead()
        print(json.dumps({"cleared": count}) if args.json else f"cleared {count} dead letter(s)")
        return _EXIT_OK
    letters = rt.queue.dead_letters()
    if args.json:
        print(json.dumps([{"index": i, **letter.to_dict()} for i, letter in enumerate(letters)]))
    elif not letters:
        print("no dead letters")
    else:
        for index, letter in enumerate(letters):
            print(format_dead_letter(index, letter))
    return _EXIT_OK


def _requeue(args: argparse.Namespace, rt: Runtime) -> int:
    if args.index is None:
        return _usage("dead requeue needs the dead letter's number (see `dead`)")
    try:
        job = rt.queue.requeue_dead(args.index)
    except DeadLetterNotFound as exc:
        return _usage(str(exc))
    except JobValidationError as exc:
        message = f"still not a valid job (kept as a dead letter, now the last one): {exc}"
        print(json.dumps({"requeued": False, "reason": str(exc)}) if args.json else message,
              file=sys.stdout if args.json else sys.stderr)
        return _EXIT_FAILED
    print(json.dumps({"requeued": True, "job_id": job.job_id}) if args.json else job.job_id)
    return _EXIT_OK


def _usage(message: str) -> int:
    print(f"comfystudio-desktop: error: {message}", file=sys.stderr)
    return _EXIT_USAGE
