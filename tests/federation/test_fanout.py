"""Federated search in one process: three real nodes plus misbehaving partners over ASGI."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from audit.entry import SecurityEvent, decode_entry
from gateway.federation.payloads import PartnerAnswer
from gateway.federation.protocol import SIGNATURE_HEADER, sign_response
from gateway.identity.signing import NodeSigningKey
from gateway.search import service as search_service
from schemas.enums import S62Operation
from tests.federation.conftest import (
    Federation,
    HandlerTransport,
    RoutingTransport,
    member_for,
    node_settings,
    person,
    phone,
    running_federation,
    stranger_member,
    url_of,
    write_manifest,
)

NUMBER = "+447911123456"


def entries(fed: Federation, force: str) -> list[Any]:
    log = fed.nodes[force].node.audit.log
    return [decode_entry(raw) for raw in log.entries(0, log.size())]


async def seed(fed: Federation) -> None:
    await fed.nodes["20"].load(
        [phone("20", "ph-20-1", "07911 123456"), person("20", "p-20-1", "Jon", "Doe", "1990-04-01")]
    )
    await fed.nodes["01"].load([phone("01", "ph-01-1", NUMBER)])
    await fed.nodes["05"].load([phone("05", "ph-05-1", NUMBER)])


def three(tmp_path: Path) -> list[Any]:
    settings = [node_settings(tmp_path, f) for f in ("05", "20", "01")]
    write_manifest(settings, [member_for(s) for s in settings])
    return settings


def by_force(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["force"]: r for r in body["results"]}


def test_hits_search_reaches_every_force_and_both_sides_log(tmp_path: Path) -> None:
    settings = three(tmp_path)

    async def run() -> None:
        async with running_federation(settings) as fed:
            await seed(fed)
            response = await fed.nodes["05"].search(mode="hits", phone="07911123456")
            assert response.status_code == 200, response.text
            results = by_force(response.json())
            assert {f: r["status"] for f, r in results.items()} == {
                "01": "ok",
                "05": "ok",
                "20": "ok",
            }
            assert results["20"]["hit_count"] == 1
            assert results["20"]["hits"] == [
                {
                    "record_id": "ph-20-1",
                    "kind": "phone",
                    "outcome": results["20"]["hits"][0]["outcome"],
                }
            ]
            # Hits mode carries no record content.
            assert all("record" not in h for r in results.values() for h in r["hits"])
            # The answering node logged the disclosure to 05, terms sealed.
            disclosed = [e for e in entries(fed, "20") if e.kind == S62Operation.DISCLOSE]
            assert len(disclosed) == 1
            assert disclosed[0].recipient_force == "05"
            assert disclosed[0].sealed is not None
            assert NUMBER not in str(disclosed[0].to_json())
            # The requester logged the query first, then the completion with both receipts.
            mine = entries(fed, "05")
            kinds = [e.kind for e in mine]
            consult = kinds.index(S62Operation.CONSULT)
            done = kinds.index(SecurityEvent.SEARCH_COMPLETED)
            assert consult < done
            receipts = {r["force"]: r for r in mine[done].receipts}
            assert set(receipts) == {"01", "20"}
            assert receipts["20"]["index"] == results["20"]["receipt_index"]
            leaf = fed.nodes["20"].node.audit.log
            from audit.merkle import leaf_hash

            assert (
                receipts["20"]["leaf_hash"] == leaf_hash(leaf.entry(receipts["20"]["index"])).hex()
            )

    anyio.run(run)


def test_records_mode_groups_the_same_phone_across_forces(tmp_path: Path) -> None:
    settings = three(tmp_path)

    async def run() -> None:
        async with running_federation(settings) as fed:
            await seed(fed)
            response = await fed.nodes["05"].search(mode="records", phone=NUMBER)
            assert response.status_code == 200, response.text
            body = response.json()
            results = by_force(body)
            assert results["20"]["hits"][0]["record"]["body"]["number"] == NUMBER
            groups = {g["key"]: g for g in body["groups"]}
            assert f"phone:{NUMBER}" in groups
            assert {"05", "20"} <= set(groups[f"phone:{NUMBER}"]["forces"])

    anyio.run(run)


async def truncations(fed: Federation, force: str) -> float:
    """How many of this node's local searches were cut at the candidate cap (its /metrics)."""
    text = (await fed.nodes[force].http.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_search_candidates_truncated_total"
    )


def smiths(force: str, count: int, dob: str) -> list[dict[str, Any]]:
    return [person(force, f"p-{force}-{n}", f"Given{n}", "Smith", dob) for n in range(count)]


def test_a_search_cut_at_the_candidate_cap_is_flagged_for_that_force_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every node in this process shares the cap: 20 holds five Smiths born in 1970, the
    asking force 05 four born in 1975, 01 one born in 1970. The flag each force reports is its
    own, and a partner's reaches the analyst from its signed answer."""
    monkeypatch.setattr(search_service, "MAX_CANDIDATES", 3)
    settings = three(tmp_path)

    async def run() -> None:
        async with running_federation(settings) as fed:
            await fed.nodes["20"].load(smiths("20", 5, "1970-01-01"))
            await fed.nodes["05"].load(smiths("05", 4, "1975-05-05"))
            await fed.nodes["01"].load(smiths("01", 1, "1970-01-01"))

            async def flags(**terms: str) -> dict[str, bool]:
                response = await fed.nodes["05"].search(mode="hits", **terms)
                assert response.status_code == 200, response.text
                results = by_force(response.json())
                assert results["20"]["status"] == "ok"
                assert results["20"]["receipt_index"] is not None
                return {f: r["truncated"] for f, r in results.items()}

            assert await flags(name="Smith") == {"01": False, "05": True, "20": True}
            # With the date of birth only the partner still holds more than the cap.
            both = await flags(name="Smith", dob="1970-01-01")
            assert both == {"01": False, "05": False, "20": True}
            assert [await truncations(fed, f) for f in ("05", "20", "01")] == [1, 2, 0]

    anyio.run(run)


async def last_unsealed(fed: Federation, force: str, kind: Any) -> tuple[Any, Any]:
    """The force's latest entry of this kind, and its sealed payload as the force's auditors
    read it (`GET /v1/audit/entries/{index}`)."""
    running = fed.nodes[force]
    index, entry = [(i, e) for i, e in enumerate(entries(fed, force)) if e.kind == kind][-1]
    token = running.settings.auditor_token.get_secret_value()
    response = await running.http.get(
        f"/v1/audit/entries/{index}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return entry, response.json()["sealed_payload"]


def test_a_truncated_answer_is_recorded_sealed_on_both_sides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flag discloses something (this force holds more records with these identifiers than
    the cap), so it is evidence: the answering force's disclosure entry seals the cap, and the
    asking force's completion entry seals which forces answered truncated. Entries of answers
    that were not cut carry neither."""
    monkeypatch.setattr(search_service, "MAX_CANDIDATES", 3)
    settings = three(tmp_path)

    async def run() -> None:
        async with running_federation(settings) as fed:
            doe = person("20", "p-20-doe", "Jon", "Doe", "1990-04-01")
            await fed.nodes["20"].load([*smiths("20", 5, "1970-01-01"), doe])
            await fed.nodes["05"].load(smiths("05", 4, "1975-05-05"))
            await fed.nodes["01"].load(smiths("01", 1, "1970-01-01"))

            async def search(**terms: str) -> dict[str, bool]:
                response = await fed.nodes["05"].search(mode="hits", **terms)
                assert response.status_code == 200, response.text
                return {f: r["truncated"] for f, r in by_force(response.json()).items()}

            # The own force and partner 20 are cut.
            assert await search(name="Smith") == {"01": False, "05": True, "20": True}
            cut, cut_sealed = await last_unsealed(fed, "20", S62Operation.DISCLOSE)
            assert cut_sealed["candidates_truncated"] == 3
            assert cut_sealed["terms"] == {"name": "Smith"}
            assert "truncated" not in (cut.decision or "")
            whole, whole_sealed = await last_unsealed(fed, "01", S62Operation.DISCLOSE)
            assert whole.recipient_force == "05"
            assert "candidates_truncated" not in whole_sealed
            done, done_sealed = await last_unsealed(fed, "05", SecurityEvent.SEARCH_COMPLETED)
            assert done_sealed == {"truncated_forces": ["05", "20"]}
            assert "truncated" not in (done.decision or "")

            # Only the partner is cut.
            assert await search(name="Smith", dob="1970-01-01") == {
                "01": False,
                "05": False,
                "20": True,
            }
            _, cut_sealed = await last_unsealed(fed, "20", S62Operation.DISCLOSE)
            assert cut_sealed["candidates_truncated"] == 3
            _, done_sealed = await last_unsealed(fed, "05", SecurityEvent.SEARCH_COMPLETED)
            assert done_sealed == {"truncated_forces": ["20"]}

            # Nobody is cut: no trace of the flag on either side.
            assert await search(name="Jon Doe") == {"01": False, "05": False, "20": False}
            for partner in ("20", "01"):
                _, sealed = await last_unsealed(fed, partner, S62Operation.DISCLOSE)
                assert set(sealed) == {"terms", "justification"}
            done, done_sealed = await last_unsealed(fed, "05", SecurityEvent.SEARCH_COMPLETED)
            assert done.sealed is None and done_sealed is None

    anyio.run(run)


def test_an_answer_from_a_node_that_predates_the_flag_is_not_truncated() -> None:
    body = {
        "status": "ok",
        "force": "20",
        "mode": "hits",
        "hit_count": 0,
        "hits": [],
        "decision": "",
        "receipt": {
            "force": "20",
            "origin": "force-20.test/log",
            "index": 0,
            "leaf_hash": "0" * 64,
            "checkpoint": "note",
        },
    }
    assert PartnerAnswer.model_validate(body).truncated is False


def _signed_reply(
    key: NodeSigningKey, force: str, request: httpx.Request, body: bytes, *, rqh: str | None = None
) -> httpx.Response:
    from gateway.federation.protocol import request_hash

    token = request.headers[SIGNATURE_HEADER]
    signature = sign_response(
        key,
        sender=force,
        audience="05",
        request_token_hash=rqh or request_hash(token),
        status=200,
        body=body,
    )
    return httpx.Response(200, content=body, headers={SIGNATURE_HEADER: signature})


def test_each_misbehaving_partner_gets_its_status_and_the_others_still_answer(
    tmp_path: Path,
) -> None:
    s05 = node_settings(tmp_path, "05", partner_deadline_seconds=0.5)
    s20 = node_settings(tmp_path, "20")
    never = asyncio.Event()
    wrong_hash_key = NodeSigningKey.generate()
    garbage_key = NodeSigningKey.generate()
    strangers = {code: stranger_member(code) for code in ("01", "03", "04", "06", "07")}
    wrong_hash = stranger_member("10").model_copy(
        update={"signing_keys": [wrong_hash_key.public_jwk()]}
    )
    signed_garbage = stranger_member("11").model_copy(
        update={"signing_keys": [garbage_key.public_jwk()]}
    )
    write_manifest(
        [s05, s20],
        [member_for(s05), member_for(s20), *strangers.values(), wrong_hash, signed_garbage],
    )

    async def slow(request: httpx.Request) -> httpx.Response:
        await never.wait()
        return httpx.Response(200)

    async def crash(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"detail": "boom"})

    async def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"\x00not json at all")

    async def forged(request: httpx.Request) -> httpx.Response:
        return _signed_reply(NodeSigningKey.generate(), "07", request, b'{"status":"ok"}')

    async def replayed(request: httpx.Request) -> httpx.Response:
        return _signed_reply(wrong_hash_key, "10", request, b'{"status":"ok"}', rqh="x" * 43)

    async def nonsense(request: httpx.Request) -> httpx.Response:
        return _signed_reply(garbage_key, "11", request, b"[1, 2, 3]")

    routing = RoutingTransport()
    for code, handler in {
        "03": slow,
        "04": crash,
        "06": garbage,
        "07": forged,
        "10": replayed,
        "11": nonsense,
    }.items():
        routing.add(url_of(code), HandlerTransport(handler))

    async def run() -> None:
        async with running_federation([s05, s20], routing=routing) as fed:
            await fed.nodes["20"].load([phone("20", "ph-20-1", NUMBER)])
            response = await fed.nodes["05"].search(mode="hits", phone=NUMBER)
            assert response.status_code == 200, response.text
            statuses = {f: r["status"] for f, r in by_force(response.json()).items()}
            assert statuses == {
                "01": "unreachable",
                "03": "timeout",
                "04": "error",
                "05": "ok",
                "06": "bad_signature",
                "07": "bad_signature",
                "10": "bad_signature",
                "11": "error",
                "20": "ok",
            }
            assert by_force(response.json())["20"]["hit_count"] == 1
            done = [e for e in entries(fed, "05") if e.kind == SecurityEvent.SEARCH_COMPLETED]
            assert [r["force"] for r in done[-1].receipts] == ["20"]

    anyio.run(run)


def test_partner_whose_audit_store_fails_answers_nothing(tmp_path: Path) -> None:
    settings = three(tmp_path)

    async def run() -> None:
        async with running_federation(settings) as fed:
            await seed(fed)
            store = fed.nodes["20"].node.audit.log.store

            def broken(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("disk gone")

            store.append = broken  # type: ignore[method-assign]
            response = await fed.nodes["05"].search(mode="records", phone=NUMBER)
            assert response.status_code == 200, response.text
            results = by_force(response.json())
            assert results["20"]["status"] == "error"
            assert results["20"]["hits"] == []
            assert results["01"]["status"] == "ok"
            assert not [e for e in entries(fed, "20") if e.kind == S62Operation.DISCLOSE]

    anyio.run(run)


def test_circuit_opens_after_repeated_failures(tmp_path: Path) -> None:
    s05 = node_settings(tmp_path, "05")
    calls = 0

    async def crash(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(500)

    write_manifest([s05], [member_for(s05), stranger_member("04")])
    routing = RoutingTransport()
    routing.add(url_of("04"), HandlerTransport(crash))

    async def run() -> None:
        async with running_federation([s05], routing=routing) as fed:
            details = []
            for _ in range(5):
                response = await fed.nodes["05"].search(mode="hits", phone=NUMBER)
                details.append(by_force(response.json())["04"])
            assert calls == 3
            assert details[-1]["status"] == "unreachable"
            assert "circuit" in details[-1]["detail"]

    anyio.run(run)


@pytest.mark.parametrize("mode", ["hits", "records"])
def test_search_without_terms_is_refused(tmp_path: Path, mode: str) -> None:
    settings = three(tmp_path)

    async def run() -> None:
        async with running_federation(settings) as fed:
            response = await fed.nodes["05"].search(mode=mode)
            assert response.status_code == 400

    anyio.run(run)
