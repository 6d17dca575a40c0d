"""Search quality of federated search, measured on the synthetic ground truth.

Three forces (01, 05, 20) get a synthetic data set with planted cross-force links
(`gateway.synth`), each force's file is loaded into its own in-process node, and every planted
link is searched for through `POST /v1/search` in `records` mode by an analyst of each force in
turn (purpose investigation, roles analyst, NPPV3):

- deal_line: the line's phone number, written the way an analyst would type it (national format);
- person_variant: each force's spelling of the suspect's name plus the shared date of birth.

What counts:

- A link's *members* are the records the ground truth says hold the identifier.
- A member is *reachable under policy* for an analyst when the owning force's own policy engine,
  asked directly about that record with the same principal, purpose, case reference and mode,
  returns full, redacted or pointer. Hidden (not even a hit) and denied records are the owner's
  lawful choice, not a search failure, so they are left out of the denominator; a search that
  returned one anyway would be a leak, which the test also checks. Reachability is decided by the
  policy engine alone, independently of blind indexes, normalisation and the candidate re-check,
  which are what this test measures.
- A reachable member is *findable* when its identifier sits in a blind-indexed field: a phone
  record's number, a line's deal-line numbers, a person's name and date of birth, and phone
  numbers written in free text (intelligence-report text, event summaries: the `phone_in_text`
  index). With free text indexed, every reachable deal-line member is findable.
- recall = findable members found / findable members, and recall over every member reachable
  under policy; both asserted >= 0.95;
- precision = found records that are members of the searched link / all found records (per link
  type; for person_variant also over person records only), asserted >= 0.9.

Run with `pytest -s` to see the figures.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import anyio

from gateway.identity.issuer import mint_analyst_token
from gateway.synth import generate
from policies import Mode, Outcome, PolicyContext, Principal, record_attributes_from_json
from schemas import walk_fields
from schemas.enums import Purpose, VettingLevel
from tests.federation.conftest import (
    Federation,
    RunningNode,
    member_for,
    node_settings,
    running_federation,
    write_manifest,
)

FORCES = ("01", "05", "20")
# 7,500 records per force plant three county lines per exporting force (1 to 3 numbers each)
# and three multi-force suspects per force: enough links for the ratios to mean something while
# the whole test stays well under a minute.
RECORDS_PER_FORCE = 7500
SEED = 20260601
PURPOSE = Purpose.INVESTIGATION
CASE_REF = "OP-QUALITY-1"
ROLES = ("analyst",)
VETTING = VettingLevel.NPPV3
LOAD_BATCH = 500
REACHABLE = frozenset({Outcome.FULL.value, Outcome.REDACTED.value, Outcome.POINTER.value})


@dataclass
class Tally:
    """Counts for one link type."""

    searches: int = 0
    reachable: int = 0
    found_reachable: int = 0
    findable: int = 0
    found_findable: int = 0
    found: int = 0
    found_members: int = 0
    found_kind: Counter[str] = field(default_factory=Counter)
    found_member_kind: Counter[str] = field(default_factory=Counter)
    unreachable_members: int = 0
    missed: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        """Over the members in a searchable field."""
        return self.found_findable / self.findable if self.findable else 1.0

    @property
    def recall_all(self) -> float:
        """Over every member policy lets through, free-text mentions included."""
        return self.found_reachable / self.reachable if self.reachable else 1.0

    @property
    def precision(self) -> float:
        return self.found_members / self.found if self.found else 1.0

    def precision_of(self, kind: str) -> float:
        found = self.found_kind[kind]
        return self.found_member_kind[kind] / found if found else 1.0


def _national(e164: str) -> str:
    """How an analyst types a UK mobile number: 07xxx xxxxxx."""
    assert e164.startswith("+44")
    digits = "0" + e164[3:]
    return f"{digits[:5]} {digits[5:]}"


def _searches(link: dict[str, Any]) -> list[dict[str, str]]:
    if link["type"] == "deal_line":
        return [{"phone": _national(link["identifier"])}]
    dob = link["detail"]["date_of_birth"]
    return [
        {"name": f"{n['given_names']} {n['family_name']}".strip(), "dob": dob}
        for n in link["detail"]["names"]
    ]


def _in_indexed_field(record: dict[str, Any], pointer: str) -> bool:
    """Whether the member's field (or, for a name, the fields under it) feeds a blind index."""
    return any(
        fv.spec.index is not None
        for fv in walk_fields(record)
        if fv.pointer == pointer or fv.pointer.startswith(pointer + "/")
    )


def _principal(force: str) -> Principal:
    return Principal(
        user_id=f"quality-{force}",
        force=force,
        roles=frozenset(ROLES),
        vetting=VETTING,
        units=frozenset(),
        is_system_client=False,
        force_suspended=False,
    )


def _reachable(
    fed: Federation, records: dict[tuple[str, str], dict[str, Any]], searcher: str, when: datetime
) -> dict[tuple[str, str], str]:
    """The owner's decision outcome for every planted record, for an analyst of `searcher`."""
    context = PolicyContext(
        purpose=PURPOSE,
        case_reference=CASE_REF,
        time=when,
        mode=Mode.RECORDS,
        justification_present=True,
        requesting_force=searcher,
    )
    today: date = when.date()
    outcomes: dict[tuple[str, str], str] = {}
    for force in FORCES:
        keys = [key for key in records if key[0] == force]
        cache = fed.nodes[force].node.policies.request_cache(_principal(searcher), context)
        decisions = cache.decide_all(
            [record_attributes_from_json(records[key], today=today) for key in keys]
        )
        outcomes.update(
            {key: decision.outcome.value for key, decision in zip(keys, decisions, strict=True)}
        )
    return outcomes


async def _load(node: RunningNode, path: Path, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """Load a force's synthetic file into its node; return the planted records by id."""
    planted: dict[str, dict[str, Any]] = {}
    batch: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record["id"] in wanted:
                planted[record["id"]] = record
            batch.append(record)
            if len(batch) >= LOAD_BATCH:
                await node.load(batch)
                batch = []
    if batch:
        await node.load(batch)
    return planted


def _report(tallies: dict[str, Tally]) -> str:
    lines = [f"search quality, {len(FORCES)} forces x {RECORDS_PER_FORCE} records, seed {SEED}:"]
    for kind, t in sorted(tallies.items()):
        line = (
            f"  {kind}: searches={t.searches} "
            f"recall={t.recall:.3f} ({t.found_findable}/{t.findable} in indexed fields) "
            f"recall_all={t.recall_all:.3f} ({t.found_reachable}/{t.reachable} reachable, "
            f"{t.unreachable_members} hidden/denied by policy) "
            f"precision={t.precision:.3f} ({t.found_members}/{t.found})"
        )
        if kind == "person_variant":
            line += f" person precision={t.precision_of('person'):.3f}"
        lines.append(line)
        if t.missed:
            lines.append(f"    missed: {t.missed[:10]}")
        if t.strays:
            lines.append(f"    strays: {t.strays[:10]}")
    return "\n".join(lines)


def test_federated_search_finds_planted_cross_force_links(tmp_path: Path) -> None:
    summary = generate(list(FORCES), RECORDS_PER_FORCE, SEED, tmp_path / "synthetic")
    truth = json.loads(summary.ground_truth.read_text(encoding="utf-8"))
    links = [link for link in truth["links"] if link["type"] in ("deal_line", "person_variant")]
    assert {link["type"] for link in links} == {"deal_line", "person_variant"}
    member_ids = {(m["force"], m["record_id"]) for link in links for m in link["members"]}
    # One analyst asks well over a hundred questions in a few seconds: a measurement, not a
    # person, so the per-analyst rate limit is off for these nodes.
    settings = [node_settings(tmp_path, force, rate_limit_enabled=False) for force in FORCES]
    write_manifest(settings, [member_for(s) for s in settings])
    tallies: dict[str, Tally] = {}

    async def run() -> None:
        async with running_federation(settings) as fed:
            planted: dict[tuple[str, str], dict[str, Any]] = {}
            for force in FORCES:
                wanted = {rid for f, rid in member_ids if f == force}
                loaded = await _load(fed.nodes[force], summary.files[force], wanted)
                planted.update({(force, rid): record for rid, record in loaded.items()})
            assert set(planted) == member_ids
            when = datetime.now(UTC)
            for searcher in FORCES:
                outcomes = _reachable(fed, planted, searcher, when)
                node = fed.nodes[searcher]
                token = mint_analyst_token(
                    node.settings, user_id=f"quality-{searcher}", roles=ROLES, vetting=VETTING
                )
                headers = {"Authorization": f"Bearer {token}"}
                for link in links:
                    members = {(m["force"], m["record_id"]) for m in link["members"]}
                    reachable = {key for key in members if outcomes[key] in REACHABLE}
                    findable = {
                        (m["force"], m["record_id"])
                        for m in link["members"]
                        if (m["force"], m["record_id"]) in reachable
                        and _in_indexed_field(planted[(m["force"], m["record_id"])], m["field"])
                    }
                    tally = tallies.setdefault(link["type"], Tally())
                    for terms in _searches(link):
                        response = await node.http.post(
                            "/v1/search",
                            headers=headers,
                            json={
                                "purpose": PURPOSE.value,
                                "justification": "Search quality measurement on synthetic data",
                                "case_ref": CASE_REF,
                                "mode": "records",
                                **terms,
                            },
                        )
                        assert response.status_code == 200, response.text
                        results = response.json()["results"]
                        # Every force answers; one whose every match is denied says `denied`.
                        assert sorted(r["force"] for r in results) == list(FORCES)
                        assert {r["status"] for r in results} <= {"ok", "denied"}, results
                        found = {
                            (r["force"], hit["record_id"]): hit["kind"]
                            for r in results
                            for hit in r["hits"]
                        }
                        # Nothing the owner's policy hides or denies may come back as a hit.
                        leaked = {key for key in found if key in members and key not in reachable}
                        assert not leaked, f"hidden or denied records returned: {leaked}"
                        tally.searches += 1
                        tally.reachable += len(reachable)
                        tally.unreachable_members += len(members - reachable)
                        tally.found_reachable += len(reachable & found.keys())
                        tally.findable += len(findable)
                        tally.found_findable += len(findable & found.keys())
                        tally.missed.extend(
                            f"{searcher}->{f}/{rid} ({link['id']})"
                            for f, rid in sorted(findable - found.keys())
                        )
                        for key, kind in found.items():
                            tally.found += 1
                            tally.found_kind[kind] += 1
                            if key in members:
                                tally.found_members += 1
                                tally.found_member_kind[kind] += 1
                            else:
                                tally.strays.append(f"{searcher}->{key[0]}/{key[1]} ({kind})")

    anyio.run(run)
    report = _report(tallies)
    print("\n" + report)
    for kind, tally in tallies.items():
        assert tally.reachable > 0, f"no {kind} member was reachable: the measure means nothing"
        assert tally.recall >= 0.95, report
        assert tally.recall_all >= 0.95, report
        assert tally.precision >= 0.9, report
