"""The home's embedded redis-server as a supervised service.

It shares every mechanism with `EmbeddedRedis` (binary, 0600 config and secret, pid file with `port` and `version`,
start lock), so a server started earlier by the CLI is adopted, and a CLI call finds the one the watchdog runs.
A restarted server keeps its port, so clients reconnect to it where they left it; `RedisService.endpoint` is the
`endpoint_provider` for `ResilientRedis`: it says where the server is and never starts one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from comfystudio_desktop.queue.redis_endpoint import answers_ping, one_shot_options
from comfystudio_desktop.supervise.aof_repair import find_aof_damage
from comfystudio_desktop.supervise.process_spec import ExitDiagnosis, ProcessSpec
from comfystudio_desktop.supervise.redis_program import config_argument, server_version
from comfystudio_desktop.supervise.redis_server import (
    MIN_REDIS_VERSION,
    USER_STOP_MESSAGE,
    EmbeddedRedis,
    RedisEndpoint,
    RedisServerError,
    RedisStoppedByUser,
    parse_version,
)
from comfystudio_desktop.supervise.service_state import Remedy
from comfystudio_desktop.supervise.supervised_process import SupervisedProcess

__all__ = ["REDIS_SERVICE", "RedisService", "diagnose_redis_exit", "server_version"]

log = logging.getLogger(__name__)

REDIS_SERVICE = "redis-server"
def diagnose_redis_exit(lines: Sequence[str]) -> ExitDiagnosis | None:
    """A damaged AOF stops redis-server for good: FATAL with a repair offer instead of a restart loop."""
    detail = find_aof_damage(lines)
    if detail is None:
        return None
    return ExitDiagnosis(f"The queue's append-only file is damaged: {detail.rstrip('.')}. Repair it from Services.",
                         Remedy.REPAIR_AOF)


class RedisService:
    """The `ProcessSpec` and `SupervisedProcess` of one home's redis-server, plus where it listens now.

    Args:
        server: the home's `EmbeddedRedis` (its binary setting decides the binary).
        health_timeout_s: a PING slower than this is a failed health check.
        readiness_timeout_s: how long a start may take (loading a large AOF takes a while).
        stop_grace_s: how long SHUTDOWN SAVE may take before the process is terminated.
    """

    def __init__(self, server: EmbeddedRedis, *, health_timeout_s: float = 2.0, readiness_timeout_s: float = 60.0,
                 stop_grace_s: float = 10.0) -> None:
        binary = server.binary()
        version = server_version(binary)
        if version and parse_version(version) < MIN_REDIS_VERSION:
            raise RedisServerError(f"{binary.name} {version} is too old; 5.0 or newer is needed.")
        self.server = server
        self.version = version
        self._health_timeout_s = health_timeout_s
        self._stop_timeout_s = max(1.0, min(stop_grace_s, 5.0))
        self._password = server.password()
        self._lock = threading.Lock()
        self._port: int | None = server.configured_port()
        self.spec = ProcessSpec(
            name=REDIS_SERVICE, argv=(str(binary), config_argument(server.config_file, binary)), cwd=server.dir,
            health_check=self._ping, readiness_timeout_s=readiness_timeout_s, stop_grace_s=stop_grace_s,
            pidfile=server.pidfile, pid_extra={"version": version}, stop_hook=self._shutdown,
            # The server writes its log itself and may be adopted by a later run (it outlives a crashed app).
            output_to_file=True, adopt=True,
            prepare=self._prepare, start_lock=server.start_lock, diagnose_exit=diagnose_redis_exit,
            identity=server.owns)
        self.process = SupervisedProcess(self.spec, server.home.logs)

    @property
    def name(self) -> str:
        """The service name."""
        return self.spec.name

    @property
    def log_file(self) -> Path:
        """The server's log (the same file the CLI-started server writes)."""
        return self.process.log.path

    @property
    def port(self) -> int | None:
        """The port of the running (or adopted) server, else of its last start; None before any."""
        record = self.process.record
        with self._lock:
            port = record.extra.get("port") if record is not None else None
            if type(port) is int and 0 < port < 65536:  # the pid file is outside data
                self._port = port
            return self._port

    def endpoint(self) -> RedisEndpoint:
        """Where the server listens (or will again, once restarted). The `endpoint_provider` for the queue.

        Raises RedisServerError before the server was ever configured.
        """
        port = self.port
        if port is None:
            raise RedisServerError("The embedded Redis server has not been started yet.")
        return RedisEndpoint(host="127.0.0.1", port=port, password=self._password, embedded=True,
                             version=self.version)

    # -- hooks the supervisor calls ---------------------------------------------------------------------------

    def _prepare(self) -> dict[str, Any]:
        """Before each spawn: keep the last port if it is free, write the config; the port goes to the pid file."""
        if self.server.stopped_by_user():  # `redis stop` was deliberate: wait for `redis start`, do not undo it
            raise RedisStoppedByUser(USER_STOP_MESSAGE)
        with self._lock:
            preferred = self._port or 0
        port = self.server.prepare_config(preferred)
        if preferred and port != preferred:
            log.warning("Port %d is taken; redis-server moves to port %d", preferred, port)
        with self._lock:
            self._port = port
        return {"port": port}

    def _client(self, timeout: float) -> redis.Redis:
        return self.endpoint().client(**one_shot_options(timeout))

    def _ping(self) -> bool:
        """The health check: PING with the password."""
        return answers_ping(self._client(self._health_timeout_s))

    def _shutdown(self) -> None:
        """The stop hook: SHUTDOWN SAVE (the AOF is already synced; this also leaves a fresh snapshot)."""
        client = self._client(self._stop_timeout_s)
        try:
            client.shutdown(save=True)  # redis-py takes the dropped connection as success
        finally:
            client.close()
