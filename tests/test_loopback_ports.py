"""Ports for the servers we start: a preferred port is kept while free, a taken one is never handed out."""

from __future__ import annotations

import socket

from comfystudio_desktop.supervise.loopback_ports import bindable, free_port


def test_a_free_preferred_port_is_kept_and_a_taken_one_is_replaced() -> None:
    port = free_port()
    assert free_port(port) == port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert bindable(port) is None
        other = free_port(port)
        assert other != port
        assert bindable(other) == other
    assert bindable(port) == port
