"""`comfystudio-desktop services [--json]`: where redis-server and ComfyUI stand, read without a watchdog.

A CLI call reads the pid files (pid + start time, so a reused pid is never reported as ours) and runs the health
checks once: PING with the password for the embedded Redis, `GET /system_stats` for ComfyUI. States:

- running: our process is alive and answers;
- stopped: no process of ours (with the reason, when the server's log says its append-only file is damaged);
- external: someone else's service answers at the configured address;
- unreachable: an external service does not answer, or our process is alive but does not answer (hung).

Exit code 0 when every service is running or external, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

from comfystudio_desktop.cli_args import EXIT_FAILED, EXIT_OK
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.redis_endpoint import answers_ping, one_shot_options
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.comfy_launcher import COMFY_SERVICE, comfy_health_check, comfy_pidfile
from comfystudio_desktop.supervise.pidfile import is_ours, read_pidfile
from comfystudio_desktop.supervise.process_log import ProcessLog
from comfystudio_desktop.supervise.redis_server import USER_STOP_MESSAGE, EmbeddedRedis
from comfystudio_desktop.supervise.redis_service import REDIS_SERVICE, diagnose_redis_exit
from comfystudio_desktop.supervise.service_state import describe_duration
from comfystudio_desktop.supervise.services import external_redis_check

__all__ = ["Reach", "ServiceReport", "cmd_services", "comfy_report", "redis_report"]



class Reach(StrEnum):
    """A service's state as one CLI call can see it."""

    RUNNING = "running"
    STOPPED = "stopped"
    EXTERNAL = "external"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class ServiceReport:
    """One service as `services` prints it."""

    name: str
    state: Reach
    pid: int | None = None
    address: str = ""  # 127.0.0.1:port, or the external URL without credentials
    version: str = ""
    uptime_s: float | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        """Running, or external and answering."""
        return self.state in (Reach.RUNNING, Reach.EXTERNAL)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = asdict(self)
        data["state"] = self.state.value
        return data

    def line(self) -> str:
        """One line for people."""
        parts = [f"{self.name:<13}", f"{self.state.value:<11}"]
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.address:
            parts.append(self.address)
        if self.version:
            parts.append(f"version {self.version}")
        if self.uptime_s is not None:
            parts.append(f"up {describe_duration(self.uptime_s)}")
        if self.message:
            parts.append(f"({self.message})")
        return "  ".join(parts).rstrip()


def redis_report(home: Home, settings: Settings, *, timeout_s: float = 2.0) -> ServiceReport:
    """The queue's Redis: the home's embedded server (pid file + PING), or the external one (PING)."""
    if settings.redis_mode == "external":
        ok = external_redis_check(settings.redis_url, timeout_s=timeout_s)()
        return ServiceReport(REDIS_SERVICE, Reach.EXTERNAL if ok else Reach.UNREACHABLE,
                             address=_without_credentials(settings.redis_url))
    server = EmbeddedRedis(home, settings.redis_binary or None)
    record = server.running_record()
    if record is None:
        return ServiceReport(REDIS_SERVICE, Reach.STOPPED, message=_stopped_reason(server))
    endpoint = server.endpoint(record)
    ok = answers_ping(endpoint.client(**one_shot_options(timeout_s)))
    return ServiceReport(REDIS_SERVICE, Reach.RUNNING if ok else Reach.UNREACHABLE, pid=record.pid,
                         address=f"127.0.0.1:{endpoint.port}", version=endpoint.version,
                         uptime_s=max(0.0, time.time() - record.create_time),
                         message="" if ok else "the process runs but does not answer PING")


def comfy_report(home: Home, settings: Settings, *, timeout_s: float = 3.0) -> ServiceReport:
    """ComfyUI: the managed one (pid file + /system_stats), or the external one at `comfy_url`."""
    if settings.comfy_mode != "managed":
        ok = comfy_health_check(settings.comfy_url, timeout_s=timeout_s)()
        return ServiceReport(COMFY_SERVICE, Reach.EXTERNAL if ok else Reach.UNREACHABLE,
                             address=_without_credentials(settings.comfy_url))
    record = read_pidfile(comfy_pidfile(home.run))
    port = record.extra.get("port") if record is not None else None
    if record is None or type(port) is not int or not 0 < port < 65536 or not is_ours(record):  # outside data
        return ServiceReport(COMFY_SERVICE, Reach.STOPPED)
    url = f"http://127.0.0.1:{port}"
    ok = comfy_health_check(url, timeout_s=timeout_s)()
    return ServiceReport(COMFY_SERVICE, Reach.RUNNING if ok else Reach.UNREACHABLE, pid=record.pid, address=url,
                         uptime_s=max(0.0, time.time() - record.create_time),
                         message="" if ok else "the process runs but does not answer")


def cmd_services(args: argparse.Namespace, home: Home, settings: Settings) -> int:
    """Print the state of redis-server and ComfyUI (one line each, or a JSON list with `--json`)."""
    reports = [redis_report(home, settings), comfy_report(home, settings)]
    if getattr(args, "json", False):
        print(json.dumps([report.to_dict() for report in reports]))
    else:
        for report in reports:
            print(report.line())
    return EXIT_OK if all(report.ok for report in reports) else EXIT_FAILED




def _stopped_reason(server: EmbeddedRedis) -> str:
    """Why the server is not running: stopped by the user, or its last run said why (a damaged AOF); else ""."""
    if server.stopped_by_user():
        return USER_STOP_MESSAGE
    log = ProcessLog(server.server_log, child_writes=True)
    try:
        diagnosis = diagnose_redis_exit(log.tail())
    finally:
        log.close()
    return diagnosis.message if diagnosis is not None else ""


def _without_credentials(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password is None and parsed.username is None:
        return url
    host = parsed.hostname or ""
    netloc = f"{host}:{parsed.port}" if parsed.port else host
    return parsed._replace(netloc=netloc).geturl()
