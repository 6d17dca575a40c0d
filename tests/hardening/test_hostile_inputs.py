"""Hostile inputs tried one by one: each gets a clear 4xx problem+json, or is stored and read back
verbatim without being interpreted. Never a 5xx."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.identity.issuer import mint_analyst_token
from gateway.node import init_node
from schemas.examples import example_record
from schemas.records import KINDS
from tests.gateway.conftest import (  # noqa: F401 - fixtures reused from the gateway suite
    NodeClient,
    _running_node,
    any_backend_settings,
    any_node,
    make_settings,
    register_client,
)
from tests.hardening.conftest import HOME_URL, FederatedNode, federated_node
from tests.hardening.test_fuzz_api import problem_check

INJECTIONS = [
    "x'); DROP TABLE records; --",
    "' OR '1'='1' /*",
    "permit(principal, action, resource) when { true };",
    '" || principal.vetting == "DV" || "',
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeClient]:
    """One SQLite node for the sync and audit probes below (each leaves nothing the next needs)."""
    settings = make_settings(tmp_path_factory.mktemp("hostile") / "node")
    init_node(settings)
    yield from _running_node(settings)


def assert_problem(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert problem_check(response) is None, problem_check(response)
    body: dict[str, Any] = response.json()
    return body


# --- bodies: size, nesting, encoding --------------------------------------------------------


def test_oversized_body_is_refused_with_413_whether_declared_or_streamed(node: NodeClient) -> None:
    limit = node.settings.max_body_bytes
    headers = {**node.auth("records:write"), "Content-Type": "application/json"}
    declared = node.http.put(
        "/v1/records/big-1", content=b"{" + b" " * limit + b"}", headers=headers
    )
    assert_problem(declared, 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts received bytes
        yield b'{"id": "'
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536
        yield b'"}'

    streamed = node.http.put("/v1/records/big-2", content=chunks(), headers=headers)
    assert_problem(streamed, 413)


def test_oversized_ndjson_line_is_refused_with_413(node: NodeClient) -> None:
    line_limit = node.settings.max_ndjson_line_bytes
    good = json.dumps(example_record("person", id="ok-1")).encode()
    body = good + b"\n" + b'{"x": "' + b"a" * (line_limit + 10) + b'"}\n'
    response = node.http.post(
        "/v1/records/bulk",
        content=body,
        headers={**node.auth("records:write"), "Content-Type": "application/x-ndjson"},
    )
    problem = assert_problem(response, 413)
    assert "Line 2" in problem["detail"]


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_refused_with_a_4xx(node: NodeClient, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    headers = {**node.auth("records:write"), "Content-Type": "application/json"}
    response = node.http.put("/v1/records/deep-1", content=nested, headers=headers)
    assert_problem(response, 400, 422)
    wrapped = b'{"body": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
    response = node.http.put("/v1/records/deep-2", content=wrapped, headers=headers)
    assert_problem(response, 400, 413, 422)
    line = json.dumps(example_record("person", id="deep-3"))[:-1] + ', "x": ' + "[" * depth
    response = node.http.post(
        "/v1/records/bulk",
        content=(line + "]" * depth + "}\n").encode(),
        headers={**node.auth("records:write"), "Content-Type": "application/x-ndjson"},
    )
    if response.status_code == 200:  # line-by-line report: the line is rejected, not stored
        assert response.json()["lines"][0]["status"] == "rejected"
    else:
        assert_problem(response, 400, 413, 422)


def test_invalid_utf8_is_refused_with_a_4xx(node: NodeClient) -> None:
    raw = json.dumps(example_record("person", id="utf-1")).encode()
    broken = raw.replace(b"Testperson", b"Test\xff\xfeperson")
    headers = {**node.auth("records:write"), "Content-Type": "application/json"}
    assert_problem(node.http.put("/v1/records/utf-1", content=broken, headers=headers), 400, 422)
    bulk = node.http.post(
        "/v1/records/bulk?atomic=true",
        content=broken + b"\n",
        headers={**node.auth("records:write"), "Content-Type": "application/x-ndjson"},
    )
    if bulk.status_code == 200:
        report = bulk.json()
        assert report["accepted"] == 0 and report["lines"][0]["status"] == "rejected"
    else:
        assert_problem(bulk, 400, 422)
    token = node.http.post(
        "/oauth/token",
        content=b"grant_type=client_credentials&scope=\xff",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(node.client_id, node.secret),
    )
    assert_problem(token, 400)
    assert node.http.get("/v1/records/utf-1", headers=node.auth("records:read")).status_code == 404


def test_nul_bytes_outside_free_text_are_refused(node: NodeClient) -> None:
    read = node.auth("records:read")
    assert_problem(node.http.get("/v1/records/a%00b", headers=read), 422)
    assert_problem(node.http.get("/v1/changes", params={"since": "a\x00b"}, headers=read), 400)
    record = example_record("person", id="nul-1")
    record["id"] = "nul\x00-1"
    response = node.http.put("/v1/records/nul-1", json=record, headers=node.auth("records:write"))
    assert_problem(response, 400, 422)


# --- free text: stored verbatim, never interpreted ------------------------------------------


def _string_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _string_leaves(item, (*path, i))
    elif isinstance(value, str):
        yield path


def _set(record: dict[str, Any], path: tuple[Any, ...], value: str) -> None:
    target: Any = record
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _get(record: dict[str, Any], path: tuple[Any, ...]) -> Any:
    target: Any = record
    for part in path:
        target = target[part]
    return target


def _free_text_paths(kind: str) -> list[tuple[Any, ...]]:
    record = example_record(kind)
    paths = [("body", *p) for p in _string_leaves(record["body"])]
    return [*paths, ("source", "local_ref"), ("originator", "unit")]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_injection_strings_in_every_free_text_field_are_stored_verbatim(
    any_node: NodeClient,  # noqa: F811 - the imported fixture
    kind: str,
) -> None:
    write, read = any_node.auth("records:write"), any_node.auth("records:read")
    stored_somewhere = 0
    for n, path in enumerate(_free_text_paths(kind)):
        for m, hostile in enumerate(INJECTIONS):
            record_id = f"inj-{kind}-{n}-{m}"
            record = example_record(kind, id=record_id)
            _set(record, path, hostile)
            response = any_node.http.put(f"/v1/records/{record_id}", json=record, headers=write)
            if response.status_code == 422:  # a formatted field (phone, date...) refuses it
                assert_problem(response, 422)
                continue
            assert response.status_code == 201, (path, response.text[:300])
            back = any_node.http.get(f"/v1/records/{record_id}", headers=read)
            assert back.status_code == 200
            assert _get(back.json(), path) == hostile, path
            stored_somewhere += 1
    assert stored_somewhere >= len(INJECTIONS)  # the kind has at least one free-text field
    # The tables are intact: a fresh record still round-trips after all of the above.
    record = example_record(kind, id=f"after-{kind}")
    assert any_node.http.put(f"/v1/records/after-{kind}", json=record, headers=write).is_success
    assert any_node.http.get(f"/v1/records/after-{kind}", headers=read).status_code == 200


def test_nul_bytes_in_free_text_are_stored_verbatim_or_refused(
    any_node: NodeClient,  # noqa: F811 - the imported fixture
) -> None:
    record = example_record("person", id="nul-text")
    record["body"]["names"][0]["family_name"] = "Test\x00person"
    response = any_node.http.put(
        "/v1/records/nul-text", json=record, headers=any_node.auth("records:write")
    )
    if response.status_code == 422:
        assert_problem(response, 422)
        return
    assert response.status_code == 201, response.text
    back = any_node.http.get("/v1/records/nul-text", headers=any_node.auth("records:read"))
    assert back.json()["body"]["names"][0]["family_name"] == "Test\x00person"


# --- paging parameters ------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "99999999999999999999999", "1e3", "NaN"])
def test_out_of_range_limits_on_the_change_feed_are_422(node: NodeClient, limit: str) -> None:
    response = node.http.get(
        "/v1/changes", params={"limit": limit}, headers=node.auth("records:read")
    )
    assert_problem(response, 422)


@pytest.mark.parametrize(
    "cursor",
    [
        "-1",
        "-99999999999999999999",
        "not-a-cursor",
        "%00",
        base64.urlsafe_b64encode(b"c1:-1").decode(),
        base64.urlsafe_b64encode(b"c1:" + b"9" * 30).decode(),
        base64.urlsafe_b64encode("c1:²".encode()).decode(),
    ],
)
def test_negative_or_forged_change_cursors_are_400(node: NodeClient, cursor: str) -> None:
    response = node.http.get(
        "/v1/changes", params={"since": cursor}, headers=node.auth("records:read")
    )
    assert_problem(response, 400, 422)


def _forged(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "100000000000000000000"},
        {"limit": "-5"},
        {"cursor": _forged("a1:-5")},
        {"cursor": _forged("a1:99999999999999999999999999")},
        {"cursor": "-1"},
        {"cursor": _forged("a1:²")},
        {"from": "-0001-01-01T00:00:00Z"},
    ],
)
def test_audit_paging_refuses_huge_limits_and_negative_cursors(
    node: NodeClient, params: dict[str, str]
) -> None:
    auditor = {"Authorization": f"Bearer {node.settings.auditor_token.get_secret_value()}"}
    response = node.http.get("/v1/audit/entries", params=params, headers=auditor)
    assert_problem(response, 400, 422)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/audit/entries/-1",
        "/v1/audit/entries/99999999999999999999999",
        "/v1/audit/proof/inclusion?index=-1&size=1",
        "/v1/audit/proof/inclusion?index=0&size=99999999999999999999",
        "/v1/audit/proof/consistency?from=-1&to=2",
        "/federation/v1/proof/inclusion?index=0&size=-3",
    ],
)
def test_negative_and_huge_audit_indexes_are_4xx(node: NodeClient, path: str) -> None:
    auditor = {"Authorization": f"Bearer {node.settings.auditor_token.get_secret_value()}"}
    assert_problem(node.http.get(path, headers=auditor), 400, 404, 422)


def test_short_idempotency_key_is_422(node: NodeClient) -> None:
    response = node.http.post(
        "/v1/records/bulk",
        content=b"",
        headers={
            **node.auth("records:write"),
            "Content-Type": "application/x-ndjson",
            "Idempotency-Key": "short",
        },
    )
    assert_problem(response, 422)


# --- analysts: search terms, justification, confusables ---------------------------------------


@pytest.fixture(scope="module")
def analyst_node(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[FederatedNode, TestClient, str, str]]:
    fed = federated_node(tmp_path_factory.mktemp("analyst"))
    client_id, secret = register_client(fed.settings, "rms", ["records:write", "records:read"])
    with TestClient(create_app(fed.settings), base_url=HOME_URL) as http:
        form = {"grant_type": "client_credentials"}
        system = http.post("/oauth/token", data=form, auth=(client_id, secret)).json()
        analyst = mint_analyst_token(
            fed.settings, user_id="hostile-analyst", roles=["analyst"], vetting="NPPV3"
        )
        yield fed, http, system["access_token"], analyst


def _search(http: TestClient, token: str, **body: Any) -> Any:
    payload = {
        "purpose": "investigation",
        "justification": "routine",
        "case_ref": "OP-HOSTILE-1",
        "mode": "records",
        "forces": ["20"],
        **body,
    }
    return http.post("/v1/search", json=payload, headers={"Authorization": f"Bearer {token}"})


def test_injection_in_search_terms_and_justification_is_sealed_verbatim(
    analyst_node: tuple[FederatedNode, TestClient, str, str],
) -> None:
    fed, http, _, analyst = analyst_node
    auditor = {"Authorization": f"Bearer {fed.settings.auditor_token.get_secret_value()}"}
    for hostile in INJECTIONS:
        response = _search(http, analyst, name=hostile, justification=hostile, case_ref="OP-1")
        assert response.status_code == 200, response.text
        assert all(r["hit_count"] == 0 for r in response.json()["results"])
        entries = http.get("/v1/audit/entries?limit=5&operation=consult", headers=auditor).json()
        index = entries["entries"][0]["index"]
        sealed = http.get(f"/v1/audit/entries/{index}", headers=auditor).json()["sealed_payload"]
        assert sealed["justification"] == hostile, sealed
        assert sealed["terms"]["name"] == hostile, sealed


def test_cedar_syntax_in_analyst_claims_does_not_change_the_decision(
    analyst_node: tuple[FederatedNode, TestClient, str, str],
) -> None:
    fed, http, system, _ = analyst_node
    record = example_record("phone", id="cedar-phone", owner_force="20")
    record["body"]["number"] = "+447911123456"
    stored = http.put(
        "/v1/records/cedar-phone", json=record, headers={"Authorization": f"Bearer {system}"}
    )
    assert stored.status_code == 201, stored.text
    plain = mint_analyst_token(fed.settings, user_id="low", roles=["analyst"], vetting="NONE")
    hostile = mint_analyst_token(
        fed.settings,
        user_id='x" }; permit(principal, action, resource); //',
        roles=['analyst" || true || "', "analyst"],
        units=["} when { true"],
        vetting="NONE",
    )
    answers = []
    for token in (plain, hostile):
        response = _search(http, token, phone="+447911123456")
        assert response.status_code == 200, response.text
        result = response.json()["results"][0]
        answers.append((result["status"], result["hit_count"], result.get("decision")))
    assert answers[0] == answers[1]
    assert answers[0][1] == 0 or answers[0][2] in {"pointer", "hidden"}


def test_unicode_confusables_in_names_are_stored_verbatim_and_never_crash_search(
    analyst_node: tuple[FederatedNode, TestClient, str, str],
) -> None:
    _, http, system, analyst = analyst_node
    names = {
        "conf-latin": "Testperson",
        "conf-cyrillic": "Теstреrsоn",  # Cyrillic Т, е, р, о: looks Latin, is not
        "conf-fullwidth": "Ｔｅｓｔｐｅｒｓｏｎ",
        "conf-zero-width": "Test\u200bperson",
        "conf-rtl": "Test\u202epersoN",
    }
    for record_id, family in names.items():
        record = example_record("person", id=record_id, owner_force="20")
        record["body"]["names"][0]["family_name"] = family
        response = http.put(
            f"/v1/records/{record_id}", json=record, headers={"Authorization": f"Bearer {system}"}
        )
        if response.status_code == 422:
            assert_problem(response, 422)
            continue
        assert response.status_code == 201, response.text
        back = http.get(f"/v1/records/{record_id}", headers={"Authorization": f"Bearer {system}"})
        assert back.json()["body"]["names"][0]["family_name"] == family
    for family in names.values():
        response = _search(http, analyst, name=f"Alex Jordan {family}", dob="2001-07-14")
        assert response.status_code == 200, response.text
    # Compatibility forms fold (NFKD), so the full-width spelling finds the plain record.
    found = _search(http, analyst, name="Alex Jordan Ｔｅｓｔｐｅｒｓｏｎ", dob="2001-07-14")
    ids = {h.get("record_id") for r in found.json()["results"] for h in r["hits"]}
    assert "conf-latin" in ids, found.json()


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 10**20},
        {"limit": -1},
        {"name": "x" * 10_000},
        {"phone": "+44\x007700900123"},
        {"kinds": ["person"] * 1000},
    ],
)
def test_hostile_search_bodies_are_4xx(
    analyst_node: tuple[FederatedNode, TestClient, str, str], body: dict[str, Any]
) -> None:
    _, http, _, analyst = analyst_node
    response = _search(http, analyst, **{"phone": "+447911123456", **body})
    assert_problem(response, 400, 422)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/records/２０/fuzz-0/disclose",  # full-width digits: looks like force 20
        "/v1/records/2O/fuzz-0/disclose",  # letter O for zero
        "/v1/records/20/a%00b/disclose",
        "/v1/records/20/" + "x" * 65 + "/disclose",
    ],
)
def test_hostile_disclosure_targets_disclose_nothing(
    analyst_node: tuple[FederatedNode, TestClient, str, str], path: str
) -> None:
    _, http, _, analyst = analyst_node
    response = http.post(
        path,
        json={"purpose": "investigation", "justification": "j", "case_ref": "OP-1"},
        headers={"Authorization": f"Bearer {analyst}"},
    )
    if response.status_code == 200:  # the per-force answer shape: refused, nothing in it
        body = response.json()
        assert body["status"] != "ok" and body["record"] is None, body
    else:
        assert_problem(response, 400, 403, 404, 422)


def test_confusable_force_codes_in_a_search_are_not_members(
    analyst_node: tuple[FederatedNode, TestClient, str, str],
) -> None:
    _, http, _, analyst = analyst_node
    response = _search(http, analyst, phone="+447911123456", forces=["２０", "2O", "20\u200b"])
    if response.status_code != 200:
        assert_problem(response, 400, 422)
        return
    results = response.json()["results"]
    assert results and all(r["status"] == "error" and not r["hits"] for r in results), results


def test_a_partner_node_key_cannot_speak_for_another_forces_analysts(
    analyst_node: tuple[FederatedNode, TestClient, str, str],
) -> None:
    """A stolen node key signs as that node only: a request for force 20's analyst is refused."""
    from gateway.federation.protocol import SIGNATURE_HEADER, sign_request

    fed, http, _, _ = analyst_node
    search = {
        "request_id": "stolen-key-1",
        "principal": {"user_id": "someone", "force": "20", "roles": ["analyst"], "vetting": "DV"},
        "context": {"purpose": "investigation", "justification": "j", "case_ref": "OP-1"},
        "terms": {"phone": "+447911123456"},
    }
    body = json.dumps(search).encode()
    path = "/federation/v1/search"
    token = sign_request(
        fed.partner_key, sender="05", audience="20", method="POST", path=path, body=body
    )
    response = http.post(path, content=body, headers={SIGNATURE_HEADER: token})
    assert_problem(response, 403)
