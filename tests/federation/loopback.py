"""Misbehaving partners on real loopback sockets, shared by the hardening and sender tests."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.federation.protocol import SIGNATURE_HEADER, request_hash, sign_response
from gateway.identity.signing import NodeSigningKey

# Reads the rest of a request's exchange and answers; True keeps the connection for another.
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]], Awaitable[bool]]


async def read_request(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return headers, body


def http_response(status: int, body: bytes, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Partners:
    """Misbehaving partners on real loopback ports; counts the connections they still hold."""

    def __init__(
        self, own: str, signed_key: NodeSigningKey, extra: dict[str, Behaviour] | None = None
    ) -> None:
        self.own = own
        self.signed_key = signed_key
        self.extra = dict(extra or {})
        self.open_connections = 0
        self.servers: list[asyncio.Server] = []
        # Ports are bound before the event loop starts, so the manifest can name them.
        codes = ("01", "03", "06", "07", "10", "11", *self.extra)
        self.listeners = {code: _listener() for code in codes}
        self.urls = {
            code: f"http://127.0.0.1:{sock.getsockname()[1]}"
            for code, sock in self.listeners.items()
        }
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            self.urls["04"] = f"http://127.0.0.1:{closed.getsockname()[1]}"

    def signed(
        self, key: NodeSigningKey, sender: str, headers: dict[str, str], body: bytes
    ) -> bytes:
        """A 200 answer to the request with these headers, signed as `sender` with `key`."""
        signature = sign_response(
            key,
            sender=sender,
            audience=self.own,
            request_token_hash=request_hash(headers[SIGNATURE_HEADER.lower()]),
            status=200,
            body=body,
        )
        return http_response(200, body, {SIGNATURE_HEADER: signature})

    async def _serve(self, code: str, behaviour: Any) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.open_connections += 1
            try:
                while True:
                    try:
                        headers, _ = await read_request(reader)
                    except (asyncio.IncompleteReadError, ConnectionError):
                        return
                    if not await behaviour(reader, writer, headers):
                        return
            finally:
                self.open_connections -= 1
                writer.close()

        server = await asyncio.start_server(handle, sock=self.listeners[code])
        self.servers.append(server)

    async def start(self) -> None:
        async def hang(reader: Any, writer: Any, headers: dict[str, str]) -> bool:
            await reader.read()  # until the caller gives up and closes
            return False

        async def reset(reader: Any, writer: Any, headers: dict[str, str]) -> bool:
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n{"status":"o')
            await writer.drain()
            sock = writer.get_extra_info("socket")
            # Linger 0: close() sends RST, as a crashing partner or a middlebox would.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False

        async def crash(reader: Any, writer: Any, headers: dict[str, str]) -> bool:
            writer.write(http_response(500, b'{"detail":"boom"}'))
            await writer.drain()
            return True

        async def not_json(reader: Any, writer: Any, headers: dict[str, str]) -> bool:
            writer.write(self.signed(self.signed_key, "10", headers, b'{"status": "ok", '))
            await writer.drain()
            return True

        async def forged(reader: Any, writer: Any, headers: dict[str, str]) -> bool:
            writer.write(self.signed(NodeSigningKey.generate(), "11", headers, b'{"status":"ok"}'))
            await writer.drain()
            return True

        for code, behaviour in {
            "01": hang,
            "06": reset,
            "07": crash,
            "10": not_json,
            "11": forged,
            **self.extra,
        }.items():
            await self._serve(code, behaviour)
        # "03" is never served: a node that never accepts; the kernel queues the connection
        # and nobody reads it.

    async def stop(self) -> None:
        self.listeners["03"].close()
        for server in self.servers:
            server.close()
            await server.wait_closed()


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    sock.setblocking(False)
    return sock
