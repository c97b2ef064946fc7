"""The captured output of one supervised process: a rotating file plus its last lines in memory."""

from __future__ import annotations

import collections
import logging
import logging.handlers
import threading
import time
from pathlib import Path
from typing import IO, BinaryIO

__all__ = ["ProcessLog"]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
# A child that never writes a newline must not grow the buffer without bound.
_MAX_LINE = 64 * 1024
_TAIL_READ_BYTES = 16 * 1024
_START_NOTE = "[supervisor] starting: "


class ProcessLog:
    """A child's output in `path` (rotated by size) plus its last `keep_lines` lines for error reports.

    Two ways to fill it: `pump()` copies a pipe line by line (rotating as it goes); or, with `child_writes=True`,
    the child appends to the file itself (`open_for_child()`, rotated only then) so that it can outlive the app.
    """

    def __init__(self, path: Path, *, child_writes: bool = False, max_bytes: int = 5 * 1024 * 1024,
                 backup_count: int = 3, keep_lines: int = 50) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._child_writes = child_writes
        self._keep_lines = keep_lines
        self._max_bytes = max_bytes
        self._handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backup_count,
                                                             encoding="utf-8", delay=True)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        self._tail: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        """Record one line of output."""
        if self._child_writes:
            # The child holds the file open, so append in place; renaming it now would fail on Windows.
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {line}\n")
            return
        with self._lock:
            self._tail.append(line)
        # A record built by hand: this file belongs to the child, not to the app's logger tree.
        self._handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "levelname": "INFO"}))

    def note(self, text: str) -> None:
        """Record a line from the supervisor itself (start, exit, kill), marked as such."""
        self.write(f"[supervisor] {text}")

    def note_start(self, command: str) -> None:
        """Mark the start of a new run (what `run_tail` looks for)."""
        self.note(f"starting: {command}")

    def run_tail(self) -> tuple[str, ...]:
        """The kept lines of the latest run only, from its start mark on (all kept lines if the mark scrolled out).

        Lets a diagnosis of an exit ignore what earlier runs printed into the same file.
        """
        lines = self.tail()
        for index in range(len(lines) - 1, -1, -1):
            if _START_NOTE in lines[index]:
                return lines[index:]
        return lines

    def tail(self) -> tuple[str, ...]:
        """The last lines, oldest first."""
        if self._child_writes:
            return self._read_file_tail()
        with self._lock:
            return tuple(self._tail)

    def open_for_child(self) -> BinaryIO:
        """Rotate the file if it is too big (no process writes it now), then open it for a child to append to."""
        try:
            if self.path.stat().st_size > self._max_bytes:
                self._handler.doRollover()
        except FileNotFoundError:
            pass
        except OSError as exc:  # e.g. a leftover process still holds it on Windows; keep appending
            log.warning("Cannot rotate %s: %s", self.path, exc)
        return open(self.path, "ab")  # handed to Popen; the caller closes its copy after the spawn

    def pump(self, stream: IO[bytes], thread_name: str) -> threading.Thread:
        """Copy `stream` line by line until EOF in a daemon thread (started and returned)."""
        thread = threading.Thread(target=self._pump, args=(stream,), name=thread_name, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Release the file; a later write opens it again."""
        self._handler.close()

    def _pump(self, stream: IO[bytes]) -> None:
        pending = b""
        try:
            # An unbuffered pipe returns whatever is available, so a quiet child is logged promptly.
            while chunk := stream.read(_CHUNK):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._write_raw(raw)
                if len(pending) > _MAX_LINE:
                    self._write_raw(pending)
                    pending = b""
                else:
                    # Progress bars redraw with '\r': only the latest drawing is worth keeping.
                    cut = pending.rfind(b"\r", 0, len(pending) - 1)
                    if cut >= 0:
                        pending = pending[cut + 1:]
            if pending:
                self._write_raw(pending)
        except (OSError, ValueError) as exc:
            log.debug("Output pump for %s stopped: %s", self.path.name, exc)
        finally:
            stream.close()

    def _write_raw(self, raw: bytes) -> None:
        if line := _clean(raw):
            self.write(line)

    def _read_file_tail(self) -> tuple[str, ...]:
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(max(0, size - _TAIL_READ_BYTES))
                data = fh.read()
        except OSError:
            return ()
        raw_lines = data.split(b"\n")
        if size > _TAIL_READ_BYTES:
            raw_lines = raw_lines[1:]  # the first one is cut
        lines = [line for raw in raw_lines if (line := _clean(raw))]
        return tuple(lines[-self._keep_lines:])


def _clean(raw: bytes) -> str:
    """One output line as text: CRLF tolerated, only the last redraw of a '\\r' progress bar kept."""
    raw = raw.rstrip(b"\r")
    cut = raw.rfind(b"\r")
    if cut >= 0:
        raw = raw[cut + 1:]
    return raw.decode("utf-8", errors="replace").rstrip()
