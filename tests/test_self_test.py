"""The self-test run from source, its report and failure paths, plus the crash handler it ships with."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from comfystudio_desktop import self_test
from comfystudio_desktop.crash_handler import CrashHandler, crash_message, install_crash_handler
from comfystudio_desktop.self_test import run_self_test
from comfystudio_desktop.supervise.redis_server import RedisServerError, find_redis_binary
from tests.conftest import REPO_ROOT

CHECKS = ("redis", "queue", "workflows", "resources", "comfy client", "window", "redis stop")


def _lines(out: str) -> dict[str, str]:
    """Report lines by check name."""
    found: dict[str, str] = {}
    for line in out.splitlines():
        for name in CHECKS:
            if line.startswith(f"  {name} ") and line[2 + len(name):].startswith(" "):
                found.setdefault(name, line)
    return found


def test_self_test_from_source_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_self_test()
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("ComfyStudio self-test 0.1.0 (from source, Python ")
    lines = _lines(out)
    assert set(lines) == set(CHECKS), out
    for name in ("redis", "queue", "workflows", "resources", "comfy client", "redis stop"):
        assert lines[name].split()[len(name.split())] == "ok", lines[name]
    assert f" s  {find_redis_binary().name} " in lines["redis"], lines["redis"]
    assert "submit, claim, finish" in lines["queue"]
    assert "12 templates filled (blend, image_to_image, text_to_image)" in lines["workflows"]
    window = lines["window"]
    # The dev environment has PySide6: the window check must run, not skip.
    assert window.split()[1] == "ok", window
    assert "main window ready offscreen" in window and "after launch, quit in" in window
    assert out.rstrip().splitlines()[-1].startswith("self-test passed: ")


def test_a_failed_check_is_named_and_redis_is_still_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("comfystudio_desktop.comfy.workflow_templates.shipped_workflows_dir",
                        lambda: tmp_path / "no-templates")
    monkeypatch.setattr(self_test, "_ui_app_available", lambda: False)
    code = run_self_test()
    out = capsys.readouterr().out
    assert code == 1
    lines = _lines(out)
    assert " FAILED " in lines["workflows"] and "no workflow templates" in lines["workflows"]
    assert lines["window"] == "  window        SKIPPED: ui.app not available"
    assert " ok " in lines["queue"] and " ok " in lines["redis stop"] and "stopped" in lines["redis stop"]
    assert out.rstrip().splitlines()[-1] == "self-test FAILED: workflows (5 ok, 1 failed, 1 skipped)"


def test_without_redis_the_dependent_checks_are_skipped(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def no_binary(configured: str | None = None) -> Path:
        raise RedisServerError("No redis-server found")

    monkeypatch.setattr("comfystudio_desktop.supervise.redis_server.find_redis_binary", no_binary)
    code = run_self_test()
    out = capsys.readouterr().out
    assert code == 1
    lines = _lines(out)
    assert "FAILED" in lines["redis"] and "RedisServerError: No redis-server found" in lines["redis"]
    assert lines["queue"].endswith("SKIPPED: needs redis")
    assert lines["window"].endswith("SKIPPED: needs redis")
    assert " ok " in lines["workflows"] and "already stopped" in lines["redis stop"]
    assert "self-test FAILED: redis" in out


@pytest.mark.parametrize(("script", "needles"), [
    # Never ready: killed at the timeout, its output quoted.
    ("print('starting', flush=True); time.sleep(120)", ("not ready within 2 s", "starting")),
    # Ready, then stuck on the way out: a shutdown hang is a failure of its own.
    ("print('ready in 0.010 s', flush=True); time.sleep(120)", ("ready after ", "did not quit within 1 s")),
    # Gone before it was ready.
    ("print('Traceback: no display', flush=True); sys.exit(3)", ("exited with code 3 before it was ready",
                                                                 "Traceback: no display")),
], ids=["never-ready", "hangs-on-quit", "dies-early"])
def test_a_misbehaving_window_fails_the_check_and_is_cleaned_up(
        script: str, needles: tuple[str, ...], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # A stand-in for the app; the autouse fixture in conftest fails the test if it were left running.
    monkeypatch.setattr(self_test, "_ui_app_available", lambda: True)
    monkeypatch.setattr(self_test, "app_command", lambda: [sys.executable, "-c", f"import sys, time; {script}"])
    monkeypatch.setattr(self_test, "EXIT_GRACE_S", 1.0)
    code = run_self_test(window_timeout=2.0)
    out = capsys.readouterr().out
    assert code == 1
    window = _lines(out)["window"]
    assert " FAILED " in window and all(needle in window for needle in needles), window


def test_a_window_whose_output_pipe_outlives_it_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # The stand-in app starts a process that inherits its stdout and outlives it, as Wine's desktop process does.
    pid_file = tmp_path / "holder.pid"
    script = textwrap.dedent(f"""
        import subprocess, sys
        holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], stdout=sys.stdout)
        open({str(pid_file)!r}, "w").write(str(holder.pid))
        print("ready in 0.010 s", flush=True)
    """)
    monkeypatch.setattr(self_test, "_ui_app_available", lambda: True)
    monkeypatch.setattr(self_test, "app_command", lambda: [sys.executable, "-c", script])
    try:
        code = run_self_test(window_timeout=30.0)
        window = _lines(capsys.readouterr().out)["window"]
        assert code == 0 and " ok " in window, window
    finally:
        if pid_file.is_file():
            with contextlib.suppress(psutil.NoSuchProcess):
                holder = psutil.Process(int(pid_file.read_text()))
                holder.kill()
                holder.wait(10)


def test_cli_wiring_runs_the_self_test(tmp_path: Path) -> None:
    # `--home` is only where the command line keeps its log; the self-test makes its own temporary home.
    result = subprocess.run([sys.executable, "-m", "comfystudio_desktop", "--home", str(tmp_path / "home"),
                             "--self-test"], capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
                            env=_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test passed" in result.stdout


def _env() -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO_ROOT)}


# -- the crash handler ---------------------------------------------------------------------------------------------
@pytest.fixture
def crash_log(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "crash.log"


@pytest.fixture
def dialogs() -> list[str]:
    return []


@pytest.fixture
def handler(crash_log: Path, dialogs: list[str]) -> Iterator[CrashHandler]:
    installed = install_crash_handler(crash_log, dialogs.append, fault_handler=False)
    yield installed
    installed.uninstall()


def test_a_thread_crash_is_logged_and_shown_once(handler: CrashHandler, crash_log: Path, dialogs: list[str],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise ValueError("the queue follower broke")

    for _ in range(2):
        thread = threading.Thread(target=boom, name="follower")
        thread.start()
        thread.join()
    text = crash_log.read_text(encoding="utf-8")
    assert text.count("ValueError: the queue follower broke") == 2
    assert "thread follower" in text and "ComfyStudio 0.1.0" in text and 'in boom' in text
    assert dialogs == [crash_message(ValueError, ValueError("the queue follower broke"), crash_log)]
    assert "ValueError: the queue follower broke" in dialogs[0] and str(crash_log) in dialogs[0]
    assert any(r.levelname == "CRITICAL" and r.exc_info for r in caplog.records)


def test_main_thread_hook_and_keyboard_interrupt(handler: CrashHandler, crash_log: Path, dialogs: list[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert sys.excepthook == handler.excepthook and threading.excepthook == handler.thread_excepthook
    passed_on: list[type[BaseException]] = []
    monkeypatch.setattr(handler, "_previous_excepthook", lambda t, e, tb: passed_on.append(t))
    try:
        raise RuntimeError("slot failed")
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    sys.excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)
    assert "RuntimeError: slot failed" in crash_log.read_text(encoding="utf-8")
    assert len(dialogs) == 1 and passed_on == [KeyboardInterrupt]


def test_a_failing_dialog_never_raises(crash_log: Path) -> None:
    def broken_dialog(message: str) -> None:
        raise RuntimeError("no QApplication")

    handler = install_crash_handler(crash_log, broken_dialog, fault_handler=False)
    try:
        handler.handle(OSError, OSError("disk full"), None, "MainThread")
    finally:
        handler.uninstall()
    assert "OSError: disk full" in crash_log.read_text(encoding="utf-8")
    assert sys.excepthook is not handler.excepthook


@pytest.mark.parametrize(("crash", "needles"), [
    ("raise LookupError('uncaught at top level')", ("LookupError: uncaught at top level",)),
    # A native crash, as a segfault in Qt would be: faulthandler writes the Python stacks to the same file.
    ("import faulthandler; faulthandler._sigsegv()", ("Fatal Python error", "Windows fatal exception")),
], ids=["exception", "segfault"])
def test_a_crashing_process_leaves_its_traceback(tmp_path: Path, crash: str, needles: tuple[str, ...]) -> None:
    log_file = tmp_path / "crash.log"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from comfystudio_desktop.crash_handler import install_crash_handler
        install_crash_handler(Path({str(log_file)!r}), None)
        {crash}
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, check=False, env=_env())
    assert result.returncode != 0
    text = log_file.read_text(encoding="utf-8", errors="replace")
    assert any(needle in text for needle in needles), text
