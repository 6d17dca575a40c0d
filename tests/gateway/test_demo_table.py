"""The demo's results table shows when a force's answer was cut at the candidate cap."""

from __future__ import annotations

from rich.console import Console

from gateway.demo import results_table


def test_a_truncated_force_result_is_marked_in_the_demo_table() -> None:
    body = {
        "request_id": "r-1",
        "mode": "hits",
        "results": [
            {"force": "01", "status": "ok", "hit_count": 3, "truncated": True},
            {"force": "05", "status": "ok", "hit_count": 2, "truncated": False},
            {"force": "20", "status": "timeout"},
        ],
    }
    console = Console(record=True, width=160)
    console.print(results_table(body))
    lines = console.export_text().splitlines()
    rows = {line.split("│")[1].strip(): line for line in lines if line.startswith("│")}
    assert "3 (truncated)" in rows["01"]
    assert "(truncated)" not in rows["05"] and "(truncated)" not in rows["20"]
