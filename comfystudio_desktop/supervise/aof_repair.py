"""A damaged append-only file: recognise it in redis-server's output, and repair it (backup, then check-aof --fix).

redis-server refuses to start on an AOF it cannot parse, and restarting it cannot help, so the watchdog stops and
the user repairs it from Services. The repair copies the AOF to a timestamped backup folder first, then runs the
server's own checker, which cuts the damaged part and everything after it from the *last* part of the AOF (the
jobs written after the damage are lost; the backup keeps them).

Layouts: Redis < 7 (and the Windows ports) keep one `appendonly.aof`; Redis 7+ and Valkey keep `appendonlydir/`
with a manifest, an RDB or RESP base and RESP increments. The checker is the server binary itself started under the
name `redis-check-aof`/`valkey-check-aof` (it switches mode on argv[0]), or a `redis-check-aof[.exe]` next to it.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from comfystudio_desktop.home import Home
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis, RedisServerError

__all__ = [
    "AOF_DIR_NAME",
    "AOF_FILE_NAME",
    "AofLayout",
    "AofRepairReport",
    "AofTool",
    "backup_aof",
    "find_aof",
    "find_aof_damage",
    "repair_aof",
]

log = logging.getLogger(__name__)

#: As `EmbeddedRedis` configures the server (`appendfilename`, default `appenddirname`).
AOF_FILE_NAME = "appendonly.aof"
AOF_DIR_NAME = "appendonlydir"
BACKUPS_DIR_NAME = "aof-backups"
_TOOL_TIMEOUT_S = 300.0
_RDB_MAGICS = (b"REDIS", b"VALKEY")

# What redis-server (5.0 … 7.x) and valkey-server (7.2 … 9.x) log before refusing a damaged AOF, and what the
# checker prints about one; the most telling first. A `detail` group, when there is one, is what the user sees.
# (The server loads only its AOF: `appendonly yes`. So a damaged RDB here is the AOF's RDB base or preamble.)
_DAMAGE_PATTERNS = tuple(re.compile(p) for p in (
    r"Bad file format reading the append only file",
    r"Unexpected end of file reading the append only file",
    r"Unrecoverable error reading the append only file",
    r"Error reading the RDB (?:base file|preamble of the AOF file)",
    r"Internal error in RDB reading offset \d+, function at \S+ -> (?P<detail>.+)",
    r"Wrong RDB checksum",
    r"AOF \S+ (?:is not valid|format error)",
    r"Invalid AOF manifest file format|Found duplicate base file information|Found an empty AOF manifest"
    r"|Read AOF manifest failed|The AOF manifest file contains too long line|FATAL AOF MANIFEST FILE ERROR"
    r"|Found a non-monotonic sequence number",
    r"The append log file \S+ doesn't exist",
))
# Advice aimed at someone at a shell; the app offers its own repair instead. ("...: make a backup" up to Redis 7 and
# Valkey, "... at offset N.   make a backup" in Redis 8, ". You can: 1) ..." for a truncated file.)
_ADVICE_RE = re.compile(r"(?:[:.]\s*make a backup|\.\s*You can:).*$", re.IGNORECASE)
# The first line each run prints ("oO0OoO0OoO0Oo Valkey is starting oO0OoO0OoO0Oo"), or the supervisor's mark.
_RUN_START_MARKS = ("oO0OoO0OoO0Oo", "[supervisor] starting: ")

_NO_WINDOW: dict[str, Any] = {}
if sys.platform == "win32":  # no console window flashing up for a checker run
    _NO_WINDOW = {"creationflags": subprocess.CREATE_NO_WINDOW}


def find_aof_damage(lines: Sequence[str]) -> str | None:
    """What the latest run in `lines` said about a damaged AOF (the message without log prefix or advice), or None.

    Lines before the latest start banner are ignored: an earlier run's complaint may have been repaired since.
    """
    start = 0
    for index in range(len(lines) - 1, -1, -1):
        if any(mark in lines[index] for mark in _RUN_START_MARKS):
            start = index
            break
    run = lines[start:]
    for pattern in _DAMAGE_PATTERNS:
        for line in run:
            match = pattern.search(line)
            if match is not None:
                detail = match.group("detail") if "detail" in pattern.groupindex else line[match.start():]
                return _ADVICE_RE.sub("", detail).strip()
    return None


@dataclass(frozen=True, slots=True)
class AofLayout:
    """Where a server's AOF is: one file, or a multi-part folder whose manifest lists the parts in load order."""

    root: Path  # the single file, or the multi-part folder
    manifest: Path | None = None
    parts: tuple[Path, ...] = ()  # load order: the base first, then the increments (history files left out)
    manifest_error: str = ""  # the manifest could not be read: the parts are unknown

    @property
    def multi_part(self) -> bool:
        """True for the Redis 7+/Valkey folder layout."""
        return self.manifest is not None


def find_aof(redis_dir: Path, file_name: str = AOF_FILE_NAME, dir_name: str = AOF_DIR_NAME) -> AofLayout | None:
    """The AOF in a server's data folder, or None when there is none (multi-part preferred, as the server does)."""
    folder = redis_dir / dir_name
    manifest = folder / f"{file_name}.manifest"
    if manifest.is_file():
        try:
            return AofLayout(root=folder, manifest=manifest, parts=_manifest_parts(manifest))
        except (OSError, ValueError) as exc:
            return AofLayout(root=folder, manifest=manifest, manifest_error=str(exc))
    single = redis_dir / file_name
    if single.is_file():
        return AofLayout(root=single, parts=(single,))
    return None


def _manifest_parts(manifest: Path) -> tuple[Path, ...]:
    """Lines like `file appendonly.aof.1.base.rdb seq 1 type b`: the base (b) first, then increments (i) in order."""
    base: list[Path] = []
    increments: list[Path] = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        words = shlex.split(line)
        fields = dict(zip(words[::2], words[1::2], strict=False))
        name, kind = fields.get("file"), fields.get("type")
        if not name or kind not in ("b", "h", "i") or "/" in name or "\\" in name:
            raise ValueError(f"line {number} of {manifest.name} is not a valid entry: {line!r}")
        if kind == "b":
            base.append(manifest.parent / name)
        elif kind == "i":
            increments.append(manifest.parent / name)
    if len(base) > 1 or not (base or increments):
        raise ValueError(f"{manifest.name} lists {len(base)} base file(s) and {len(increments)} increment(s)")
    return (*base, *increments)


def backup_aof(layout: AofLayout, backups_dir: Path) -> Path:
    """Copy the AOF (the whole multi-part folder, or the single file) into a new timestamped folder; return it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = backups_dir / stamp
    suffix = 1
    while target.exists():
        suffix += 1
        target = backups_dir / f"{stamp}-{suffix}"
    target.mkdir(parents=True)
    if layout.root.is_dir():
        shutil.copytree(layout.root, target / layout.root.name)
    else:
        shutil.copy2(layout.root, target / layout.root.name)
    log.info("Backed up the append-only file %s to %s", layout.root, target)
    return target


@dataclass(frozen=True, slots=True)
class _ToolRun:
    ok: bool
    output: str


class AofTool:
    """The checkers of one server binary: `check_aof` (optionally --fix) and `check_rdb`."""

    def __init__(self, server_binary: Path) -> None:
        self.server_binary = server_binary

    def command(self, mode: Literal["aof", "rdb"]) -> tuple[list[str], str | None]:
        """(argv prefix, executable): a checker shipped next to the server, else the server under the checker's name."""
        exe = ".exe" if os.name == "nt" else ""
        flavour = "valkey" if "valkey" in self.server_binary.name.lower() else "redis"
        for name in dict.fromkeys((f"{flavour}-check-{mode}{exe}", f"redis-check-{mode}{exe}")):
            sibling = self.server_binary.with_name(name)
            if sibling.is_file() and os.access(sibling, os.X_OK):
                return [str(sibling)], None
        return [f"{flavour}-check-{mode}"], str(self.server_binary)

    def check_aof(self, path: Path, *, fix: bool) -> _ToolRun:
        """`check-aof [--fix] path` (a single AOF file or a manifest); answers the --fix question with yes."""
        return self._run("aof", path, ["--fix"] if fix else [], answer=b"y\n" if fix else b"")

    def check_rdb(self, path: Path) -> _ToolRun:
        """`check-rdb path` (an RDB base: the checker cannot fix those)."""
        return self._run("rdb", path, [], answer=b"")

    def _run(self, mode: Literal["aof", "rdb"], path: Path, options: list[str], *, answer: bytes) -> _ToolRun:
        prefix, executable = self.command(mode)
        # The file by its own name, from its folder: the Windows checkers read an ANSI command line, on which a home
        # under `C:\Users\Jérôme Müller` would arrive mangled. "./" because a checker finds a manifest's parts in the
        # manifest's folder, which for a bare name some builds take to be "/".
        args = [*options, f"./{path.name}"]
        try:
            done = subprocess.run([*prefix, *args], executable=executable, input=answer, capture_output=True,
                                  cwd=path.parent, timeout=_TOOL_TIMEOUT_S, check=False, **_NO_WINDOW)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return _ToolRun(False, f"{prefix[0]} could not run: {exc}")
        output = (done.stdout + done.stderr).decode("utf-8", errors="replace").strip()
        log.debug("%s %s in %r -> %d:\n%s", prefix[0], " ".join(args), str(path.parent), done.returncode, output)
        return _ToolRun(done.returncode == 0, output)


@dataclass(frozen=True, slots=True)
class AofRepairReport:
    """What `repair_aof` did. `repaired` means the AOF is valid now: start the server again."""

    repaired: bool
    message: str
    backup: Path | None = None
    #: Bytes cut from each part (file name → bytes); the jobs they held are only in the backup now.
    dropped_bytes: tuple[tuple[str, int], ...] = ()
    tool_output: str = ""

    def __str__(self) -> str:
        return self.message


def repair_aof(home: Home, *, binary: str | None = None) -> AofRepairReport:
    """Back up and repair the home's AOF with the server's own checker. Blocks (seconds): keep it off the GUI thread.

    Refuses while the home's redis-server runs, and holds its start lock meanwhile, so that no one starts the
    server on a half-repaired file. `binary` is the `redis_binary` setting, if any.
    """
    server = EmbeddedRedis(home, binary)
    try:
        with server.start_lock():
            return _repair_stopped(server)
    except RedisServerError as exc:
        return AofRepairReport(False, f"The append-only file was not repaired: {exc}")


def _repair_stopped(server: EmbeddedRedis) -> AofRepairReport:
    if (record := server.running_record()) is not None:
        return AofRepairReport(False, f"redis-server (pid {record.pid}) is running; the append-only file can only "
                                      "be repaired while it is stopped.")
    layout = find_aof(server.dir)
    if layout is None:
        return AofRepairReport(False, f"There is no append-only file in {server.dir} to repair.")
    tool = AofTool(server.binary())
    backup = backup_aof(layout, server.dir / BACKUPS_DIR_NAME)
    if layout.manifest_error:
        return _report(False, f"Its manifest is damaged ({layout.manifest_error}); it cannot be repaired "
                              "automatically.", backup=backup, layout=layout, before={}, output="")
    before = _sizes(layout)
    fixed = _check(layout, tool, fix=True)
    verified = _check(layout, tool, fix=False) if fixed.ok else fixed
    output = fixed.output if fixed is verified else f"{fixed.output}\n--- check after the repair ---\n{verified.output}"
    if not verified.ok:
        log.error("Repair of the append-only file %s failed:\n%s", layout.root, output)
        return _report(False, _failure_reason(verified.output), backup=backup, layout=layout, before=before,
                       output=output)
    log.info("Repaired the append-only file %s:\n%s", layout.root, output)
    return _report(True, "", backup=backup, layout=layout, before=before, output=output)


def _check(layout: AofLayout, tool: AofTool, *, fix: bool) -> _ToolRun:
    """Check (and with `fix`, repair) the whole AOF: by its manifest, else part by part."""
    if not layout.multi_part:
        return tool.check_aof(layout.root, fix=fix)
    assert layout.manifest is not None
    whole = tool.check_aof(layout.manifest, fix=fix)
    if whole.ok or not layout.parts or not _is_rdb(layout.parts[0], magics=(b"VALKEY",)):
        return whole
    # Valkey 9's checker takes its own RDB base (magic VALKEY, not REDIS) for a broken RESP file and stops there
    # (valkey-io/valkey#4739); the server itself loads it fine. Check the parts one by one instead, with the same
    # rule as the checker: only the last part may be cut.
    runs = [f"(by manifest) {whole.output}"]
    for index, part in enumerate(layout.parts):
        last = index == len(layout.parts) - 1
        run = tool.check_rdb(part) if _is_rdb(part) else tool.check_aof(part, fix=fix and last)
        runs.append(f"({part.name}) {run.output}")
        if not run.ok:
            if _is_rdb(part):
                runs.append(f"{part.name} is damaged, and the checker cannot cut an RDB snapshot")
            elif not last:
                runs.append(f"{part.name} is damaged and is not the last part of the append-only file")
            else:
                runs.append(f"{part.name} is damaged, and the checker could not cut it")
            return _ToolRun(False, "\n".join(runs))
    return _ToolRun(True, "\n".join(runs))


def _is_rdb(path: Path, magics: tuple[bytes, ...] = _RDB_MAGICS) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return False
    return any(head.startswith(magic) for magic in magics)


def _sizes(layout: AofLayout) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for part in layout.parts:
        try:
            sizes[part.name] = part.stat().st_size
        except OSError:
            continue
    return sizes


def _failure_reason(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if "damaged" in line or "not valid" in line or "Failed" in line or "Cannot" in line or "aborting" in line:
            return f"{line.rstrip('.')}; it cannot be repaired automatically."
    return "The checker could not repair it" + (f": {lines[-1]}" if lines else ".")


def _report(ok: bool, reason: str, *, backup: Path, layout: AofLayout, before: dict[str, int],
            output: str) -> AofRepairReport:
    after = _sizes(layout)
    dropped = tuple((name, size - after[name]) for name, size in before.items()
                    if name in after and after[name] < size)
    kept = f"The original is kept in {backup}."
    if not ok:
        message = f"The append-only file was not repaired: {reason} {kept}"
    elif dropped:
        cuts = ", ".join(f"{count} bytes from {name}" for name, count in dropped)
        message = (f"Repaired the append-only file: cut the damaged end ({cuts}). Jobs written after the damage are "
                   f"lost from the queue. {kept}")
    else:
        message = f"The append-only file is valid; nothing needed cutting. {kept}"
    return AofRepairReport(ok, message, backup, dropped, output)
