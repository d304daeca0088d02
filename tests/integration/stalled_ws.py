"""A WebSocket client that stops reading: RFC 6455 framing over a plain socket.

Client libraries keep reading the socket into their own buffers, so a "slow" client made
with one still drains the server; a real slow consumer (a stalled browser tab, a client
on a bad link) stops taking bytes. This one opens ``/v1/ws`` with a 4 KiB receive buffer,
sends text frames, and is read only when the test decides to.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from collections.abc import Iterator


def connect(port: int, *, rcvbuf: int = 4096) -> socket.socket:
    """Open ``ws://127.0.0.1:<port>/v1/ws`` (the receive buffer set before connecting,
    so the kernel does not grow it).

    Raises:
        AssertionError: the server did not switch protocols.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def send_text(sock: socket.socket, text: str) -> None:
    """One masked text frame (clients must mask, RFC 6455 §5.3)."""
    data = text.encode()
    mask = os.urandom(4)
    size = len(data)
    if size < 126:
        header = bytes([0x81, 0x80 | size])
    else:
        header = bytes([0x81, 0x80 | 126]) + struct.pack("!H", size)
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def _exactly(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise EOFError("the server closed the connection mid-frame")
        buf += chunk
    return buf


def frames(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """``(opcode, payload)`` of each frame the server sends, through its close frame."""
    while True:
        first, second = _exactly(sock, 2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", _exactly(sock, 2))[0]
        elif size == 127:
            size = struct.unpack("!Q", _exactly(sock, 8))[0]
        opcode = first & 0x0F
        yield opcode, _exactly(sock, size)
        if opcode == 8:
            return
