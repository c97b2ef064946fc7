"""A scale-out setup on one machine: an external redis-server with a password, and headless backend workers.

Used by the scale-out test and `bench/backends.py`. Each worker gets a home of its own, as on its own machine,
whose settings name the external Redis and its one backend.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import redis

from comfystudio_desktop.backend_settings import Backend
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.redis_endpoint import RedisEndpoint
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.supervise.redis_program import find_redis_binary
from tests.fake_comfyui.process import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


class ExternalRedis:
    """A redis-server (the app's own binary) on 127.0.0.1 with a password, as a shared server would be."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.password = secrets.token_urlsafe(24)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`redis://:password@127.0.0.1:port/0`."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def __enter__(self) -> ExternalRedis:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        # The password goes into a config file of our own (0600), never onto a command line others can read.
        config = self.folder / "redis.conf"
        config.write_text(f"port {self.port}\nbind 127.0.0.1\nrequirepass {self.password}\nappendonly yes\n"
                          f"appendfsync always\nsave \"\"\n", encoding="utf-8")
        config.chmod(0o600)
        self._proc = subprocess.Popen([str(find_redis_binary()), str(config)], cwd=self.folder,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.__exit__(None, None, None)
                    raise RuntimeError("the external redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)

    def queue(self, **kwargs: float) -> JobQueue:
        """A JobQueue on this server, as a window on any machine would open it."""
        endpoint = RedisEndpoint(host="127.0.0.1", port=self.port, password=self.password, embedded=False)
        return JobQueue(ResilientRedis(lambda: endpoint, delay_s=0.1), **kwargs)  # type: ignore[arg-type]


class HeadlessWorker:
    """`comfystudio-desktop worker --backend NAME` in its own home, as on the machine beside that ComfyUI."""

    def __init__(self, root: Path, redis_url: str, backend: Backend, *, lease_seconds: float = 5.0) -> None:
        self.home = Home(root).create()
        self.backend = backend
        save_settings(self.home.config_file, Settings(redis_mode="external", redis_url=redis_url,
                                                      backends=(backend,), lease_seconds=lease_seconds,
                                                      job_timeout_s=120.0))
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HeadlessWorker:
        # So CTRL_BREAK reaches only it.
        flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0  # type: ignore[attr-defined,unused-ignore]
        self._log = (self.home.root / "worker-stderr.log").open("wb")
        self._proc = subprocess.Popen([sys.executable, "-m", "comfystudio_desktop", "--home", str(self.home.root),
                                       "worker", "--backend", self.backend.name], cwd=REPO_ROOT,
                                      stdout=subprocess.DEVNULL, stderr=self._log, creationflags=flags)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.CTRL_BREAK_EVENT if os.name == "nt" else signal.SIGTERM)  # type: ignore[attr-defined,unused-ignore]
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._log.close()

    @property
    def returncode(self) -> int | None:
        """The exit code, None while running."""
        return None if self._proc is None else self._proc.poll()

    def log_text(self) -> str:
        """What it wrote to stderr."""
        return (self.home.root / "worker-stderr.log").read_text(encoding="utf-8", errors="replace")
