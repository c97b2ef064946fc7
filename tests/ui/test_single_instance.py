"""Single instance: a per-user name, a token handshake, and squatters that cannot make a new window exit."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtNetwork import QLocalSocket
from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.ui.single_instance import SingleInstance, read_token, server_name, token_path
from tests.conftest import REPO_ROOT

SQUATTER = REPO_ROOT / "tests" / "procs" / "local_socket_squatter.py"
_ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
_SECOND = ("import sys; from pathlib import Path; from PySide6.QtCore import QCoreApplication; "
           "from comfystudio_desktop.ui.single_instance import SingleInstance; app = QCoreApplication([]); "
           "print('first' if SingleInstance(Path(sys.argv[1])).claim(timeout_ms=1500) else 'second')")


def _in_state(client: QLocalSocket, state: QLocalSocket.LocalSocketState) -> Callable[[], bool]:
    return lambda: client.state() == state


@pytest.fixture
def squat(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """`squat(name, mode)` starts a process listening on `name`; returns the file of what it received."""
    procs: list[subprocess.Popen[str]] = []

    def start(name: str, mode: str) -> Path:
        record = tmp_path / f"squatter-{len(procs)}.bin"
        record.touch()
        proc = subprocess.Popen([sys.executable, str(SQUATTER), name, mode, str(record)], cwd=REPO_ROOT, env=_ENV,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        return record

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def run_second_instance(qtbot: QtBot, home: Home) -> str:
    """Start a second instance in its own process (while this one answers) and return what it became."""
    proc = subprocess.Popen([sys.executable, "-c", _SECOND, str(home.root)], cwd=REPO_ROOT, env=_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        qtbot.waitUntil(lambda: proc.poll() is not None, timeout=30_000)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return out.strip()


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("mode", ["silent", "garbage", "forged"])
def test_a_squatted_name_does_not_stop_a_new_window(qtbot: QtBot, home: Home, squat: Callable[[str, str], Path],
                                                    caplog: pytest.LogCaptureFixture, mode: str) -> None:
    caplog.set_level(logging.INFO, logger="comfystudio_desktop.ui.single_instance")
    received = squat(server_name(home.root), mode)
    first = SingleInstance(home.root)
    try:
        assert first.claim(timeout_ms=1500)  # starts normally instead of exiting
        assert first.listening and first.name == server_name(home.root, 1)  # the next name of the family
        assert "is not a window of this home" in logged_text(caplog)
        activated: list[bool] = []
        first.activate_requested.connect(lambda: activated.append(True))
        # A real second start still finds the real first window past the squatter, and exits.
        assert run_second_instance(qtbot, home) == "second"
        qtbot.waitUntil(lambda: bool(activated), timeout=10_000)
    finally:
        first.release()
    token = token_path(home.root).read_text()
    assert token.encode() not in received.read_bytes()  # the secret never goes over the socket
    assert received.read_bytes().startswith(b"hello ")
    assert token not in logged_text(caplog)


def test_a_real_first_instance_is_asked_to_come_to_the_front(qtbot: QtBot, home: Home) -> None:
    first = SingleInstance(home.root)
    activated: list[bool] = []
    first.activate_requested.connect(lambda: activated.append(True))
    try:
        assert first.claim()
        assert first.name == server_name(home.root)
        assert run_second_instance(qtbot, home) == "second"
        qtbot.waitUntil(lambda: bool(activated), timeout=10_000)
    finally:
        first.release()
    assert run_second_instance(qtbot, home) == "first"  # once it is gone, a new start is the first again


def test_an_activate_request_without_the_token_is_refused(qtbot: QtBot, home: Home,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    first = SingleInstance(home.root)
    activated: list[bool] = []
    first.activate_requested.connect(lambda: activated.append(True))
    client = QLocalSocket()
    try:
        assert first.claim()
        client.connectToServer(first.name)
        qtbot.waitUntil(lambda: client.state() == QLocalSocket.LocalSocketState.ConnectedState)
        client.write(b"hello " + b"ab" * 32 + b"\n")
        qtbot.waitUntil(lambda: client.canReadLine(), timeout=5_000)
        proof = bytes(client.readLine().data())
        assert proof.startswith(b"proof ") and len(proof) == len(b"proof ") + 64 + 1 + 64 + 1
        client.write(b"activate " + b"0" * 64 + b"\n")  # without the token nobody can compute the answer
        qtbot.waitUntil(lambda: client.state() == QLocalSocket.LocalSocketState.UnconnectedState, timeout=5_000)
        assert not activated
        assert "did not prove it knows" in logged_text(caplog)
    finally:
        client.abort()
        first.release()


def test_oversized_or_malformed_requests_are_dropped(qtbot: QtBot, home: Home) -> None:
    first = SingleInstance(home.root)
    activated: list[bool] = []
    first.activate_requested.connect(lambda: activated.append(True))
    try:
        assert first.claim()
        for payload in (b"x" * 10_000, b"activate\n", b"hello 123\n", b"\xff\xfe\n"):
            client = QLocalSocket()
            client.connectToServer(first.name)
            qtbot.waitUntil(_in_state(client, QLocalSocket.LocalSocketState.ConnectedState))
            client.write(payload)
            qtbot.waitUntil(_in_state(client, QLocalSocket.LocalSocketState.UnconnectedState), timeout=5_000)
            client.abort()
        assert not activated
    finally:
        first.release()


def test_the_token_is_private_stable_and_replaced_when_damaged(home: Home) -> None:
    token = read_token(home.root)
    path = token_path(home.root)
    assert len(token) == 64 and path.read_bytes() == token
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_token(home.root) == token
    path.write_text("not a token\n")
    fresh = read_token(home.root)
    assert fresh != token and len(fresh) == 64 and path.read_bytes() == fresh


def test_the_name_depends_on_the_home_and_does_not_reveal_it(home: Home, tmp_path: Path) -> None:
    name = server_name(home.root)
    assert name == server_name(home.root) != server_name(tmp_path / "other")
    assert name.startswith("comfystudio-") and str(home.root.name) not in name
    assert server_name(home.root, 2) == f"{name}-2"
