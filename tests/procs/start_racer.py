"""A process that races for one home's embedded Redis: each line "go" on stdin → ensure_running → its port.

Prints "ready" first; answers "port N", or "error <message>" on one line. Ends at EOF.
"""

from __future__ import annotations

import sys
from pathlib import Path

from comfystudio_desktop.home import Home
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis


def main() -> None:
    server = EmbeddedRedis(Home(Path(sys.argv[1])))
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            continue
        try:
            print(f"port {server.ensure_running().port}", flush=True)
        except Exception as exc:  # reported to the test, which fails on it
            print(f"error {exc!r}", flush=True)


if __name__ == "__main__":
    main()
