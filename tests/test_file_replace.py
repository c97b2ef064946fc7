"""Atomic replace of a file that another process or thread is reading (Windows refuses it while the file is open)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from comfystudio_desktop.file_replace import replace_file
from comfystudio_desktop.settings import load_settings
from comfystudio_desktop.settings_watch import SettingsWatch
from tests.cli_support import run_cli


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_replace_waits_for_a_reader_to_close(tmp_path: Path) -> None:
    target = _write(tmp_path / "config.json", "old")
    reader = target.open("rb")
    try:
        if os.name == "nt":
            # Held open: Windows refuses the replace, and after its patience replace_file says so.
            with pytest.raises(PermissionError):
                replace_file(_write(tmp_path / "a.tmp", "early"), target, patience_s=0.05)
            done = threading.Event()
            errors: list[BaseException] = []

            def replace() -> None:
                try:
                    replace_file(tmp_path / "a.tmp", target, patience_s=30)
                except BaseException as exc:
                    errors.append(exc)
                done.set()

            thread = threading.Thread(target=replace)
            thread.start()
            assert not done.is_set()  # it cannot be done: the reader still holds the file
            reader.close()
            thread.join(30)
            assert not errors and done.is_set()
            assert target.read_text(encoding="utf-8") == "early"
        else:
            replace_file(_write(tmp_path / "a.tmp", "new"), target)  # POSIX never refuses: the reader keeps the old
            assert reader.read() == b"old"
            assert target.read_text(encoding="utf-8") == "new"
    finally:
        reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_config_set_while_a_worker_reads_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`config set` succeeds while a running worker polls config.json, and the worker sees the last value."""
    root = tmp_path / "home"
    root.mkdir()
    config = root / "config.json"
    watch = SettingsWatch(config, load_settings(config))
    stop = threading.Event()
    reads = [0]

    def poll() -> None:
        while not stop.wait(0.01):  # a hundred times as often as a worker looks (SETTINGS_POLL_S)
            watch.poll()  # stats the file, and reads it when it changed, as a worker's settings watch does
            reads[0] += 1

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        for attempts in range(2, 32):
            result = run_cli(capsys, "--home", str(root), "config", "set", "max_attempts", str(attempts))
            assert result.code == 0, result
    finally:
        stop.set()
        thread.join(10)
    assert reads[0] > 0
    watch.poll()
    assert watch.current.max_attempts == 31 == load_settings(config).max_attempts
    assert sorted(p.name for p in root.iterdir() if p.name.endswith(".tmp")) == []
