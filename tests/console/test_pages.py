"""Console pages and data over HTTP (no browser): audit of every view, filters, exports,
"who looked at this?" and the bytes the browser verifies."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json

from fastapi.testclient import TestClient

from tests.console.conftest import Seeded, sign_in

AUDITOR_API = {"Authorization": "Bearer auditor-" + "x" * 32}


def _console_views(http: TestClient) -> list[dict[str, object]]:
    page = http.get("/v1/audit/entries?operation=audit_access&limit=500", headers=AUDITOR_API)
    return [
        e["entry"]
        for e in page.json()["entries"]
        if str(e["entry"].get("purpose", "")).startswith("console:")
    ]


def test_every_page_view_is_an_audit_entry(console_http) -> None:
    http, _, seeded = console_http
    sign_in(http, "auditor.dpo")
    before = len(_console_views(http))
    for path in (
        "/console/",
        f"/console/entries/{seeded.phone_consult}",
        "/console/who",
        "/console/integrity",
        "/console/signals",
        "/console/charts",
    ):
        assert http.get(path).status_code == 200, path
    views = _console_views(http)
    assert len(views) == before + 6
    purposes = {str(v["purpose"]) for v in views}
    assert {"console:access_log", "console:read_entry", "console:integrity"} <= purposes
    assert all(v["actor"]["user_id"] == "auditor.dpo" for v in views)


def test_filter_narrows_the_access_log(console_http) -> None:
    http, _, seeded = console_http
    sign_in(http, "auditor.dpo")
    page = http.get("/console/", params={"purpose": "safeguarding"})
    assert f'data-index="{seeded.partner_disclose}"' in page.text
    assert f'data-index="{seeded.phone_consult}"' not in page.text
    by_record = http.get("/console/", params={"record_id": "rec-20-0001"})
    for index in (seeded.phone_consult, seeded.partner_disclose):
        assert f'data-index="{index}"' in by_record.text
    assert f'data-index="{seeded.own_surname}"' not in by_record.text


def test_csv_export_follows_the_filter_and_defuses_formulas(console_http) -> None:
    http, _, seeded = console_http
    sign_in(http, "auditor.dpo")
    response = http.get("/console/export.csv", params={"user": "analyst.cl"})
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(int(r["index"]) for r in rows) == sorted(seeded.no_hits)
    assert {r["case_ref"] for r in rows} == {"CL-SWEEP"}


def test_ndjson_export_lines_carry_the_exact_entry_bytes(console_http) -> None:
    http, _, seeded = console_http
    sign_in(http, "auditor.dpo")
    response = http.get("/console/export.ndjson", params={"operation": "disclose"})
    lines = response.content.splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["index"] == seeded.partner_disclose
    # The embedded entry bytes hash to the leaf the log's inclusion proof uses.
    raw = lines[0].split(b', "entry": ', 1)[1][:-1]
    leaf = hashlib.sha256(b"\x00" + raw).hexdigest()
    assert leaf == line["leaf_hash"]
    proof = http.get(f"/v1/audit/proof/inclusion?index={line['index']}&size={line['index'] + 1}")
    assert proof.json()["leaf_hash"] == leaf


def test_entry_bytes_are_what_the_log_committed_to(console_http) -> None:
    http, _, seeded = console_http
    sign_in(http, "auditor.dpo")
    body = http.get(f"/console/api/entries/{seeded.federated}/bytes").json()
    raw = base64.b64decode(body["entry"])
    size = int(http.get("/v1/audit/checkpoint").text.splitlines()[1])
    proof = http.get(f"/v1/audit/proof/inclusion?index={seeded.federated}&size={size}").json()
    assert hashlib.sha256(b"\x00" + raw).hexdigest() == proof["leaf_hash"]
    page = http.get(f"/console/entries/{seeded.federated}")
    assert "Vehicle on ANPR" in page.text  # the sealed justification, opened for the auditor


def _who(http: TestClient, **params: str) -> str:
    response = http.get("/console/who", params=params)
    assert response.status_code == 200
    return response.text


def _found(text: str, seeded: Seeded) -> set[int]:
    return {
        index
        for index in range(seeded.no_hits[-1] + 1)
        if f'href="/console/entries/{index}"' in text
    }


def test_who_looked_matches_identifiers_however_they_are_written(console_http) -> None:
    http, _, seeded = console_http
    sign_in(http, "auditor.dpo")
    by_phone = _who(http, phone="+44 (0)7700 900 123")
    assert _found(by_phone, seeded) == {seeded.phone_consult, seeded.partner_disclose}
    assert "Child seen with this phone" in by_phone
    assert _found(_who(http, vrm="ab12cde"), seeded) == {seeded.federated}
    assert _found(_who(http, name="OKAFOR JO"), seeded) == {seeded.own_surname}
    assert _found(_who(http, phone="07700 900999"), seeded) == set()


def test_who_looked_by_record_id_and_the_question_is_sealed(console_http) -> None:
    http, _, seeded = console_http
    sign_in(http, "auditor.dpo")
    text = _who(http, record_id="rec-20-0001")
    found = _found(text, seeded)
    assert {seeded.phone_consult, seeded.partner_disclose} <= found
    assert seeded.own_surname not in found
    _who(http, phone="07700 900123")
    views = [v for v in _console_views(http) if v["purpose"] == "console:who_looked"]
    # The auditor's own question names a person: it is sealed, never in the clear.
    assert views and all("sealed" in v for v in views)
    assert "900123" not in json.dumps(views)


def test_integrity_page_shows_the_last_reconcile_with_each_partner(console_http) -> None:
    from datetime import UTC, datetime

    import anyio

    from gateway.federation.tables import ReconcileResultRow

    http, _, _ = console_http
    sign_in(http, "auditor.dpo")
    assert "No reconcile has been run yet" in http.get("/console/integrity").text
    node = http.app.state.node

    async def store() -> None:
        async with node.db.sessions() as session:
            for force, problems, note in (("05", 0, None), ("05", 1, "missing at entry 7: gone")):
                session.add(
                    ReconcileResultRow(
                        force=force,
                        checked=4,
                        problems=problems,
                        witnessed_size=12,
                        first_problem=note,
                        ran_at=datetime.now(UTC),
                    )
                )
            await session.commit()

    anyio.run(store)
    page = http.get("/console/integrity").text
    # The latest run for force 05 is the failed one, and it says which entry.
    assert "missing at entry 7: gone" in page
    assert "No reconcile has been run yet" not in page
