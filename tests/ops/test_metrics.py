"""`/metrics`: Prometheus text from a real node, labelled by route template and never by data."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from gateway.records.rotation import rotate_kek
from schemas.examples import example_record
from tests.federation.conftest import (
    member_for,
    node_settings,
    person,
    phone,
    running_federation,
    write_manifest,
)
from tests.gateway.conftest import NodeClient

NUMBER = "+447911123456"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, keyed by (name, sorted labels)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template_never_by_raw_path(ops_node: NodeClient) -> None:
    headers = ops_node.auth()
    record_id = "p-metrics-7f3a"
    record = example_record("person", id=record_id, owner_force="20")
    assert (
        ops_node.http.put(f"/v1/records/{record_id}", json=record, headers=headers).status_code
        == 201
    )
    assert ops_node.http.get(f"/v1/records/{record_id}", headers=headers).status_code == 200
    assert ops_node.http.get("/no/such/path/p-secret-9").status_code == 404

    response = ops_node.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    template = "/v1/records/{record_id}"
    assert (
        value(text, "gateway_http_requests_total", route=template, method="PUT", status="201") == 1
    )
    assert (
        value(text, "gateway_http_requests_total", route=template, method="GET", status="200") == 1
    )
    assert (
        value(
            text,
            "gateway_http_request_duration_seconds_count",
            route=template,
            method="PUT",
        )
        == 1
    )
    assert (
        value(text, "gateway_http_requests_total", route="unmatched", method="GET", status="404")
        == 1
    )
    # No identifier from a path, and no personal data from the record, reaches any label.
    assert record_id not in text
    assert "p-secret-9" not in text
    family = record["body"]["names"][0]["family_name"]
    assert family not in text


def test_audit_and_key_rotation_state_are_exposed(ops_node: NodeClient) -> None:
    headers = ops_node.auth()
    for n in range(3):
        record = example_record("person", id=f"p-{n}", owner_force="20")
        ops_node.http.put(f"/v1/records/p-{n}", json=record, headers=headers)
    node: Any = ops_node.http.app.state.node  # type: ignore[attr-defined]

    text = ops_node.http.get("/metrics").text
    assert value(text, "gateway_audit_log_entries") == node.audit.log.size() >= 3
    assert value(text, "gateway_audit_append_duration_seconds_count") >= 3
    assert value(text, "gateway_kek_current_version") == 1
    assert value(text, "process_resident_memory_bytes") > 0
    assert value(text, "gateway_kek_keys_on_old_versions") == 0

    # A new KEK version before re-wrapping: every data key and the index secret are behind.
    node.keys.kek.create_version()
    text = ops_node.http.get("/metrics").text
    assert value(text, "gateway_kek_current_version") == 2
    assert value(text, "gateway_kek_keys_on_old_versions") == 3 + 1

    async def rewrap() -> None:
        await rotate_kek(sessions=node.db.sessions, kek=node.keys.kek, create_version=False)

    ops_node.http.portal.call(rewrap)  # type: ignore[attr-defined]
    text = ops_node.http.get("/metrics").text
    assert value(text, "gateway_kek_keys_on_old_versions") == 0


def test_federation_calls_and_policy_decisions_are_counted(tmp_path: Path) -> None:
    settings = [node_settings(tmp_path, f) for f in ("05", "20", "01")]
    members = [member_for(s) for s in settings]
    # Force 01 is listed but its node is not running: its calls are "unreachable".
    write_manifest(settings, members)

    async def run() -> None:
        async with running_federation(settings[:2]) as fed:
            await fed.nodes["20"].load(
                [
                    phone("20", "ph-20-1", "07911 123456"),
                    person("20", "p-20-1", "Jon", "Doe", "1990-04-01"),
                ]
            )
            response = await fed.nodes["05"].search(mode="hits", phone=NUMBER)
            assert response.status_code == 200, response.text
            asking = (await fed.nodes["05"].http.get("/metrics")).text
            answering = (await fed.nodes["20"].http.get("/metrics")).text
            # The same analyst asks again: the answering force finds its decision kept, and the
            # asking node remembers the analyst's tokens (the helper mints one per search).
            again = await fed.nodes["05"].search(mode="hits", phone=NUMBER)
            assert again.status_code == 200, again.text
            answering_again = (await fed.nodes["20"].http.get("/metrics")).text
            asking_again = (await fed.nodes["05"].http.get("/metrics")).text
            kept = "gateway_policy_kept_decision_lookups"
            assert value(answering_again, kept, result="hit") == (
                value(answering, kept, result="hit") + 1
            )
            assert value(answering_again, "gateway_policy_kept_decisions") >= 1
            assert value(asking_again, "gateway_analyst_tokens_remembered") >= 1

            statuses = {r["force"]: r["status"] for r in response.json()["results"]}
            assert statuses["20"] == "ok"
            down = statuses["01"]
            calls = "gateway_federation_calls_total"
            assert value(asking, calls, partner="20", operation="search", status="ok") == 1
            assert value(asking, calls, partner="01", operation="search", status=down) == 1
            # The answering force decided on its matching record; the asking one only asked.
            decided = sum(
                v
                for (name, _labels), v in samples(answering).items()
                if name == "gateway_policy_decisions_total"
            )
            assert decided >= 1
            # Each app has its own registry: the partner made no outbound calls.
            assert value(answering, calls, partner="05", operation="search", status="ok") == 0
            for text in (asking, answering):
                assert "7911" not in text and "Doe" not in text

    asyncio.run(run())
