"""The plain RESP connection of `status`: what it sends and reads agrees with redis-py on the real server, and a
bad server ends in one OSError or RespError, never a hang or a stray exception."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfystudio_desktop.queue.redis_endpoint import RedisEndpoint
from comfystudio_desktop.queue.resp_connection import RespConnection, RespError, encode_command

KEY = "resp:test"
ROUND_TRIP = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def conn(endpoint: RedisEndpoint) -> Iterator[RespConnection]:
    with RespConnection.open(endpoint.host, endpoint.port, timeout_s=5.0) as connection:
        assert connection.call("AUTH", endpoint.password or "") == b"OK"
        yield connection


@ROUND_TRIP
@given(value=st.binary(max_size=200_000) | st.text(max_size=200).map(str.encode))
def test_a_value_comes_back_byte_for_byte(conn: RespConnection, endpoint: RedisEndpoint, value: bytes) -> None:
    assert conn.call("SET", KEY, value) == b"OK"
    assert conn.call("GET", KEY) == value
    client = endpoint.client(decode_responses=False)
    try:
        assert client.get(KEY) == value  # what redis-py reads is what was sent
    finally:
        client.close()


@ROUND_TRIP
@given(fields=st.dictionaries(st.binary(min_size=1, max_size=30), st.binary(max_size=300), max_size=40))
def test_hgetall_is_the_flat_list_redis_py_turns_into_a_dict(conn: RespConnection, endpoint: RedisEndpoint,
                                                             fields: dict[bytes, bytes]) -> None:
    conn.call("DEL", KEY)
    for field, value in fields.items():
        conn.call("HSET", KEY, field, value)
    reply = conn.call("HGETALL", KEY)
    assert isinstance(reply, list)
    assert dict(zip(reply[::2], reply[1::2], strict=True)) == fields
    client = endpoint.client(decode_responses=False)
    try:
        assert client.hgetall(KEY) == fields
    finally:
        client.close()


def test_integers_nil_and_arrays(conn: RespConnection) -> None:
    conn.call("DEL", KEY)
    assert conn.call("RPUSH", KEY, "a", 7, "c") == 3
    assert conn.call("LRANGE", KEY, 0, -1) == [b"a", b"7", b"c"]
    assert conn.call("GET", "resp:missing") is None


def test_an_error_reply_is_a_resp_error_and_the_connection_goes_on(conn: RespConnection) -> None:
    with pytest.raises(RespError, match="unknown command"):
        conn.call("NO-SUCH-COMMAND")
    assert conn.call("PING") == b"PONG"


def test_a_wrong_password_is_a_resp_error(endpoint: RedisEndpoint) -> None:
    with RespConnection.open(endpoint.host, endpoint.port, timeout_s=5.0) as connection, pytest.raises(RespError):
        connection.call("AUTH", "not-the-password")


@given(args=st.lists(st.binary(max_size=50) | st.text(max_size=20) | st.integers(), min_size=1, max_size=8))
def test_the_encoding_is_an_array_of_bulk_strings(args: list[bytes | str | int]) -> None:
    data = encode_command(*args)
    assert data.startswith(b"*%d\r\n" % len(args))
    rest = data[data.index(b"\r\n") + 2:]
    for arg in args:
        raw = arg.encode() if isinstance(arg, str) else b"%d" % arg if isinstance(arg, int) else arg
        header = b"$%d\r\n" % len(raw)
        assert rest.startswith(header + raw + b"\r\n")
        rest = rest[len(header) + len(raw) + 2:]
    assert rest == b""


class _OneShotServer:
    """A loopback server that answers the first request with `answer` and then closes, or stays silent."""

    def __init__(self, answer: bytes | None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._answer = answer
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        client, _ = self.sock.accept()
        with client:
            client.recv(1024)
            if self._answer is not None:
                client.sendall(self._answer)
            else:
                self._done.wait(10)  # silent until the test is over

    def close(self) -> None:
        self._done.set()
        self._thread.join(10)
        self.sock.close()


@pytest.mark.parametrize(("answer", "error"), [(b"", ConnectionError), (b"$10\r\nabc", ConnectionError),
                                               (b"?what\r\n", RespError), (None, TimeoutError)])
def test_a_broken_server_ends_in_one_clear_error(answer: bytes | None, error: type[Exception]) -> None:
    server = _OneShotServer(answer)
    try:
        with RespConnection.open("127.0.0.1", server.port, timeout_s=0.5) as connection, pytest.raises(error):
            connection.call("GET", "x")
    finally:
        server.close()
