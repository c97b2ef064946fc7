"""One plain RESP2 connection, for a short-lived command that must not pay for importing redis-py.

Importing redis-py takes about 100 ms, most of a `status` call's budget. A command that only reads a record or two
talks to the server over this instead: requests are arrays of bulk strings, encoded here; replies are parsed by
hiredis (the reference RESP parser, which redis-py uses too when it is installed). Nothing is retried: a failure is
an `OSError` or a `RespError`, and the caller takes the ordinary path through the queue instead.
"""

from __future__ import annotations

import socket
from types import TracebackType

import hiredis

__all__ = ["RespConnection", "RespError", "encode_command"]

_READ_SIZE = 65536


class RespError(Exception):
    """The server answered with an error reply, or sent something that is not RESP."""


def encode_command(*args: str | bytes | int) -> bytes:
    """A request as RESP: an array of bulk strings (text as UTF-8, integers in decimal)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode("utf-8") if isinstance(arg, str) else b"%d" % arg if isinstance(arg, int) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RespConnection:
    """A connected socket and a reply parser; `call` sends one command and returns its reply (bytes undecoded).

    Replies: bulk strings as bytes, integers as int, arrays as lists, a nil as None, an error reply raised as
    `RespError`.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = hiredis.Reader()

    @classmethod
    def open(cls, host: str, port: int, *, timeout_s: float) -> RespConnection:
        """Connect; every later send and receive also gives up after `timeout_s` (socket.timeout, an OSError)."""
        sock = socket.create_connection((host, port), timeout=timeout_s)
        return cls(sock)

    def call(self, *args: str | bytes | int) -> object:
        """Send one command and wait for its reply."""
        self._sock.sendall(encode_command(*args))
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                raise RespError(f"not a RESP reply: {exc}") from exc
            if reply is not False:
                break
            data = self._sock.recv(_READ_SIZE)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._reader.feed(data)
        if isinstance(reply, hiredis.ReplyError):
            raise RespError(str(reply))
        return reply

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def __enter__(self) -> RespConnection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
