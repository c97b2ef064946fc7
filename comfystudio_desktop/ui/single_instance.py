"""One window per home: a second start asks the first to come to the front and exits.

The local socket's name is derived from the user and the home, and whoever answers on it must prove that it knows
the home's instance token (a random secret in `run/window.token`, 0600, never logged and never sent): the new
window sends a fresh challenge, the first answers with an HMAC of it, and only then is it asked to come to the
front. Anything else that listens on the name (a squatter, a stale program) gets no secret and cannot make a new
window exit: the new window logs it, listens on the next free name of the same family, and starts normally.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket

__all__ = ["SingleInstance", "read_token", "server_name", "token_path"]

log = logging.getLogger(__name__)

_TOKEN_FILE = "window.token"
_TOKEN_RE = re.compile(r"[0-9a-f]{64}")
#: Names tried in turn: one squatted name must not leave the window without single-instance protection.
_SLOTS = 4
_MAX_LINE = 256  # the longest message of the handshake is ~140 bytes; more is not a ComfyStudio window
_PEER_TIMEOUT_MS = 5_000
_HELLO_RE = re.compile(rb"hello ([0-9a-f]{64})\n")
_PROOF_RE = re.compile(rb"proof ([0-9a-f]{64}) ([0-9a-f]{64})\n")
_ACTIVATE_RE = re.compile(rb"activate ([0-9a-f]{64})\n")


def server_name(home: Path, slot: int = 0) -> str:
    """The local socket name for this user and home (slot > 0: the fallbacks when a name is squatted)."""
    identity = "\0".join((_user_id(), _user_home(), str(home.resolve())))
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"comfystudio-{digest}" + (f"-{slot}" if slot else "")


def token_path(home: Path) -> Path:
    """Where the home's instance token is kept."""
    return home / "run" / _TOKEN_FILE


def _user_id() -> str:
    if sys.platform == "win32":
        return f"{os.environ.get('USERDOMAIN', '')}\\{os.environ.get('USERNAME', '')}"
    return str(os.getuid())


def _user_home() -> str:
    try:
        return str(Path.home())
    except (RuntimeError, KeyError):  # no HOME and no password entry: the user id still separates users
        return ""


def _mac(token: bytes, role: bytes, first: bytes, second: bytes) -> bytes:
    """The proof of knowing the token for one challenge; `role` keeps a server's proof from passing as a client's."""
    return hmac.new(token, b"|".join((role, first, second)), hashlib.sha256).hexdigest().encode()


def read_token(home: Path) -> bytes:
    """The home's instance token, made on first use (0600). Raises OSError when it can be neither read nor made."""
    path = token_path(home)
    token = _read_valid(path)
    if token is not None:
        return token
    path.parent.mkdir(exist_ok=True)
    temporary = path.with_name(f".{_TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(handle, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32))
        os.replace(temporary, path)  # atomic: a reader never sees half a token
    except OSError:
        # e.g. Windows refuses to replace a file another window is reading: that window made a token already.
        with contextlib.suppress(OSError):
            temporary.unlink()
    token = _read_valid(path)  # two first starts at once: both use whichever token was written last
    if token is None:
        raise OSError(f"cannot keep the instance token in {path}")
    return token


def _read_valid(path: Path) -> bytes | None:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    return text.encode() if _TOKEN_RE.fullmatch(text) else None


class _Answer(Enum):
    NOBODY = "nobody"  # no listener (or a stale socket file)
    PEER = "peer"  # a window of this home, proven by the handshake
    STRANGER = "stranger"  # a listener that could not prove it


class SingleInstance(QObject):
    """`claim()` makes this process the home's window, or tells the running one to show itself."""

    activate_requested = Signal()

    def __init__(self, home: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.home = home
        self.name = server_name(home)
        self._server: QLocalServer | None = None
        self._peers: dict[QLocalSocket, _PeerConnection] = {}

    @property
    def listening(self) -> bool:
        """True while this window answers other starts (False after a failed or squatted claim)."""
        return self._server is not None

    def claim(self, timeout_ms: int = 2_000) -> bool:
        """True if we are the first instance (and now listen); False if a proven window was asked to show up.

        A listener that fails the handshake never makes this return False: we start normally and log it.
        """
        try:
            token = read_token(self.home)
        except OSError as exc:
            log.warning("No single-instance check (the instance token cannot be kept: %s); starting normally", exc)
            return True
        names = [server_name(self.home, slot) for slot in range(_SLOTS)]
        squatted: set[str] = set()
        for name in names:
            answer = _ask_to_activate(name, token, timeout_ms)
            if answer is _Answer.PEER:
                log.info("Another window of this home is running; asked it to come to the front")
                return False
            if answer is _Answer.STRANGER:
                squatted.add(name)
                log.warning("Something that is not a window of this home listens on the single-instance socket "
                            "%r; ignoring it and starting normally", name)
        for name in names:
            if name not in squatted and self._listen(name):
                return True
        log.warning("No single-instance socket could be opened; starting without one")
        return True

    def release(self) -> None:
        """Stop listening (on quit)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for peer in list(self._peers.values()):
            peer.close()

    def _listen(self, name: str) -> bool:
        QLocalServer.removeServer(name)  # a stale socket file left by a crashed instance (nobody answered on it)
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(name):
            log.warning("Single-instance server on %r failed: %s", name, server.errorString())
            server.deleteLater()
            return False
        server.newConnection.connect(self._on_server_new_connection)
        self._server, self.name = server, name
        return True

    @Slot()
    def _on_server_new_connection(self) -> None:
        assert self._server is not None
        while (socket := self._server.nextPendingConnection()) is not None:
            self._peers[socket] = _PeerConnection(socket, self.home, self._on_peer_activated, self._on_peer_closed)

    def _on_peer_activated(self) -> None:
        self.activate_requested.emit()

    def _on_peer_closed(self, socket: QLocalSocket) -> None:
        self._peers.pop(socket, None)


class _PeerConnection(QObject):
    """The first window's side of one handshake: answer the challenge, then accept a proven activate request."""

    def __init__(self, socket: QLocalSocket, home: Path, on_activated: Callable[[], None],
                 on_closed: Callable[[QLocalSocket], None]) -> None:
        super().__init__(socket)
        self._socket = socket
        self._home = home
        self._on_activated = on_activated
        self._on_closed = on_closed
        self._closed = False
        self._buffer = b""
        self._client_nonce = b""
        self._server_nonce = b""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.close)  # a peer that never finishes does not hold a socket forever
        self._timer.start(_PEER_TIMEOUT_MS)
        socket.readyRead.connect(self._on_socket_ready_read)
        socket.disconnected.connect(self.close)

    @Slot()
    def close(self) -> None:
        """Drop the connection."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        socket = self._socket
        self._on_closed(socket)
        if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            socket.abort()
        socket.deleteLater()

    @Slot()
    def _on_socket_ready_read(self) -> None:
        self._buffer += bytes(self._socket.readAll().data())
        if len(self._buffer) > _MAX_LINE:
            self.close()
            return
        if b"\n" not in self._buffer:
            return
        line, _, self._buffer = self._buffer.partition(b"\n")
        self._handle(line + b"\n")

    def _handle(self, line: bytes) -> None:
        try:
            token = read_token(self._home)  # read each time: another first start may have replaced it
        except OSError as exc:
            log.warning("Single-instance request refused: %s", exc)
            self.close()
            return
        if not self._client_nonce and (hello := _HELLO_RE.fullmatch(line)):
            self._client_nonce = hello.group(1)
            self._server_nonce = secrets.token_hex(32).encode()
            proof = _mac(token, b"server", self._client_nonce, self._server_nonce)
            self._socket.write(b"proof " + self._server_nonce + b" " + proof + b"\n")
            self._socket.flush()
            return
        activate = _ACTIVATE_RE.fullmatch(line) if self._client_nonce else None
        expected = _mac(token, b"client", self._server_nonce, self._client_nonce)
        if activate is not None and hmac.compare_digest(activate.group(1), expected):
            self._socket.write(b"ok\n")
            self._socket.flush()
            self._on_activated()
        else:
            log.warning("Refused a single-instance request that did not prove it knows this home's token")
        self._client_nonce = b""
        self._socket.disconnectFromServer()


def _ask_to_activate(name: str, token: bytes, timeout_ms: int) -> _Answer:
    """The new window's side: challenge whoever listens on `name`; if it proves itself, ask it to show up."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(timeout_ms):
        return _Answer.NOBODY
    deadline = time.monotonic() + timeout_ms / 1000
    try:
        client_nonce = secrets.token_hex(32).encode()
        socket.write(b"hello " + client_nonce + b"\n")
        proof = _PROOF_RE.fullmatch(_read_line(socket, deadline))
        if proof is None:
            return _Answer.STRANGER
        server_nonce, mac = proof.group(1), proof.group(2)
        if not hmac.compare_digest(mac, _mac(token, b"server", client_nonce, server_nonce)):
            return _Answer.STRANGER
        socket.write(b"activate " + _mac(token, b"client", server_nonce, client_nonce) + b"\n")
        socket.waitForBytesWritten(max(1, int((deadline - time.monotonic()) * 1000)))
        _read_line(socket, deadline)  # "ok": the request arrived (the peer proved itself either way)
        return _Answer.PEER
    finally:
        socket.abort()


def _read_line(socket: QLocalSocket, deadline: float) -> bytes:
    """One line (with its newline) from `socket`, or what arrived before the deadline, at most `_MAX_LINE` bytes."""
    data = b""
    while b"\n" not in data and len(data) <= _MAX_LINE:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            break
        if socket.bytesAvailable() == 0 and not socket.waitForReadyRead(remaining_ms):
            break
        data += bytes(socket.read(_MAX_LINE + 1 - len(data)).data())
    line, newline, _ = data.partition(b"\n")
    return line + newline
