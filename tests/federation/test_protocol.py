"""The signed node-to-node protocol: requests, responses, replay cache, and the partner endpoint's
refusals (each 401 problem+json and audited)."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from joserfc import jwt

from audit.entry import SecurityEvent, decode_entry
from gateway.federation import protocol
from gateway.federation.protocol import (
    SIGNATURE_HEADER,
    ProtocolError,
    ReplayCache,
    request_hash,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)
from gateway.identity.signing import NodeSigningKey
from schemas.enums import S62Operation
from tests.federation.conftest import (
    member_for,
    node_settings,
    running_federation,
    stranger_member,
    write_manifest,
)

ALICE = NodeSigningKey.generate()  # node 05
BOB = NodeSigningKey.generate()  # node 20
NOW = 1_800_000_000
BODY = b'{"q":1}'
PATH = "/federation/v1/search"


# A partner search request body as a requesting node sends it (signed per test).
PARTNER_SEARCH_BODY = json.dumps(
    {
        "request_id": "r1",
        "principal": {"user_id": "a", "force": "05", "roles": ["analyst"], "vetting": "NPPV2"},
        "context": {
            "purpose": "investigation",
            "justification": "j",
            "case_ref": "C1",
            "mode": "hits",
        },
        "terms": {"phone": "+447911123456"},
    }
).encode()


def keys_of(sender: str) -> list[dict[str, Any]]:
    if sender == "05":
        return [ALICE.public_jwk()]
    raise ProtocolError(protocol.UNKNOWN_MEMBER, "unknown")


def verify(
    token: str,
    body: bytes = BODY,
    *,
    cache: ReplayCache | None = None,
    now: int = NOW,
    audience: str = "20",
    path: str = PATH,
) -> protocol.RequestClaims:
    return verify_request(
        token,
        body,
        audience=audience,
        method="POST",
        path=path,
        keys_of=keys_of,
        replay_cache=cache if cache is not None else ReplayCache(),
        now=now,
    )


def token(**kwargs: Any) -> str:
    values: dict[str, Any] = {
        "sender": "05",
        "audience": "20",
        "method": "POST",
        "path": PATH,
        "body": BODY,
        "now": NOW,
    }
    values.update(kwargs)
    key = values.pop("key", ALICE)
    return sign_request(key, **values)


def reason(excinfo: pytest.ExceptionInfo[ProtocolError]) -> str:
    return excinfo.value.reason


def test_a_valid_request_verifies_once_and_its_replay_is_rejected() -> None:
    cache = ReplayCache()
    signed = token()
    claims = verify(signed, cache=cache)
    assert (claims.sender, claims.audience, claims.path) == ("05", "20", PATH)
    with pytest.raises(ProtocolError) as excinfo:
        verify(signed, cache=cache)
    assert reason(excinfo) == protocol.REPLAY


@pytest.mark.parametrize(
    ("signed", "kwargs", "expected"),
    [
        (lambda: token(key=BOB), {}, protocol.BAD_SIGNATURE),
        (lambda: token(sender="99"), {}, protocol.UNKNOWN_MEMBER),
        (lambda: token(), {"body": b'{"q":2}'}, protocol.BODY_HASH_MISMATCH),
        (lambda: token(), {"now": NOW + 120}, protocol.EXPIRED),
        (lambda: token(), {"now": NOW - 120}, protocol.EXPIRED),
        (lambda: token(), {"audience": "01"}, protocol.WRONG_AUDIENCE),
        (lambda: token(), {"path": "/federation/v1/disclose"}, protocol.WRONG_TARGET),
        (lambda: "not.a.token", {}, protocol.MALFORMED),
    ],
)
def test_bad_requests_are_refused_with_their_reason(
    signed: Any, kwargs: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ProtocolError) as excinfo:
        verify(signed(), **kwargs)
    assert reason(excinfo) == expected


def test_a_tampered_payload_does_not_verify() -> None:
    header, payload, sig = token().split(".")
    forged = json.loads(__import__("base64").urlsafe_b64decode(payload + "=="))
    forged["aud"] = "01"
    raw = __import__("base64").urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(ProtocolError) as excinfo:
        verify(f"{header}.{raw}.{sig}", audience="01")
    assert reason(excinfo) == protocol.BAD_SIGNATURE


def test_request_lifetime_is_capped() -> None:
    with pytest.raises(ValueError, match="at most"):
        token(ttl_seconds=600)


def test_a_failed_request_does_not_fill_the_replay_cache() -> None:
    cache = ReplayCache()
    signed = token()
    with pytest.raises(ProtocolError):
        verify(signed, b"other", cache=cache)
    assert len(cache) == 0
    verify(signed, cache=cache)


def test_response_binds_the_request_hash_and_body() -> None:
    request_token = token()
    body = b'{"status":"ok"}'
    signed = sign_response(
        BOB,
        sender="20",
        audience="05",
        request_token_hash=request_hash(request_token),
        status=200,
        body=body,
        now=NOW,
    )
    claims = verify_response(
        signed,
        body,
        sender="20",
        audience="05",
        keys=[BOB.public_jwk()],
        request_token=request_token,
        now=NOW,
    )
    assert claims.status == 200
    with pytest.raises(ProtocolError) as excinfo:
        verify_response(
            signed,
            body,
            sender="20",
            audience="05",
            keys=[BOB.public_jwk()],
            request_token=token(),
            now=NOW,
        )
    assert reason(excinfo) == protocol.REQUEST_HASH_MISMATCH
    with pytest.raises(ProtocolError) as excinfo:
        verify_response(
            signed,
            b"{}",
            sender="20",
            audience="05",
            keys=[BOB.public_jwk()],
            request_token=request_token,
            now=NOW,
        )
    assert reason(excinfo) == protocol.BODY_HASH_MISMATCH
    with pytest.raises(ProtocolError) as excinfo:
        verify_response(
            signed,
            body,
            sender="20",
            audience="05",
            keys=[ALICE.public_jwk()],
            request_token=request_token,
            now=NOW,
        )
    assert reason(excinfo) == protocol.BAD_SIGNATURE
    with pytest.raises(ProtocolError):
        verify_response(
            None,
            body,
            sender="20",
            audience="05",
            keys=[BOB.public_jwk()],
            request_token=request_token,
            now=NOW,
        )


def test_partner_endpoint_refuses_and_audits_bad_requests(tmp_path: Path) -> None:
    s05 = node_settings(tmp_path, "05")
    s20 = node_settings(tmp_path, "20")
    suspended = member_for(node_settings(tmp_path, "01"), status="suspended")
    write_manifest([s05, s20], [member_for(s05), member_for(s20), suspended, stranger_member("03")])
    from gateway.identity.signing import load_signing_key_file

    key05 = load_signing_key_file(s05.signing_key_file)
    key01 = load_signing_key_file(tmp_path / "node-01" / "node-signing.pem")
    body = PARTNER_SEARCH_BODY

    def signed(key: NodeSigningKey, sender: str, payload: bytes = body) -> str:
        return sign_request(
            key, sender=sender, audience="20", method="POST", path=PATH, body=payload
        )

    async def run() -> None:
        async with running_federation([s05, s20]) as fed:
            http = fed.nodes["20"].http
            good = signed(key05, "05")
            first = await http.post(PATH, content=body, headers={SIGNATURE_HEADER: good})
            assert first.status_code == 200, first.text
            cases = {
                "replay": (good, body),
                "body_hash_mismatch": (signed(key05, "05"), body + b" "),
                "suspended_member": (signed(key01, "01"), body),
                "bad_signature": (signed(key01, "03"), body),
                "unknown_member": (signed(key05, "99"), body),
                "unsigned": (None, body),
            }
            for expected, (tok, payload) in cases.items():
                headers = {SIGNATURE_HEADER: tok} if tok else {}
                response = await http.post(PATH, content=payload, headers=headers)
                assert response.status_code == 401, (expected, response.text)
                assert response.headers["content-type"].startswith("application/problem+json")
                assert response.json()["reason"] == expected
            log = fed.nodes["20"].node.audit.log
            failures = [
                e.purpose
                for e in map(decode_entry, log.entries(0, log.size()))
                if e.kind == SecurityEvent.AUTH_FAILURE
            ]
            assert sorted(failures) == sorted(f"federation:{r}" for r in cases)

    anyio.run(run)


def hand_signed(key: NodeSigningKey, **claims: Any) -> str:
    """A request JWS built by hand rather than by `sign_request`, which refuses a lifetime over
    the maximum: the signature is valid, the claims are whatever the test gives."""
    values: dict[str, Any] = {
        "iss": "05",
        "aud": "20",
        "iat": NOW,
        "exp": NOW + 30,
        "jti": secrets.token_urlsafe(18),
        "htm": "POST",
        "htu": PATH,
        "bh": protocol.body_hash(BODY),
    }
    values.update(claims)
    header = {"alg": "Ed25519", "kid": key.kid, "typ": protocol.REQUEST_TYPE}
    return jwt.encode(header, values, key.jwk, algorithms=protocol.ALGORITHMS)


def test_a_request_signed_to_live_longer_than_the_maximum_is_refused_while_fresh() -> None:
    """Validly signed by a member, addressed correctly, and within its own validity at the moment
    it arrives, but issued to live 600 s: refused as `expired`, and it takes no replay slot. The
    same claims with the longest allowed lifetime verify."""
    cache = ReplayCache()
    for now in (NOW, NOW + 59, NOW + 599):
        with pytest.raises(ProtocolError, match="at most 60 s") as excinfo:
            verify(hand_signed(ALICE, exp=NOW + 600), cache=cache, now=now)
        assert reason(excinfo) == protocol.EXPIRED
    assert len(cache) == 0
    longest = hand_signed(ALICE, exp=NOW + protocol.MAX_TTL_SECONDS)
    assert verify(longest, cache=cache).expires_at == NOW + protocol.MAX_TTL_SECONDS


def test_partner_endpoint_refuses_and_audits_expired_and_misaddressed_requests(
    tmp_path: Path,
) -> None:
    """Each request is validly signed by member 05 over the body it carries, but one expired
    ten minutes ago, one was issued to live ten minutes, and one is addressed to node 01. Node
    20 answers each with 401 problem+json naming the reason, audits each refusal with its reason,
    and discloses nothing; the same body properly signed is then answered."""
    s05 = node_settings(tmp_path, "05")
    s20 = node_settings(tmp_path, "20")
    write_manifest([s05, s20], [member_for(s05), member_for(s20)])
    from gateway.identity.signing import load_signing_key_file

    key05 = load_signing_key_file(s05.signing_key_file)
    body = PARTNER_SEARCH_BODY

    def signed(**kwargs: Any) -> str:
        values: dict[str, Any] = {"sender": "05", "audience": "20", "method": "POST"}
        values.update(kwargs)
        return sign_request(key05, path=PATH, body=body, **values)

    async def run() -> None:
        async with running_federation([s05, s20]) as fed:
            http = fed.nodes["20"].http
            now = int(time.time())
            cases = [
                ("expired", signed(now=now - 600)),
                (
                    "expired",
                    hand_signed(key05, iat=now, exp=now + 600, bh=protocol.body_hash(body)),
                ),
                ("wrong_audience", signed(audience="01")),
            ]
            for expected, tok in cases:
                response = await http.post(PATH, content=body, headers={SIGNATURE_HEADER: tok})
                assert response.status_code == 401, (expected, response.text)
                assert response.headers["content-type"].startswith("application/problem+json")
                assert response.json()["reason"] == expected
                assert SIGNATURE_HEADER not in response.headers
            log = fed.nodes["20"].node.audit.log
            log.flush()
            found = [decode_entry(raw) for raw in log.entries(0, log.size())]
            failures = [e for e in found if e.kind == SecurityEvent.AUTH_FAILURE]
            assert [e.purpose for e in failures] == [f"federation:{r}" for r, _ in cases]
            assert all(e.decision == "denied" for e in failures)
            assert not [e for e in found if e.kind == S62Operation.DISCLOSE]

            good = await http.post(PATH, content=body, headers={SIGNATURE_HEADER: signed()})
            assert good.status_code == 200, good.text
            disclosed = [
                decode_entry(raw)
                for raw in log.entries(0, log.size())
                if decode_entry(raw).kind == S62Operation.DISCLOSE
            ]
            assert [e.recipient_force for e in disclosed] == ["05"]

    anyio.run(run)
