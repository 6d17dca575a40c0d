"""Building single synthetic records of every kind, as plain JSON data in the exact shape the
v1 record models dump (`model_dump(mode="json")`): every key present, defaults included.

`RecordFactory` belongs to one force: it numbers record ids per kind, picks envelope values
(classification, grading, categories, retention) with realistic frequencies, and builds bodies.
It never validates through pydantic; that would cost more than building the record, and the
tests validate every record of smaller runs instead.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway.synth import identifiers as ids
from gateway.synth import tables

JsonRecord = dict[str, Any]

# Record id prefix per kind: "05-P-000123" is Merseyside's 123rd person record.
ID_PREFIXES: dict[str, str] = {
    "person": "P",
    "phone": "T",
    "vehicle": "V",
    "location": "L",
    "organisation": "O",
    "intelligence_report": "IR",
    "county_line": "CL",
    "modern_slavery_case": "MS",
    "event": "E",
}

# Records describe activity between these days; fixed rather than today's date so a seed gives
# the same files whenever it runs.
ACTIVITY_START = date(2019, 1, 1)
ACTIVITY_END = date(2025, 3, 31)
REFERENCE_DAY = date(2025, 4, 1)
# Review dates in this window are already past whenever the data is used: the overdue records.
OVERDUE_START = date(2022, 1, 1)
OVERDUE_END = date(2024, 12, 31)
REVIEW_START = date(2026, 1, 1)
REVIEW_END = date(2035, 12, 31)

_ACTIVITY_SPAN_SECONDS = (ACTIVITY_END - ACTIVITY_START).days * 86_400
_ACTIVITY_START_DT = datetime(ACTIVITY_START.year, ACTIVITY_START.month, 1, tzinfo=UTC)

_SOURCE_EVALUATIONS = ("1",) * 3 + ("2",) * 6 + ("3",) * 1
_ASSESSMENTS = ("A",) * 3 + ("B",) * 7 + ("C",) * 7 + ("D",) * 2 + ("E",)
_RETENTION_GROUPS = (1,) + (2,) * 4 + (3,) * 7 + (4,) * 8
_SENSITIVE_CATEGORIES = ("RACE_ETHNIC", "HEALTH", "RELIGION_BELIEF", "SEX_LIFE_ORIENTATION")
_ORIGIN_WEIGHTS = [origin.weight for origin in tables.ORIGINS]


def force_source_system(force: str) -> str:
    """Each force runs one records system; which one is a stable function of its code."""
    return tables.SOURCE_SYSTEMS[sum(map(ord, force)) % len(tables.SOURCE_SYSTEMS)]


class RecordFactory:
    """Makes records owned by `force`, numbering ids per kind from 1."""

    def __init__(
        self,
        force: str,
        rng: random.Random,
        *,
        phone_blocks: Sequence[str],
        partner_forces: Sequence[str],
        id_prefix: str = "",
    ) -> None:
        self.force = force
        self.rng = rng
        self.phone_blocks = tuple(phone_blocks)
        self.run_forces = frozenset((force, *partner_forces))
        # Forces named in handling conditions: this run's other forces, else typical neighbours.
        self.partner_forces = tuple(partner_forces) or tables.IMPORTING_NEIGHBOURS.get(
            force, tables.DEFAULT_NEIGHBOURS
        )
        # Planted records get provisional ids ("planned." + id) until the stream places them.
        self.id_prefix = id_prefix
        self.counters = dict.fromkeys(ID_PREFIXES, 0)
        self.towns, self.districts = ids.force_area(force)
        self.vrm_region = tables.FORCE_VRM_REGIONS.get(force)
        self.system = force_source_system(force)

    # --- envelope -------------------------------------------------------------------------

    def next_id(self, kind: str) -> str:
        number = self.counters[kind] + 1
        self.counters[kind] = number
        return f"{self.id_prefix}{self.force}-{ID_PREFIXES[kind]}-{number:06d}"

    def ref(self, record: JsonRecord) -> dict[str, str]:
        return {"force": record["owner_force"], "record_id": record["id"]}

    def link(self, role: str, target: JsonRecord, confidence: float | None = None) -> JsonRecord:
        return {
            "role": role,
            "target": {"force": target["owner_force"], "record_id": target["id"]},
            "confidence": confidence,
            "source_record": None,
        }

    def _classification(self) -> JsonRecord:
        roll = self.rng.random()
        if roll < 0.78:
            return _plain_official()
        if roll < 0.97:
            descriptor_roll = self.rng.random()
            descriptors = (
                ["PERSONAL"]
                if descriptor_roll < 0.6
                else ["LOCSEN"]
                if descriptor_roll < 0.75
                else []
            )
            return {
                "tier": "OFFICIAL",
                "sensitive": True,
                "descriptors": descriptors,
                "caveats": [],
                "legacy_gpms": None,
            }
        return {
            "tier": "SECRET",
            "sensitive": False,
            "descriptors": [],
            "caveats": [],
            "legacy_gpms": None,
        }

    def _grading(self, conditional_share: float) -> JsonRecord:
        rng = self.rng
        grading: JsonRecord = {
            "source_evaluation": rng.choice(_SOURCE_EVALUATIONS),
            "assessment": rng.choice(_ASSESSMENTS),
            "handling": "P",
            "conditions": None,
            "condition_forces": None,
            "legacy_5x5x5": None,
        }
        if rng.random() < conditional_share:
            partners = rng.sample(self.partner_forces, k=min(2, len(self.partner_forces)))
            named = sorted({self.force, *partners[: rng.randrange(1, len(partners) + 1)]})
            grading["handling"] = "C"
            grading["conditions"] = rng.choice(tables.CONDITION_TEXTS).format(
                forces=", ".join(named)
            )
            grading["condition_forces"] = named
        return grading

    def _retention(self, group: int | None = None) -> JsonRecord:
        rng = self.rng
        if rng.random() < 0.02:
            review = ids.day_between(rng, OVERDUE_START, OVERDUE_END)
        else:
            review = ids.day_between(rng, REVIEW_START, REVIEW_END)
        return {
            "group": rng.choice(_RETENTION_GROUPS) if group is None else group,
            "next_review": review.isoformat(),
            "clear_period_start": None,
            "retain_decision": None,
        }

    def envelope(
        self,
        kind: str,
        body: JsonRecord,
        *,
        at: datetime | None = None,
        subject_categories: Sequence[str] = (),
        sensitive_categories: Sequence[str] = (),
        links: Sequence[JsonRecord] = (),
        conditional_share: float = 0.03,
        retention_group: int | None = None,
    ) -> JsonRecord:
        """A complete record of `kind` around `body`; `at` is when it was created."""
        rng = self.rng
        if at is None:
            at = _ACTIVITY_START_DT + timedelta(seconds=rng.randrange(_ACTIVITY_SPAN_SECONDS))
        updated = at + timedelta(seconds=rng.randrange(3600)) if rng.random() < 0.7 else at
        if rng.random() < 0.15:
            updated += timedelta(days=rng.randrange(1, 400))
        record_id = self.next_id(kind)
        return {
            "id": record_id,
            "kind": kind,
            "schema_version": "1",
            "owner_force": self.force,
            "version": 1 if updated == at else rng.randrange(2, 6),
            "created_at": ids.utc_text(at),
            "updated_at": ids.utc_text(updated),
            "classification": self._classification(),
            "grading": self._grading(conditional_share),
            "subject_categories": list(subject_categories),
            "sensitive_categories": list(sensitive_categories),
            "retention": self._retention(retention_group),
            "source": {
                "system": self.system,
                "local_ref": local_ref(at.year, kind, self.counters[kind]),
            },
            "originator": {
                "id": f"officer-{self.force}-{rng.randrange(1, 2000):04d}",
                "unit": rng.choice(tables.UNITS),
            },
            "body": body,
            "links": list(links),
        }

    # --- bodies ---------------------------------------------------------------------------

    def pick_origin(self) -> tables.NameOrigin:
        return self.rng.choices(tables.ORIGINS, weights=_ORIGIN_WEIGHTS)[0]

    def person_name(self, origin: tables.NameOrigin, gender: str) -> tuple[str, str]:
        rng = self.rng
        given = rng.choice(origin.male if gender == "male" else origin.female)
        if origin.key in ("english", "irish") and rng.random() < 0.25:
            given = f"{given} {rng.choice(origin.male if gender == 'male' else origin.female)}"
        family = rng.choice(origin.family)
        if origin.key == "vietnamese" and rng.random() < 0.6:
            # Most UK systems hold Vietnamese names without tone marks.
            given, family = ids.without_diacritics(given), ids.without_diacritics(family)
        return given, family

    def person(
        self,
        *,
        role: str,
        min_age: int = 16,
        max_age: int = 65,
        origin: tables.NameOrigin | None = None,
        gender: str | None = None,
        name: tuple[str, str] | None = None,
        dob: date | None = None,
        at: datetime | None = None,
        links: Sequence[JsonRecord] = (),
    ) -> JsonRecord:
        """A nominal; `role` is the s.38(3) category (SUSPECT, CONVICTED, VICTIM, WITNESS_OTHER)."""
        rng = self.rng
        origin = origin or self.pick_origin()
        if gender is None:
            gender = "male" if rng.random() < 0.72 else "female"
        given, family = name if name is not None else self.person_name(origin, gender)
        if dob is None:
            dob = ids.date_of_birth(rng, REFERENCE_DAY, min_age, max_age)
        names: list[JsonRecord] = [
            {"name_type": "primary", "given_names": given, "family_name": family}
        ]
        if rng.random() < 0.15:
            nickname = rng.choice((*tables.LINE_BRANDS, "Little " + given.split()[0]))
            names.append({"name_type": "nickname", "given_names": nickname, "family_name": None})
        elif rng.random() < 0.05:
            alias_given, alias_family = self.person_name(origin, gender)
            names.append(
                {"name_type": "alias", "given_names": alias_given, "family_name": alias_family}
            )
        identifiers: list[JsonRecord] = []
        if rng.random() < 0.2:
            identifiers.append(self._identifier(origin))
        sensitive = [rng.choice(_SENSITIVE_CATEGORIES)] if rng.random() < 0.06 else []
        categories = [role]
        if role == "SUSPECT" and rng.random() < 0.3:
            categories = ["CONVICTED"]
        group = 2 if role in ("SUSPECT", "CONVICTED") and rng.random() < 0.5 else None
        return self.envelope(
            "person",
            {
                "names": names,
                "date_of_birth": dob.isoformat(),
                "gender": gender,
                "nationalities": [rng.choice(origin.nationalities)],
                "identifiers": identifiers,
            },
            at=at,
            subject_categories=categories,
            sensitive_categories=sensitive,
            links=links,
            retention_group=group,
        )

    def _identifier(self, origin: tables.NameOrigin) -> JsonRecord:
        rng = self.rng
        country = rng.choice(origin.nationalities)
        roll = rng.random()
        if roll < 0.4:
            return {
                "type": "passport",
                "number": f"{rng.randrange(10**8, 10**9)}",
                "issuing_country": country,
            }
        if roll < 0.6:
            return {
                "type": "pnc_id",
                "number": f"{rng.randrange(90, 100):02d}/{rng.randrange(10**6):06d}"
                f"{rng.choice(tables.VRM_LETTERS)}",
                "issuing_country": "GB",
            }
        if roll < 0.8:
            letters = "ABCEGHJKLMNPRSTWXYZ"
            return {
                "type": "national_insurance",
                "number": f"{rng.choice(letters)}{rng.choice(letters)}"
                f"{rng.randrange(10**6):06d}{rng.choice('ABCD')}",
                "issuing_country": "GB",
            }
        return {
            "type": "national_id_card",
            "number": f"{rng.choice(tables.VRM_LETTERS)}{rng.randrange(10**7):07d}",
            "issuing_country": country,
        }

    def phone(
        self,
        *,
        number: str | None = None,
        at: datetime | None = None,
        links: Sequence[JsonRecord] = (),
    ) -> JsonRecord:
        rng = self.rng
        body = {
            "number": number or ids.mobile_number(rng, self.phone_blocks),
            "imei": ids.imei(rng) if rng.random() < 0.4 else None,
            "handset": rng.choice(tables.HANDSETS) if rng.random() < 0.6 else None,
            "network": rng.choice(tables.NETWORKS) if rng.random() < 0.5 else None,
        }
        return self.envelope("phone", body, at=at, links=links)

    def vehicle(self, *, links: Sequence[JsonRecord] = ()) -> JsonRecord:
        rng = self.rng
        make, model = rng.choice(tables.VEHICLES)
        body = {
            "vrm": ids.vrm(rng, self.vrm_region),
            "make": make,
            "model": model,
            "colour": rng.choice(tables.COLOURS),
        }
        return self.envelope("vehicle", body, links=links)

    def location(
        self,
        *,
        premises_type: str = "residential",
        address_lines: list[str] | None = None,
        town: str | None = None,
        postcode: str | None = None,
        at: datetime | None = None,
        links: Sequence[JsonRecord] = (),
    ) -> JsonRecord:
        rng = self.rng
        if address_lines is None:
            address_lines = (
                ids.home_address(rng)
                if premises_type in ("residential", "cuckooed_address")
                else ids.premises_address(rng, premises_type)
            )
        body = {
            "address_lines": address_lines,
            "town": town or rng.choice(self.towns),
            "postcode": postcode or ids.postcode(rng, self.districts),
            "premises_type": premises_type,
        }
        categories = ("VICTIM",) if premises_type == "cuckooed_address" else ()
        return self.envelope("location", body, at=at, links=links, subject_categories=categories)

    def organisation(
        self,
        *,
        name: str,
        organisation_type: str,
        industry: str | None = None,
        links: Sequence[JsonRecord] = (),
    ) -> JsonRecord:
        body = {"name": name, "organisation_type": organisation_type, "industry": industry}
        return self.envelope("organisation", body, links=links)

    def intelligence_report(
        self,
        *,
        text: str,
        at: datetime | None = None,
        links: Sequence[JsonRecord] = (),
        subject_categories: Sequence[str] = ("SUSPECT",),
    ) -> JsonRecord:
        rng = self.rng
        if at is None:
            at = _ACTIVITY_START_DT + timedelta(seconds=rng.randrange(_ACTIVITY_SPAN_SECONDS))
        submitted = at - timedelta(seconds=rng.randrange(1, 3 * 86_400))
        priority_roll = rng.random()
        body = {
            "text": text,
            "submitted_at": ids.utc_text(submitted),
            "sanitised": True,
            "restricted_original_ref": (
                f"RESTRICTED/{self.force}/{rng.randrange(10**7):07d}"
                if rng.random() < 0.2
                else None
            ),
            "priority": (
                "high" if priority_roll < 0.1 else "medium" if priority_roll < 0.45 else "low"
            )
            if priority_roll < 0.8
            else None,
        }
        return self.envelope(
            "intelligence_report",
            body,
            at=at,
            links=links,
            subject_categories=subject_categories,
            conditional_share=0.08,
            retention_group=4,
        )

    def county_line(
        self,
        *,
        line_names: list[str],
        deal_lines: list[JsonRecord],
        importing_forces: list[str],
        closed_on: date | None,
        at: datetime | None = None,
        links: Sequence[JsonRecord] = (),
    ) -> JsonRecord:
        rng = self.rng
        drugs = ["heroin", "crack_cocaine"] if rng.random() < 0.8 else ["cocaine"]
        if rng.random() < 0.15:
            drugs.append(rng.choice(("cannabis", "ketamine", "mdma")))
        body = {
            "line_names": line_names,
            "deal_lines": deal_lines,
            "exporting_force": self.force,
            "importing_forces": importing_forces,
            "drug_types": drugs,
            "status": "active" if closed_on is None else "closed",
            "closure": None
            if closed_on is None
            else {"type": 1 if rng.random() < 0.8 else 2, "closed_on": closed_on.isoformat()},
        }
        return self.envelope("county_line", body, at=at, links=links, conditional_share=0.1)

    def modern_slavery_case(
        self,
        *,
        exploitation: str,
        child: bool,
        industry: str | None,
        county_lines: bool = False,
        at: datetime | None = None,
        links: Sequence[JsonRecord] = (),
    ) -> JsonRecord:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            reasonable, conclusive = "not_referred", "not_referred"
        elif roll < 0.35:
            reasonable, conclusive = "pending", "not_referred"
        elif roll < 0.45:
            reasonable, conclusive = "negative", "not_referred"
        else:
            reasonable = "positive"
            conclusive = rng.choice(("pending", "pending", "positive", "negative", "withdrawn"))
        referred = reasonable != "not_referred"
        body = {
            "exploitation_types": [exploitation],
            "victim_age_group": "CHILD" if child else "ADULT",
            "nrm_reference": f"NRM-{rng.randrange(2019, 2026)}-{rng.randrange(10**6):06d}"
            if referred
            else None,
            "reasonable_grounds": reasonable,
            "conclusive_grounds": conclusive,
            "duty_to_notify": not referred and not child,
            "where_exploited": rng.choice(("UK", "UK", "UK", "UK_AND_OVERSEAS", "UNKNOWN")),
            "recruitment_route": rng.choice(
                ("job_advert", "social_media", "family_or_friend", "debt_bondage", "unknown")
            ),
            "industry": industry,
            "county_lines": county_lines,
        }
        return self.envelope(
            "modern_slavery_case",
            body,
            at=at,
            links=links,
            subject_categories=("VICTIM",),
            retention_group=1 if child else 2,
        )

    def event(
        self,
        *,
        event_type: str,
        summary: str | None,
        at: datetime | None = None,
        location: JsonRecord | None = None,
        links: Sequence[JsonRecord] = (),
    ) -> JsonRecord:
        rng = self.rng
        if at is None:
            at = _ACTIVITY_START_DT + timedelta(seconds=rng.randrange(_ACTIVITY_SPAN_SECONDS))
        body = {
            "event_type": event_type,
            "occurred_at": ids.utc_text(at),
            "location_ref": None if location is None else self.ref(location),
            "summary": summary,
        }
        created = at + timedelta(seconds=rng.randrange(600, 86_400))
        return self.envelope("event", body, at=created, links=links)

    # --- free text ------------------------------------------------------------------------

    def fill(self, template: str, **values: str) -> str:
        """A free-text template filled with local colour from this force's area."""
        rng = self.rng
        make = rng.choice(tables.VEHICLES)[0]
        defaults = {
            "place": rng.choice(tables.CAR_WASH_NAMES + tables.NAIL_BAR_NAMES),
            "street": ids.street(rng),
            "town": rng.choice(self.towns),
            "colour": rng.choice(tables.COLOURS),
            "make": make,
        }
        defaults.update(values)
        return template.format(**defaults)


def local_ref(year: int, kind: str, number: int) -> str:
    """The reference the force's own system gives the record ("2024/P0000123")."""
    return f"{year}/{ID_PREFIXES[kind]}{number:07d}"


def _plain_official() -> JsonRecord:
    return {
        "tier": "OFFICIAL",
        "sensitive": False,
        "descriptors": [],
        "caveats": [],
        "legacy_gpms": None,
    }
