"""A toy service for the supervisor tests: prints, serves HTTP on 127.0.0.1, hangs, exits or ignores SIGTERM on cue.

Run as a script. `GET /health` answers 200 unless the hang file holds this process's pid: then it accepts the
connection and never answers. `GET /quit` answers and exits with code 0 (a graceful stop hook).
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import sys
import threading
from pathlib import Path


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class _Handler(http.server.BaseHTTPRequestHandler):
    hang_file: Path | None = None

    def do_GET(self) -> None:
        if self._told_to_hang():
            threading.Event().wait()  # accept but never answer, like a wedged server
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
        self.wfile.flush()
        if self.path == "/quit":
            print("quitting on request", flush=True)
            os._exit(0)

    def _told_to_hang(self) -> bool:
        try:
            return self.hang_file is not None and self.hang_file.read_text().strip() == str(os.getpid())
        except OSError:
            return False

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the captured output to what the tests print


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--say", default="", help="print this line at start")
    parser.add_argument("--exit-code", type=int, help="print 'boom' to stderr and exit with this code at once")
    parser.add_argument("--exit-once-file", help="if this file is missing: create it and exit with code 7")
    parser.add_argument("--port-file", help="serve HTTP on a free port and write the port here")
    parser.add_argument("--hang-file", help="hang HTTP requests while this file holds our pid")
    parser.add_argument("--ignore-term", action="store_true", help="ignore SIGTERM (POSIX)")
    args = parser.parse_args()

    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f"toy pid {os.getpid()} {args.say}".rstrip(), flush=True)
    if args.exit_code is not None:
        print("boom", file=sys.stderr, flush=True)
        sys.exit(args.exit_code)
    if args.exit_once_file:
        marker = Path(args.exit_once_file)
        if not marker.exists():
            marker.write_text("exited once", encoding="utf-8")
            print("exiting once", flush=True)
            sys.exit(7)
    if args.port_file:
        _Handler.hang_file = Path(args.hang_file) if args.hang_file else None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        _write_atomically(Path(args.port_file), str(server.server_address[1]))
        server.serve_forever()
    threading.Event().wait()


if __name__ == "__main__":
    main()
