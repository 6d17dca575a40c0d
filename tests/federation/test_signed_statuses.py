"""A partner's signed answer binds its HTTP status (`st`), and a caller reads a non-2xx answer
only when it asked to (a witness's signed 409) and the answer is signed."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx

from gateway.federation.client import PartnerClient, PartnerFailure
from gateway.federation.protocol import SIGNATURE_HEADER, request_hash, sign_response
from gateway.identity.signing import NodeSigningKey
from tests.federation.conftest import (
    HandlerTransport,
    RoutingTransport,
    member_for,
    node_settings,
    running_federation,
    stranger_member,
    url_of,
    write_manifest,
)

BODY = b'{"known_size":3,"detail":"consistency proof starts at the wrong size"}'


def test_an_answer_is_read_only_with_the_status_it_was_signed_for(tmp_path: Path) -> None:
    """Partner 20 answers each call as the test says: a status on the wire, and the status it
    signs (or no signature). A 409 is read only if the caller accepts it and it is signed; an
    answer whose wire status differs from the signed one is discarded as `bad_signature`."""
    s05 = node_settings(tmp_path, "05")
    key = NodeSigningKey.generate()
    partner = stranger_member("20").model_copy(update={"signing_keys": [key.public_jwk()]})
    write_manifest([s05], [member_for(s05), partner])
    plan: dict[str, int | None] = {}

    async def answer(request: httpx.Request) -> httpx.Response:
        headers = {}
        if plan["signed"] is not None:
            headers[SIGNATURE_HEADER] = sign_response(
                key,
                sender="20",
                audience="05",
                request_token_hash=request_hash(request.headers[SIGNATURE_HEADER]),
                status=int(plan["signed"]),
                body=BODY,
            )
        return httpx.Response(int(plan["wire"] or 0), content=BODY, headers=headers)

    routing = RoutingTransport()
    routing.add(url_of("20"), HandlerTransport(answer))

    async def run() -> None:
        async with running_federation([s05]) as fed:
            client = PartnerClient(fed.nodes["05"].node, transport=routing)
            try:

                async def outcome(wire: int, signed: int | None, accept: tuple[int, ...]) -> str:
                    plan.update(wire=wire, signed=signed)
                    try:
                        reply = await client.call(partner, "POST", "/x", {"q": 1}, accept=accept)
                    except PartnerFailure as failure:
                        return failure.status
                    assert reply.body["known_size"] == 3
                    return f"read {reply.status_code}"

                assert await outcome(200, 200, ()) == "read 200"
                assert await outcome(409, 409, (409,)) == "read 409"
                # Not accepted, or not signed: an error as any other refusal.
                assert await outcome(409, 409, ()) == "error"
                assert await outcome(409, None, (409,)) == "error"
                # The wire status is not the one signed.
                assert await outcome(200, 409, ()) == "bad_signature"
                assert await outcome(409, 200, (409,)) == "bad_signature"
            finally:
                await client.aclose()

    anyio.run(run)
