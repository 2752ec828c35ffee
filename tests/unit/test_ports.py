"""Which local ports count as taken: a listener does, a stopped server's lingering
connections do not (``blendserve up`` refused to start again on its own port)."""

from __future__ import annotations

import socket

from deployments.local.ports import free_port, port_is_free


def test_a_listener_takes_a_port_whatever_its_socket_options() -> None:
    for option in (socket.SO_REUSEADDR, socket.SO_REUSEPORT):
        port = free_port()
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, option, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen()
            assert not port_is_free(port)
        assert port_is_free(port)


def test_connections_in_time_wait_leave_the_port_free() -> None:
    port = free_port()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server closes first: its side lingers in TIME_WAIT
        client.close()
    assert port_is_free(port)
