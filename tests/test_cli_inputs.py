"""Every expected failure of a CLI call is one line and exit 2; sizes, images, slots, homes, config and ids.

`main()` runs in this process against the home's real embedded redis-server (fast); a few cases run as real
processes where the process boundary is the point (argv bytes, crash log).
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from comfystudio_desktop import cli
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.cli_support import Result, assert_clean_usage_error, run_cli, run_process

posix_only = pytest.mark.skipif(os.name != "posix", reason="FIFOs, /proc and chmod-based read-only are POSIX")


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "teal").save(out, "PNG")
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.fixture
def cli_run(home: Home, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """`cli_run(*args)`: main() with --home set to the test's home (its server already running)."""
    def run(*args: str) -> Result:
        return run_cli(capsys, "--home", str(home.root), *args)
    return run


# -- sizes and numbers -----------------------------------------------------------------------------------------
def test_width_and_height_are_sizes_not_a_ratio(cli_run, queue: JobQueue) -> None:  # type: ignore[no-untyped-def]
    result = cli_run("submit", "--prompt", "big", "--width", "1024", "--height", "1024")
    assert result.code == 0, result
    record = queue.status(result.out.strip())
    assert record is not None and record.job is not None
    assert (record.job.width, record.job.height, record.job.aspect_ratio) == (1024, 1024, "1:1")
    wide = cli_run("submit", "--prompt", "wide", "--width", "16384", "--height", "64")
    assert wide.code == 0, wide


@pytest.mark.parametrize(("args", "needle"), [
    (["--width", "1020", "--height", "1024"], "width: must be a multiple of 8"),
    (["--width", "1024", "--height", "16392"], "height: must be 64..16384 pixels"),
    (["--width", "56", "--height", "64"], "width: must be 64..16384 pixels"),
    (["--width", "1024"], "--width needs --height"),
    (["--height", "1024"], "--height needs --width"),
    (["--width", "1024", "--height", "1024", "--aspect-ratio", "1:1"], "not allowed with argument"),
    (["--aspect-ratio", "1024:1024"], "aspect_ratio"),
    (["--cfg", "nan"], "--cfg: expected a number"),
    (["--cfg", "inf"], "--cfg: expected a number"),
    (["--cfg", "1e999"], "--cfg: expected a finite number"),
    (["--denoise=-inf"], "--denoise: expected a number"),
    (["--seed", "9" * 5000], "--seed: expected a whole number"),
    (["--seed", str(2**64)], "seed: must be -1 (random)"),
    (["--seed", "1_000"], "--seed: expected a whole number"),
    (["--steps", "\u0661\u0662"], "--steps: expected a whole number"),
    (["--batch-size", " 2"], "--batch-size: expected a whole number"),
    (["--wait", "--timeout", "nan"], "--timeout: expected a number"),
    (["--wait", "--timeout", "inf"], "--timeout: expected a number"),
    (["--wait", "--timeout", "-1"], "--timeout: expected seconds > 0"),
    (["--wait", "--timeout", "0"], "--timeout: expected seconds > 0"),
])
def test_bad_numbers_are_one_line(cli_run, queue: JobQueue, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    assert_clean_usage_error(cli_run("submit", "--prompt", "x", *args), needle)
    assert queue.jobs() == []


# -- images and slots ----------------------------------------------------------------------------------------
@pytest.fixture
def bad_images(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name → (path, the message's key words)."""
    folder = tmp_path / "images"
    folder.mkdir()
    cases: dict[str, tuple[Path, str]] = {}

    def add(name: str, data: bytes, needle: str) -> None:
        (folder / name).write_bytes(data)
        cases[name] = (folder / name, needle)
    add("empty.png", b"", "is empty")
    add("notes.png", b"just text\n", "is not an image")
    add("truncated.png", png((300, 200))[:200], "truncated or corrupt")
    add("bomb.png", png_header_only(20000, 20000), "20000×20000 pixels; the limit is")
    cases["folder"] = (folder, "is a folder")
    cases["missing"] = (folder / "missing.png", "does not exist")
    if os.name == "posix":
        (folder / "passwd.png").symlink_to("/etc/passwd")
        cases["symlink to /etc/passwd"] = (folder / "passwd.png", "is not an image")
        os.mkfifo(folder / "fifo.png")
        cases["fifo"] = (folder / "fifo.png", "not a regular file")
        if Path("/proc/self/environ").exists():
            cases["/proc/self/environ"] = (Path("/proc/self/environ"), "is empty")
        cases["/dev/zero"] = (Path("/dev/zero"), "not a regular file")
    return cases


def test_bad_images_are_refused_at_submit(cli_run, queue: JobQueue,  # type: ignore[no-untyped-def]
                                          bad_images: dict[str, tuple[Path, str]]) -> None:
    for name, (path, needle) in bad_images.items():
        result = cli_run("submit", "--prompt", "x", "--workflow", "image_to_image", "--image", f"input={path}")
        assert_clean_usage_error(result, needle)
        assert result.error_lines()[0].startswith("comfystudio-desktop: error: images: input: "), name
    assert queue.jobs() == []


def test_a_good_image_is_stored_with_its_absolute_path(cli_run, queue: JobQueue, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cat.png").write_bytes(png())
    monkeypatch.chdir(tmp_path)
    result = cli_run("submit", "--prompt", "x", "--workflow", "image_to_image", "--image", "input=cat.png")
    assert result.code == 0, result
    record = queue.status(result.out.strip())
    assert record is not None and record.job is not None
    assert record.job.images == {"input": str(tmp_path / "cat.png")}


@pytest.mark.parametrize(("workflow", "slots", "needle"), [
    ("text_to_image", ["input"], "Workflow 'text_to_image' takes no image"),
    ("image_to_image", [], "input: This workflow needs an input image"),
    ("image_to_image", ["source"], "needs an input image"),
    ("blend", ["source"], "target: This workflow needs a target image"),
    ("blend", ["target"], "source: This workflow needs a source image"),
    ("blend", ["input", "source", "target"], "input: Workflow 'blend' takes only source and target"),
    ("no_such_workflow", [], "workflow: unknown workflow 'no_such_workflow'"),
])
def test_workflow_slot_rule(cli_run, queue: JobQueue, tmp_path: Path, workflow: str,  # type: ignore[no-untyped-def]
                            slots: list[str], needle: str) -> None:
    (tmp_path / "ok.png").write_bytes(png())
    images = [arg for slot in slots for arg in ("--image", f"{slot}={tmp_path / 'ok.png'}")]
    assert_clean_usage_error(cli_run("submit", "--prompt", "x", "--workflow", workflow, *images), needle)
    assert queue.jobs() == []


def test_blend_with_both_images_is_queued(cli_run, queue: JobQueue, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.png").write_bytes(png())
    result = cli_run("submit", "--prompt", "x", "--workflow", "blend", "--image", f"source={tmp_path / 'a.png'}",
                     "--image", f"target={tmp_path / 'a.png'}")
    assert result.code == 0, result
    assert len(queue.jobs()) == 1


# -- job ids ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["status", "cancel", "retry"])
@pytest.mark.parametrize("job_id", ["abc\n", "", "../x", "a" * 65, "x" * 100_000, "-rf", "id with space", "é"])
def test_job_ids_are_checked_before_the_queue(cli_run, command: str, job_id: str) -> None:  # type: ignore[no-untyped-def]
    result = cli_run(command, "--", job_id) if job_id.startswith("-") else cli_run(command, job_id)
    assert_clean_usage_error(result, "not a job id")
    assert len(result.err) < 600  # a megabyte of id is cut, not echoed


def test_unknown_job_is_one_line(cli_run) -> None:  # type: ignore[no-untyped-def]
    assert_clean_usage_error(cli_run("status", "no-such-job"), "unknown job 'no-such-job'")


# -- homes, config and pid files -----------------------------------------------------------------------------
def test_home_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "home-file"
    target.write_text("not a folder")
    assert_clean_usage_error(run_cli(capsys, "--home", str(target), "jobs"), "cannot use the home folder")


@posix_only
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert_clean_usage_error(run_cli(capsys, "--home", str(parent / "home"), "jobs"), "cannot use the home")
    finally:
        parent.chmod(stat.S_IRWXU)


# Linux's own read-only places: on Windows `/sys` is `\\sys` on the current drive (under Wine, Linux's /sys through
# drive Z:), an ordinary name there.
@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux's /sys and /proc")
@pytest.mark.parametrize(("where", "needle"), [
    ("/sys/cs-home", "Cannot create the folder '/sys/cs-home'"),
    ("/proc/cs-home", "Cannot create the folder '/proc/cs-home'"),
    ("/dev/null/cs-home", "cannot use the home folder '/dev/null/cs-home': '/dev/null' is not a folder"),
])
def test_home_where_nothing_can_be_created(where: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Unwritable even for root (a read-only place): one line, exit 2."""
    assert_clean_usage_error(run_cli(capsys, "--home", where, "jobs"), needle)


@pytest.mark.parametrize(("content", "needle"), [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"pipeline_depth": 0}', "setting 'pipeline_depth': must be 1..8"),
    ('{"job_timeout_s": NaN}', "job_timeout_s"),
    ("\xff\xfe{", "cannot read"),
    ('{"comfy_url": 5}', "expected str, got int"),
    ("[]", "must hold a JSON object"),
])
def test_broken_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                   needle: str) -> None:
    root = tmp_path / "home"
    root.mkdir()
    (root / "config.json").write_bytes(content.encode("latin-1") if content.startswith("\xff") else content.encode())
    assert_clean_usage_error(run_cli(capsys, "--home", str(root), "jobs"), needle)


@posix_only
def test_config_that_is_a_fifo_does_not_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "home"
    root.mkdir()
    os.mkfifo(root / "config.json")
    assert_clean_usage_error(run_cli(capsys, "--home", str(root), "jobs"), "is not a regular file")


@pytest.mark.parametrize("record", [{"pid": -1, "port": 1}, {"pid": 1}, {"port": 5}, "not json", [1, 2]])
def test_broken_redis_pid_file_does_not_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              record: object) -> None:
    home = Home(tmp_path / "home").create()
    server = EmbeddedRedis(home)
    server.pidfile.write_text(record if isinstance(record, str) else json.dumps(record))
    try:
        result = run_cli(capsys, "--home", str(home.root), "redis", "status", "--json")
        assert "Traceback" not in result.err and result.code in (0, 2), result
        if result.code == 0:
            assert json.loads(result.out)["running"] is False
    finally:
        server.stop()


# -- the process boundary ------------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="Windows argv is always Unicode")
def test_invalid_utf8_in_argv_is_one_line(tmp_path: Path) -> None:
    result = run_process("--home", str(tmp_path / "h"), "submit", "--prompt", b"caf\xe9 \xff")
    assert_clean_usage_error(result, "is not valid UTF-8 text")
    assert not (tmp_path / "h").exists()  # refused before anything was created


def test_unexpected_error_is_one_line_with_the_crash_log(home: Home, redis_server: EmbeddedRedis,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> int:
        raise KeyError("something the code did not expect")
    monkeypatch.setattr("comfystudio_desktop.cli_queue.cmd_jobs", broken)
    result = run_cli(capsys, "--home", str(home.root), "jobs")
    assert result.code == 1 and "Traceback" not in result.err
    (line,) = result.error_lines()
    crash_log = home.logs / cli.CRASH_LOG
    assert f"details in {crash_log}" in line and "KeyError" in line
    assert "Traceback" in crash_log.read_text() and "something the code did not expect" in crash_log.read_text()
