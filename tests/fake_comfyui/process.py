"""Run the fake ComfyUI as a child process from a test: start on a free loopback port, wait until ready, reap."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
_UNREADY_FAULTS = ("hang", "refuse", "slow")  # /system_stats cannot answer promptly in these modes
#: The fake's exit code when its port is taken (bound by someone else after the test picked it): pick another.
EXIT_PORT_TAKEN = 3
# EADDRINUSE, and on Windows the socket error WSAEADDRINUSE (10048), which is not errno.EADDRINUSE there.
PORT_TAKEN_ERRNOS = frozenset({errno.EADDRINUSE, 10048})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class FakeComfyProcess:
    """`python -m tests.fake_comfyui` as a child process; use as a context manager so it is always stopped.

    Args:
        models_dir, output_dir, input_dir, temp_dir: folders to pass on (the fake makes temp ones otherwise).
        models: model names per folder (`{"text_encoders": [...], "vae": [...]}`) listed instead of the built-in
            catalogue, as if installed (loaders accept them; there are no files behind them).
        step_time, load_time: seconds per sampler step / per model loader node.
        fault: fault mode at start (`hang`, `slow`, `refuse`, `error_next`, `crash_next`, `oom_next`).
        port: fixed port; by default a free one is picked (and re-picked if it was taken meanwhile).
        startup_timeout: seconds to wait for readiness.
        extra_args: more command line arguments.
    """

    def __init__(self, *, models_dir: Path | None = None, output_dir: Path | None = None,
                 input_dir: Path | None = None, temp_dir: Path | None = None, step_time: float = 0.02,
                 load_time: float = 0.0, fault: str | None = None, port: int | None = None,
                 startup_timeout: float = 20.0, extra_args: Sequence[str] = (),
                 models: Mapping[str, Sequence[str]] | None = None) -> None:
        self._options: list[str] = ["--step-time", str(step_time), "--load-time", str(load_time)]
        if models is not None:
            self._options += ["--model-list", json.dumps({folder: list(names) for folder, names in models.items()})]
        for flag, value in (("--models-dir", models_dir), ("--output-dir", output_dir),
                            ("--input-dir", input_dir), ("--temp-dir", temp_dir), ("--fault", fault)):
            if value is not None:
                self._options += [flag, str(value)]
        self._options += list(extra_args)
        self._fault = fault
        self._fixed_port = port
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self.port = 0
        self.argv: list[str] = []

    # lifecycle -------------------------------------------------------------------------------------------------
    def __enter__(self) -> FakeComfyProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> FakeComfyProcess:
        """Start the child and wait until it answers HTTP; raises RuntimeError (with its log) otherwise."""
        attempts = 1 if self._fixed_port is not None else 3
        for attempt in range(attempts):
            self._spawn(self._fixed_port if self._fixed_port is not None else free_port())
            try:
                self._wait_ready()
                return self
            except RuntimeError:
                code = self.stop()
                if code != EXIT_PORT_TAKEN or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _spawn(self, port: int) -> None:
        self.port = port
        self.argv = [sys.executable, "-m", "tests.fake_comfyui", "--listen", HOST, "--port", str(port),
                     *self._options]
        handle, name = tempfile.mkstemp(prefix="fake-comfyui-", suffix=".log")
        self._log_path = Path(name)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with os.fdopen(handle, "wb") as log:
            self._proc = subprocess.Popen(self.argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT)

    def _wait_ready(self) -> None:
        probe = "/_fake/stats" if self._fault in _UNREADY_FAULTS else "/system_stats"
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"fake ComfyUI exited during startup:\n{self.log_text()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url + probe, timeout=1.0) as reply:
                if reply.status == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"fake ComfyUI not ready within {self._startup_timeout} s:\n{self.log_text()}")

    def stop(self, grace: float = 5.0) -> int | None:
        """Ask it to quit, wait up to `grace` seconds, then kill; always reaps. Returns the exit code."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._ask_to_quit(proc)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        code = self.wait_exit(grace) if proc is not None else None
        if self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None
        return code

    def _ask_to_quit(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM on POSIX. Windows has no SIGTERM (`terminate()` is TerminateProcess: exit code 1, no clean-up),
        so there the fake is asked over HTTP, and only terminated if it does not answer."""
        if os.name == "nt":
            try:
                status, _ = self.request("POST", "/_fake/quit", timeout=2.0)
            except OSError:
                status = 0
            if status == 200:
                return
        proc.terminate()

    def kill(self) -> None:
        """SIGKILL this child (by its pid, only while it has not been reaped) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        proc.wait(10)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the child to exit (e.g. after `crash_next`) and return its exit code."""
        if self._proc is None:
            raise RuntimeError("not started")
        return self._proc.wait(timeout)

    # introspection ---------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        """`ws://127.0.0.1:PORT/ws`."""
        return f"ws://{HOST}:{self.port}/ws"

    @property
    def pid(self) -> int:
        """The child's pid."""
        if self._proc is None:
            raise RuntimeError("not started")
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """Exit code, or None while running."""
        return None if self._proc is None else self._proc.poll()

    def log_text(self) -> str:
        """Everything the child printed so far."""
        if self._log_path is None:
            return ""
        with contextlib.suppress(OSError):
            return self._log_path.read_text(errors="replace")
        return ""

    # test controls ---------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
        """A JSON request to the fake: (status, parsed JSON body or raw text or None)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def stats(self) -> dict[str, Any]:
        """`GET /_fake/stats`."""
        status, body = self.request("GET", "/_fake/stats")
        if status != 200 or not isinstance(body, dict):
            raise RuntimeError(f"/_fake/stats answered {status}: {body!r}")
        return body

    def control(self, **settings: Any) -> dict[str, Any]:
        """`POST /_fake/control`, e.g. `control(fault="hang")` or `control(step_time=0.01)`."""
        status, body = self.request("POST", "/_fake/control", settings)
        if status != 200 or not isinstance(body, dict):
            raise RuntimeError(f"/_fake/control answered {status}: {body!r}")
        return body
