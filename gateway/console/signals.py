"""Misuse signals: patterns in a user's queries that an auditor should look at.

Each signal is a prompt for a human, not a finding: it says what was seen, why it matters and
which entries show it. The rules are deliberately simple and explained on the page, so an
auditor can tell a false alarm (a busy operation, a common surname) from real misuse.

`detect_signals` is pure: it takes the activity already read from the log, so the rules can be
tested without a node.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")

# Thresholds, named so the page can quote them.
VOLUME_FACTOR = 3.0
VOLUME_MARGIN = 10
VOLUME_MIN_HISTORY_DAYS = 3
VOLUME_ABSOLUTE = 50
OUT_OF_HOURS_START = 22  # local hour, inclusive
OUT_OF_HOURS_END = 6  # local hour, exclusive
BURST_COUNT = 5
BURST_WINDOW = timedelta(hours=1)
NO_HIT_RUN = 8
_HIT_OUTCOMES = ("full", "redacted", "pointer")


@dataclass(frozen=True)
class Activity:
    """One query-like entry of one user, with what the signals need from it."""

    index: int
    time: datetime
    kind: str
    user_id: str
    case_ref: str | None
    decision: str | None
    records: tuple[str, ...] = ()
    searched_name_parts: frozenset[str] = frozenset()
    request_id: str | None = None


@dataclass(frozen=True)
class Signal:
    user_id: str
    rule: str
    title: str
    explanation: str
    entries: tuple[int, ...]
    severity: str = "review"


@dataclass
class UserSignals:
    user_id: str
    queries: int
    signals: list[Signal] = field(default_factory=list)


def had_hits(decision: str | None) -> bool:
    """Whether a query's decision summary (e.g. "redacted:3,pointer:1") showed the user anything.

    Hidden and denied records are not hits to the user, so a run of those is still fishing."""
    for part in (decision or "").split(","):
        outcome, _, count = part.partition(":")
        if outcome.strip() in _HIT_OUTCOMES and count.strip().isdigit() and int(count) > 0:
            return True
    return False


def _queries(activity: Iterable[Activity]) -> list[Activity]:
    # A federated search writes several entries under one request id; count it once.
    seen: set[str] = set()
    unique = []
    for item in sorted(activity, key=lambda a: a.index):
        if item.request_id is not None:
            if item.request_id in seen:
                continue
            seen.add(item.request_id)
        unique.append(item)
    return unique


def _volume(user: str, items: Sequence[Activity]) -> list[Signal]:
    per_day: dict[date, list[Activity]] = defaultdict(list)
    for item in items:
        per_day[item.time.astimezone(LONDON).date()].append(item)
    signals = []
    for day, day_items in sorted(per_day.items()):
        others = [len(v) for d, v in per_day.items() if d != day]
        count = len(day_items)
        if len(others) >= VOLUME_MIN_HISTORY_DAYS:
            usual = statistics.median(others)
            limit = max(usual * VOLUME_FACTOR, usual + VOLUME_MARGIN)
            basis = f"their usual is {usual:g} a day (median of {len(others)} other days)"
        else:
            limit = VOLUME_ABSOLUTE
            basis = f"too little history to compare with, so the fixed limit of {limit} applies"
        if count >= limit:
            signals.append(
                Signal(
                    user,
                    "volume",
                    f"{count} queries on {day.isoformat()}",
                    f"Far more queries than usual for this user: {basis}. Bulk searching can "
                    "be a legitimate operation; check the purposes and case references.",
                    tuple(item.index for item in day_items),
                )
            )
    return signals


def _out_of_hours(moment: datetime) -> bool:
    hour = moment.astimezone(LONDON).hour
    return hour >= OUT_OF_HOURS_START or hour < OUT_OF_HOURS_END


def _bursts(user: str, items: Sequence[Activity]) -> list[Signal]:
    late = [item for item in items if _out_of_hours(item.time)]
    signals = []
    start = 0
    while start < len(late):
        end = start
        while end + 1 < len(late) and late[end + 1].time - late[start].time <= BURST_WINDOW:
            end += 1
        if end - start + 1 >= BURST_COUNT:
            group = late[start : end + 1]
            local = group[0].time.astimezone(LONDON)
            signals.append(
                Signal(
                    user,
                    "out_of_hours",
                    f"{len(group)} queries within an hour from {local:%Y-%m-%d %H:%M} (UK time)",
                    f"A burst of at least {BURST_COUNT} queries within an hour between "
                    f"{OUT_OF_HOURS_START}:00 and {OUT_OF_HOURS_END:02d}:00 UK time. Night "
                    "shifts explain some; compare with the user's rota.",
                    tuple(item.index for item in group),
                )
            )
            start = end + 1
        else:
            start += 1
    return signals


def _fishing(user: str, items: Sequence[Activity]) -> list[Signal]:
    signals = []
    run: list[Activity] = []

    def close() -> None:
        if len(run) >= NO_HIT_RUN:
            signals.append(
                Signal(
                    user,
                    "no_hit_run",
                    f"{len(run)} searches in a row without a hit",
                    f"{NO_HIT_RUN} or more consecutive searches that found nothing can mean "
                    "someone is trying identifiers until one matches (fishing).",
                    tuple(item.index for item in run),
                )
            )

    for item in items:
        if item.kind == "disclose":
            continue
        if had_hits(item.decision):
            close()
            run = []
        else:
            run.append(item)
    close()
    return signals


def _uncased_disclosures(user: str, items: Sequence[Activity]) -> list[Signal]:
    signals = []
    for position, item in enumerate(items):
        if item.kind != "disclose" or item.case_ref or not item.records:
            continue
        disclosed = set(item.records)
        later = [
            other.index
            for other in items[position + 1 :]
            if disclosed & set(other.records) and other.index != item.index
        ]
        if later:
            signals.append(
                Signal(
                    user,
                    "uncased_disclosure",
                    "Disclosure without a case reference, used later",
                    "A record was disclosed to this user with no case reference, and the "
                    "same record appears in the user's later queries. Disclosures should be "
                    "tied to a case before the information is used.",
                    (item.index, *later),
                    severity="high",
                )
            )
    return signals


def _surnames(
    user: str,
    items: Sequence[Activity],
    staff_surnames: Mapping[str, frozenset[str]],
    match: Callable[[frozenset[str], frozenset[str]], bool],
) -> list[Signal]:
    own = staff_surnames.get(user, frozenset())
    signals = []
    for item in items:
        if not item.searched_name_parts:
            continue
        if own and match(own, item.searched_name_parts):
            signals.append(
                Signal(
                    user,
                    "self_search",
                    "Searched their own surname",
                    "The user searched a name sharing their own surname. Looking up oneself or "
                    "one's family is a classic misuse; a common surname can explain it.",
                    (item.index,),
                    severity="high",
                )
            )
            continue
        colleagues = sorted(
            other
            for other, parts in staff_surnames.items()
            if other != user and parts and match(parts, item.searched_name_parts)
        )
        if colleagues:
            signals.append(
                Signal(
                    user,
                    "colleague_search",
                    f"Searched a colleague's surname ({', '.join(colleagues[:3])})",
                    "The searched name shares a surname with a member of staff. Checking up on "
                    "colleagues (or their partners) is misuse unless a case explains it.",
                    (item.index,),
                )
            )
    return signals


def _overlaps(a: frozenset[str], b: frozenset[str]) -> bool:
    return bool(a & b)


def detect_signals(
    activity: Iterable[Activity],
    *,
    staff_surnames: Mapping[str, frozenset[str]] | None = None,
    name_match: Callable[[frozenset[str], frozenset[str]], bool] = _overlaps,
) -> list[UserSignals]:
    """Signals per user, users with signals first.

    `staff_surnames` maps user ids to the comparable form of their surname (the console passes
    blind-index name terms, so spelling variants compare equal); `name_match` compares them.
    """
    by_user: dict[str, list[Activity]] = defaultdict(list)
    for item in activity:
        by_user[item.user_id].append(item)
    results = []
    for user, raw in by_user.items():
        items = _queries(raw)
        signals = [
            *_volume(user, items),
            *_bursts(user, items),
            *_fishing(user, items),
            *_uncased_disclosures(user, items),
            *_surnames(user, items, staff_surnames or {}, name_match),
        ]
        results.append(UserSignals(user_id=user, queries=len(items), signals=signals))
    results.sort(key=lambda u: (-len(u.signals), u.user_id))
    return results
