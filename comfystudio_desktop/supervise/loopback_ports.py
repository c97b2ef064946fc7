"""Choosing a TCP port on 127.0.0.1 for a server we start (redis-server, a managed ComfyUI)."""

from __future__ import annotations

import os
import socket

__all__ = ["bindable", "free_port"]


def bindable(port: int) -> int | None:
    """`port` (0: any free one) if it can be bound on 127.0.0.1 now, else None."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if os.name == "posix":
            # As the servers bind: after a crash their old connections linger in TIME_WAIT and must not make their
            # own port look taken. (On Windows SO_REUSEADDR would let us share a port that is in use.)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return None
        return int(sock.getsockname()[1])


def free_port(preferred: int = 0) -> int:
    """`preferred` if it is free, else any free port. Raises OSError if none can be bound."""
    for port in (preferred, 0) if preferred else (0,):
        if (bound := bindable(port)) is not None:
            return bound
    raise OSError("no free TCP port on 127.0.0.1")
