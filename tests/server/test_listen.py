"""The listener's connection cap and deadlines, on a real uvicorn with a trivial app (no model)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from aimod.server.config import ServerSettings
from aimod.server.listen import guarded_protocol


async def echo(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """An ASGI app answering every request with its body's length."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def listening(**settings: float) -> Iterator[int]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        echo, http=guarded_protocol(ServerSettings(**settings)), log_config=None, lifespan="off", timeout_keep_alive=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def closed_within(conn: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``conn`` within ``seconds`` (reading and discarding what it sends)."""
    conn.settimeout(seconds)
    try:
        while conn.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def request(port: int, conn: socket.socket | None = None, body: bytes = b"abc") -> tuple[socket.socket, bytes]:
    conn = conn or socket.create_connection(("127.0.0.1", port))
    conn.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    conn.settimeout(5)
    reply = b""
    while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < _length(reply):
        chunk = conn.recv(4096)
        if not chunk:
            break
        reply += chunk
    return conn, reply


def _length(reply: bytes) -> int:
    for line in reply.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout() -> None:
    with listening(header_timeout_s=0.5) as port, socket.create_connection(("127.0.0.1", port)) as conn:
        begin = time.monotonic()
        assert closed_within(conn, 5)
        assert 0.4 < time.monotonic() - begin < 3


def test_trickled_headers_do_not_extend_the_header_deadline() -> None:
    with listening(header_timeout_s=1.0) as port, socket.create_connection(("127.0.0.1", port)) as conn:
        begin = time.monotonic()
        closed = False
        for byte in b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 100:
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - begin > 4:
                break
        assert closed or closed_within(conn, 1)
        assert time.monotonic() - begin < 4


def test_a_slow_body_is_cut_at_the_body_timeout() -> None:
    with listening(body_timeout_s=1.0) as port, socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
        begin = time.monotonic()
        closed = False
        while time.monotonic() - begin < 4 and not closed:
            try:
                conn.sendall(b"x")
            except OSError:
                closed = True
            time.sleep(0.1)
        assert closed or closed_within(conn, 1)
        assert time.monotonic() - begin < 4


def test_keep_alive_requests_are_served_and_the_connection_idles_out_after_them() -> None:
    with listening(header_timeout_s=5.0) as port:
        conn, first = request(port)
        _, second = request(port, conn, b"abcdef")
        assert first.startswith(b"HTTP/1.1 200")
        assert first.endswith(b"\r\n\r\n3")
        assert second.startswith(b"HTTP/1.1 200")
        assert second.endswith(b"\r\n\r\n6")
        assert closed_within(conn, 4)  # uvicorn's keep-alive timer (1 s here) closes it after its response
        conn.close()


@pytest.mark.parametrize("limit", [3])
def test_connections_over_the_cap_get_503_and_are_closed(limit: int) -> None:
    with listening(max_connections=limit) as port:
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(limit)]
        try:
            time.sleep(0.2)
            extra = socket.create_connection(("127.0.0.1", port))
            extra.settimeout(5)
            answer = extra.recv(4096)
            assert answer.startswith(b"HTTP/1.1 503")
            assert closed_within(extra, 2)
            extra.close()
            for conn in held:
                conn.close()
            time.sleep(0.3)
            conn, reply = request(port)  # the slots are free again
            assert reply.startswith(b"HTTP/1.1 200")
            conn.close()
        finally:
            for conn in held:
                conn.close()
