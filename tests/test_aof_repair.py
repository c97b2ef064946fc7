"""Recognising a damaged AOF in the server's output, and repairing real AOFs: backup first, only the last part cut."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.supervise.aof_repair import AofTool, backup_aof, find_aof, find_aof_damage, repair_aof
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from comfystudio_desktop.supervise.redis_service import diagnose_redis_exit
from comfystudio_desktop.supervise.service_state import Remedy

VALKEY_START = "81:M 24 Nov 2026 14:18:42.570 * oO0OoO0OoO0Oo Valkey is starting oO0OoO0OoO0Oo"
REDIS5_START = "[8000] 24 Nov 14:18:42.570 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo"
REDIS8_START = "1656:C 07 Dec 2026 05:36:58.090 * oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo"


@pytest.mark.parametrize(("lines", "expected"), [
    pytest.param([VALKEY_START, "81:M 24 Nov 2026 14:18:42.602 # Bad file format reading the append only file "
                  "appendonly.aof.1.incr.aof: make a backup of your AOF file, then use ./valkey-check-aof --fix "
                  "<filename.manifest>"],
                 "Bad file format reading the append only file appendonly.aof.1.incr.aof", id="valkey-9-garbled"),
    pytest.param([REDIS5_START, "[8000] 24 Nov 14:18:42.602 # Bad file format reading the append only file: make a "
                  "backup of your AOF file, then use ./redis-check-aof --fix <filename>"],
                 "Bad file format reading the append only file", id="redis-5-windows"),
    pytest.param([REDIS8_START, "1656:M 07 Dec 2026 05:36:58.123 # Bad file format reading the append only file "
                  "appendonlydir/appendonly.aof.1.incr.aof at offset 3673.          make a backup of your AOF file, "
                  "then use ./redis-check-aof --fix <filename.manifest>.          Alternatively you can set the "
                  "'aof-load-corrupt-tail-max-size' configuration option to 3650 and restart the server."],
                 "Bad file format reading the append only file appendonlydir/appendonly.aof.1.incr.aof at offset 3673",
                 id="redis-8-windows"),
    pytest.param([VALKEY_START, "81:M 24 Nov 2026 14:18:42.602 # Unexpected end of file reading the append only "
                  "file appendonly.aof.1.incr.aof. You can: 1) Make a backup of your AOF file, then use "
                  "./valkey-check-aof --fix <filename.manifest>. 2) Alternatively you can set the "
                  "'aof-load-truncated' configuration option to yes and restart the server."],
                 "Unexpected end of file reading the append only file appendonly.aof.1.incr.aof", id="truncated"),
    pytest.param([VALKEY_START, "81:M 24 Nov 2026 14:26:46.834 # Short read or OOM loading DB. Unrecoverable error, "
                  "aborting now.", "81:M 24 Nov 2026 14:26:46.834 # Internal error in RDB reading offset 0, function "
                  "at rdb.c:3632 -> Unexpected EOF reading RDB file"],
                 "Unexpected EOF reading RDB file", id="rdb-base-cut"),
    pytest.param([VALKEY_START, "81:M 24 Nov 2026 14:18:42.602 # Invalid AOF manifest file format"],
                 "Invalid AOF manifest file format", id="manifest"),
    pytest.param([VALKEY_START, "81:M 24 Nov 2026 14:18:42.602 # The append log file appendonly.aof.2.incr.aof "
                  "doesn't exist: No such file or directory"],
                 "The append log file appendonly.aof.2.incr.aof doesn't exist: No such file or directory",
                 id="missing-part"),
    pytest.param(["AOF appendonly.aof.1.incr.aof is not valid. Use the --fix option to try fixing it."],
                 "AOF appendonly.aof.1.incr.aof is not valid. Use the --fix option to try fixing it.", id="checker"),
    pytest.param([VALKEY_START, "81:M 24 Nov 2026 14:18:42.602 # !!! Warning: short read while loading the AOF file "
                  "appendonly.aof.1.incr.aof!!!", "81:M 24 Nov 2026 14:18:42.602 # AOF appendonly.aof.1.incr.aof "
                  "loaded anyway because aof-load-truncated is enabled"], None, id="tail-loaded-anyway"),
    pytest.param([VALKEY_START, "81:M # Bad file format reading the append only file x.aof: make a backup",
                  "2026-11-24 14:30:00 [supervisor] starting: valkey-server redis.conf", VALKEY_START,
                  "81:M * Ready to accept connections tcp"], None, id="earlier-run-was-repaired"),
    pytest.param([VALKEY_START, "81:M # Could not create server TCP listening socket 127.0.0.1:6379: bind: Address "
                  "already in use"], None, id="port-taken-is-not-damage"),
])
def test_damage_is_recognised_in_the_latest_run_only(lines: list[str], expected: str | None) -> None:
    assert find_aof_damage(lines) == expected


def test_the_diagnosis_offers_the_repair() -> None:
    diagnosis = diagnose_redis_exit([VALKEY_START, "81:M # Bad file format reading the append only file a.aof: "
                                                   "make a backup of your AOF file"])
    assert diagnosis is not None and diagnosis.remedy is Remedy.REPAIR_AOF
    assert diagnosis.message == ("The queue's append-only file is damaged: Bad file format reading the append only "
                                 "file a.aof. Repair it from Services.")
    assert diagnose_redis_exit([VALKEY_START, "81:M * Ready to accept connections tcp"]) is None


def _server_data(home: Home, keys: int = 60) -> str:
    """Real AOF files: start the home's server, write keys, stop it; return the server's version."""
    server = EmbeddedRedis(home)
    endpoint = server.ensure_running()
    client = endpoint.client()
    for i in range(keys):
        client.set(f"key:{i:03d}", "v" * 30)
    client.close()
    assert server.stop()
    return endpoint.version


def _multi_part(version: str) -> bool:
    """Redis 7.0+ and Valkey write `appendonlydir/` with a manifest; Redis 5 and 6 (and the Windows ports) one file."""
    return int(version.split(".", maxsplit=1)[0]) >= 7


def _garble_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    command = data.index(b"*3\r\n$3\r\nSET", len(data) // 2)
    data[command] = ord("!")
    path.write_bytes(bytes(data))


def test_layouts_are_found(tmp_path: Path, home: Home) -> None:
    assert find_aof(tmp_path) is None
    (tmp_path / "appendonly.aof").write_bytes(b"")
    single = find_aof(tmp_path)
    assert single is not None and not single.multi_part and single.parts == (tmp_path / "appendonly.aof",)
    if not _multi_part(_server_data(home, keys=1)):
        server_file = find_aof(home.redis)
        assert server_file is not None and server_file.parts == (home.redis / "appendonly.aof",)
        pytest.skip("this Redis writes one appendonly.aof: the multi-part layout is checked against Redis 7+/Valkey")
    multi = find_aof(home.redis)
    assert multi is not None and multi.multi_part and not multi.manifest_error
    assert [p.name for p in multi.parts] == ["appendonly.aof.1.base.rdb", "appendonly.aof.1.incr.aof"]
    assert multi.manifest is not None
    multi.manifest.write_text("file ../../etc/passwd seq 1 type b\n")
    broken = find_aof(home.redis)
    assert broken is not None and broken.manifest_error and broken.parts == ()


def test_backups_never_overwrite_each_other(tmp_path: Path) -> None:
    aof = tmp_path / "appendonly.aof"
    aof.write_bytes(b"*1\r\n$4\r\nPING\r\n")
    layout = find_aof(tmp_path)
    assert layout is not None
    first, second = backup_aof(layout, tmp_path / "backups"), backup_aof(layout, tmp_path / "backups")
    assert first != second
    assert (first / "appendonly.aof").read_bytes() == (second / "appendonly.aof").read_bytes() == aof.read_bytes()


def test_the_checker_is_the_server_under_another_name_unless_one_ships_beside_it(tmp_path: Path) -> None:
    server = tmp_path / "valkey-server"
    server.write_bytes(b"")
    assert AofTool(server).command("aof") == (["valkey-check-aof"], str(server))
    assert AofTool(server).command("rdb") == (["valkey-check-rdb"], str(server))
    exe = ".exe" if os.name == "nt" else ""
    windows_style = tmp_path / f"redis-server{exe}"
    windows_style.write_bytes(b"")
    shipped = tmp_path / f"redis-check-aof{exe}"
    shipped.write_bytes(b"")
    shipped.chmod(shipped.stat().st_mode | stat.S_IXUSR)
    assert AofTool(windows_style).command("aof") == ([str(shipped)], None)


def test_a_single_file_aof_is_backed_up_and_cut_at_the_damage(home: Home) -> None:
    multi_part = _multi_part(_server_data(home))
    layout = find_aof(home.redis)
    assert layout is not None and layout.multi_part == multi_part
    single = home.redis / "appendonly.aof"
    if multi_part:  # leave an old-style single file only (Redis 5 writes one itself)
        increments = layout.parts[-1].read_bytes()
        (home.redis / "appendonlydir").rename(home.redis / "kept-aside")
        single.write_bytes(increments)
    _garble_middle(single)
    damaged = single.read_bytes()
    report = repair_aof(home)
    assert report.repaired, report.message
    assert report.backup is not None and (report.backup / "appendonly.aof").read_bytes() == damaged
    dropped = dict(report.dropped_bytes)["appendonly.aof"]
    assert 0 < dropped < len(damaged) and single.stat().st_size == len(damaged) - dropped
    assert damaged.startswith(single.read_bytes())  # only the end was cut


def test_damage_before_the_last_part_is_not_cut(home: Home) -> None:
    if not _multi_part(_server_data(home)):
        pytest.skip("this Redis writes one appendonly.aof: it has no parts before the last")
    layout = find_aof(home.redis)
    assert layout is not None and layout.manifest is not None
    first = layout.parts[-1]
    second = first.with_name("appendonly.aof.2.incr.aof")
    second.write_bytes(first.read_bytes())
    with open(layout.manifest, "a", encoding="utf-8") as fh:
        fh.write(f"file {second.name} seq 2 type i\n")
    _garble_middle(first)
    before = {p.name: p.read_bytes() for p in layout.root.iterdir()}
    report = repair_aof(home)
    assert not report.repaired
    # Valkey's checker leaves it to our part-by-part check; Redis 8's refuses by the manifest in its own words.
    assert ("appendonly.aof.1.incr.aof is damaged and is not the last part" in report.message
            or "Failed to truncate AOF appendonly.aof.1.incr.aof because it is not the last file" in report.message)
    assert {p.name: p.read_bytes() for p in layout.root.iterdir()} == before  # nothing changed
    assert report.backup is not None and str(report.backup) in report.message


def test_no_repair_while_the_server_runs_or_without_an_aof(home: Home) -> None:
    report = repair_aof(home)
    assert not report.repaired and report.message.startswith("There is no append-only file")
    server = EmbeddedRedis(home)
    server.ensure_running()
    try:
        report = repair_aof(home)
        assert not report.repaired and "is running" in report.message and report.backup is None
    finally:
        server.stop()
