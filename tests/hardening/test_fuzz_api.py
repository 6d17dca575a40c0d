"""Schemathesis against a running node's own OpenAPI document.

Every documented operation is fuzzed with valid tokens for its caller kind (force system, analyst
from the built-in issuer, auditor), in both positive and negative generation modes. Checks: no
5xx, responses conform to the documented schema and content types, and every error is RFC 9457
problem+json. Federation routes read raw signed bodies, so besides the schema-driven (unsigned)
cases they get hypothesis-generated bodies signed with a real partner key.

Bounded for `make test` (few examples per operation, derandomised); `make fuzz` raises
`GATEWAY_FUZZ_EXAMPLES` for a longer run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from gateway.app import create_app
from gateway.federation.protocol import SIGNATURE_HEADER, sign_request
from gateway.identity.issuer import mint_analyst_token
from schemas.examples import example_record
from tests.gateway.conftest import register_client
from tests.hardening.conftest import FederatedNode, federated_node

# The bulk upload is NDJSON text; send generated strings as they are.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "12"))
PROBLEM = "application/problem+json"
PROBLEM_MEMBERS = {"type", "title", "status", "detail"}


@dataclass
class FuzzTarget:
    fed: FederatedNode
    app: FastAPI
    schema: schemathesis.BaseSchema
    tokens: dict[str, str]
    failures: list[str] = field(default_factory=list)

    def auth_for(self, path: str) -> dict[str, str]:
        if path.startswith("/v1/audit/"):
            kind = "auditor"
        elif path == "/v1/search" or path.endswith("/disclose"):
            kind = "analyst"
        elif path.startswith(("/v1/records", "/v1/changes")):
            kind = "system"
        else:
            return {}
        return {"Authorization": f"Bearer {self.tokens[kind]}"}


def problem_check(response: Any) -> str | None:
    """Every 4xx/5xx must be problem+json with the RFC 9457 members and the matching status."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", "")
    if isinstance(content_type, list):  # schemathesis responses keep every value of a header
        content_type = content_type[0] if content_type else ""
    if not content_type.startswith(PROBLEM):
        return f"error {response.status_code} is {content_type!r}, not problem+json"
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"error {response.status_code} body is not JSON"
    missing = PROBLEM_MEMBERS - set(body)
    if missing or body.get("status") != response.status_code:
        return f"error {response.status_code} problem lacks {sorted(missing)} or status mismatch"
    return None


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    fed = federated_node(tmp_path_factory.mktemp("fuzz"))
    client_id, secret = register_client(fed.settings, "rms", ["records:write", "records:read"])
    app = create_app(fed.settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    with asgi.get_client(app) as http:
        form = {"grant_type": "client_credentials"}
        token = http.post("/oauth/token", data=form, auth=(client_id, secret)).json()
        # A few real records so that fuzzed reads sometimes hit data, not only 404s.
        for i in range(3):
            record = example_record("person", id=f"fuzz-{i}", owner_force="20")
            stored = http.put(
                f"/v1/records/fuzz-{i}",
                json=record,
                headers={"Authorization": f"Bearer {token['access_token']}"},
            )
            assert stored.status_code in {200, 201}, stored.text
        tokens = {
            "system": token["access_token"],
            "analyst": mint_analyst_token(
                fed.settings, user_id="fuzz-analyst", roles=["analyst"], vetting="NPPV3"
            ),
            "auditor": fed.settings.auditor_token.get_secret_value(),
        }
        yield FuzzTarget(fed=fed, app=app, schema=schema, tokens=tokens)
    asgi.shutdown_lifespans()


def _operations(target: FuzzTarget, group: Callable[[str], bool]) -> list[Any]:
    operations = [result.ok() for result in target.schema.get_all_operations()]
    return [op for op in operations if group(op.path)]


def _failure_titles(exc: BaseException) -> list[str]:
    if isinstance(exc, FailureGroup):
        return [" ".join(str(e).split("\n")[:3]) for e in exc.exceptions]
    return [str(exc).splitlines()[0] if str(exc) else type(exc).__name__]


def _fuzz(target: FuzzTarget, operation: Any, mode: GenerationMode) -> list[str]:
    found: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        headers = target.auth_for(operation.path)
        response = case.call(headers=headers)
        checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
        # Not `negative_data_rejection`: pydantic's lax parsing accepts some values the document
        # calls invalid (a bare number as a date-time, "0.0" as an integer, a repeated query
        # parameter), and the bulk body is NDJSON text whatever its generated type. Harmless,
        # and each of those still gets a 2xx or a problem+json 4xx, which the checks here hold.
        label = f"{operation.method.upper()} {operation.path} [{mode.value}]"
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (AssertionError, FailureGroup) as exc:
            # Collected, not raised: hypothesis would otherwise spend the budget shrinking.
            found.extend(f"{label}: {line}" for line in _failure_titles(exc))
            if os.environ.get("GATEWAY_FUZZ_VERBOSE"):
                print(label, case.as_curl_command(headers=headers), exc)
        problem = problem_check(response)
        if problem:
            found.append(f"{label}: {problem}")

    try:
        run()
    except Unsatisfiable:
        # No parameters and no body: nothing to negate, so there is no negative case to send.
        assert mode is GenerationMode.NEGATIVE
    return found


GROUPS: dict[str, Callable[[str], bool]] = {
    "sync": lambda p: (
        (p.startswith(("/v1/records", "/v1/changes", "/oauth/token")))
        and not p.endswith("/disclose")
    ),
    "analyst": lambda p: p == "/v1/search" or p.endswith("/disclose"),
    "audit": lambda p: p.startswith("/v1/audit/"),
    "federation": lambda p: p.startswith("/federation/"),
    "operations": lambda p: p.startswith(
        ("/healthz", "/readyz", "/metrics", "/.well-known", "/oauth/jwks")
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_documented_operations_survive_schemathesis(target: FuzzTarget, group: str) -> None:
    operations = _operations(target, GROUPS[group])
    assert operations, f"no documented operation in group {group}"
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures.extend(_fuzz(target, operation, mode))
    unique = sorted(set(failures))
    assert not unique, "\n".join(unique[:40])


def test_every_operation_in_the_document_is_in_a_fuzzed_group(target: FuzzTarget) -> None:
    paths = {result.ok().path for result in target.schema.get_all_operations()}
    ungrouped = {p for p in paths if not any(g(p) for g in GROUPS.values())}
    # The built-in issuer's browser sign-in page is HTML for people, covered by the console tests.
    assert ungrouped <= {"/oauth/authorize"}, ungrouped


# --- federation routes with real signatures --------------------------------------------------

_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_principal = st.fixed_dictionaries(
    {
        "user_id": st.text(max_size=140),
        "force": st.sampled_from(["05", "20", "", "0" * 9]),
        "roles": st.lists(st.text(max_size=12), max_size=3),
        "vetting": st.sampled_from(["NPPV2", "SC", "bogus", ""]),
    }
)
_context = st.fixed_dictionaries(
    {
        "purpose": st.sampled_from(["investigation", "safeguarding", "gossip"]),
        "justification": st.text(max_size=50),
        "case_ref": st.text(max_size=70),
        "mode": st.sampled_from(["hits", "records", "everything"]),
    }
)
_search = st.fixed_dictionaries(
    {
        "request_id": st.text(min_size=1, max_size=70),
        "principal": _principal,
        "context": _context,
        "terms": st.dictionaries(
            st.sampled_from(["phone", "vrm", "name", "dob", "postcode", "line_name", "kinds"]),
            st.text(max_size=30) | st.lists(st.text(max_size=8), max_size=3),
        ),
        "limit": st.integers(min_value=-5, max_value=10_000),
    }
)
_disclose = st.fixed_dictionaries(
    {
        "request_id": st.text(min_size=1, max_size=70),
        "principal": _principal,
        "context": _context,
        "record_id": st.text(max_size=70) | st.sampled_from(["fuzz-0", "fuzz-1"]),
    }
)
_cosign = st.fixed_dictionaries(
    {
        "old_size": st.integers(min_value=-3, max_value=10**12),
        "proof": st.lists(st.text(max_size=70), max_size=4),
        "checkpoint": st.text(max_size=300),
    }
)
FEDERATION_BODIES = {
    "/federation/v1/search": _search | _json,
    "/federation/v1/disclose": _disclose | _json,
    "/federation/v1/cosign": _cosign | _json,
}


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(FEDERATION_BODIES))
def test_signed_partner_requests_with_fuzzed_bodies_get_no_5xx(
    target: FuzzTarget, path: str
) -> None:
    found: list[str] = []
    with asgi.get_client(target.app) as http:

        @settings(
            max_examples=EXAMPLES * 3,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(payload=FEDERATION_BODIES[path])
        def run(payload: Any) -> None:
            body = json.dumps(payload).encode()
            token = sign_request(
                target.fed.partner_key,
                sender="05",
                audience="20",
                method="POST",
                path=path,
                body=body,
            )
            response = http.post(
                path,
                data=body,
                headers={SIGNATURE_HEADER: token, "Content-Type": "application/json"},
            )
            if response.status_code >= 500:
                found.append(f"{response.status_code} for {body[:120]!r}")
            problem = problem_check(response)
            if problem:
                found.append(problem)

        run()
    assert not sorted(set(found)), "\n".join(sorted(set(found))[:20])


@pytest.mark.parametrize("path", sorted(FEDERATION_BODIES))
@pytest.mark.parametrize(
    "signature",
    [None, "", "garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x" * 5000],
)
def test_unsigned_or_garbage_signed_partner_requests_are_refused_with_401(
    target: FuzzTarget, path: str, signature: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    with asgi.get_client(target.app) as http:
        response = http.post(path, data=b'{"request_id": "x"}', headers=headers)
    assert response.status_code == 401, response.text
    assert problem_check(response) is None
    assert response.json()["reason"] in {"unsigned", "malformed", "bad_signature"}
