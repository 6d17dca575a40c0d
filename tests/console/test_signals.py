"""Misuse signal rules and the SVG charts, as pure functions over synthetic activity."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from gateway.console.charts import bars_svg, disclosures_by_decision, queries_by_purpose
from gateway.console.service import EntrySummary
from gateway.console.signals import Activity, detect_signals, had_hits

MONDAY_NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _act(index: int, when: datetime, **fields: object) -> Activity:
    values: dict[str, object] = {
        "index": index,
        "time": when,
        "kind": "consult",
        "user_id": "analyst.a",
        "case_ref": "OP-1",
        "decision": "redacted:1",
    }
    values.update(fields)
    return Activity(**values)  # type: ignore[arg-type]


def _rules(activity: list[Activity], **kwargs: object) -> dict[str, list[tuple[int, ...]]]:
    found: dict[str, list[tuple[int, ...]]] = {}
    for user in detect_signals(activity, **kwargs):  # type: ignore[arg-type]
        for signal in user.signals:
            found.setdefault(signal.rule, []).append(signal.entries)
    return found


def test_decisions_with_only_hidden_or_denied_records_are_no_hits() -> None:
    assert had_hits("redacted:3,pointer:1")
    assert had_hits("full:1")
    assert not had_hits("hidden:2,denied:1")
    assert not had_hits("")
    assert not had_hits(None)


def test_volume_far_above_the_users_usual_is_flagged() -> None:
    activity = []
    index = 0
    for day in range(5):
        for _ in range(4):
            activity.append(_act(index, MONDAY_NOON + timedelta(days=day)))
            index += 1
    busy = MONDAY_NOON + timedelta(days=6)
    busy_indexes = []
    for n in range(25):
        activity.append(_act(index, busy + timedelta(minutes=n)))
        busy_indexes.append(index)
        index += 1
    assert _rules(activity)["volume"] == [tuple(busy_indexes)]
    # A steady user is not flagged.
    assert "volume" not in _rules(activity[:20])


def test_out_of_hours_burst_uses_uk_local_time() -> None:
    # 23:10 UTC in summer is 00:10 in London; 21:30 UTC in summer is 22:30 (out of hours too).
    summer_night = datetime(2026, 7, 1, 23, 10, tzinfo=UTC)
    burst = [_act(i, summer_night + timedelta(minutes=5 * i)) for i in range(5)]
    assert _rules(burst)["out_of_hours"] == [(0, 1, 2, 3, 4)]
    spread = [_act(i, summer_night + timedelta(minutes=30 * i)) for i in range(5)]
    assert "out_of_hours" not in _rules(spread)
    daytime = [_act(i, MONDAY_NOON + timedelta(minutes=i)) for i in range(10)]
    assert "out_of_hours" not in _rules(daytime)


def test_a_run_of_no_hit_searches_suggests_fishing() -> None:
    misses = [_act(i, MONDAY_NOON + timedelta(minutes=i), decision="") for i in range(8)]
    assert _rules(misses)["no_hit_run"] == [tuple(range(8))]
    # The same eight misses with one hit in the middle (log order = index order).
    broken = [
        _act(i, MONDAY_NOON + timedelta(minutes=i), decision="" if i != 4 else "pointer:1")
        for i in range(9)
    ]
    assert "no_hit_run" not in _rules(broken)


def test_one_federated_search_counts_once() -> None:
    same_request = [
        _act(i, MONDAY_NOON, decision="", request_id="req-1", kind="search_completed")
        for i in range(10)
    ]
    (user,) = detect_signals(same_request)
    assert user.queries == 1


def test_disclosure_without_case_reference_used_later() -> None:
    activity = [
        _act(1, MONDAY_NOON, kind="disclose", case_ref=None, records=("rec-1",)),
        _act(2, MONDAY_NOON + timedelta(hours=1), records=("rec-1",)),
        _act(3, MONDAY_NOON + timedelta(hours=2), kind="disclose", case_ref=None, records=("x",)),
    ]
    assert _rules(activity)["uncased_disclosure"] == [(1, 2)]


def test_own_and_colleague_surnames() -> None:
    staff = {"analyst.a": frozenset({"t-okafor"}), "analyst.b": frozenset({"t-shah"})}
    activity = [
        _act(1, MONDAY_NOON, searched_name_parts=frozenset({"t-jo", "t-okafor"})),
        _act(2, MONDAY_NOON, searched_name_parts=frozenset({"t-shah"})),
        _act(3, MONDAY_NOON, searched_name_parts=frozenset({"t-smith"})),
    ]
    rules = _rules(activity, staff_surnames=staff)
    assert rules["self_search"] == [(1,)]
    assert rules["colleague_search"] == [(2,)]


def _summary(index: int, kind: str, day: date, **fields: object) -> EntrySummary:
    values: dict[str, object] = {
        "index": index,
        "time": datetime(day.year, day.month, day.day, 10, tzinfo=UTC),
        "kind": kind,
        "user_id": "u",
        "client_id": None,
        "actor_force": "20",
        "purpose": None,
        "case_ref": None,
        "decision": None,
        "recipient_force": None,
        "request_id": None,
    }
    values.update(fields)
    return EntrySummary(**values)  # type: ignore[arg-type]


def test_charts_count_and_escape_labels() -> None:
    day = date(2026, 3, 2)
    rows = [
        _summary(1, "disclose", day, decision="redacted:2,pointer:1", purpose="investigation"),
        _summary(2, "disclose", day, decision="full:1", purpose="<script>"),
        _summary(3, "collect", day),
    ]
    assert disclosures_by_decision(rows) == {"redacted": 2, "full": 1, "pointer": 1}
    by_purpose = queries_by_purpose(rows)
    assert by_purpose.counts[(day, "investigation")] == 1
    svg = bars_svg({"<script>": 1}, title="t")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
