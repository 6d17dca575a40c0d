"""The A/B tool's verdict: NEW relative to OLD within each round, then median and range."""

from __future__ import annotations

from bench.federation_ab import paired_summary


def _round(old_cpu: float, new_cpu: float, old_rate: float, new_rate: float) -> dict:
    return {
        "old": {"cpu_ms": old_cpu, "per_s": old_rate},
        "new": {"cpu_ms": new_cpu, "per_s": new_rate},
    }


def test_each_round_is_compared_within_itself_not_across_rounds() -> None:
    # The machine got twice as slow between the rounds; within each, NEW costs 10% less.
    summary = paired_summary([_round(10.0, 9.0, 100.0, 110.0), _round(20.0, 18.0, 50.0, 55.0)])
    assert summary["rounds"] == 2
    assert summary["cpu_ratio_median"] == 0.9
    assert summary["cpu_ratio_range"] == [0.9, 0.9]
    assert summary["throughput_ratio_median"] == 1.1


def test_a_round_where_new_is_slower_shows_in_the_range() -> None:
    summary = paired_summary(
        [_round(10.0, 9.0, 100.0, 110.0), _round(10.0, 11.0, 100.0, 95.0), _round(10, 9.5, 1, 1)]
    )
    assert summary["cpu_ratio_median"] == 0.95
    assert summary["cpu_ratio_range"] == [0.9, 1.1]
    assert summary["throughput_ratio_range"] == [0.95, 1.1]
