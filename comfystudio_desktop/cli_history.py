"""The queue-control subcommands: move (reorder), history (search), star, unstar, export and import.

Imported only when one of them runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from comfystudio_desktop.cli_args import EXIT_OK, CommandFailed, shown
from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.history import History, HistoryQuery, StarOutcome
from comfystudio_desktop.queue.history_entry import HistoryEntry
from comfystudio_desktop.queue.ordering import Move, MoveOutcome, QueueOrder
from comfystudio_desktop.runtime import Runtime

__all__ = ["cmd_export", "cmd_history", "cmd_import", "cmd_move", "cmd_star", "cmd_unstar"]

_PROMPT_CHARS = 70


def cmd_move(args: argparse.Namespace, rt: Runtime) -> int:
    """Move a queued job to the top or bottom, or before or after another queued job."""
    ordering = QueueOrder(rt.queue)
    if args.before or args.after:
        outcome = ordering.move(args.job_id, Move.BEFORE if args.before else Move.AFTER, args.before or args.after)
    else:
        outcome = ordering.move(args.job_id, Move.TOP if args.top else Move.BOTTOM)
    if outcome is MoveOutcome.NOT_QUEUED:
        raise CommandFailed(f"job {shown(args.job_id)} is not waiting in the queue")
    if outcome is MoveOutcome.ANCHOR_NOT_QUEUED:
        raise CommandFailed(f"job {shown(args.before or args.after)} is not waiting in the queue")
    if outcome is MoveOutcome.SAME_JOB:
        raise CommandFailed("a job cannot be moved before or after itself")
    position = next((q.position for q in ordering.queued() if q.record.job_id == args.job_id), None)
    print(f"moved: position {position}" if position is not None else "moved (claimed since)")
    return EXIT_OK


def cmd_history(args: argparse.Namespace, rt: Runtime) -> int:
    """Search the history of ended jobs, newest first."""
    history = History(rt.queue.conn)
    history.sync()
    if args.since is not None and args.until is not None and args.since > args.until:
        raise CommandFailed("--since is after --until")
    query = HistoryQuery(text=args.search or "", model=args.model or "", seed=args.seed,
                         status=JobStatus(args.status) if args.status else None, since_ms=args.since,
                         until_ms=args.until, favourites=args.favourites, limit=args.limit)
    page = history.search(query)
    if args.json:
        print(json.dumps({"total": page.total, "entries": [e.to_dict() for e in page.entries]}))
        return EXIT_OK
    for entry in page.entries:
        print(_line(entry))
    shown_count = len(page.entries)
    if page.total > shown_count:
        print(f"({shown_count} of {page.total} shown; --limit N for more)")
    return EXIT_OK


def _line(entry: HistoryEntry) -> str:
    when = entry.ended_at.astimezone().strftime("%Y-%m-%d %H:%M")
    star = "*" if entry.favourite else " "
    prompt = entry.job.prompt.replace("\n", " ")
    if len(prompt) > _PROMPT_CHARS:
        prompt = prompt[:_PROMPT_CHARS - 1] + "…"
    return f"{when} {star} {entry.status.value:<9} {entry.job_id}  {entry.job.model or '-'}  {prompt!r}"


def cmd_star(args: argparse.Namespace, rt: Runtime) -> int:
    """Star an ended job: its history entry and output are kept for good."""
    return _star(args.job_id, rt, star=True)


def cmd_unstar(args: argparse.Namespace, rt: Runtime) -> int:
    """Remove a job's star."""
    return _star(args.job_id, rt, star=False)


def _star(job_id: str, rt: Runtime, *, star: bool) -> int:
    history = History(rt.queue.conn)
    history.sync()
    outcome = history.star(job_id) if star else history.unstar(job_id)
    if outcome is StarOutcome.NOT_IN_HISTORY:
        raise CommandFailed(f"job {shown(job_id)} is not in the history (unknown, or not ended yet)")
    print(outcome.value)
    return EXIT_OK


def cmd_export(args: argparse.Namespace, rt: Runtime) -> int:
    """Write jobs (all, or of the given statuses) to a portable archive."""
    from comfystudio_desktop.queue.archive import export_archive

    target = Path(args.file).expanduser()
    if target.is_dir() or not target.parent.is_dir():
        raise CommandFailed(f"cannot write the archive {shown(str(target), 120)}: not a file in an existing folder")
    statuses = {JobStatus(s) for s in args.status or ()}
    try:
        report = export_archive(target, rt.queue, rt.home, statuses=statuses, with_outputs=args.with_outputs)
    except OSError as exc:
        raise CommandFailed(f"cannot write the archive {shown(str(target), 120)}: {exc.strerror or exc}") from exc
    print(f"exported {report.jobs} job(s), {report.inputs} input image(s), {report.outputs} output(s)")
    return EXIT_OK


def cmd_import(args: argparse.Namespace, rt: Runtime) -> int:
    """Add an archive's jobs: unfinished ones queued again, ended ones into the history."""
    from comfystudio_desktop.queue.archive import ArchiveLimits, import_archive

    limits = ArchiveLimits(max_image_bytes=rt.settings.max_upload_mb * 2**20,
                           max_image_pixels=rt.settings.max_image_pixels)
    report = import_archive(Path(args.file).expanduser(), rt.queue, rt.home, limits)
    print(f"queued {report.queued}, added to the history {report.to_history}, already known "
          f"{report.already_known}, outputs copied {report.outputs_copied}")
    return EXIT_OK
