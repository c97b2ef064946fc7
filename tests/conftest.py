"""Shared fixtures: a fresh home, the app's own embedded redis-server, and the queue on top of it.

Every process a test starts is stopped by the test; an autouse check fails a test that leaves a child running.
Under Wine (the CI's Windows stage, scripts/ci-windows.sh) the tests in `WINE_LACKS` are skipped, each with its
reason; nothing else is.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from comfystudio_desktop.home import Home
from comfystudio_desktop.logging_setup import HANDLER_MARKER
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.outbox import Outbox
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis, RedisEndpoint
from comfystudio_desktop.supervise.watchdog import Watchdog

# `fake`, `settings` and `worker` for the tests that run the worker in-process.
pytest_plugins = ["tests.worker_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
# ComfyUI 0.3.64's recorded exchanges (tests/fixtures/comfyui/README.md).
COMFY_TRANSCRIPTS = REPO_ROOT / "tests" / "fixtures" / "comfyui" / "transcripts"


def _wine_version() -> str | None:
    """Wine's version when this Windows Python runs under Wine (ntdll exports `wine_get_version`), else None."""
    if os.name != "nt":
        return None
    ntdll = ctypes.WinDLL("ntdll")  # type: ignore[attr-defined,unused-ignore]
    if not hasattr(ntdll, "wine_get_version"):
        return None
    ntdll.wine_get_version.restype = ctypes.c_char_p
    return str(ntdll.wine_get_version().decode())


WINE = _wine_version()

#: Tests that need what Wine lacks, by node id prefix (file, or file::test), with the reason. Only under Wine:
#: on Windows itself and on Linux every one of them runs.
WINE_LACKS: dict[str, str] = {
    "tests/test_redis_server.py::test_listens_on_loopback_only_with_password":
        "psutil's net_connections() is empty under Wine (no NT socket table), so the listening address cannot be read",
    "tests/test_monitor_cli.py::test_metrics_endpoint_serves_prometheus_text_on_loopback_only":
        "psutil's net_connections() is empty under Wine (no NT socket table), so the listening address cannot be read",
    **dict.fromkeys([
        "tests/test_monitor_cli.py::test_stats_watch_refreshes_until_interrupted",
        "tests/test_monitor_cli.py::test_metrics_command_serves_until_interrupted",
        "tests/test_monitor_headless.py::test_headless_worker_writes_samples_with_its_figures",
        "tests/test_backend_worker.py::test_a_managed_backend_runs_its_own_comfyui_with_its_port_and_cuda_device",
        "tests/test_scale_out.py::test_two_headless_backends_share_one_external_redis",
        "tests/ui/test_window_quit_ownership.py::test_quitting_the_window_leaves_the_server_of_a_headless_worker_running",
        "tests/test_output_fetch.py::test_outputs_are_fetched_from_the_worker_that_made_them",
    ], "they stop a child process with Ctrl+Break, as a user does on Windows, and Wine 8 delivers no console control "
       "event to a process group (GenerateConsoleCtrlEvent fails with WinError 12, even inside a console)"),
    "tests/test_redis_watchdog.py::test_kill_9_while_jobs_flow_restarts_on_the_same_port_and_keeps_every_job":
        "it bounds the recovery at backoff + 2 s, and redis-server.exe alone takes 2-4 s to start under Wine (the CLI "
        "story of scripts/ci-windows.sh kills it hard and checks the queue instead)",
    "tests/ui/test_job_delegate_cells.py::test_a_failed_row_paints_its_reason_under_the_prompt_in_the_error_colour":
        "it counts red-tinted pixels of antialiased text, and Wine's font rasteriser tints text painted in the text "
        "colour too (53 such pixels on the prompt's line); the two-line layout and its colours are checked on Linux",
    "tests/test_architecture.py::test_the_contracts_hold":
        "grimp's Rust extension (_rustgrimp.pyd), which lint-imports needs, does not load under Wine 8 ('DLL load "
        "failed: Module not found'); the import contracts do not depend on the platform and the Linux stage runs "
        "lint-imports",
    "tests/test_architecture.py::test_a_bad_import_breaks_a_contract":
        "grimp's Rust extension (_rustgrimp.pyd), which lint-imports needs, does not load under Wine 8 ('DLL load "
        "failed: Module not found'); the import contracts do not depend on the platform and the Linux stage runs "
        "lint-imports",
    "tests/test_architecture.py::test_a_new_module_must_be_placed_in_a_layer":
        "grimp's Rust extension (_rustgrimp.pyd), which lint-imports needs, does not load under Wine 8 ('DLL load "
        "failed: Module not found'); the import contracts do not depend on the platform and the Linux stage runs "
        "lint-imports",
    "tests/ui/test_first_run.py::test_a_folder_the_user_points_at_can_be_managed":
        "the ComfyUI folder's venv Python is a symbolic link to this Python, and Wine's CreateSymbolicLinkW reports "
        "success but makes no symbolic link",
    "tests/test_api_security.py::test_outputs_refuse_a_symlink_pointing_out":
        "Wine's CreateSymbolicLinkW reports success but makes no symbolic link (is_symlink() is False), so the "
        "'link' is an ordinary file in the outputs folder and no link points out of it",
    # Not Wine itself but the only Windows Redis that runs under it (Redis 8.8.0; the shipped 5.0.14 port does not:
    # ../shared/wine/README.md). It expands the config file's absolute name as a glob with no escape that works on
    # Windows paths, and takes its argument and working folder in the ANSI code page. docs/windows-build.md.
    "tests/test_redis_conf_hostile_home.py::test_hostile_home_names[x[1]]":
        "the Redis 8.8.0 Windows build under Wine globs the config path, and '[' cannot be escaped in a Windows path",
    "tests/test_redis_conf_hostile_home.py::test_hostile_home_names[[]":
        "the Redis 8.8.0 Windows build under Wine globs the config path, and '[' cannot be escaped in a Windows path",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--share", metavar="K/N", default=None,
                     help="run only every N-th collected test from the K-th (1-based), so that N pytest processes "
                          "side by side run the suite once (the CI's Windows stage under Wine)")
    parser.addoption("--progress-log", metavar="FILE", default=None,
                     help="append a line per collected test, per failure and per test that ran, as it happens, so a "
                          "process that dies (a crash under Wine) still tells what ran and what failed")
    parser.addoption("--only-ids", metavar="FILE", default=None,
                     help="run only the tests whose node ids FILE lists, one a line (the CI's rerun of the tests a "
                          "crashed process did not get to)")


_progress_log: Path | None = None


def _progress(*fields: str) -> None:
    """One tab-separated line in the --progress-log file (nothing without one)."""
    if _progress_log is not None:
        with _progress_log.open("a", encoding="utf-8") as log:
            log.write("\t".join(fields) + "\n")


def _share(text: str) -> tuple[int, int]:
    """(k, n) of `--share K/N`, 1 <= k <= n."""
    match = re.fullmatch(r"([1-9][0-9]{0,2})/([1-9][0-9]{0,2})", text)
    if match is None or int(match[1]) > int(match[2]):
        raise pytest.UsageError(f"--share {text!r}: expected K/N with 1 <= K <= N, e.g. 1/2")
    return int(match[1]), int(match[2])


def pytest_configure(config: pytest.Config) -> None:
    global _progress_log  # noqa: PLW0603 - one run's log, set once at start
    share = config.getoption("--share")
    if share is not None:
        _share(share)
    log = config.getoption("--progress-log")
    _progress_log = Path(log) if log is not None else None
    missing = [prefix for prefix in WINE_LACKS if not (REPO_ROOT / prefix.split("::")[0]).is_file()]
    if missing:
        raise pytest.UsageError(f"WINE_LACKS names files that do not exist: {missing}")


def pytest_report_header(config: pytest.Config) -> str | None:
    return f"Wine {WINE}: the tests in WINE_LACKS (tests/conftest.py) are skipped with their reasons" if WINE else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of `WINE_LACKS` with the `wine` marker and skip them, with their reason, under Wine."""
    for item in items:
        for prefix, reason in WINE_LACKS.items():
            if item.nodeid == prefix or item.nodeid.startswith((f"{prefix}::", f"{prefix}[")):
                item.add_marker(pytest.mark.wine(reason))
                if WINE:
                    item.add_marker(pytest.mark.skip(reason=f"Wine lacks it: {reason}"))
    only = config.getoption("--only-ids")
    if only is not None:
        wanted = set(Path(only).read_text(encoding="utf-8").splitlines())
        config.hook.pytest_deselected(items=[item for item in items if item.nodeid not in wanted])
        items[:] = [item for item in items if item.nodeid in wanted]
    share = config.getoption("--share")
    if share is not None:  # every n-th test, not every n-th file: neighbouring tests cost alike, so shares even out
        k, n = _share(share)
        config.hook.pytest_deselected(items=[item for index, item in enumerate(items) if index % n != k - 1])
        items[:] = items[k - 1::n]


def _failure_line(report: pytest.TestReport) -> str:
    """The failure's message (pytest's "E" line) as one line of at most 500 characters."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return " ".join(text.split())[:500]


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        _progress("collected", item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:  # with why, in one line: a process that crashes later never prints its failure reports
        _progress("failed", report.when, report.nodeid, _failure_line(report))
    if report.when == "teardown":
        _progress("ran", report.nodeid)


@pytest.fixture(autouse=True)
def dangling_qthreads() -> Iterator[None]:
    """Fail a test that leaves a QThread it started running (tests/qt_hygiene.py); only once Qt is loaded."""
    if "PySide6.QtCore" not in sys.modules:  # pytest-qt loads it at start-up; a run without Qt has no QThread
        yield
        return
    from tests import qt_hygiene

    with qt_hygiene.dangling_qthreads():
        yield


@pytest.fixture(autouse=True)
def dangling_qtimers() -> Iterator[None]:
    """Fail a test that leaves a QTimer it started active (tests/qt_hygiene.py); only once Qt is loaded."""
    if "PySide6.QtCore" not in sys.modules:
        yield
        return
    from tests import qt_hygiene

    with qt_hygiene.dangling_qtimers():
        yield


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    """Fail a test that leaves a child process of its own running (and clean it up)."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    leftovers = []
    for child in me.children(recursive=True):
        if child.pid in before:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                child.wait(1)
                continue
            # The whole command line: a server's names its home, and the home (in tmp_path) names the test.
            leftovers.append(f"{child.pid} {' '.join(child.cmdline())}")
            child.kill()
            child.wait(5)
        except psutil.NoSuchProcess:
            continue
    assert not leftovers, f"test left processes running: {leftovers}"


#: The app's long-lived threads (named where they start): one still alive after the test that started it keeps
#: working into the next tests, e.g. a watchdog restarting the redis-server the leftover check just killed.
_APP_THREADS = re.compile(r"watchdog|comfy-events|lease-heartbeat|presence-.*")


@pytest.fixture(autouse=True)
def _no_leftover_app_threads() -> Iterator[None]:
    """Fail a test that leaves one of the app's long-lived threads running."""
    before = set(threading.enumerate())
    yield
    candidates = [t for t in threading.enumerate() if t not in before and _APP_THREADS.fullmatch(t.name)]
    for thread in candidates:  # a reader told to stop may take a moment to see it (a slow machine, Wine)
        if thread.name != "watchdog":
            thread.join(10)
    leftovers = [t.name for t in candidates if t.is_alive()]
    if "watchdog" in leftovers:  # stop it, so that this test fails alone rather than every test it restarts into
        for obj in gc.get_objects():
            if isinstance(obj, Watchdog):
                obj.stop()
    assert not leftovers, f"test left app threads running: {leftovers}"


@pytest.fixture(autouse=True)
def _root_log_handlers_restored() -> Iterator[None]:
    """Undo the logging set-up of a test that runs the CLI's `main()` in-process: its stderr handler would write
    to that test's closed capture ("--- Logging error ---" in every later test) and its file handler would keep a
    file in that test's folder open."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, HANDLER_MARKER, False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """A fresh, created home folder."""
    return Home(tmp_path / "home").create()


@pytest.fixture
def cli_home(tmp_path: Path) -> Iterator[Path]:
    """A home for CLI processes: the embedded server they start (and leave running) is stopped afterwards."""
    root = tmp_path / "cli-home"
    yield root
    EmbeddedRedis(Home(root)).stop()


def run_cli(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `comfystudio-desktop --home HOME ARGS...` as a real process; its output as text."""
    return subprocess.run([sys.executable, "-m", "comfystudio_desktop", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


@pytest.fixture
def redis_server(home: Home) -> Iterator[EmbeddedRedis]:
    """The home's embedded redis-server, started by the app's manager and stopped afterwards."""
    server = EmbeddedRedis(home)
    endpoint = server.ensure_running()
    _check_expected_major(endpoint.version)
    yield server
    server.stop()


def make_queue(server: EmbeddedRedis, home: Home, *, restart: bool = True, **kwargs: float) -> JobQueue:
    """A JobQueue on `server`; with `restart`, reconnecting restarts a dead server (as the CLI does)."""
    provider = server.ensure_running if restart else server.endpoint
    conn = ResilientRedis(provider, delay_s=kwargs.pop("delay_s", 0.1))
    return JobQueue(conn, outbox=Outbox(home.outbox), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def queue(redis_server: EmbeddedRedis, home: Home) -> Iterator[JobQueue]:
    """A JobQueue with short leases for tests."""
    q = make_queue(redis_server, home, lease_seconds=30.0)
    yield q
    q.conn.close()


@pytest.fixture
def endpoint(redis_server: EmbeddedRedis) -> RedisEndpoint:
    """The running server's endpoint."""
    return redis_server.endpoint()


def _check_expected_major(version: str) -> None:
    """A CI stage that runs the tests against one server (COMFYSTUDIO_TEST_REDIS_MAJOR, e.g. 5 for the Windows
    bundle's semantics) fails when the app picked another one instead of silently testing the wrong server."""
    expected = os.environ.get("COMFYSTUDIO_TEST_REDIS_MAJOR", "")
    if expected:
        assert version.split(".", maxsplit=1)[0] == expected, f"expected Redis {expected}.x, the app started {version}"
