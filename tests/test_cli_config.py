"""`config get|set|list`: the dialog's parser and messages on the command line; running processes see changes."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import (
    RESTART_FIELDS,
    Settings,
    SettingsError,
    format_setting,
    load_settings,
    parse_setting,
    save_settings,
)
from comfystudio_desktop.settings_watch import SettingsWatch
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.cli_support import assert_clean_usage_error, run_cli
from tests.helpers import wait_until

if TYPE_CHECKING:  # the module itself runs without Qt; only the dialog test imports it
    from pytestqt.qtbot import QtBot

NAMES = [f.name for f in fields(Settings) if f.name != "schema_version"]


def test_set_get_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(tmp_path / "h")]
    result = run_cli(capsys, *home, "config", "set", "pipeline_depth", "3")
    assert (result.code, result.out.strip()) == (0, "pipeline_depth = 3")
    assert load_settings(tmp_path / "h" / "config.json").pipeline_depth == 3
    assert run_cli(capsys, "config", "get", "pipeline_depth", *home).out.strip() == "3"
    assert run_cli(capsys, *home, "config", "get", "comfy_args", "--json").out.strip() == "[]"
    listed = json.loads(run_cli(capsys, *home, "config", "list", "--json").out)
    assert listed["pipeline_depth"] == 3 and set(listed) == set(NAMES)
    text = run_cli(capsys, *home, "config", "list").out.splitlines()
    assert "pipeline_depth = 3" in text and len(text) == len(NAMES)
    restart = run_cli(capsys, *home, "config", "set", "redis_binary", "/opt/redis-server")
    assert "takes effect when the window or worker restarts" in restart.out


@pytest.mark.parametrize(("args", "needle"), [
    (["set", "pipeline_depth", "0"], "setting 'pipeline_depth': must be 1..8"),
    (["set", "pipeline_depth", "two"], "setting 'pipeline_depth': must be a whole number"),
    (["set", "job_timeout_s", "nan"], "setting 'job_timeout_s': must be a number"),
    (["set", "notifications", "maybe"], "setting 'notifications': must be true or false"),
    (["set", "comfy_url", "ftp://x"], "setting 'comfy_url': must be an http:// or https:// URL"),
    (["set", "redis_mode", "external"], "setting 'redis_url': is required"),
    (["set", "no_such", "1"], "setting 'no_such': unknown setting"),
    (["set", "schema_version", "3"], "unknown setting"),
    (["set", "pipeline_depth"], "config set needs a value"),
    (["get"], "needs a setting name"),
    (["get", "comfy_url", "extra"], "config get takes no value"),
    (["set", "unet_vae", "a\x1bb"], "must not contain control characters"),
    (["frob"], "invalid choice"),
])
def test_bad_values_are_refused_with_the_dialogs_message(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         args: list[str], needle: str) -> None:
    result = run_cli(capsys, "--home", str(tmp_path / "h"), "config", *args)
    assert_clean_usage_error(result, needle)
    assert not (tmp_path / "h" / "config.json").exists()


@given(st.sampled_from(NAMES), st.text(max_size=20))
def test_parse_setting_is_total_and_round_trips(name: str, text: str) -> None:
    try:
        settings = parse_setting(name, text)
    except SettingsError as exc:
        assert exc.field in (name, "redis_url", "comfy_main")
        return
    assert parse_setting(name, format_setting(settings, name)) == settings


def test_dialog_uses_the_same_parser(qtbot: QtBot, tmp_path: Path) -> None:
    from PySide6.QtWidgets import QLineEdit

    from comfystudio_desktop.ui.settings_dialog import SettingsDialog
    from tests.ui.find import child

    dialog = SettingsDialog(Settings(), tmp_path / "config.json")
    qtbot.addWidget(dialog)
    child(dialog, QLineEdit, "comfy_url").setText("ftp://a\x1bb")  # file names are picked from combos now
    with pytest.raises(SettingsError) as from_dialog:
        dialog.collect()
    with pytest.raises(SettingsError) as from_cli:
        parse_setting("comfy_url", "ftp://a\x1bb")
    assert str(from_dialog.value) == str(from_cli.value)


def test_watch_reports_live_and_restart_changes(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    watch = SettingsWatch(path, Settings())
    assert watch.poll() is None
    save_settings(path, Settings(pipeline_depth=4, redis_binary="/x/redis-server"))
    change = watch.poll()
    assert change is not None
    assert change.live == {"pipeline_depth"} and change.need_restart == {"redis_binary"}
    assert change.settings.pipeline_depth == 4
    os.utime(path, ns=(0, 0))  # touched, same content: nothing to report
    assert watch.poll() is None
    path.write_text('{"pipeline_depth": 0}')  # invalid: ignored, the running settings stay
    assert watch.poll() is None and watch.current.pipeline_depth == 4
    path.unlink()
    assert watch.poll() is not None and watch.current == Settings()  # removed: back to the defaults
    assert "comfy_url" in RESTART_FIELDS and "job_timeout_s" not in RESTART_FIELDS


def test_headless_worker_follows_config_set(home: Home, redis_server: EmbeddedRedis,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`follow_settings` (the headless worker's watcher thread) applies a `config set` to a running Consumer."""
    from comfystudio_desktop.comfy.comfy_client import ComfyClient
    from comfystudio_desktop.runtime import open_queue
    from comfystudio_desktop.worker.consumer import Consumer
    from comfystudio_desktop.worker.headless import follow_settings

    settings = Settings()
    runtime = open_queue(home, settings)
    client = ComfyClient(settings.comfy_url)
    consumer = Consumer(runtime.queue, client, home, settings, worker_id="w")
    stop = threading.Event()
    thread = threading.Thread(target=follow_settings, args=(home, consumer, runtime, stop, 0.05))
    thread.start()
    try:
        assert run_cli(capsys, "--home", str(home.root), "config", "set", "max_attempts", "7").code == 0
        wait_until(lambda: consumer.settings.max_attempts == 7 and runtime.queue.max_attempts == 7, timeout=10,
                   message="the change applied")
        assert run_cli(capsys, "--home", str(home.root), "config", "set", "comfy_url", "http://127.0.0.1:1").code == 0
        assert run_cli(capsys, "--home", str(home.root), "config", "set", "job_timeout_s", "42").code == 0
        wait_until(lambda: consumer.settings.job_timeout_s == 42.0, timeout=10, message="timeout applied")
        assert consumer.settings.comfy_url == Settings().comfy_url  # needs a restart: not applied live
    finally:
        stop.set()
        thread.join(5)
        client.close()
        runtime.close()


def test_set_repairs_the_field_that_breaks_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "h"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"pipeline_depth": 0, "max_attempts": 5}))
    assert_clean_usage_error(run_cli(capsys, "--home", str(root), "jobs"), "setting 'pipeline_depth': must be 1..8")
    assert_clean_usage_error(run_cli(capsys, "--home", str(root), "config", "set", "max_attempts", "6"),
                             "setting 'pipeline_depth': must be 1..8")  # still broken elsewhere: nothing saved
    assert json.loads((root / "config.json").read_text())["max_attempts"] == 5
    fixed = run_cli(capsys, "--home", str(root), "config", "set", "pipeline_depth", "2")
    assert fixed.code == 0, fixed
    saved = load_settings(root / "config.json")
    assert (saved.pipeline_depth, saved.max_attempts) == (2, 5)
    (root / "config.json").write_text("[" * 100_000)
    assert_clean_usage_error(run_cli(capsys, "--home", str(root), "config", "set", "pipeline_depth", "2"),
                             "nested too deeply")
