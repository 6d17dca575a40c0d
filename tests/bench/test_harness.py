"""The benchmark harness runs benchmarks, isolates failures and writes valid result files.

Benchmarks themselves never run here; these tests use trivial benchmarks and assert no timings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bench.__main__ import main as bench_cli
from bench.harness import (
    BENCHMARKS,
    Benchmark,
    Figure,
    federation_figures,
    flatten,
    ingest_figures,
    national_figures,
    run,
    speed_ratio,
)

FIGURE_SCHEMA = {
    "type": "object",
    "required": ["name", "value", "unit", "goal", "goal_met", "baseline", "ratio", "note"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "unit": {"type": "string"},
        "goal": {"type": ["string", "null"]},
        "goal_met": {"type": ["boolean", "null"]},
        "ratio": {"type": ["number", "null"]},
    },
}
REPORT_SCHEMA = {
    "type": "object",
    "required": ["mode", "date", "seconds", "machine", "benchmarks"],
    "properties": {
        "mode": {"enum": ["quick", "full"]},
        "machine": {
            "type": "object",
            "required": ["cpu", "cores", "ram_gb", "python", "os"],
        },
        "benchmarks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "name",
                    "status",
                    "seconds",
                    "figures",
                    "load_before",
                    "probe_before_ms",
                    "probe_after_ms",
                    "raw",
                ],
                "properties": {
                    "status": {"enum": ["ok", "error", "missing"]},
                    "figures": {"type": "array", "items": FIGURE_SCHEMA},
                },
            },
        },
    },
}


def trivial(quick: bool) -> dict[str, Any]:
    return {"things_per_s": 200 if quick else 100, "baseline_per_s": 400}


def trivial_figures(raw: Any, quick: bool) -> list[Figure]:
    return [
        Figure(
            "things",
            raw["things_per_s"],
            "things/s",
            goal="≥ 150",
            goal_met=raw["things_per_s"] >= 150,
            baseline=f"{raw['baseline_per_s']}/s",
            ratio=speed_ratio(raw["things_per_s"], raw["baseline_per_s"]),
        )
    ]


def broken(quick: bool) -> dict[str, Any]:
    raise RuntimeError("the node did not start")


def silent(_quick: bool) -> dict[str, Any]:
    return {}


REGISTRY = [
    Benchmark("trivial", "a trivial benchmark", adapter=trivial_figures, run=trivial),
    Benchmark("broken", "a failing benchmark", run=broken),
    Benchmark("later", "a benchmark not built yet", module="bench.no_such_bench_module"),
]


def test_harness_runs_a_trivial_benchmark_and_writes_valid_results(tmp_path: Path) -> None:
    run(quick=True, names=["trivial"], out_dir=tmp_path, registry=REGISTRY, echo=lambda _: None)

    report = json.loads((tmp_path / "latest.json").read_text())
    jsonschema.validate(report, REPORT_SCHEMA)
    assert report["mode"] == "quick"
    (bench,) = report["benchmarks"]
    assert bench["status"] == "ok"
    assert bench["raw"] == {"things_per_s": 200, "baseline_per_s": 400}
    (figure,) = bench["figures"]
    assert figure["ratio"] == 0.5
    assert figure["goal_met"] is True

    markdown = (tmp_path / "latest.md").read_text()
    assert "# Benchmark results (quick run)" in markdown
    assert "| things | 200 | things/s | ≥ 150 | yes | 400/s | 0.5 |  |" in markdown
    assert "## Goals from the issues" in markdown
    assert f"{report['machine']['cores']} cores" in markdown
    # Each benchmark is bracketed by the speed probe, so two runs can be told comparable or not.
    assert bench["probe_before_ms"] > 0 and bench["probe_after_ms"] > 0
    probes = f"probe {bench['probe_before_ms']:.1f} → {bench['probe_after_ms']:.1f} ms"
    assert probes in markdown


def test_a_failing_or_missing_benchmark_is_reported_and_the_others_still_run(
    tmp_path: Path,
) -> None:
    report = run(quick=False, out_dir=tmp_path, registry=REGISTRY, echo=lambda _: None)

    statuses = {b["name"]: b["status"] for b in report["benchmarks"]}
    assert statuses == {"trivial": "ok", "broken": "error", "later": "missing"}
    broken_result = next(b for b in report["benchmarks"] if b["name"] == "broken")
    assert "the node did not start" in broken_result["error"]
    markdown = (tmp_path / "latest.md").read_text()
    assert "status error" in markdown
    assert "bench.no_such_bench_module is not built yet" in markdown
    assert report["benchmarks"][0]["raw"]["things_per_s"] == 100  # full mode reached main


def test_unknown_benchmark_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown benchmark"):
        run(quick=True, names=["trivial,nope"], out_dir=tmp_path, registry=REGISTRY)
    assert not (tmp_path / "latest.json").exists()


def test_every_registered_benchmark_has_a_listing_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_cli(["--list"]) == 0
    listed = capsys.readouterr().out
    for bench in BENCHMARKS:
        assert bench.name in listed
    assert {"ingest", "replicas", "national", "federation"} <= {b.name for b in BENCHMARKS}


def test_flatten_reports_every_leaf_with_a_unit_from_its_name() -> None:
    figures = flatten({"hits": {"p50_ms": 12.5, "searches_per_s": 160}, "nodes": [1, 2, 3]})
    by_name = {f.name: f for f in figures}
    assert by_name["hits.p50_ms"].unit == "ms"
    assert by_name["hits.searches_per_s"].unit == "/s"
    assert by_name["nodes"].value == "1, 2, 3"


def test_million_record_goals_are_not_judged_on_a_smaller_node() -> None:
    raw = {
        "records": 20_000,
        "baseline_plaintext_sqlite": {"records_per_s": 20_000},
        "gateway_sqlite": {"records_per_s": 6_000, "peak_rss_mb": 150.0},
        "sqlite_ratio_to_baseline": 0.3,
        "gateway_postgres": {"skipped": "PostgreSQL not reachable"},
        "million": {
            "records": 20_000,
            "node_rss_end": {"rss_mb": 140.0, "peak_rss_mb": 190.0},
            "phone_lookup": {"median_ms": 1.0, "p95_ms": 2.0, "lookups": 300},
        },
    }
    figures = {f.name: f for f in ingest_figures(raw, True)}
    sqlite = next(f for n, f in figures.items() if n.startswith("bulk import over HTTP, SQLite"))
    assert sqlite.goal_met is True
    assert "not met" in sqlite.note  # the ratio goal (≥ 0.5) is judged on any size
    rss = next(f for n, f in figures.items() if n.startswith("node RSS"))
    assert rss.goal_met is None


def test_national_adapter_reports_each_partner_count() -> None:
    row = {
        "partners": 3,
        "concurrent_analysts": 4,
        "deadline_s": 2.0,
        "pooling": "aiohttp",
        "p50_ms": 10.0,
        "p95_ms": 20.0,
        "p99_ms": 30.0,
        "searches_per_s": 50.0,
        "coordinator_cpu_ms_per_search": 4.0,
        "coordinator_cpu_ms_per_partner_call": 1.3,
        "statuses": {"ok": 12},
    }
    raw = {"sweep": [row, {**row, "partners": 43}], "httpx_client": {**row, "partners": 43}}
    names = [f.name for f in national_figures(raw, True)]
    assert any("3 partners" in n for n in names)
    assert any("43 partners, partner calls through httpx instead of aiohttp" in n for n in names)


def test_federation_goals_attach_to_closed_loop_and_paced_figures_only() -> None:
    raw = {
        "hits_p50_ms": 80.0,
        "hits_searches_per_s": 180.0,
        "single_node_p50_ms": 18.0,
        "one_analyst_p50_ms": 11.0,
        "paced_offered_per_s": 150.0,
        "paced_hits_p50_ms": 14.0,
        "paced_records_p95_ms": 90.0,
        "paced_hits_searches_per_s": 149.2,
    }
    figures = {f.name: f for f in federation_figures(raw, True)}
    assert figures["hits_p50_ms"].goal_met is False
    assert "closed loop" in figures["hits_p50_ms"].note
    assert figures["paced_hits_p50_ms"].goal_met is True
    assert "offering 150.0 searches/s" in figures["paced_hits_p50_ms"].note
    assert figures["paced_records_p95_ms"].goal_met is False
    assert figures["one_analyst_p50_ms"].goal is None
    assert figures["hits_searches_per_s"].goal_met is True
    assert figures["paced_hits_searches_per_s"].goal is None  # offered, not achieved capacity
