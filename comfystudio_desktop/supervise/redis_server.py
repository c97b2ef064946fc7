"""The embedded redis-server: write its config, start, adopt, check and stop it.

One server per home folder. A pid file (pid + start time) lets a later process adopt the running server; a process
is signalled only when it is also proven to be this home's redis-server (`EmbeddedRedis.owns`). Starting happens
under an OS file lock. The server runs in its data folder and listens on 127.0.0.1 only, with a generated password
kept in a 0600 file, and an append-only file synced on every write. A deliberate `redis stop` is recorded so that
reconnecting clients wait for `redis start` instead of undoing it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from comfystudio_desktop.file_replace import replace_file
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.redis_endpoint import (
    USER_STOP_MARKER,
    USER_STOP_MESSAGE,
    RedisEndpoint,
    RedisHomeGone,
    RedisServerError,
    RedisStoppedByUser,
)
from comfystudio_desktop.supervise.child_env import child_environment
from comfystudio_desktop.supervise.loopback_ports import bindable, free_port
from comfystudio_desktop.supervise.pidfile import (
    PidfileError,
    PidRecord,
    is_ours,
    load_pidfile,
    read_pidfile,
    remove_pidfile,
    same_path,
    write_pidfile,
)
from comfystudio_desktop.supervise.redis_program import (
    MIN_REDIS_VERSION,
    config_argument,
    detached_kwargs,
    find_redis_binary,
    is_server_program,
    kill_child,
    parse_version,
    wait_exit,
)

__all__ = [
    "MIN_REDIS_VERSION",
    "USER_STOP_MARKER",
    "USER_STOP_MESSAGE",
    "EmbeddedRedis",
    "RedisEndpoint",
    "RedisHomeGone",
    "RedisServerError",
    "RedisStoppedByUser",
    "find_redis_binary",
    "parse_version",
]

log = logging.getLogger(__name__)

_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{16,256}")

#: Starts tried when another program binds the chosen port before redis-server does.
_START_ATTEMPTS = 3


def _free_port(preferred: int = 0) -> int:
    try:
        return free_port(preferred)
    except OSError as exc:
        raise RedisServerError("No free TCP port on 127.0.0.1") from exc


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by the owner only (0600 from creation, so the secret is never world-readable)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    replace_file(tmp, path)
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
        """Data folder: config, secret, AOF, pid file. The server runs with it as its working folder."""
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
    def lock_file(self) -> Path:
        """The OS-locked file held around "adopt or start" (and by the AOF repair)."""
        return self.dir / "start.lock"

    @property
    def user_stop_marker(self) -> Path:
        """Present after a deliberate `redis stop`: nothing restarts the server until `redis start`."""
        return self.dir / USER_STOP_MARKER

    @property
    def server_log(self) -> Path:
        """What the server prints."""
        return self.home.logs / "redis-server.log"

    def _require_dir(self) -> None:
        """Refuse to work in a home deleted under a running process (a new one would get a fresh secret and no data)."""
        if not self.dir.is_dir():
            raise RedisHomeGone(
                f"The Redis data folder {str(self.dir)!r} is gone (was the home folder deleted?); not creating a new "
                "empty queue under a running program. Start the app again to set up the home.")

    def password(self) -> str:
        """The home's Redis password, created on first use (48 random bytes, URL-safe)."""
        self._require_dir()
        if not self.secret_file.exists():
            _write_private(self.secret_file, secrets.token_urlsafe(48))
        try:
            secret = self.secret_file.read_text(encoding="utf-8").strip()
        except (OSError, ValueError) as exc:
            raise RedisServerError(f"Cannot read the Redis password file {str(self.secret_file)!r}: {exc}") from exc
        if not _SECRET_RE.fullmatch(secret):  # it goes into redis.conf: only the characters we generate
            raise RedisServerError(f"The Redis password file {str(self.secret_file)!r} is damaged; delete it "
                                   "(a new password is made at the next start).")
        return secret

    def binary(self) -> Path:
        """The server binary: the configured one, else the first found by `find_redis_binary`."""
        return find_redis_binary(self._configured_binary)

    def configured_port(self) -> int | None:
        """The port of the config written last (it outlives the pid file), or None."""
        try:
            text = self.config_file.read_text(encoding="utf-8")
        except (OSError, ValueError):
            return None
        for line in text.splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "port":
                return _valid_port(value.strip())
        return None

    def prepare_config(self, preferred_port: int = 0) -> int:
        """Choose the port and write the config for a start; return the port.

        The port is `preferred_port`, else the one the server used last, if it is free; else any free port. Keeping
        the port lets reconnecting clients find a restarted server where they left it. Call it only while no server
        of this home runs (under `start_lock`).
        """
        previous = read_pidfile(self.pidfile)
        recorded = _valid_port(previous.extra.get("port")) if previous is not None else None
        port = _free_port(preferred_port or recorded or self.configured_port() or 0)
        self._write_config(port)
        return port

    def _write_config(self, port: int) -> None:
        # No path and no user text in here: the server runs in its data folder (`dir ./`) and logs to stdout, so a
        # home named `x"\nbind 0.0.0.0` cannot add a directive. The password is checked to be URL-safe base64.
        lines = [
            "bind 127.0.0.1",
            "protected-mode yes",
            f"port {port}",
            f"requirepass {self.password()}",
            "dir ./",
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

    # -- which process is ours -------------------------------------------------------------------------------
    def owns(self, proc: psutil.Process) -> bool:
        """True if `proc` is a redis/valkey server of this home: its command line names this home's config file,
        or its working folder is this home's Redis folder (redis-server rewrites its command line on Linux).
        Whatever cannot be read (access denied, exited, a zombie) counts as "not ours".
        """
        try:
            if not is_server_program(proc):
                return False
            try:
                cmdline = proc.cmdline()
            except psutil.AccessDenied:  # e.g. another session on Windows: the working folder may be readable
                cmdline = []
            if any(arg.endswith(self.config_file.name) and same_path(arg, self.config_file) for arg in cmdline[1:]):
                return True
            return same_path(proc.cwd(), self.dir)
        except (psutil.Error, OSError):
            return False

    def _proven(self, record: PidRecord) -> bool:
        return _valid_port(record.extra.get("port")) is not None and is_ours(record, self.owns)

    def running_record(self) -> PidRecord | None:
        """The pid record of a live server of this home (proven by start time and identity), or None."""
        try:
            record = load_pidfile(self.pidfile)
        except PidfileError as exc:  # only noted here: `forget_stale_pidfile` says it once, where it removes it
            log.info("Ignoring pid file %r: %s", str(self.pidfile), exc)
            return None
        if record is not None and self._proven(record):
            return record
        return None

    def forget_stale_pidfile(self) -> str | None:
        """Remove a pid file that does not name this home's running server; return what was removed, or None."""
        try:
            record = load_pidfile(self.pidfile)
        except PidfileError as exc:
            note = f"pid file {str(self.pidfile)!r} was not a valid record ({exc}); removed"
            remove_pidfile(self.pidfile)
        else:
            if record is None or self._proven(record):
                return None
            note = f"pid file named pid {record.pid}, which is not this home's redis-server; removed"
            remove_pidfile(self.pidfile, record)
        log.info("%s", note)
        return note

    def endpoint(self, record: PidRecord | None = None) -> RedisEndpoint:
        """The endpoint of the running server (raises if none runs)."""
        record = record or self.running_record()
        port = _valid_port(record.extra.get("port")) if record is not None else None
        if record is None or port is None:
            raise RedisServerError("The embedded Redis server is not running.")
        version = record.extra.get("version", "")
        return RedisEndpoint(host="127.0.0.1", port=port, password=self.password(), embedded=True,
                             version=version if isinstance(version, str) else "")

    # -- a deliberate stop -----------------------------------------------------------------------------------
    def stopped_by_user(self) -> bool:
        """True after `redis stop` until `redis start` (or a window start) clears it."""
        return self.user_stop_marker.exists()

    def clear_user_stop(self) -> None:
        """Let the server be started again (by `redis start`, or by the window when it opens)."""
        try:
            self.user_stop_marker.unlink(missing_ok=True)
        except OSError as exc:
            raise RedisServerError(f"Cannot remove {str(self.user_stop_marker)!r}: {exc}") from exc

    def _record_user_stop(self) -> None:
        self._require_dir()
        try:
            self.user_stop_marker.write_text(f"stopped by pid {os.getpid()} at {time.time():.0f}\n", encoding="utf-8")
        except OSError as exc:
            raise RedisServerError(f"Cannot record the stop in {str(self.user_stop_marker)!r}: {exc}") from exc

    # -- lifecycle -------------------------------------------------------------------------------------------
    def ensure_running(self, *, by_user: bool = False) -> RedisEndpoint:
        """Adopt the home's running server or start one; return its endpoint once it answers PING.

        After a deliberate `redis stop` this raises RedisStoppedByUser instead of starting, unless `by_user`
        (`redis start`), which clears the stop.
        """
        self._require_dir()
        self._reap()
        if by_user:
            self.clear_user_stop()
        elif self.stopped_by_user():
            raise RedisStoppedByUser(USER_STOP_MESSAGE)
        # Adopting a server that answers needs no lock (the lock guards starting one); most calls end here.
        if (adopted := self._adopt(wait_s=0.5)) is not None:
            return adopted
        with self.start_lock():
            if self.stopped_by_user():
                raise RedisStoppedByUser(USER_STOP_MESSAGE)
            if (note := self.forget_stale_pidfile()) is not None:
                log.warning("Redis: %s", note)
            if (adopted := self._adopt(wait_s=5.0)) is not None:
                return adopted
            if (record := self.running_record() or self._unrecorded_server()) is not None:
                if (adopted := self._adopt_unrecorded(record)) is not None:
                    return adopted
                raise RedisServerError(
                    f"A redis-server (pid {record.pid}) for this home runs but does not answer; stop it first."
                )
            return self._start()

    def _unrecorded_server(self) -> PidRecord | None:
        """A server of this home that runs without a (valid) pid file, e.g. after the file was damaged or
        overwritten: starting a second one on the same AOF must not happen. Only on the start path: it scans the
        process table."""
        port = self.configured_port()
        if port is None:
            return None  # never configured: nothing of ours can run
        for proc in psutil.process_iter():
            if self.owns(proc):
                try:
                    return PidRecord(pid=proc.pid, create_time=proc.create_time(), extra={"port": port})
                except psutil.Error:
                    continue
        return None

    def _adopt_unrecorded(self, record: PidRecord) -> RedisEndpoint | None:
        """Record a proven server of this home that lost its pid file, if it answers; else None."""
        if "version" in record.extra:
            return None  # it had a pid file and still did not answer
        endpoint = self.endpoint(record)
        if not self._wait_ready(endpoint, deadline=time.monotonic() + 5.0, proc=None):
            return None
        version = self._check_version(endpoint)
        record = PidRecord(pid=record.pid, create_time=record.create_time, extra={"port": endpoint.port,
                                                                                 "version": version})
        try:
            write_pidfile(self.pidfile, record)
        except OSError as exc:
            raise RedisServerError(f"Cannot write the pid file {str(self.pidfile)!r}: {exc}") from exc
        log.warning("redis-server pid %s of this home ran without a valid pid file; recorded it again", record.pid)
        return self.endpoint(record)

    def _adopt(self, *, wait_s: float) -> RedisEndpoint | None:
        """The endpoint of this home's running server if it answers within `wait_s`, else None."""
        record = self.running_record()
        if record is None:
            return None
        endpoint = self.endpoint(record)
        if not self._wait_ready(endpoint, deadline=time.monotonic() + wait_s, proc=None):
            return None
        log.info("Adopted running redis-server pid %s on 127.0.0.1:%s", record.pid, endpoint.port)
        return endpoint

    def _start(self) -> RedisEndpoint:
        attempt = 1
        while True:
            port = self.prepare_config()
            try:
                return self._start_on(port)
            except RedisServerError:
                # The port was free when chosen; another program may bind it before redis-server does. Then the
                # next choice skips it (a failure for any other reason is not retried).
                if attempt >= _START_ATTEMPTS or bindable(port) is not None:
                    raise
            log.warning("Port %s was taken while redis-server started; starting it on another", port)
            attempt += 1

    def _start_on(self, port: int) -> RedisEndpoint:
        binary = self.binary()
        self.home.logs.mkdir(exist_ok=True)
        log.info("Starting %s on 127.0.0.1:%s", binary.name, port)
        with open(self.server_log, "ab") as out:
            # cwd = the data folder: `dir ./` in the config refers to it.
            proc = subprocess.Popen(
                [str(binary), config_argument(self.config_file, binary)],
                cwd=self.dir, env=child_environment(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                **detached_kwargs(),
            )
        self._proc = proc
        try:
            return self._finish_start(proc, port)
        except BaseException:
            # Whatever failed (pid file not writable, no answer, too old): the server we spawned must not linger.
            kill_child(proc)
            self._proc = None
            if _names_pid(self.pidfile, proc.pid):
                remove_pidfile(self.pidfile)
            raise

    def _finish_start(self, proc: subprocess.Popen[bytes], port: int) -> RedisEndpoint:
        try:
            record = PidRecord.of(proc.pid, port=port)
        except psutil.Error:
            record = None  # exited at once; reported below with its log
        try:
            if record is not None:
                write_pidfile(self.pidfile, record)
        except OSError as exc:
            raise RedisServerError(f"Cannot write the pid file {str(self.pidfile)!r}: {exc}") from exc
        endpoint = RedisEndpoint(host="127.0.0.1", port=port, password=self.password(), embedded=True)
        if record is None or not self._wait_ready(endpoint, deadline=time.monotonic() + self.start_timeout, proc=proc):
            code = proc.poll()
            raise RedisServerError(f"redis-server did not start (exit code {code}); see {self.server_log}:\n"
                                   + self.last_log_lines())
        version = self._check_version(endpoint)
        record = PidRecord(pid=record.pid, create_time=record.create_time, extra={"port": port, "version": version})
        try:
            write_pidfile(self.pidfile, record)
        except OSError as exc:
            raise RedisServerError(f"Cannot write the pid file {str(self.pidfile)!r}: {exc}") from exc
        log.info("redis-server %s ready, pid %s, 127.0.0.1:%s", version, proc.pid, port)
        return self.endpoint(record)

    def _check_version(self, endpoint: RedisEndpoint) -> str:
        client = endpoint.client()
        try:
            info = client.info("server")
        finally:
            client.close()
        version = str(info.get("valkey_version") or info.get("redis_version") or "0")
        try:
            too_old = parse_version(str(info.get("redis_version", version))) < MIN_REDIS_VERSION
        except ValueError:
            too_old = True
        if too_old:
            raise RedisServerError(f"redis-server {version!r} is too old or unknown; 5.0 or newer is needed.")
        return version

    @staticmethod
    def _wait_ready(endpoint: RedisEndpoint, *, deadline: float, proc: subprocess.Popen[bytes] | None) -> bool:
        import redis

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

    def stop(self, timeout: float = 15.0, *, by_user: bool = False) -> bool:
        """Stop the home's server: SHUTDOWN SAVE, then kill after `timeout`. Returns True if one was stopped.

        With `by_user` (`redis stop`) the stop is recorded first, so reconnecting workers and windows wait instead
        of starting the server again. The server may exit at any moment meanwhile: that is a success.
        """
        if by_user:
            self._record_user_stop()
        record = self.running_record()
        if record is None:
            self.forget_stale_pidfile()
            record = self._unrecorded_server()  # a server of this home whose pid file was lost or overwritten
            if record is None:
                return False
        self._shutdown(record, timeout)
        self._wait_gone(record, timeout)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)  # reap our own child so it leaves no zombie
            self._proc = None
        remove_pidfile(self.pidfile, record)
        log.info("redis-server pid %s stopped", record.pid)
        return True

    def _shutdown(self, record: PidRecord, timeout: float) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            client = self.endpoint(record).client(socket_timeout=timeout, retry=Retry(NoBackoff(), 0))
        except RedisServerError as exc:
            log.warning("Cannot ask redis-server pid %s to shut down (%s)", record.pid, exc)
            return
        try:
            client.shutdown(save=True)
        except redis.exceptions.ConnectionError:
            pass  # the expected answer: the server closed the connection as it exited (or was already gone)
        except redis.exceptions.RedisError as exc:
            log.warning("SHUTDOWN failed (%s); killing redis-server pid %s", exc, record.pid)
        finally:
            client.close()

    def _wait_gone(self, record: PidRecord, timeout: float) -> None:
        """Wait for the server to exit; kill it (only if still proven ours) after `timeout`."""
        try:
            proc = psutil.Process(record.pid)
        except (psutil.Error, OSError):
            return  # already gone
        if wait_exit(proc, timeout) or not is_ours(record, self.owns):
            return
        try:
            proc.kill()
        except (psutil.NoSuchProcess, ProcessLookupError):
            return
        except (psutil.Error, OSError) as exc:
            log.warning("Cannot kill redis-server pid %s: %s", record.pid, exc)
            return
        wait_exit(proc, 5.0)

    def _reap(self) -> None:
        """Collect our own child if it exited (stopped by another process), so it is not left a zombie."""
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def last_log_lines(self, count: int = 20) -> str:
        """The server log's last lines, for error messages."""
        try:
            lines = self.server_log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-count:])

    @contextlib.contextmanager
    def start_lock(self, timeout: float = 30.0) -> Iterator[None]:
        """An exclusive OS file lock so two processes never start two servers for one home.

        The OS releases it when its holder dies, and the file is never deleted to release it (Windows cannot delete
        a file another process has open). Held by `ensure_running`, the watchdog around "adopt or spawn" and the
        AOF repair. Not re-entrant.
        """
        self._require_dir()
        import filelock  # only here: it takes ~50 ms to import, and most commands adopt a running server

        lock = filelock.FileLock(self.lock_file, timeout=timeout, thread_local=False, preserve_lock_file=True)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise RedisServerError(
                f"Timed out after {timeout:g}s waiting for the start lock {str(self.lock_file)!r}: another process "
                "is starting or repairing the server. If none is, delete that file and try again.") from None
        except OSError as exc:
            raise RedisServerError(f"Cannot take the start lock {str(self.lock_file)!r} ({exc}); "
                                   "check that the folder is writable, or delete that file.") from exc
        try:
            yield
        finally:
            lock.release()


def _valid_port(value: object) -> int | None:
    """A TCP port from outside data (pid file, config): an int (or digits) from 1 to 65535, else None."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,5}", value):
        value = int(value)
    if type(value) is int and 0 < value < 65536:
        return value
    return None


def _names_pid(path: Path, pid: int) -> bool:
    record = read_pidfile(path)
    return record is not None and record.pid == pid
