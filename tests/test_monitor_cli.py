"""`stats` and `metrics` on a real embedded Redis: the same figures, valid Prometheus text on 127.0.0.1 only."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job
from comfystudio_desktop.monitor.metrics_endpoint import LOOPBACK, MetricsEndpoint, MetricsPortError
from comfystudio_desktop.monitor.sampler import Sampler
from comfystudio_desktop.monitor.snapshot import StatsSnapshot
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings
from tests.cli_support import assert_clean_usage_error, home_arg, run_cli
from tests.conftest import REPO_ROOT

_STABLE = ("queued", "running", "finished", "failed", "cancelled", "images_total", "images_last_hour",
           "processing", "waiting", "gpu", "outputs_bytes", "outputs_images")


def _some_jobs(queue: JobQueue) -> None:
    queue.submit_many([Job(prompt=f"p{n}", job_id=f"cli-{n}") for n in range(4)])
    for n in range(2):
        lease = queue.claim("w")
        assert lease is not None
        queue.finish(lease, "/x.png", ["x.png"]) if n == 0 else queue.fail(lease, "no")


def test_stats_json_parses_and_matches_the_sampler(queue: JobQueue, home: Home,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _some_jobs(queue)
    result = run_cli(capsys, *home_arg(home.root), "stats", "--json", "--comfy-url", "http://127.0.0.1:9")
    assert result.code == 0, result
    printed = StatsSnapshot.from_json(result.out)
    direct = Sampler(queue, home.outputs, publish_process=False).take()
    for name in _STABLE:
        assert getattr(printed, name) == getattr(direct, name), name
    assert (printed.queued, printed.finished, printed.failed, printed.gpu) == (2, 1, 1, None)
    text = run_cli(capsys, *home_arg(home.root), "stats", "--comfy-url", "http://127.0.0.1:9")
    assert text.code == 0
    assert "Queue" in text.out and "2 queued, 0 running" in text.out
    assert "1 finished, 1 failed, 0 cancelled" in text.out and "GPU" in text.out and "unavailable" in text.out


def test_stats_refuses_bad_intervals(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("0", "61", "1.5", "x"):
        assert_clean_usage_error(run_cli(capsys, *home_arg(home.root), "stats", "--watch", "--interval", bad),
                                 "--interval")


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    if sys.platform == "win32":
        proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
    else:
        proc.send_signal(signal.SIGINT)


def _spawn(*argv: str) -> subprocess.Popen[bytes]:
    flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0  # type: ignore[attr-defined]
    return subprocess.Popen([sys.executable, "-m", "comfystudio_desktop", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO_ROOT, creationflags=flags)


def test_stats_watch_refreshes_until_interrupted(queue: JobQueue, home: Home) -> None:
    proc = _spawn(*home_arg(home.root), "stats", "--watch", "--json", "--interval", "1",
                  "--comfy-url", "http://127.0.0.1:9")
    assert proc.stdout is not None
    try:
        lines = [proc.stdout.readline() for _ in range(2)]  # two refreshes
        assert [StatsSnapshot.from_json(line).queued for line in lines] == [0, 0]
        _interrupt(proc)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def test_metrics_endpoint_serves_prometheus_text_on_loopback_only(queue: JobQueue, home: Home) -> None:
    _some_jobs(queue)
    snapshot = Sampler(queue, home.outputs).take()
    endpoint = MetricsEndpoint(_free_port(), lambda: snapshot)
    endpoint.start()
    try:
        with urllib.request.urlopen(endpoint.url, timeout=10) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain")
            text = reply.read().decode("utf-8")
        families = _families(text)
        assert families["comfystudio_queue_jobs"] == [({"state": "queued"}, 2.0), ({"state": "running"}, 0.0)]
        assert ({"status": "finished"}, 1.0) in families["comfystudio_jobs_ended"]
        assert families["comfystudio_redis_memory_bytes"][0][1] == float(snapshot.redis_memory or -1)
        assert "comfystudio_gpu_vram_total_bytes" not in families  # unavailable is left out, not reported as 0
        password = queue.conn.endpoint.password or "no password"
        assert password not in text and str(home.root) not in text
        listening = [c for c in psutil.Process().net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == endpoint.port]
        assert [c.laddr.ip for c in listening] == [LOOPBACK]
    finally:
        endpoint.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(endpoint.url, timeout=2)


def test_metrics_are_off_by_default_and_a_taken_port_is_one_clear_error(home: Home, queue: JobQueue,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert Settings().metrics_port == 0
    assert_clean_usage_error(run_cli(capsys, *home_arg(home.root), "metrics"), "no port")
    assert_clean_usage_error(run_cli(capsys, *home_arg(home.root), "metrics", "--port", "80"), "--port")
    first = MetricsEndpoint(_free_port(), lambda: None)
    first.start()
    try:
        with pytest.raises(MetricsPortError):
            MetricsEndpoint(first.port, lambda: None).start()
        result = run_cli(capsys, *home_arg(home.root), "metrics", "--port", str(first.port),
                         "--comfy-url", "http://127.0.0.1:9")
        assert_clean_usage_error(result, f"127.0.0.1:{first.port}")
    finally:
        first.stop()


def test_metrics_command_serves_until_interrupted(queue: JobQueue, home: Home) -> None:
    port = _free_port()
    proc = _spawn(*home_arg(home.root), "metrics", "--port", str(port), "--comfy-url", "http://127.0.0.1:9")
    assert proc.stdout is not None
    try:
        assert b"Serving metrics on http://127.0.0.1:" in proc.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            families = _families(reply.read().decode("utf-8"))
        assert families["comfystudio_queue_jobs"][0] == ({"state": "queued"}, 0.0)
        _interrupt(proc)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, err


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no SIGTERM to catch (send_signal(SIGTERM) is "
                    "TerminateProcess) and no way to start a process with Ctrl+C ignored but by the process itself")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["stats", "metrics"])
def test_long_commands_stop_cleanly_on_sigterm_and_on_sigint_even_if_started_ignoring_it(
        queue: JobQueue, home: Home, command: str, signum: int) -> None:
    """A background job of a shell script starts with SIGINT ignored: Ctrl+C (and a service manager's SIGTERM)
    must still end `stats --watch` and `metrics` cleanly, with the shell's exit code for that signal."""
    args = ["stats", "--watch", "--json", "--interval", "30"] if command == "stats" else \
        ["metrics", "--port", str(_free_port())]
    argv = [sys.executable, "-m", "comfystudio_desktop", *home_arg(home.root), *args, "--comfy-url", "http://127.0.0.1:9"]
    proc = subprocess.Popen(["sh", "-c", 'trap "" INT; exec "$@"', "sh", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO_ROOT)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline()  # running: the first figures, or the address it serves on
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)  # stats waits 30 s between refreshes: the signal cuts that short
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == (130 if signum == signal.SIGINT else 128 + signal.SIGTERM), err
    assert b"Traceback" not in err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("value", [1, 80, 1023, 65536, -1])
def test_metrics_port_setting_is_off_or_an_unprivileged_port(value: int) -> None:
    from comfystudio_desktop.settings import SettingsError

    assert Settings(metrics_port=0).validate().metrics_port == 0
    assert Settings(metrics_port=9464).validate().metrics_port == 9464
    with pytest.raises(SettingsError, match="metrics_port"):
        Settings(metrics_port=value).validate()
    with pytest.raises(SettingsError, match="metrics_port"):
        Settings.from_dict({"metrics_port": "9464"})
