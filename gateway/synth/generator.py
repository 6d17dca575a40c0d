"""The synthetic data run: one NDJSON stream per force, with the planted cross-force structure
woven into realistic background records, and the ground-truth file of every planted link.

Records are generated as plain dicts and streamed to disk one at a time, so memory stays flat
whatever `records` is; only the planted records (about 1% of a run) are held in memory.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from gateway.synth import identifiers as ids
from gateway.synth import tables
from gateway.synth.factory import JsonRecord, RecordFactory, local_ref
from gateway.synth.plan import CrossForcePlan, build_plan
from schemas.forces import UnknownForceError, canonical_force_code

GROUND_TRUTH_FILE = "ground_truth.json"
FORMAT_VERSION = 1
# Fewer records than this per force cannot hold the planted structure of a multi-force run.
MIN_RECORDS = 200
MAX_SENTINEL_LENGTH = 120
_PROGRESS_EVERY = 2000

ProgressCallback = Callable[[str, int], None]  # (force, records written since the last call)


class SynthError(ValueError):
    """A synthetic-data request that cannot be met (unknown force, bad count, bad sentinel)."""


@dataclass(frozen=True, slots=True)
class SentinelPlacement:
    """Where sentinel number `index` (position in the caller's list) was planted."""

    index: int
    force: str
    record_id: str
    field: str

    def to_json(self) -> dict[str, Any]:
        return {
            "sentinel": self.index,
            "force": self.force,
            "record_id": self.record_id,
            "field": self.field,
        }


@dataclass(slots=True)
class SynthSummary:
    """What a run wrote: files, counts per force and kind, planted links, time taken."""

    forces: list[str]
    records_per_force: int
    seed: int
    out_dir: Path
    files: dict[str, Path]
    ground_truth: Path
    kinds: dict[str, dict[str, int]]  # force -> kind -> records
    planted_links: dict[str, int]  # link type -> planted links
    seconds: float
    sentinel_placements: list[SentinelPlacement] = field(default_factory=list)

    @property
    def total_records(self) -> int:
        return sum(sum(counts.values()) for counts in self.kinds.values())

    @property
    def records_per_second(self) -> float:
        return self.total_records / self.seconds if self.seconds > 0 else float("inf")


def canonical_forces(codes: Sequence[str]) -> list[str]:
    """Registry codes for `codes` (aliases resolved), without repeats, sorted: the order of the
    command line must not change the data."""
    result: set[str] = set()
    for code in codes:
        text = code.strip().upper()
        if not text:
            continue
        try:
            result.add(canonical_force_code(text))
        except UnknownForceError:
            raise SynthError(f"unknown force code {code.strip()!r}") from None
    if not result:
        raise SynthError("no force codes given")
    return sorted(result)


def check_sentinels(sentinels: Sequence[object]) -> list[str]:
    """Sentinels must survive record validation unchanged to be findable later."""
    checked: list[str] = []
    for position, sentinel in enumerate(sentinels):
        if not isinstance(sentinel, str) or not sentinel.strip():
            raise SynthError(f"sentinel {position} is not a non-empty string")
        if sentinel != sentinel.strip() or len(sentinel) > MAX_SENTINEL_LENGTH:
            raise SynthError(
                f"sentinel {position} must have no surrounding whitespace and at most "
                f"{MAX_SENTINEL_LENGTH} characters"
            )
        checked.append(sentinel)
    return checked


def _check_request(forces: Sequence[str], records: int) -> None:
    if records < 1:
        raise SynthError("records per force must be at least 1")
    if len(forces) > 1 and records < MIN_RECORDS:
        raise SynthError(
            f"a multi-force run needs at least {MIN_RECORDS} records per force "
            "to hold the planted cross-force links"
        )


# --- background scenes ------------------------------------------------------------------------


def _nominal_scene(f: RecordFactory) -> list[JsonRecord]:
    rng = f.rng
    role_roll = rng.random()
    role = "SUSPECT" if role_roll < 0.6 else "WITNESS_OTHER" if role_roll < 0.85 else "VICTIM"
    person = f.person(role=role)
    scene = [person]
    if rng.random() < 0.45:
        scene.append(f.phone(links=[f.link("user_of", person)]))
    if rng.random() < 0.25:
        scene.append(f.vehicle(links=[f.link("owner" if rng.random() < 0.6 else "driver", person)]))
    if rng.random() < 0.3:
        scene.append(f.location(links=[f.link("resident", person)]))
    if role == "SUSPECT" and rng.random() < 0.35:
        text = f.fill(rng.choice(tables.INTEL_TEXTS))
        scene.append(f.intelligence_report(text=text, links=[f.link("subject_of", person)]))
    return scene


_EXPLOITATION_SITES = (
    ("car_wash", "LABOUR"),
    ("nail_bar", "LABOUR"),
    ("farm", "LABOUR"),
    ("factory", "LABOUR"),
    ("construction_site", "LABOUR"),
    ("brothel", "SEXUAL"),
    ("cannabis_grow", "CRIMINAL"),
    ("residential", "DOMESTIC_SERVITUDE"),
)


def _slavery_scene(f: RecordFactory) -> list[JsonRecord]:
    rng = f.rng
    premises_type, exploitation = rng.choice(_EXPLOITATION_SITES)
    child = rng.random() < 0.2
    victim = f.person(role="VICTIM", min_age=14 if child else 18, max_age=17 if child else 50)
    site = f.location(premises_type=premises_type)
    scene = [victim, site]
    if premises_type in ("car_wash", "nail_bar") and rng.random() < 0.4:
        names = tables.CAR_WASH_NAMES if premises_type == "car_wash" else tables.NAIL_BAR_NAMES
        scene.append(
            f.organisation(
                name=rng.choice(names),
                organisation_type="business",
                industry=premises_type,
                links=[f.link("located_at", site)],
            )
        )
    industry = None if premises_type == "residential" else premises_type
    scene.append(
        f.modern_slavery_case(
            exploitation=exploitation,
            child=child,
            industry=industry,
            links=[f.link("victim", victim), f.link("located_at", site)],
        )
    )
    if rng.random() < 0.4:
        scene.append(
            f.event(
                event_type=rng.choice(("nrm_referral", "safeguarding_referral")),
                summary=f.fill(rng.choice(tables.EVENT_TEXTS)),
                location=site,
                links=[f.link("victim", victim)],
            )
        )
    return scene


def _county_line_scene(f: RecordFactory) -> list[JsonRecord]:
    """A line with no planted partner: its importing forces are outside this run."""
    rng = f.rng
    holder = f.person(role="SUSPECT", min_age=19, max_age=34)
    runner = f.person(role="VICTIM" if rng.random() < 0.4 else "SUSPECT", min_age=14, max_age=22)
    start = ids.day_between(rng, date(2020, 1, 1), date(2024, 6, 30))
    opened = ids.instant_on(rng, start)
    numbers = [ids.mobile_number(rng, f.phone_blocks) for _ in range(rng.choice((1, 1, 2)))]
    deal_lines: list[JsonRecord] = []
    for position, number in enumerate(numbers):
        end = None
        if position < len(numbers) - 1 or rng.random() < 0.3:
            end = ids.day_between(rng, start + timedelta(days=20), start + timedelta(days=300))
        deal_lines.append(
            {
                "number": number,
                "valid_from": start.isoformat(),
                "valid_to": None if end is None else end.isoformat(),
            }
        )
        if end is None:
            break
        start = end + timedelta(days=1)
    last_end = deal_lines[-1]["valid_to"]
    # Importers outside the run: a line into a force of the run would need that force's records
    # to mention it, which only the planted lines guarantee.
    neighbours = [
        code
        for code in tables.IMPORTING_NEIGHBOURS.get(f.force, tables.DEFAULT_NEIGHBOURS)
        + tables.DEFAULT_NEIGHBOURS
        if code not in f.run_forces
    ]
    neighbours = list(dict.fromkeys(neighbours))
    brand = rng.choice(tables.LINE_BRANDS)
    line = f.county_line(
        line_names=[f"{brand} Line"],
        deal_lines=deal_lines,
        importing_forces=sorted(rng.sample(neighbours, k=min(2, len(neighbours)))),
        at=opened,
        closed_on=None if last_end is None else date.fromisoformat(last_end),
        links=[f.link("line_holder", holder), f.link("runner", runner)],
    )
    scene = [holder, runner, line]
    for entry in deal_lines:
        scene.append(
            f.phone(
                number=entry["number"],
                at=opened,
                links=[f.link("user_of", holder), f.link("associate", line)],
            )
        )
    if rng.random() < 0.3:
        address = f.location(premises_type="cuckooed_address", links=[f.link("visitor", runner)])
        scene.append(address)
        scene.append(
            f.event(
                event_type="incident",
                summary=f.fill(tables.EVENT_TEXTS[0]),
                location=address,
                links=[f.link("suspect", holder)],
            )
        )
    return scene


def _ocg_scene(f: RecordFactory) -> list[JsonRecord]:
    rng = f.rng
    group = f.organisation(name=rng.choice(tables.OCG_NAMES), organisation_type="ocg")
    scene = [group]
    for _ in range(rng.randrange(2, 5)):
        scene.append(
            f.person(role="SUSPECT", min_age=17, max_age=45, links=[f.link("member_of", group)])
        )
    return scene


def _incident_scene(f: RecordFactory) -> list[JsonRecord]:
    rng = f.rng
    premises = rng.choice(("residential", "residential", "transport_hub", "other"))
    place = f.location(premises_type=premises)
    scene = [place]
    links: list[JsonRecord] = []
    if rng.random() < 0.4:
        witness = f.person(role="WITNESS_OTHER", min_age=18, max_age=80)
        scene.append(witness)
        links.append(f.link("witness", witness))
    scene.append(
        f.event(
            event_type=rng.choice(("incident", "incident", "arrest", "safeguarding_referral")),
            summary=f.fill(rng.choice(tables.EVENT_TEXTS)) if rng.random() < 0.8 else None,
            location=place,
            links=links,
        )
    )
    return scene


def _report_scene(f: RecordFactory) -> list[JsonRecord]:
    rng = f.rng
    return [f.intelligence_report(text=f.fill(rng.choice(tables.INTEL_TEXTS)), links=[])]


_SCENES: tuple[Callable[[RecordFactory], list[JsonRecord]], ...] = (
    _nominal_scene,
    _slavery_scene,
    _county_line_scene,
    _ocg_scene,
    _incident_scene,
    _report_scene,
)
_SCENE_WEIGHTS = (52, 7, 1.5, 3, 14, 10)


# --- per-force stream -------------------------------------------------------------------------


class _SentinelPlanter:
    """Puts each sentinel into one person's family name, one report's text and one address line
    of each force: the three kinds of sensitive field that must never be stored in clear."""

    def __init__(self, sentinels: Sequence[str], log: list[SentinelPlacement] | None) -> None:
        self.sentinels = list(sentinels)
        self.log = log
        self.next = {"person": 0, "intelligence_report": 0, "location": 0}

    def visit(self, record: JsonRecord) -> None:
        kind = record["kind"]
        position = self.next.get(kind)
        if position is None or position >= len(self.sentinels):
            return
        sentinel = self.sentinels[position]
        body = record["body"]
        if kind == "person":
            body["names"][0]["family_name"] = sentinel
            where = "/body/names/0/family_name"
        elif kind == "intelligence_report":
            body["text"] = f"{body['text']} Reported name: {sentinel}."
            where = "/body/text"
        else:
            body["address_lines"][0] = sentinel
            where = "/body/address_lines/0"
        self.next[kind] = position + 1
        if self.log is not None:
            self.log.append(SentinelPlacement(position, record["owner_force"], record["id"], where))


def _place_planted(
    record: JsonRecord, factory: RecordFactory, final_ids: dict[str, str]
) -> JsonRecord:
    """Give a planted record its final id, and point its links (always to planted records of the
    same force placed earlier) at their final ids. The plan's dict is updated in place: a plan is
    streamed once."""
    kind = record["kind"]
    final = factory.next_id(kind)
    final_ids[record["id"]] = final
    record["id"] = final
    record["source"]["local_ref"] = local_ref(
        int(record["created_at"][:4]), kind, factory.counters[kind]
    )
    for link in record["links"]:
        target = link["target"]
        target["record_id"] = final_ids.get(target["record_id"], target["record_id"])
    if kind == "event" and record["body"]["location_ref"] is not None:
        ref = record["body"]["location_ref"]
        ref["record_id"] = final_ids.get(ref["record_id"], ref["record_id"])
    return record


def _stream(
    plan: CrossForcePlan,
    force: str,
    sentinels: Sequence[str],
    sentinel_log: list[SentinelPlacement] | None,
    final_ids: dict[str, str],
) -> Iterator[JsonRecord]:
    planted = plan.planted[force]
    budget = plan.records - len(planted)
    if budget < 0:
        raise SynthError(
            f"{plan.records} records per force cannot hold the {len(planted)} planted records of "
            f"force {force}; ask for more records"
        )
    factory = RecordFactory(
        force,
        ids.seeded_rng("gateway-synth", plan.seed, ",".join(plan.forces), force),
        phone_blocks=plan.phone_blocks[force],
        partner_forces=[other for other in plan.forces if other != force],
    )
    sentinel_planter = _SentinelPlanter(sentinels, sentinel_log) if sentinels else None
    rng = factory.rng
    spread = len(planted) + 1
    planted_next = 0
    background = 0
    while background < budget:
        for record in rng.choices(_SCENES, weights=_SCENE_WEIGHTS)[0](factory):
            if background >= budget:
                break
            # Planted records are spread evenly through the file rather than bunched at the top.
            while (
                planted_next < len(planted) and background * spread >= (planted_next + 1) * budget
            ):
                yield _place_planted(planted[planted_next], factory, final_ids)
                planted_next += 1
            if sentinel_planter is not None:
                sentinel_planter.visit(record)
            yield record
            background += 1
    for record in planted[planted_next:]:
        yield _place_planted(record, factory, final_ids)


def iter_force_records(
    force: str,
    *,
    forces: Sequence[str],
    records: int,
    seed: int,
    sentinels: Sequence[str] = (),
    sentinel_log: list[SentinelPlacement] | None = None,
) -> Iterator[JsonRecord]:
    """The records of one force in a run over `forces`, exactly as `generate` writes them, without
    touching the disk. `force` must be one of `forces`."""
    codes = canonical_forces(forces)
    own = canonical_forces([force])[0]
    if own not in codes:
        raise SynthError(f"force {force!r} is not one of the run's forces")
    _check_request(codes, records)
    plan = build_plan(codes, records, seed)
    return _stream(plan, own, check_sentinels(sentinels), sentinel_log, {})


def _dump(record: JsonRecord) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def generate(
    forces: Sequence[str],
    records: int,
    seed: int,
    out_dir: Path,
    *,
    sentinels: Sequence[str] = (),
    progress: ProgressCallback | None = None,
) -> SynthSummary:
    """Write `<force>.ndjson` for each force (`records` records each) and `ground_truth.json`
    into `out_dir`; the same arguments always produce byte-identical files."""
    started = time.perf_counter()
    codes = canonical_forces(forces)
    _check_request(codes, records)
    checked_sentinels = check_sentinels(sentinels)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(codes, records, seed)
    placements: list[SentinelPlacement] = []
    final_ids: dict[str, str] = {}
    files: dict[str, Path] = {}
    kinds: dict[str, dict[str, int]] = {}
    for force in codes:
        path = out_dir / f"{force}.ndjson"
        counts: Counter[str] = Counter()
        pending = 0
        with path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
            for record in _stream(plan, force, checked_sentinels, placements, final_ids):
                out.write(_dump(record))
                out.write("\n")
                counts[record["kind"]] += 1
                pending += 1
                if progress is not None and pending >= _PROGRESS_EVERY:
                    progress(force, pending)
                    pending = 0
        if progress is not None and pending:
            progress(force, pending)
        files[force] = path
        kinds[force] = dict(sorted(counts.items()))
    planted_links = dict(Counter(link.type for link in plan.links))
    truth_path = out_dir / GROUND_TRUTH_FILE
    truth = {
        "format_version": FORMAT_VERSION,
        "generator": "gateway synth",
        "seed": seed,
        "forces": codes,
        "records_per_force": records,
        "files": {force: path.name for force, path in files.items()},
        "planted_links": {kind: planted_links.get(kind, 0) for kind in PLANTED_LINK_TYPES},
        "links": [link.resolved(final_ids).to_json() for link in plan.links],
        "sentinels": [placement.to_json() for placement in placements],
    }
    truth_path.write_text(
        json.dumps(truth, ensure_ascii=False, indent=1) + "\n", encoding="utf-8", newline="\n"
    )
    return SynthSummary(
        forces=codes,
        records_per_force=records,
        seed=seed,
        out_dir=out_dir,
        files=files,
        ground_truth=truth_path,
        kinds=kinds,
        planted_links={kind: planted_links.get(kind, 0) for kind in PLANTED_LINK_TYPES},
        seconds=time.perf_counter() - started,
        sentinel_placements=placements,
    )


PLANTED_LINK_TYPES = ("deal_line", "person_variant", "premises")
