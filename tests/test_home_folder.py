"""The home folder: only folders the app creates are made private; unusable homes are one clear line, exit 2."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from comfystudio_desktop.home import Home, HomeError
from comfystudio_desktop.logging_setup import LOG_FILE_NAME, configure_logging
from tests.conftest import REPO_ROOT

POSIX = pytest.mark.skipif(os.name != "posix", reason="folder modes are POSIX permissions")


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "comfystudio_desktop", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@POSIX
def test_an_existing_home_keeps_its_mode(tmp_path: Path) -> None:
    root = tmp_path / "existing"
    root.mkdir()
    root.chmod(0o755)
    (root / "redis").mkdir()
    (root / "redis").chmod(0o750)
    Home(root).create()
    assert mode(root) == 0o755  # `--home ~` must not make the user's home 0700
    assert mode(root / "redis") == 0o750  # not ours to change either
    assert (root / "logs").is_dir() and (root / "outbox").is_dir()


@POSIX
def test_folders_we_create_are_private(tmp_path: Path) -> None:
    home = Home(tmp_path / "new" / "home").create()
    assert mode(home.root) == 0o700
    assert mode(home.redis) == 0o700
    assert mode(tmp_path / "new") != 0o700 or mode(tmp_path) == 0o700  # a parent made on the way is left as umask


def test_a_file_as_home_is_a_home_error(tmp_path: Path) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    with pytest.raises(HomeError, match="is a file"):
        Home(file).create()
    with pytest.raises(HomeError, match="Cannot create"):
        Home(file / "below").create()


@pytest.mark.parametrize("case", ["file", "under-file", "subfolder-is-file"])
def test_cli_says_one_line_and_exits_2(tmp_path: Path, case: str) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    home = {"file": file, "under-file": file / "home"}.get(case, tmp_path / "h")
    if case == "subfolder-is-file":
        home.mkdir()
        (home / "logs").write_text("in the way")
    done = cli(home, "jobs")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("comfystudio-desktop: error: "), done.stderr
    assert file.read_text() == "x"


# On Windows `/sys/kernel` is no system folder (under Wine it is Linux's, seen through drive Z:), and Windows has
# no folder that refuses new subfolders to an administrator the way /sys does.
@pytest.mark.skipif(sys.platform != "linux", reason="needs a folder nobody may write into (Linux /sys)")
def test_a_read_only_home_is_one_line(tmp_path: Path) -> None:
    # /sys refuses new folders even to root, so this holds whoever runs the tests (chmod does not stop root).
    done = cli(Path("/sys/kernel"), "jobs")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "/sys/kernel" in done.stderr, done.stderr


def test_unwritable_log_file_warns_once_and_logs_to_stderr(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    logs = tmp_path / "logs"
    (logs / LOG_FILE_NAME).mkdir(parents=True)  # the log file cannot be opened: a folder is in the way
    configure_logging(logs, stderr=False)
    try:
        for n in range(3):
            logging.getLogger("comfystudio_desktop.test").warning("line %d", n)
        err = capsys.readouterr().err
        assert err.count("cannot write the log file") == 1
        assert "--- Logging error ---" not in err
        assert "line 2" in err
    finally:
        configure_logging(tmp_path / "fine-logs", stderr=False)


def test_cli_with_unwritable_log_file_works(tmp_path: Path) -> None:
    from comfystudio_desktop.supervise.redis_server import EmbeddedRedis

    home = Home(tmp_path / "h").create()
    (home.logs / LOG_FILE_NAME).mkdir()
    try:
        done = cli(home.root, "jobs")
        assert done.returncode == 0, done.stderr
        assert done.stderr.count("cannot write the log file") == 1
        assert "Logging error" not in done.stderr and "Traceback" not in done.stderr
    finally:
        EmbeddedRedis(home).stop()
