"""The planted cross-force structure and its ground truth.

Before any file is written, `build_plan` decides every cross-force link search must later find:

- deal_line: a county line owned by an exporting force, whose deal-line numbers (changing over
  time) also appear in the importing forces' phone records, intelligence reports and events;
- person_variant: a modern slavery suspect recorded by several forces under spelling variants of
  one name (transliteration, swapped fields, missing diacritics, hyphenation), same date of birth;
- premises: a car wash or nail bar recorded as a location by every force that found one of its
  victims, each force with its own victim and modern slavery case.

The plan holds the planted records of every force (a small share of the run, kept in memory) under
provisional ids; each force's stream gives them their final ids as it places them, and
`PlantedLink.resolved` maps the ground truth onto those final ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from gateway.keys.normalise import normalise_name
from gateway.synth import identifiers as ids
from gateway.synth import tables
from gateway.synth.factory import (
    ACTIVITY_END,
    REFERENCE_DAY,
    JsonRecord,
    RecordFactory,
)

# Forces whose networks export most county lines (domain reference, section 7).
MAJOR_EXPORTERS = ("01", "05", "20", "06")

# Origins whose names offer transliterations, diacritics or hyphenation to vary.
_VARIANT_ORIGINS = (
    "south_asian",
    "ukrainian_russian",
    "polish",
    "romanian",
    "vietnamese",
    "albanian",
    "nigerian",
)
_VARIANT_GIVEN = {
    "south_asian": ("Mohammed", "Muhammad", "Yusuf", "Ahmed", "Hassan", "Usman", "Abdul Rahman"),
    "nigerian": ("Oluwaseun", "Chukwuemeka", "Adebayo", "Olumide"),
}
# Who is typically found working at each kind of premises (for the victims' names).
_PREMISES_ORIGINS = {
    "car_wash": ("albanian", "romanian", "ukrainian_russian", "polish"),
    "nail_bar": ("vietnamese", "vietnamese", "vietnamese", "romanian"),
}

# Planted records carry provisional ids until the force's stream gives them their place (and
# their final id) among the background records, so their numbers do not line up across forces.
PROVISIONAL_ID_PREFIX = "planned."

# One planted structure per this many records per force (at least one of each).
LINES_PER_RECORDS = 2500
SUSPECTS_PER_RECORDS = 2500
PREMISES_PER_RECORDS = 3000


@dataclass(frozen=True, slots=True)
class LinkMember:
    """One record holding a planted identifier, and the JSON pointer of the field holding it."""

    force: str
    record_id: str
    field: str

    def to_json(self) -> dict[str, str]:
        return {"force": self.force, "record_id": self.record_id, "field": self.field}


@dataclass(frozen=True, slots=True)
class PlantedLink:
    """A cross-force link search must find: records in two or more forces sharing `identifier`.

    `identifier` is the normalised key: an E.164 number (deal_line), "<dob> <normalised name>"
    (person_variant), or "<address lines>, <postcode>" (premises).
    """

    id: str
    type: str
    identifier: str
    members: tuple[LinkMember, ...]
    detail: dict[str, Any]

    @property
    def forces(self) -> list[str]:
        return sorted({member.force for member in self.members})

    def resolved(self, final_ids: dict[str, str]) -> PlantedLink:
        """This link with provisional record ids replaced by the final ones."""

        def final(record_id: str) -> str:
            return final_ids.get(record_id, record_id)

        members = tuple(
            sorted(
                (LinkMember(m.force, final(m.record_id), m.field) for m in self.members),
                key=lambda m: (m.force, m.record_id, m.field),
            )
        )
        return PlantedLink(
            self.id, self.type, self.identifier, members, _resolve(self.detail, final)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "identifier": self.identifier,
            "forces": self.forces,
            "members": [member.to_json() for member in self.members],
            "detail": self.detail,
        }


def _resolve(value: Any, final: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: final(item) if key == "record_id" else _resolve(item, final)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_resolve(item, final) for item in value]
    return value


@dataclass(slots=True)
class CrossForcePlan:
    forces: tuple[str, ...]
    records: int
    seed: int
    planted: dict[str, list[JsonRecord]] = field(default_factory=dict)
    links: list[PlantedLink] = field(default_factory=list)
    # Phone blocks per force for background numbers, and the blocks kept for planted numbers:
    # disjoint, so no background number can create a cross-force match nobody planted.
    phone_blocks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    planted_blocks: tuple[str, ...] = ()


def partition_phone_blocks(
    forces: Sequence[str],
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """Deal the mobile blocks round-robin to the forces, plus one share for planted numbers."""
    shares = len(forces) + 1
    blocks = tables.MOBILE_BLOCKS
    per_force = {
        force: tuple(block for i, block in enumerate(blocks) if i % shares == index)
        for index, force in enumerate(forces)
    }
    planted = tuple(block for i, block in enumerate(blocks) if i % shares == len(forces))
    return per_force, planted


def planted_count(records: int, per_records: int) -> int:
    return max(1, records // per_records)


class _Planter:
    """Builds the plan; one instance per `build_plan` call."""

    def __init__(self, plan: CrossForcePlan) -> None:
        self.plan = plan
        forces = plan.forces
        self.rng = ids.seeded_rng("gateway-synth-plan", plan.seed, ",".join(forces))
        self.factories = {
            force: RecordFactory(
                force,
                self.rng,
                phone_blocks=plan.phone_blocks[force],
                partner_forces=[other for other in forces if other != force],
                id_prefix=PROVISIONAL_ID_PREFIX,
            )
            for force in forces
        }
        self.used_numbers: set[str] = set()
        self.serial = {"deal_line": 0, "person_variant": 0, "premises": 0}

    def emit(self, record: JsonRecord) -> JsonRecord:
        self.plan.planted[record["owner_force"]].append(record)
        return record

    def link(self, kind: str, identifier: str, members: list[LinkMember], **detail: Any) -> None:
        self.serial[kind] += 1
        ordered = tuple(sorted(members, key=lambda m: (m.force, m.record_id, m.field)))
        self.plan.links.append(
            PlantedLink(f"{kind}-{self.serial[kind]:05d}", kind, identifier, ordered, detail)
        )

    def fresh_number(self) -> str:
        while True:
            number = ids.mobile_number(self.rng, self.plan.planted_blocks)
            if number not in self.used_numbers:
                self.used_numbers.add(number)
                return number

    def others(self, force: str, count: int) -> list[str]:
        pool = [other for other in self.plan.forces if other != force]
        return sorted(self.rng.sample(pool, k=min(count, len(pool))))

    # --- deal lines -----------------------------------------------------------------------

    def county_line(self, exporter: str) -> None:
        rng = self.rng
        out = self.factories[exporter]
        importers = self.others(exporter, 1 if rng.random() < 0.6 else 2)
        brand = rng.choice(tables.LINE_BRANDS)
        periods = self._number_periods()
        closed_on = periods[-1][2] if periods[-1][2] is not None else None
        started = ids.instant_on(rng, periods[0][1])

        holder = self.emit(out.person(role="SUSPECT", min_age=19, max_age=34, at=started))
        runner_child = rng.random() < 0.4
        runner = self.emit(
            out.person(
                role="VICTIM" if runner_child else "SUSPECT",
                min_age=14 if runner_child else 18,
                max_age=17 if runner_child else 25,
                at=started,
            )
        )
        deal_lines = [
            {
                "number": number,
                "valid_from": start.isoformat(),
                "valid_to": None if end is None else end.isoformat(),
            }
            for number, start, end in periods
        ]
        line = self.emit(
            out.county_line(
                line_names=[f"{brand} Line"] if rng.random() < 0.5 else [brand, f"{brand} Line"],
                deal_lines=deal_lines,
                importing_forces=importers,
                closed_on=closed_on,
                at=started,
                links=[out.link("line_holder", holder), out.link("runner", runner)],
            )
        )
        members: dict[str, list[LinkMember]] = {number: [] for number, _, _ in periods}
        for index, (number, start, _end) in enumerate(periods):
            members[number].append(
                LinkMember(exporter, line["id"], f"/body/deal_lines/{index}/number")
            )
            handset = self.emit(
                out.phone(
                    number=number,
                    at=ids.instant_on(rng, start),
                    links=[out.link("user_of", holder), out.link("associate", line)],
                )
            )
            members[number].append(LinkMember(exporter, handset["id"], "/body/number"))

        # Every number turns up in at least one importing force while it was in use.
        for index, (number, start, end) in enumerate(periods):
            seen_by = [imp for imp in importers if rng.random() < 0.7] or [importers[0]]
            for importer in seen_by:
                members[number].append(
                    self._imported_mention(importer, number, brand, start, end, exporter, index)
                )
        for number, start, end in periods:
            self.link(
                "deal_line",
                number,
                members[number],
                line={"force": exporter, "record_id": line["id"]},
                line_names=line["body"]["line_names"],
                exporting_force=exporter,
                importing_forces=importers,
                valid_from=start.isoformat(),
                valid_to=None if end is None else end.isoformat(),
            )

    def _number_periods(self) -> list[tuple[str, date, date | None]]:
        """1 to 3 consecutive numbers; the last is open unless the line was closed."""
        rng = self.rng
        count = rng.choices((1, 2, 3), weights=(45, 35, 20))[0]
        start = ids.day_between(rng, date(2021, 1, 1), date(2024, 3, 31))
        closed = rng.random() < 0.3
        periods: list[tuple[str, date, date | None]] = []
        for position in range(count):
            end: date | None = start + timedelta(days=rng.randrange(30, 240))
            if position == count - 1 and not closed:
                end = None
            if end is not None and end > ACTIVITY_END:
                end = ACTIVITY_END
            periods.append((self.fresh_number(), start, end))
            if end is None:
                break
            start = end + timedelta(days=1)
            if start > ACTIVITY_END:
                break
        return periods

    def _imported_mention(
        self,
        importer: str,
        number: str,
        brand: str,
        start: date,
        end: date | None,
        exporter: str,
        index: int,
    ) -> LinkMember:
        rng = self.rng
        into = self.factories[importer]
        last = end if end is not None else min(start + timedelta(days=150), ACTIVITY_END)
        at = ids.instant_on(rng, ids.day_between(rng, start, last))
        written = ids.national_format(number)
        roll = rng.random()
        if roll < 0.35:
            record = self.emit(into.phone(number=number, at=at))
            return LinkMember(importer, record["id"], "/body/number")
        if roll < 0.75:
            text = into.fill(rng.choice(tables.DEAL_LINE_TEXTS), number=written, brand=brand)
            record = self.emit(into.intelligence_report(text=text, at=at))
            if index == 0 and record["grading"]["handling"] == "C":
                # Conditions on line intelligence usually name the force the line comes from.
                forces = sorted({importer, exporter})
                record["grading"]["condition_forces"] = forces
                record["grading"]["conditions"] = (
                    f"Release to {', '.join(forces)} only; consult the originator before action."
                )
            return LinkMember(importer, record["id"], "/body/text")
        text = into.fill(rng.choice(tables.DEAL_LINE_EVENT_TEXTS), number=written)
        record = self.emit(into.event(event_type="arrest", summary=text, at=at))
        return LinkMember(importer, record["id"], "/body/summary")

    # --- suspects under several spellings -------------------------------------------------

    def slavery_suspect(self, home: str) -> None:
        rng = self.rng
        origin_key = rng.choice(_VARIANT_ORIGINS)
        origin = next(o for o in tables.ORIGINS if o.key == origin_key)
        gender = "male" if rng.random() < 0.8 else "female"
        if gender == "male":
            given = rng.choice(_VARIANT_GIVEN.get(origin_key, origin.male))
        else:
            given = rng.choice(origin.female)
        family = rng.choice(origin.family)
        if origin.family_first and rng.random() < 0.5:
            # Recorded family name first in the given-name field by the first force already.
            given, family = family, given
        dob = ids.date_of_birth(rng, REFERENCE_DAY, 24, 58)
        forces = [home, *self.others(home, 1 if rng.random() < 0.6 else 2)]
        forms = ids.spelling_variants(rng, given, family, len(forces))
        members: list[LinkMember] = []
        written: list[dict[str, str]] = []
        for force, ((form_given, form_family), how) in zip(forces, forms, strict=True):
            factory = self.factories[force]
            person = self.emit(
                factory.person(
                    role="SUSPECT",
                    origin=origin,
                    gender=gender,
                    name=(form_given, form_family),
                    dob=dob,
                )
            )
            # Drop the generator's random alias: the planted variant must be the one to match.
            person["body"]["names"] = person["body"]["names"][:1]
            members.append(LinkMember(force, person["id"], "/body/names/0"))
            written.append(
                {
                    "force": force,
                    "record_id": person["id"],
                    "given_names": form_given,
                    "family_name": form_family,
                    "variant": how,
                }
            )
            text = factory.fill(rng.choice(tables.SLAVERY_SUSPECT_TEXTS))
            self.emit(
                factory.intelligence_report(text=text, links=[factory.link("subject_of", person)])
            )
        canonical = normalise_name(f"{given} {family}") or ""
        self.link(
            "person_variant",
            f"{dob.isoformat()} {canonical}",
            members,
            date_of_birth=dob.isoformat(),
            names=written,
        )

    # --- premises with victims in several forces ------------------------------------------

    def premises(self, home: str) -> None:
        rng = self.rng
        premises_type = "car_wash" if rng.random() < 0.55 else "nail_bar"
        names = tables.CAR_WASH_NAMES if premises_type == "car_wash" else tables.NAIL_BAR_NAMES
        local = self.factories[home]
        address = ids.premises_address(rng, premises_type)
        town = rng.choice(local.towns)
        postcode = ids.postcode(rng, local.districts)
        forces = [home, *self.others(home, 1 if rng.random() < 0.6 else 2)]
        members: list[LinkMember] = []
        cases: list[dict[str, str]] = []
        for force in forces:
            factory = self.factories[force]
            found = ids.instant_on(rng, ids.day_between(rng, date(2021, 6, 1), ACTIVITY_END))
            site = self.emit(
                factory.location(
                    premises_type=premises_type,
                    address_lines=list(address),
                    town=town,
                    postcode=postcode,
                    at=found,
                )
            )
            members.append(LinkMember(force, site["id"], "/body/address_lines"))
            if force == home:
                self.emit(
                    factory.organisation(
                        name=rng.choice(names),
                        organisation_type="business",
                        industry=premises_type,
                        links=[factory.link("located_at", site)],
                    )
                )
            origin_key = rng.choice(_PREMISES_ORIGINS[premises_type])
            origin = next(o for o in tables.ORIGINS if o.key == origin_key)
            child = rng.random() < 0.15
            victim = self.emit(
                factory.person(
                    role="VICTIM",
                    origin=origin,
                    gender="female" if premises_type == "nail_bar" else "male",
                    min_age=15 if child else 18,
                    max_age=17 if child else 40,
                    at=found,
                )
            )
            case = self.emit(
                factory.modern_slavery_case(
                    exploitation="LABOUR",
                    child=child,
                    industry=premises_type,
                    at=found,
                    links=[factory.link("victim", victim), factory.link("located_at", site)],
                )
            )
            cases.append({"force": force, "record_id": case["id"]})
        self.link(
            "premises",
            f"{', '.join(address)}, {postcode}",
            members,
            premises_type=premises_type,
            address_lines=address,
            town=town,
            postcode=postcode,
            victim_cases=cases,
        )


def build_plan(forces: Sequence[str], records: int, seed: int) -> CrossForcePlan:
    """The planted structure for a run over `forces` (canonical codes, sorted) with `records`
    records per force. A run over one force plants nothing: every link crosses forces."""
    blocks, planted_blocks = partition_phone_blocks(forces)
    plan = CrossForcePlan(
        forces=tuple(forces),
        records=records,
        seed=seed,
        planted={force: [] for force in forces},
        phone_blocks=blocks,
        planted_blocks=planted_blocks,
    )
    if len(forces) >= 2:
        planter = _Planter(plan)
        exporters = [force for force in forces if force in MAJOR_EXPORTERS] or [forces[0]]
        for exporter in exporters:
            for _ in range(planted_count(records, LINES_PER_RECORDS)):
                planter.county_line(exporter)
        for force in forces:
            for _ in range(planted_count(records, SUSPECTS_PER_RECORDS)):
                planter.slavery_suspect(force)
        for force in forces:
            for _ in range(planted_count(records, PREMISES_PER_RECORDS)):
                planter.premises(force)
    return plan
