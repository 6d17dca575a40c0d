"""Secrets and personal data hygiene: a demo-like scenario on two nodes (05 owns the records, 20's
analyst searches and asks for disclosure) with planted sentinel values, at DEBUG log level.

Sentinels: a name, a phone number, a free-text narrative, a justification, an analyst token, a
force system's access token and client secret, the auditor token, and key material read from
the nodes' key files. Scanned: every log line (stderr and the standard library's records), every
error body, every /metrics line and the log of an unexpected exception whose message carries
personal data. None may appear. The scenario also proves the sentinels really flowed: the
search finds the planted records and the auditor can unseal the justification.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import structlog
from fastapi import FastAPI

from tests.federation.conftest import Federation, member_for, node_settings, running_federation
from tests.federation.conftest import write_manifest as write_fed_manifest

FAMILY = "Sentinelfamily"
GIVEN = "Quillonsentinel"
PHONE_E164 = "+447912345678"
PHONE_TYPED = "07912 345678"
NARRATIVE = "SENTINEL-NARRATIVE-4b2e workers collected by van"
JUSTIFICATION = "SENTINEL-JUSTIFY-8c1f enquiry into the line holder"
BAD_SECRET = "SENTINEL-WRONG-SECRET-71aa"
BAD_TOKEN = "SENTINEL.BAD.TOKEN-0d3c"
CRASH_TEXT = f"{FAMILY} lives at 1 Sentinel Road"


def _key_material(settings: Any) -> list[str]:
    """Secret strings from a node's key files: each base64/PEM line long enough to be unique."""
    found: list[str] = []
    for path in (settings.kek_path, settings.signing_key_file, settings.audit_key_file):
        if not Path(path).exists():
            continue
        text = Path(path).read_text(encoding="utf-8")
        if text.lstrip().startswith("{"):
            found.extend(_long_strings(json.loads(text)))
        else:
            found.extend(
                line.strip()
                for line in text.splitlines()
                if len(line.strip()) >= 32 and not line.startswith("-----")
            )
    return found


def _long_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _long_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _long_strings(v)]
    return [value] if isinstance(value, str) and len(value) >= 32 else []


def _records() -> list[dict[str, Any]]:
    from schemas.examples import example_record

    person = example_record("person", id="sent-person", owner_force="05")
    person["body"]["names"][0].update(given_names=GIVEN, family_name=FAMILY)
    phone = example_record("phone", id="sent-phone", owner_force="05")
    phone["body"]["number"] = PHONE_E164
    report = example_record("intelligence_report", id="sent-report", owner_force="05")
    report["body"]["text"] = NARRATIVE
    return [person, phone, report]


def _crash_route(app: FastAPI) -> None:
    """An endpoint that fails the way careless code does: personal data in the exception message
    and in a log call's keys. The node's own error path must keep both out of logs and bodies."""
    careless = structlog.get_logger("careless")

    async def crash() -> None:
        careless.info(
            "careless.logged", name=CRASH_TEXT, phone=PHONE_E164, justification=JUSTIFICATION
        )
        raise ValueError(CRASH_TEXT)

    app.add_api_route("/test-only/crash", crash, methods=["GET"])


@pytest.mark.slow
def test_no_sentinel_reaches_logs_error_bodies_metrics_or_traces(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Loopback URLs (the token endpoint refuses plain http elsewhere), one host name per node
    # because the in-process transport routes partner calls by host.
    urls = {"05": "http://localhost:8105", "20": "http://127.0.0.1:8120"}
    settings = [
        node_settings(tmp_path, force, node_url=url, log_level="DEBUG", log_json=True)
        for force, url in urls.items()
    ]
    write_fed_manifest(settings, [member_for(s) for s in settings])
    error_bodies: list[str] = []
    metrics: list[str] = []
    secrets: list[str] = []
    proofs: dict[str, Any] = {}

    def keep_errors(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            error_bodies.append(response.text)
        return response

    async def scenario(fed: Federation) -> None:
        owner, asker = fed.nodes["05"], fed.nodes["20"]
        for running in (owner, asker):
            _crash_route(running.app)
        token = (
            await owner.http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(owner.client_id, owner.secret),
            )
        ).json()["access_token"]
        system = {"Authorization": f"Bearer {token}"}
        analyst_token = asker.analyst_token(vetting="NPPV3")
        analyst = {"Authorization": f"Bearer {analyst_token}"}
        auditor_token = asker.settings.auditor_token.get_secret_value()
        secrets.extend([token, analyst_token, auditor_token, owner.secret, asker.secret])
        for running in (owner, asker):
            secrets.extend(_key_material(running.settings))

        for record in _records():
            stored = await owner.http.put(
                f"/v1/records/{record['id']}", json=record, headers=system
            )
            assert stored.status_code == 201, stored.text

        context = {"purpose": "investigation", "justification": JUSTIFICATION, "case_ref": "OP-S-1"}
        hits = keep_errors(
            await asker.http.post(
                "/v1/search",
                json={**context, "mode": "hits", "phone": PHONE_TYPED},
                headers=analyst,
            )
        )
        assert hits.status_code == 200, hits.text
        owner_result = next(r for r in hits.json()["results"] if r["force"] == "05")
        proofs["phone_hits"] = owner_result["hit_count"]
        named = keep_errors(
            await asker.http.post(
                "/v1/search",
                json={
                    **context,
                    "mode": "records",
                    "name": f"{GIVEN} {FAMILY}",
                    "dob": "2001-07-14",
                },
                headers=analyst,
            )
        )
        proofs["name_hits"] = next(r for r in named.json()["results"] if r["force"] == "05")[
            "hit_count"
        ]
        disclosed = keep_errors(
            await asker.http.post(
                "/v1/records/05/sent-report/disclose", json=context, headers=analyst
            )
        )
        proofs["disclosed"] = disclosed.json().get("outcome")

        # Refusals and bad input, each carrying a sentinel that must not be echoed.
        low = asker.analyst_token(vetting="NONE")
        keep_errors(
            await asker.http.post(
                "/v1/search",
                json={**context, "mode": "records", "phone": PHONE_TYPED},
                headers={"Authorization": f"Bearer {low}"},
            )
        )
        probes = [
            ("POST", "/v1/search", {"justification": JUSTIFICATION, "phone": PHONE_TYPED}, analyst),
            ("POST", "/v1/search", {**context, "name": FAMILY, "dob": PHONE_TYPED}, analyst),
            ("POST", "/v1/search", {**context, "phone": PHONE_TYPED, "x": NARRATIVE}, analyst),
            (
                "POST",
                "/v1/search",
                {**context, "phone": PHONE_TYPED},
                {"Authorization": f"Bearer {BAD_TOKEN}"},
            ),
            ("POST", "/v1/records/05/sent-missing/disclose", {**context, "x": FAMILY}, analyst),
            ("GET", "/v1/audit/entries", None, {"Authorization": f"Bearer {BAD_TOKEN}"}),
            (
                "GET",
                "/v1/audit/entries?case_ref=" + "9" * 65,
                None,
                {"Authorization": f"Bearer {auditor_token}"},
            ),
        ]
        for method, path, body, headers in probes:
            response = await asker.http.request(method, path, json=body, headers=headers)
            assert response.status_code >= 400, (path, response.text)
            keep_errors(response)
        bad_record = _records()[0]
        bad_record["body"]["date_of_birth"] = FAMILY
        keep_errors(
            await owner.http.put("/v1/records/sent-person", json=bad_record, headers=system)
        )
        bad_phone = _records()[1]
        bad_phone["body"]["number"] = f"{PHONE_E164}{FAMILY}"
        keep_errors(await owner.http.put("/v1/records/sent-phone", json=bad_phone, headers=system))
        keep_errors(
            await owner.http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(owner.client_id, BAD_SECRET),
            )
        )
        keep_errors(
            await owner.http.post(
                "/federation/v1/search",
                content=json.dumps({"justification": JUSTIFICATION}).encode(),
                headers={"Federation-Signature": BAD_TOKEN},
            )
        )
        for running in (owner, asker):
            crashed = keep_errors(await running.http.get("/test-only/crash"))
            assert crashed.status_code == 500
            answer = await running.http.get("/metrics")
            if answer.status_code == 200:
                metrics.append(answer.text)

        # The auditor can open what was sealed: proof the justification went through the node.
        auditor = {"Authorization": f"Bearer {auditor_token}"}
        page = (await asker.http.get("/v1/audit/entries?operation=consult", headers=auditor)).json()
        sealed = await asker.http.get(
            f"/v1/audit/entries/{page['entries'][-1]['index']}", headers=auditor
        )
        proofs["unsealed"] = json.dumps(sealed.json()["sealed_payload"])

    async def run() -> None:
        async with running_federation(settings) as fed:
            await scenario(fed)

    anyio.run(run)
    captured = capfd.readouterr()
    logs = captured.out + captured.err + caplog.text

    # The sentinels really went through: found, disclosed, sealed, and logging happened.
    assert proofs["phone_hits"] >= 1 and proofs["name_hits"] >= 1, proofs
    assert proofs["disclosed"] in {"full", "redacted"}, proofs
    assert JUSTIFICATION in proofs["unsealed"]
    assert "request.crashed" in logs and "careless.logged" in logs
    assert len(error_bodies) >= 12 and len(secrets) >= 8

    planted = {
        "family name": FAMILY,
        "given name": GIVEN,
        "phone (E.164)": PHONE_E164,
        "phone (national)": PHONE_E164.replace("+44", "0"),
        "phone (as typed)": PHONE_TYPED,
        "narrative": NARRATIVE,
        "justification": JUSTIFICATION,
        "wrong client secret": BAD_SECRET,
        "bad bearer token": BAD_TOKEN,
        "crash message": CRASH_TEXT,
    }
    planted.update({f"secret #{i}": s for i, s in enumerate(secrets)})
    planted.update(
        {
            f"secret #{i} (base64)": base64.b64encode(s.encode()).decode()
            for i, s in enumerate(secrets[:5])
        }
    )
    places = {"logs": logs, "error bodies": "\n".join(error_bodies), "metrics": "\n".join(metrics)}
    leaks = [
        f"{what} in {where}"
        for what, value in planted.items()
        for where, text in places.items()
        if value in text
    ]
    assert not leaks, leaks
