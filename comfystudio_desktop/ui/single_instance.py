"""One window per home: a second start asks the first to come to the front and exits."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

__all__ = ["SingleInstance", "server_name"]

log = logging.getLogger(__name__)
_ACTIVATE = b"activate\n"


def server_name(home: Path) -> str:
    """The local socket name for a home (per user on every platform: Qt puts it in the user's runtime dir)."""
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
    return f"comfystudio-{digest}"


class SingleInstance(QObject):
    """`claim()` makes this process the home's window, or tells the running one to show itself."""

    activate_requested = Signal()

    def __init__(self, home: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(home)
        self._server: QLocalServer | None = None

    def claim(self, timeout_ms: int = 500) -> bool:
        """True if we are the first instance (and now listen); False if another one was asked to show up."""
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if socket.waitForConnected(timeout_ms):
            socket.write(_ACTIVATE)
            socket.waitForBytesWritten(timeout_ms)
            socket.disconnectFromServer()
            log.info("Another window of this home is running; asked it to come to the front")
            return False
        QLocalServer.removeServer(self.name)  # a stale socket file left by a crashed instance
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            log.warning("Single-instance server failed: %s", server.errorString())
            return True
        server.newConnection.connect(self._on_server_new_connection)
        self._server = server
        return True

    def release(self) -> None:
        """Stop listening (on quit)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def _on_server_new_connection(self) -> None:
        assert self._server is not None
        while (socket := self._server.nextPendingConnection()) is not None:
            socket.readyRead.connect(lambda s=socket: self._on_socket_ready_read(s))
            socket.disconnected.connect(socket.deleteLater)

    def _on_socket_ready_read(self, socket: QLocalSocket) -> None:
        if bytes(socket.readAll().data()).startswith(_ACTIVATE.strip()):
            self.activate_requested.emit()
