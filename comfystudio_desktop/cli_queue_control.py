"""Queue control subcommands: `batch`, `pause`, `resume`, `eta`. Imported only when one of them runs."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from comfystudio_desktop.active_hours import parse_active_hours
from comfystudio_desktop.batch_expansion import new_batch_id
from comfystudio_desktop.cli_args import EXIT_FAILED, EXIT_OK, CommandFailed, shown
from comfystudio_desktop.queue.forecast import JobEta, QueueForecast
from comfystudio_desktop.queue.job_batches import BatchStatus, JobBatches
from comfystudio_desktop.queue.job_queue import CancelOutcome
from comfystudio_desktop.queue.queue_pause import PauseReason, QueueGate, QueuePauseStore, queue_gate
from comfystudio_desktop.queue.run_times import RunTimes
from comfystudio_desktop.runtime import Runtime

__all__ = ["cmd_batch", "cmd_eta", "cmd_pause", "cmd_resume"]



# -- batches -------------------------------------------------------------------------------------------------
def cmd_batch(args: argparse.Namespace, rt: Runtime) -> int:
    """status / cancel / retry / rerun of a whole batch."""
    batches = JobBatches(rt.queue)
    status = batches.status(args.batch_id)
    if status is None:
        raise CommandFailed(f"unknown batch {shown(args.batch_id)} (or all its jobs have expired)")
    if args.action == "status":
        _print_batch(status, args.json)
        return EXIT_OK
    result: dict[str, Any]
    if args.action == "cancel":
        outcomes = batches.cancel(args.batch_id)
        result = {outcome.value: count for outcome, count in outcomes.items()}
        ok = bool(outcomes.get(CancelOutcome.CANCELLED) or outcomes.get(CancelOutcome.CANCELLING))
    elif args.action == "retry":
        count = batches.retry(args.batch_id)
        result, ok = {"queued_again": count}, count > 0
    else:
        jobs = batches.rerun(args.batch_id, new_batch_id())
        result, ok = {"batch_id": jobs[0].batch_id if jobs else "", "jobs": len(jobs)}, bool(jobs)
    print(json.dumps(result) if args.json else ", ".join(f"{key}: {value}" for key, value in result.items()))
    return EXIT_OK if ok else EXIT_FAILED


def _print_batch(status: BatchStatus, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"batch_id": status.batch_id, "total": status.total, "progress": status.progress,
                          "counts": {s.value: n for s, n in status.counts.items()},
                          "jobs": [{"job_id": r.job_id, "status": r.status.value, "progress": r.progress}
                                   for r in status.records]}))
        return
    counts = ", ".join(f"{n} {s.value}" for s, n in sorted(status.counts.items()))
    print(f"{status.batch_id}  {status.total} job(s), {status.progress}%  ({counts})")
    for record in status.records:
        print(f"  {record.job_id}  {record.status.value:<10} {record.progress:>3}%")


# -- pause / resume ------------------------------------------------------------------------------------------
def _gate(rt: Runtime) -> QueueGate:
    return queue_gate(QueuePauseStore(rt.queue.conn).current(), parse_active_hours(rt.settings.active_hours),
                      datetime.now().astimezone())


def _print_gate(gate: QueueGate, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"paused": not gate.open, "reason": gate.reason.value if gate.reason else None,
                          "message": gate.message, "until": gate.until.isoformat() if gate.until else None,
                          "status": gate.describe()}))
    else:
        print(gate.describe())


def cmd_pause(args: argparse.Namespace, rt: Runtime) -> int:
    """Pause every worker's claiming (jobs running now go on), or show the pause state with --status."""
    if not args.status:
        QueuePauseStore(rt.queue.conn).pause(PauseReason.USER, "paused from the command line")
    _print_gate(_gate(rt), args.json)
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, rt: Runtime) -> int:
    """Lift a pause (by the user or after running out of memory); the active hours still apply."""
    resumed = QueuePauseStore(rt.queue.conn).resume()
    gate = _gate(rt)
    _print_gate(gate, args.json)
    return EXIT_OK if resumed or gate.open else EXIT_FAILED


# -- ETA -----------------------------------------------------------------------------------------------------
def cmd_eta(args: argparse.Namespace, rt: Runtime) -> int:
    """Running jobs' time left, queued jobs' starts and the queue's end."""
    now = datetime.now().astimezone()
    gate = _gate(rt)
    forecast = RunTimes(rt.queue).forecast(now, not_before=gate.until if not gate.open else None)
    if args.json:
        print(json.dumps(_forecast_json(forecast, gate)))
        return EXIT_OK
    print(f"queue: {gate.describe()}; " + (f"done ≈ {forecast.finish:%H:%M:%S}" if forecast.finish else "empty"))
    for eta in forecast.running:
        print(f"  {eta.job_id}  running   {_duration(eta.left_s)} left  ({eta.source.value})")
    for position, eta in enumerate(forecast.queued, start=1):
        print(f"  {eta.job_id}  #{position:<4}   starts ≈ {eta.start:%H:%M:%S}, takes ≈ "
              f"{_duration(eta.estimate_s)}  ({eta.source.value})")
    return EXIT_OK


def _forecast_json(forecast: QueueForecast, gate: QueueGate) -> dict[str, Any]:
    def item(eta: JobEta) -> dict[str, Any]:
        return {"job_id": eta.job_id, "start": eta.start.isoformat(), "finish": eta.finish.isoformat(),
                "estimate_s": round(eta.estimate_s, 2), "source": eta.source.value}

    return {"now": forecast.now.isoformat(), "finish": forecast.finish.isoformat() if forecast.finish else None,
            "workers": forecast.workers, "status": gate.describe(),
            "running": [item(e) | {"left_s": round(e.left_s, 2)} for e in forecast.running],
            "queued": [item(e) for e in forecast.queued]}


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
