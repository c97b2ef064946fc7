"""`status`: how a job's record is printed, and the read that answers it without redis-py.

A script that polls `status` pays for each process start; most of that was importing redis-py. When the home's own
server runs (proven by its pid file) and no job waits in the outbox, the record is read over one plain connection
(`RespConnection`); in every other case, and on any failure of that read, the command takes the ordinary path
through the queue (`cli_queue.cmd_status`), which also starts the server or delivers the outbox.
"""

from __future__ import annotations

import argparse
import json
import logging

from comfystudio_desktop.cli_args import EXIT_FAILED, EXIT_OK, CommandFailed, shown
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobRecord, JobStatus
from comfystudio_desktop.queue.job_records import STATUS_PREFIX, decode_hash, record_from_hash
from comfystudio_desktop.queue.outbox import Outbox
from comfystudio_desktop.queue.redis_endpoint import RedisServerError
from comfystudio_desktop.queue.resp_connection import RespConnection, RespError
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis

__all__ = ["exit_for", "print_record", "quick_status"]

log = logging.getLogger(__name__)

_READ_TIMEOUT_S = 5.0


def print_record(record: JobRecord, as_json: bool) -> None:
    """One job on stdout: the seed's fields as JSON, or one line."""
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


def exit_for(record: JobRecord) -> int:
    """0 while a job is fine (queued, running, finished), 1 once it failed or was cancelled."""
    return EXIT_OK if record.status in (JobStatus.FINISHED, JobStatus.QUEUED, JobStatus.PROCESSING) else EXIT_FAILED


def quick_status(args: argparse.Namespace, home: Home, settings: Settings) -> int | None:
    """Answer `status` from the home's running server without redis-py; None: take the ordinary path."""
    if settings.redis_mode != "embedded" or len(Outbox(home.outbox)) > 0:
        return None
    server = EmbeddedRedis(home, settings.redis_binary or None)
    try:
        record = server.running_record()
        if record is None:
            return None
        endpoint = server.endpoint(record)
        with RespConnection.open(endpoint.host, endpoint.port, timeout_s=_READ_TIMEOUT_S) as conn:
            if endpoint.password:
                conn.call("AUTH", endpoint.password)
            reply = conn.call("HGETALL", STATUS_PREFIX + args.job_id)
    except (OSError, RespError, RedisServerError) as exc:
        log.info("Reading the job directly failed (%s); opening the queue instead", exc)
        return None
    data = decode_hash(_pairs(reply))
    if not data:
        raise CommandFailed(f"unknown job {shown(args.job_id)}")
    job = record_from_hash(data)
    print_record(job, args.json)
    return exit_for(job)


def _pairs(reply: object) -> dict[object, object]:
    """A RESP2 HGETALL reply (a flat list: field, value, field, value, ...) as a dict; anything else is empty."""
    if not isinstance(reply, list) or len(reply) % 2:
        return {}
    return dict(zip(reply[::2], reply[1::2], strict=True))
