"""Loading a policy set: the Cedar schema, the national base rules and the agreements.

A policy directory holds `agreements/`: one `<name>.cedar` file per information-sharing agreement
and a `<name>.yaml` metadata file beside it. The schema and the base rules ship with the package
(`policies/schema.cedarschema`, `policies/base/`), so a force cannot weaken them.

Loading is all or nothing: any problem raises `PolicyLoadError` listing every problem found, so a
node never starts on a policy set it did not fully understand (fail closed).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import cedarpy
import rfc8785
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from policies._model import ALL_ACTIONS
from schemas.enums import Purpose

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_SCHEMA_PATH = PACKAGE_DIR / "schema.cedarschema"
DEFAULT_BASE_DIR = PACKAGE_DIR / "base"
BASE_LAYER = "base"

_FORCE_CODE = re.compile(r"^[0-9]{2}$")
_POLICY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class PolicyLoadError(Exception):
    """A policy set could not be loaded; `problems` lists every problem found (file: message)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid policy set:\n" + "\n".join(f"- {p}" for p in self.problems))


class AgreementMetadata(BaseModel):
    """The metadata file of one information-sharing agreement (YAML beside its Cedar file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    title: str = Field(min_length=1)
    parties: tuple[str, ...] = Field(min_length=1)
    legal_basis: str = Field(min_length=1)
    purposes: tuple[Purpose, ...] = Field(min_length=1)
    start: date
    end: date
    review: date
    owner_contact: str = Field(min_length=1)
    # Whom a pointer answer tells the caller to contact, per owning force; owner_contact otherwise.
    contacts: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> AgreementMetadata:
        bad = [p for p in self.parties if not _FORCE_CODE.match(p)]
        if bad:
            raise ValueError(f"parties must be two-digit PNC force codes, not {bad}")
        if len(set(self.parties)) != len(self.parties):
            raise ValueError("parties are listed twice")
        if self.end < self.start:
            raise ValueError("end date is before start date")
        strangers = sorted(set(self.contacts) - set(self.parties))
        if strangers:
            raise ValueError(f"contacts name forces that are not parties: {strangers}")
        return self

    def in_force(self, on: date) -> bool:
        """Whether the agreement is in force on a day (start and end days included)."""
        return self.start <= on <= self.end

    def contact_for(self, owner_force: str) -> str:
        return self.contacts.get(owner_force, self.owner_contact)


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """One Cedar policy with the annotations the engine reads."""

    id: str
    effect: str  # "permit" or "forbid"
    layer: str  # BASE_LAYER or the agreement id
    source: str  # file the policy came from
    reason: str
    obligations: tuple[str, ...]
    hidden: bool  # @visibility("hidden"): when this forbid applies, not even a hit is shown


@dataclass(frozen=True, slots=True)
class Agreement:
    metadata: AgreementMetadata
    source: str
    policy_ids: tuple[str, ...]


@dataclass
class LoadedPolicySet:
    """An immutable, validated policy set; Cedar policy sets are built from it on demand."""

    schema: cedarpy.Schema
    schema_text: str
    policies: Mapping[str, PolicyInfo]
    agreements: tuple[Agreement, ...]
    policy_hash: str
    _est: Mapping[str, dict[str, Any]]
    _base_ids: tuple[str, ...]
    _sets: dict[frozenset[str], cedarpy.PolicySet] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def order(self) -> Mapping[str, int]:
        """Each policy id's position in load order (base files, then agreements, by file name)."""
        return self._order

    def __post_init__(self) -> None:
        self._order = {pid: index for index, pid in enumerate(self.policies)}
        self._reads_now = any(reads_context_now(est) for est in self._est.values())

    @property
    def reads_now(self) -> bool:
        """Whether any policy may read `context.now`: if none does, two requests that differ
        only in the time of day get the same answers from Cedar (see `PolicyEngine`)."""
        return self._reads_now

    def agreement(self, agreement_id: str) -> Agreement:
        return next(a for a in self.agreements if a.metadata.id == agreement_id)

    def cedar_policy_set(self, agreement_ids: frozenset[str]) -> cedarpy.PolicySet:
        """The base rules plus the given agreements' policies, parsed once and then reused."""
        with self._lock:
            cached = self._sets.get(agreement_ids)
            if cached is not None:
                return cached
        ids = list(self._base_ids)
        for agreement in self.agreements:
            if agreement.metadata.id in agreement_ids:
                ids.extend(agreement.policy_ids)
        document = {
            "staticPolicies": {pid: self._est[pid] for pid in ids},
            "templates": {},
            "templateLinks": [],
        }
        built = cedarpy.PolicySet.from_json_str(json.dumps(document))
        with self._lock:
            self._sets[agreement_ids] = built
        return built


def reads_context_now(est: Any) -> bool:
    """Whether a policy (in Cedar's JSON form) may read the request's `now`.

    Conservative: `context.now` and `context has now` read it, and so does any other use of
    `context` as a whole (compared, or passed to a function), since that exposes every attribute.
    Only `context.<other attribute>` and `context has <other attribute>` are known not to."""
    if isinstance(est, list):
        return any(reads_context_now(item) for item in est)
    if not isinstance(est, dict):
        return False
    if est.get("Var") == "context":
        return True  # `context` itself, not one named attribute of it
    for operator in (".", "has"):
        access = est.get(operator)
        if (
            len(est) == 1
            and isinstance(access, dict)
            and access.get("left") == {"Var": "context"}
            and isinstance(access.get("attr"), str)
        ):
            return bool(access["attr"] == "now")
    return any(reads_context_now(value) for value in est.values())


def _read_text(path: Path) -> str:
    # Normalised line endings, so the policy hash does not change with the editor's platform.
    return path.read_text(encoding="utf-8").replace("\r\n", "\n")


def _policies_of_file(
    text: str, source: str, layer: str, schema: cedarpy.Schema, problems: list[str]
) -> dict[str, tuple[PolicyInfo, dict[str, Any]]]:
    """Parse and validate one Cedar file; returns its policies by @id (problems appended)."""
    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        names = result.id_annotations_by_policy_id
        for err in result.errors:
            where = names.get(err.policy_id, err.policy_id)
            problems.append(f"{source}: {f'[{where}] ' if where else ''}{err.error}")
        return {}
    document = json.loads(cedarpy.policies_to_json_str(text))
    if document.get("templates"):
        problems.append(f"{source}: templates are not supported; write static policies")
    found: dict[str, tuple[PolicyInfo, dict[str, Any]]] = {}
    for position, est in enumerate(document.get("staticPolicies", {}).values(), start=1):
        annotations: dict[str, str] = est.get("annotations") or {}
        pid = annotations.get("id")
        label = f"{source}: policy #{position}"
        if not pid or not _POLICY_ID.match(pid):
            problems.append(f'{label} needs an @id("...") of letters, digits and ._:-')
            continue
        if not annotations.get("reason"):
            problems.append(f'{label} [{pid}] needs a plain-language @reason("...")')
            continue
        if pid in found:
            problems.append(f"{label}: @id {pid!r} is used twice")
            continue
        effect = est["effect"]
        if layer == BASE_LAYER and effect != "forbid":
            problems.append(f"{label} [{pid}]: base rules may only forbid")
            continue
        visibility = annotations.get("visibility")
        if visibility is not None and (visibility != "hidden" or effect != "forbid"):
            problems.append(f'{label} [{pid}]: @visibility("hidden") is only meaningful on forbid')
            continue
        raw_obligations = annotations.get("obligation", "")
        obligations = tuple(o.strip() for o in raw_obligations.split(",") if o.strip())
        if obligations and effect != "permit":
            problems.append(f"{label} [{pid}]: @obligation is only meaningful on permit")
            continue
        info = PolicyInfo(
            id=pid,
            effect=effect,
            layer=layer,
            source=source,
            reason=annotations["reason"],
            obligations=obligations,
            hidden=visibility == "hidden",
        )
        found[pid] = (info, est)
    return found


def _schema_covers_actions(schema: cedarpy.Schema, source: str, problems: list[str]) -> None:
    # The engine asks Cedar about every action; a schema missing one would fail every request.
    actions = ", ".join(f'Action::"{a}"' for a in ALL_ACTIONS)
    probe = f"permit (principal, action in [{actions}], resource);"
    for err in cedarpy.validate_policies(probe, schema).errors:
        problems.append(f"{source}: schema does not declare the engine's actions: {err.error}")


def load_policy_set(
    directory: Path,
    *,
    base_dir: Path = DEFAULT_BASE_DIR,
    schema_path: Path = DEFAULT_SCHEMA_PATH,
) -> LoadedPolicySet:
    """Load and validate a policy directory; raises `PolicyLoadError` listing every problem."""
    problems: list[str] = []
    try:
        schema_text = _read_text(schema_path)
        schema = cedarpy.Schema.from_str(schema_text)
    except (OSError, ValueError) as exc:
        raise PolicyLoadError([f"{schema_path.name}: {exc}"]) from None
    _schema_covers_actions(schema, schema_path.name, problems)

    policies: dict[str, PolicyInfo] = {}
    est: dict[str, dict[str, Any]] = {}
    hashed_base: dict[str, str] = {}
    hashed_agreements: dict[str, dict[str, Any]] = {}

    def admit(found: dict[str, tuple[PolicyInfo, dict[str, Any]]]) -> tuple[str, ...]:
        for pid, (info, tree) in found.items():
            if pid in policies:
                problems.append(
                    f"{info.source}: @id {pid!r} is also used in {policies[pid].source}"
                )
                continue
            policies[pid] = info
            est[pid] = tree
        return tuple(found)

    base_files = sorted(base_dir.glob("*.cedar"))
    if not base_files:
        problems.append(f"{base_dir}: no base rules found")
    base_ids: list[str] = []
    for path in base_files:
        text = _read_text(path)
        hashed_base[path.name] = text
        base_ids.extend(
            admit(_policies_of_file(text, f"base/{path.name}", BASE_LAYER, schema, problems))
        )

    agreements_dir = directory / "agreements"
    agreements: list[Agreement] = []
    if not agreements_dir.is_dir():
        problems.append(f"{directory}: no agreements/ folder")
    else:
        cedar_files = {p.stem: p for p in agreements_dir.glob("*.cedar")}
        meta_files = {p.stem: p for p in agreements_dir.glob("*.yaml")}
        for stem in sorted(set(meta_files) - set(cedar_files)):
            problems.append(f"agreements/{stem}.yaml has no {stem}.cedar beside it")
        for stem in sorted(cedar_files):
            source = f"agreements/{stem}.cedar"
            if stem not in meta_files:
                problems.append(f"{source} has no {stem}.yaml metadata file beside it")
                continue
            metadata = _read_metadata(meta_files[stem], problems)
            if metadata is None:
                continue
            if metadata.id != stem:
                problems.append(f"agreements/{stem}.yaml: id {metadata.id!r} must match file name")
                continue
            text = _read_text(cedar_files[stem])
            ids = admit(_policies_of_file(text, source, metadata.id, schema, problems))
            agreements.append(Agreement(metadata=metadata, source=source, policy_ids=ids))
            hashed_agreements[metadata.id] = {
                "metadata": metadata.model_dump(mode="json"),
                "policies": text,
            }

    if problems:
        raise PolicyLoadError(problems)
    canonical = rfc8785.dumps(
        {"schema": schema_text, "base": hashed_base, "agreements": hashed_agreements}
    )
    return LoadedPolicySet(
        schema=schema,
        schema_text=schema_text,
        policies=policies,
        agreements=tuple(agreements),
        policy_hash=hashlib.sha256(canonical).hexdigest(),
        _est=est,
        _base_ids=tuple(base_ids),
    )


def _read_metadata(path: Path, problems: list[str]) -> AgreementMetadata | None:
    source = f"agreements/{path.name}"
    try:
        raw = yaml.safe_load(_read_text(path))
    except yaml.YAMLError as exc:
        problems.append(f"{source}: not valid YAML: {exc}")
        return None
    if not isinstance(raw, dict):
        problems.append(f"{source}: expected a mapping of metadata fields")
        return None
    try:
        return AgreementMetadata.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "metadata"
            problems.append(f"{source}: {where}: {err['msg']}")
        return None
