"""The two ways a node's partner calls reach the wire give the same statuses.

A serving node calls its partners through aiohttp (`AiohttpSender`); the in-process tests route
calls through httpx transports (`HttpxSender`). Both are run here against the same partners on
real loopback sockets: one that answers properly, and one for each way a partner can fail,
including answers larger than the node accepts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gateway.federation.client import PartnerClient, PartnerFailure
from gateway.federation.manifest import Member
from gateway.identity.signing import NodeSigningKey
from tests.federation.conftest import node_settings, running_federation, stranger_member
from tests.federation.loopback import Partners, http_response

CAP = 4096
GOOD = "12"  # answers with a correctly signed JSON object
HUGE_DECLARED = "13"  # declares a body larger than the cap
HUGE_CHUNKED = "14"  # streams chunks past the cap with no length given
EXPECTED = {
    "01": "timeout",  # reads the request, never answers
    "03": "timeout",  # never accepts the connection
    "04": "unreachable",  # nothing listens
    "06": "unreachable",  # connection reset in the middle of the response
    "07": "error",  # HTTP 500
    "10": "error",  # correctly signed, but the body is not JSON
    "11": "bad_signature",  # signed with a key the manifest does not list
    HUGE_DECLARED: "error",
    HUGE_CHUNKED: "error",
}


def broken_and_good_partners(own: str, key: NodeSigningKey) -> Partners:
    async def good(reader: Any, writer: asyncio.StreamWriter, headers: dict[str, str]) -> bool:
        writer.write(partners.signed(key, GOOD, headers, b'{"status":"ok","n":1}'))
        await writer.drain()
        return True

    async def huge_declared(reader: Any, writer: asyncio.StreamWriter, _: dict[str, str]) -> bool:
        writer.write(http_response(200, b"x" * (CAP + 1)))
        await writer.drain()
        return True

    async def huge_chunked(reader: Any, writer: asyncio.StreamWriter, _: dict[str, str]) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(CAP // 512 + 2):
            writer.write(b"200\r\n" + b"x" * 512 + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    partners = Partners(
        own, key, {GOOD: good, HUGE_DECLARED: huge_declared, HUGE_CHUNKED: huge_chunked}
    )
    return partners


def members(partners: Partners, key: NodeSigningKey) -> dict[str, Member]:
    found = {}
    for code, url in partners.urls.items():
        member = stranger_member(code).model_copy(update={"node_url": url})
        if code in ("10", GOOD):
            member = member.model_copy(update={"signing_keys": [key.public_jwk()]})
        found[code] = member
    return found


@pytest.mark.parametrize("sender", ["aiohttp", "httpx"])
def test_both_senders_give_each_partner_the_same_status(tmp_path: Path, sender: str) -> None:
    settings = node_settings(
        tmp_path, "05", partner_deadline_seconds=0.5, max_partner_answer_bytes=CAP
    )
    key = NodeSigningKey.generate()
    partners = broken_and_good_partners("05", key)
    listed = members(partners, key)

    async def run() -> None:
        await partners.start()
        try:
            async with running_federation([settings]) as fed:
                node = fed.nodes["05"].node
                client = PartnerClient(
                    node, transport=httpx.AsyncHTTPTransport() if sender == "httpx" else None
                )
                try:
                    reply = await client.call(listed[GOOD], "POST", "/x", {"q": 1})
                    assert reply.body == {"status": "ok", "n": 1}
                    got: dict[str, str] = {}
                    for code in EXPECTED:
                        try:
                            await client.call(listed[code], "POST", "/x", {"q": 1})
                        except PartnerFailure as failure:
                            got[code] = failure.status
                    assert got == EXPECTED
                    # The good partner still answers on the same pool after all that.
                    again = await client.call(listed[GOOD], "POST", "/x", {"q": 2})
                    assert again.body["n"] == 1
                finally:
                    await client.aclose()
        finally:
            await partners.stop()

    anyio.run(run)


def test_a_closed_sender_holds_no_connections(tmp_path: Path) -> None:
    settings = node_settings(tmp_path, "05")
    key = NodeSigningKey.generate()
    partners = broken_and_good_partners("05", key)
    good = members(partners, key)[GOOD]

    async def run() -> None:
        await partners.start()
        try:
            async with running_federation([settings]) as fed:
                client = PartnerClient(fed.nodes["05"].node)
                await asyncio.gather(
                    *(client.call(good, "POST", "/x", {"q": n}) for n in range(20))
                )
                assert partners.open_connections > 0
                await client.aclose()
                for _ in range(200):  # a bounded wait for the server side to see the closes
                    if partners.open_connections == 0:
                        break
                    await asyncio.sleep(0.01)
                assert partners.open_connections == 0
        finally:
            await partners.stop()

    anyio.run(run)
