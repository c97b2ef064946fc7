"""`comfystudio-desktop self-test` (or `--self-test`): check the app's parts end to end, print a report, exit.

Everything runs in a throwaway home: the embedded redis-server is started, one job goes through the queue
(submit, claim, finish), every shipped workflow template is filled, the icons and the ComfyUI client are loaded,
and the main window is opened offscreen in a child process (`--exit-when-ready`). Redis is stopped at the end
whatever happened. A frozen build runs this to prove that the bundle holds what the app needs: the server
binary, the templates, the icons, the Qt plugins.

Output: one line per check (`ok`, `FAILED` or `SKIPPED:` and its time), then a verdict. Exit code 0 when every
check passed (skips allowed), 1 naming the checks that failed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from comfystudio_desktop import __version__

__all__ = ["DEFAULT_WINDOW_TIMEOUT_S", "CheckResult", "SelfTestSkip", "app_command", "run_self_test"]

#: Time the main window may take to show up (a first start on a slow disk with a virus scanner is slow).
DEFAULT_WINDOW_TIMEOUT_S = 120.0
_UI_APP_MODULE = "comfystudio_desktop.ui.app"
#: Time the app may take to quit once it said it is ready (a longer wait means it hangs on shutdown).
EXIT_GRACE_S = 30.0
_OUTPUT_TAIL_LINES = 15
_READY_RE = re.compile(r"^ready in ([0-9.]+) s", re.MULTILINE)  # what the app prints with --exit-when-ready

Status = Literal["ok", "FAILED", "SKIPPED"]


class SelfTestSkip(Exception):
    """Raised by a check that cannot run here; the message says why."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    status: Status
    seconds: float
    detail: str = ""

    def line(self) -> str:
        """The report line: name, verdict, time, detail."""
        if self.status == "SKIPPED":
            return f"  {self.name:<13} SKIPPED: {self.detail}"
        text = f"  {self.name:<13} {self.status:<7} {self.seconds:6.2f} s"
        if self.detail:
            text += f"  {self.detail}"
        return text


def _run_check(name: str, check: Callable[[], str]) -> CheckResult:
    start = time.perf_counter()
    try:
        detail = check()
    except SelfTestSkip as exc:
        return CheckResult(name, "SKIPPED", time.perf_counter() - start, str(exc))
    except Exception as exc:  # noqa: BLE001 - a self-test reports every failure and goes on with the next check
        return CheckResult(name, "FAILED", time.perf_counter() - start, _one_line(exc))
    return CheckResult(name, "ok", time.perf_counter() - start, detail)


def _one_line(exc: BaseException) -> str:
    text = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _shorten(path: Path) -> str:
    """A bundled path relative to the bundle, others as they are."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        try:
            return str(path.resolve().relative_to(Path(bundle).resolve()))
        except ValueError:
            pass
    return str(path)


# -- the checks ------------------------------------------------------------------------------------------------
class _Context:
    """What the checks share: the temporary home and the server started in it."""

    def __init__(self, root: Path) -> None:
        from comfystudio_desktop.home import Home
        from comfystudio_desktop.settings import Settings
        from comfystudio_desktop.supervise.redis_server import EmbeddedRedis

        self.home = Home(root).create()
        self.settings = Settings()  # a fresh home: the defaults, embedded Redis, nothing from the user's config
        self.server = EmbeddedRedis(self.home)
        self.redis_ready = False

    def check_redis(self) -> str:
        from comfystudio_desktop.supervise.redis_server import find_redis_binary

        binary = find_redis_binary()
        endpoint = self.server.ensure_running()
        self.redis_ready = True
        return f"{binary.name} {endpoint.version} on 127.0.0.1:{endpoint.port} ({_shorten(binary)})"

    def check_queue(self) -> str:
        from comfystudio_desktop.jobs import Job, JobStatus
        from comfystudio_desktop.queue.job_queue import LeaseState, SubmitOutcome
        from comfystudio_desktop.runtime import open_queue

        if not self.redis_ready:
            raise SelfTestSkip("needs redis")
        rt = open_queue(self.home, self.settings, start_redis=False)
        try:
            job = Job(prompt="self-test", seed=12345, model="self-test.safetensors")
            outcome = rt.queue.submit(job, wait_for_redis=False)
            if outcome is not SubmitOutcome.QUEUED:
                raise RuntimeError(f"submit answered {outcome.value}, expected queued")
            lease = rt.queue.claim("self-test")
            if lease is None or lease.job_id != job.job_id:
                raise RuntimeError(f"claim returned {lease.job_id if lease else None}, expected {job.job_id}")
            state = rt.queue.finish(lease, f"outputs/{job.job_id}.png")
            if state is not LeaseState.OK:
                raise RuntimeError(f"finish answered {state.value}")
            record = rt.queue.status(job.job_id)
            if record is None or record.status is not JobStatus.FINISHED or record.progress != 100:
                raise RuntimeError(f"status after finish: {record.status.value if record else 'missing'}")
        finally:
            rt.close()
        return f"submit, claim, finish: job {job.job_id[:8]} finished"

    def check_workflows(self) -> str:
        from comfystudio_desktop.comfy.workflow_fill import fill
        from comfystudio_desktop.comfy.workflow_templates import WorkflowTemplate, load_library, shipped_workflows_dir
        from comfystudio_desktop.jobs import Job

        library = load_library(self.home.workflows)
        templates: list[WorkflowTemplate] = list(library.templates.values())
        if not templates:
            raise RuntimeError(f"no workflow templates in {shipped_workflows_dir()}")
        seed = 424242
        for template in templates:
            job = Job(prompt="a lighthouse at dusk", seed=seed, workflow=template.name, model="self-test.safetensors",
                      images={slot: f"self-test-{slot}.png" for slot in template.image_slots}).validate()
            uploaded = {slot: f"upload_{job.job_id}_{slot}.png" for slot in template.image_slots}
            graph = fill(template, job, uploaded, seed_used=seed, width=512, height=512)
            for target in template.slots["seed"]:
                if graph[target.node]["inputs"][target.input] != seed:
                    raise RuntimeError(f"{template.label}: seed not written to node {target.node}")
            json.dumps(graph)  # what ComfyUI receives must be plain JSON
        return (f"{len(templates)} templates filled ({', '.join(library.names())}) "
                f"from {_shorten(shipped_workflows_dir())}")

    @staticmethod
    def check_resources() -> str:
        # Qt-free: resources_path only resolves paths.
        from comfystudio_desktop.ui.resources_path import icon_path, resources_dir

        names = ("app.png", "app.ico", "tray-idle.png", "tray-working.png", "tray-error.png")
        for name in names:
            icon_path(name)  # raises FileNotFoundError naming the missing icon
        return f"{len(names)} icons in {_shorten(resources_dir())}"

    def check_comfy_client(self) -> str:
        client_module = importlib.import_module("comfystudio_desktop.comfy.comfy_client")
        importlib.import_module("comfystudio_desktop.comfy.comfy_stream")
        websocket = importlib.import_module("websocket")
        if not hasattr(websocket, "WebSocket"):
            raise RuntimeError("the websocket module is not websocket-client")
        client = client_module.ComfyClient.from_settings(self.settings)
        try:
            ws_url = str(client.ws_url())
        finally:
            client.close()
        if not ws_url.startswith(("ws://", "wss://")):
            raise RuntimeError(f"unexpected WebSocket URL {ws_url!r}")
        return "comfy_client, comfy_stream and websocket-client import; client built"

    def check_window(self, timeout: float) -> str:
        if not self.redis_ready:
            raise SelfTestSkip("needs redis")
        if not _ui_app_available():
            raise SelfTestSkip("ui.app not available")
        command = [*app_command(), "--home", str(self.home.root), "--exit-when-ready"]
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=_child_env(), creationflags=_no_window_flag())
        watch = _OutputWatch(proc)
        try:
            if not watch.ready_or_ended.wait(timeout):
                raise RuntimeError(f"the window was not ready within {timeout:.0f} s{watch.tail()}")
            if watch.ready_after is None:
                proc.wait(EXIT_GRACE_S)
                raise RuntimeError(f"the app exited with code {proc.returncode} before it was ready{watch.tail()}")
            ready = watch.ready_after - start
            try:
                proc.wait(EXIT_GRACE_S)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"ready after {ready:.2f} s, but the app did not quit within {EXIT_GRACE_S:.0f} s"
                                   f"{watch.tail()}") from None
            if proc.returncode != 0:
                raise RuntimeError(f"ready after {ready:.2f} s, but the app exited with code {proc.returncode}"
                                   f"{watch.tail()}")
        finally:
            if proc.poll() is None:
                _kill_tree(proc)
            proc.wait()
            # Read to its end by the watch: close it here, not in the collector. But a process the app started may
            # hold the pipe open after the app is gone (under Wine, the desktop process its window starts inherits
            # it): the reader then still waits, and closing would wait for it. It is a daemon thread: it ends with us.
            if watch.join() and proc.stdout is not None:
                proc.stdout.close()
        return f"main window ready offscreen {ready:.2f} s after launch, quit in {time.perf_counter() - start:.2f} s"

    def stop_redis(self) -> str:
        record = self.server.running_record()
        stopped = self.server.stop()
        if record is not None and _alive(record.pid):
            raise RuntimeError(f"redis-server pid {record.pid} still runs")
        return "stopped" if stopped else "already stopped"


def _ui_app_available() -> bool:
    try:
        return importlib.util.find_spec(_UI_APP_MODULE) is not None
    except ImportError:
        return False


def app_command() -> list[str]:
    """How to start the app itself: the frozen executable, or this interpreter with `-m comfystudio_desktop`."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "comfystudio_desktop"]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    if not getattr(sys, "frozen", False):
        # Make `-m comfystudio_desktop` find this very package, installed or not.
        package_parent = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return env


def _no_window_flag() -> int:
    """Windows: no console window flashes up for the child (its output goes to our pipe). 0 elsewhere."""
    if os.name == "nt":
        return int(subprocess.CREATE_NO_WINDOW)  # type: ignore[attr-defined,unused-ignore]
    return 0


class _OutputWatch:
    """Reads a child's output in a thread; notes when it prints its ready line, or ends."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self.ready_after: float | None = None
        self.ready_or_ended = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(proc,), name="self-test-output", daemon=True)
        self._thread.start()

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip()
                self.lines.append(line)
                if self.ready_after is None and _READY_RE.match(line):
                    self.ready_after = time.perf_counter()
                    self.ready_or_ended.set()
        finally:
            self.ready_or_ended.set()

    def join(self) -> bool:
        """Wait a little for the reader (the pipe closes when the child and whatever inherited it are gone).

        Returns whether it finished.
        """
        self._thread.join(5.0)
        return not self._thread.is_alive()

    def tail(self) -> str:
        """The child's last lines, for an error message."""
        lines = [line for line in self.lines if line.strip()][-_OUTPUT_TAIL_LINES:]
        return "; its last output:\n      " + "\n      ".join(lines) if lines else ""


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child and anything it started (a timed-out app must leave nothing behind)."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for process in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    proc.kill()
    psutil.wait_procs(children, timeout=5)


# -- the report ------------------------------------------------------------------------------------------------
def _header() -> str:
    kind = "frozen" if getattr(sys, "frozen", False) else "from source"
    return (f"ComfyStudio self-test {__version__} ({kind}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.machine()})")


def _verdict(results: Sequence[CheckResult], seconds: float) -> tuple[int, str]:
    failed = [r.name for r in results if r.status == "FAILED"]
    ok = sum(r.status == "ok" for r in results)
    skipped = sum(r.status == "SKIPPED" for r in results)
    if failed:
        return 1, f"self-test FAILED: {', '.join(failed)} ({ok} ok, {len(failed)} failed, {skipped} skipped)"
    return 0, f"self-test passed: {ok} ok, {skipped} skipped in {seconds:.2f} s"


def run_self_test(*, window_timeout: float = DEFAULT_WINDOW_TIMEOUT_S) -> int:
    """Run every check in a temporary home, print the report; 0 if all passed, else 1."""
    start = time.perf_counter()
    print(_header(), flush=True)
    results: list[CheckResult] = []

    def record(result: CheckResult) -> None:
        results.append(result)
        print(result.line(), flush=True)

    root = Path(tempfile.mkdtemp(prefix="comfystudio-self-test-"))
    try:
        context = _Context(root)
    except Exception as exc:  # noqa: BLE001 - a self-test reports a failed setup as a failed check
        record(CheckResult("home", "FAILED", 0.0, _one_line(exc)))
        shutil.rmtree(root, ignore_errors=True)
        code, verdict = _verdict(results, time.perf_counter() - start)
        print(verdict, flush=True)
        return code
    try:
        record(_run_check("redis", context.check_redis))
        record(_run_check("queue", context.check_queue))
        record(_run_check("workflows", context.check_workflows))
        record(_run_check("resources", context.check_resources))
        record(_run_check("comfy client", context.check_comfy_client))
        record(_run_check("window", lambda: context.check_window(window_timeout)))
    finally:
        record(_run_check("redis stop", context.stop_redis))
        shutil.rmtree(root, ignore_errors=True)
    code, verdict = _verdict(results, time.perf_counter() - start)
    print(verdict, flush=True)
    return code
