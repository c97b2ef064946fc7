"""A process that squats a local socket name (for the single-instance tests).

    python local_socket_squatter.py NAME MODE RECORD_FILE

MODE: `silent` accepts and never answers; `garbage` answers bytes that mean nothing; `forged` answers a
well-formed proof with a made-up HMAC. Everything received is appended to RECORD_FILE. Prints "listening" when
ready; runs until killed.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication
from PySide6.QtNetwork import QLocalServer, QLocalSocket


def main() -> int:
    name, mode, record = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    app = QCoreApplication(sys.argv[:1])
    server = QLocalServer()
    if not server.listen(name):
        print(f"cannot listen: {server.errorString()}", flush=True)
        return 1
    sockets: list[QLocalSocket] = []

    def on_ready_read(socket: QLocalSocket) -> None:
        with record.open("ab") as out:
            out.write(bytes(socket.readAll().data()))
        if mode == "garbage":
            socket.write(b"\x00\xffyes, I am the first window\n" * 20)
        elif mode == "forged":
            socket.write(f"proof {secrets.token_hex(32)} {secrets.token_hex(32)}\n".encode())

    def on_new_connection() -> None:
        while (socket := server.nextPendingConnection()) is not None:
            sockets.append(socket)
            socket.readyRead.connect(lambda s=socket: on_ready_read(s))

    server.newConnection.connect(on_new_connection)
    print("listening", flush=True)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
