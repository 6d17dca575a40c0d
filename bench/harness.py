"""The benchmark harness behind `make bench`: runs every benchmark module, turns each one's raw
result into figures (value, unit, goal, ratio to its side-by-side baseline) and writes
bench/results/latest.json and bench/results/latest.md with a description of the machine.

Each benchmark module exposes `main(quick: bool) -> dict`; the adapters here read those dicts
without changing the modules. A benchmark that fails or is not built yet is reported as such and
the others still run. Ratios are always "speed of the measured path relative to its baseline":
throughputs divide measured by baseline, latencies divide baseline by measured, so 1.0 means as
fast as the baseline and 0.5 means half as fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
Raw = Mapping[str, Any]


@dataclass
class Figure:
    """One reported number. `goal` is the issue's target in words ("≥ 5,000"); `goal_met` is
    None when the figure has no goal or the run's size cannot judge it (quick mode)."""

    name: str
    value: float | int | str | bool | None
    unit: str = ""
    goal: str | None = None
    goal_met: bool | None = None
    baseline: str | None = None
    ratio: float | None = None
    note: str = ""


Adapter = Callable[[Raw, bool], list[Figure]]


@dataclass
class Benchmark:
    name: str
    description: str
    module: str | None = None
    adapter: Adapter | None = None
    run: Callable[[bool], Raw] | None = None

    def resolve(self) -> Callable[[bool], Raw] | None:
        """The benchmark's `main`, or None when its module does not exist yet."""
        if self.run is not None:
            return self.run
        assert self.module is not None
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as exc:
            if exc.name == self.module:
                return None
            raise
        main: Callable[[bool], Raw] = module.main
        return main


@dataclass
class BenchResult:
    name: str
    description: str
    status: str  # "ok" | "error" | "missing"
    seconds: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    probe_before_ms: float = 0.0
    probe_after_ms: float = 0.0
    figures: list[Figure] = field(default_factory=list)
    raw: Any = None
    error: str | None = None


# --- small helpers for adapters ---------------------------------------------------------------


def dig(raw: Raw, path: str, default: Any = None) -> Any:
    """`raw["a"]["b"]` for path "a.b", or `default` when any step is missing."""
    value: Any = raw
    for step in path.split("."):
        if isinstance(value, Mapping) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return default
    return value


def at_least(value: Any, goal: float, judge: bool = True) -> bool | None:
    return None if not judge or not isinstance(value, int | float) else value >= goal


def _workers_note(run: Any) -> str:
    """CPU and memory of an import: the node process, and its bulk-load workers beside it."""
    if not isinstance(run, Mapping) or "node_cpu_us_per_record" not in run:
        return ""
    note = f"node CPU {run['node_cpu_us_per_record']} µs/record"
    if run.get("workers"):
        peaks = ", ".join(f"{mb:g}" for mb in run.get("workers_peak_rss_mb", []))
        note += (
            f"; {run['workers']} bulk-load workers: CPU {run['workers_cpu_us_per_record']} "
            f"µs/record in all, peak RSS {peaks} MB"
        )
    return note


def at_most(value: Any, goal: float, judge: bool = True) -> bool | None:
    return None if not judge or not isinstance(value, int | float) else value <= goal


def speed_ratio(measured: Any, baseline: Any, *, lower_is_better: bool = False) -> float | None:
    if not isinstance(measured, int | float) or not isinstance(baseline, int | float):
        return None
    if not measured or not baseline:
        return None
    return round(baseline / measured if lower_is_better else measured / baseline, 3)


_UNIT_SUFFIXES = (
    ("_per_s", "/s"),
    ("_per_second", "/s"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_mb", "MB"),
    ("_bytes", "bytes"),
)


def flatten(raw: Any, prefix: str = "") -> list[Figure]:
    """Every scalar leaf of a raw result as a figure, its unit guessed from the key's suffix:
    the fallback for a benchmark without an adapter (e.g. one added after this harness)."""
    figures: list[Figure] = []
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            figures.extend(flatten(value, f"{prefix}{key}."))
    elif isinstance(raw, list):
        if all(not isinstance(v, Mapping | list) for v in raw):
            figures.append(Figure(prefix.rstrip("."), ", ".join(map(str, raw))))
        else:
            for i, value in enumerate(raw):
                figures.extend(flatten(value, f"{prefix}{i}."))
    else:
        name = prefix.rstrip(".")
        unit = next((u for s, u in _UNIT_SUFFIXES if name.endswith(s)), "")
        figures.append(Figure(name, raw, unit))
    return figures


# --- adapters for the existing benchmark modules ----------------------------------------------


def crypto_figures(raw: Raw, quick: bool) -> list[Figure]:
    enc, raw_enc = (
        raw.get("field_encrypt_records_per_s"),
        raw.get("raw_aesgcm_encrypt_records_per_s"),
    )
    dec, raw_dec = (
        raw.get("field_decrypt_records_per_s"),
        raw.get("raw_aesgcm_decrypt_records_per_s"),
    )
    fields = raw.get("fields_per_record")
    return [
        Figure(
            "field encryption (person record)",
            enc,
            "records/s",
            baseline=f"raw AES-GCM, same {fields} fields: {raw_enc}/s",
            ratio=speed_ratio(enc, raw_enc),
        ),
        Figure(
            "field decryption (person record)",
            dec,
            "records/s",
            baseline=f"raw AES-GCM: {raw_dec}/s",
            ratio=speed_ratio(dec, raw_dec),
        ),
        Figure(
            "blind-index terms (person record)", raw.get("blind_index_records_per_s"), "records/s"
        ),
    ]


def policy_figures(raw: Raw, quick: bool) -> list[Figure]:
    per_class = raw.get("per_class_median_ms")
    naive = raw.get("naive_per_record_per_action_median_ms")
    size = f"{raw.get('records')} records, {raw.get('field_groups')} field groups"
    return [
        Figure(
            f"policy decision for an answer ({size}), median",
            per_class,
            "ms",
            goal="≤ 5",
            goal_met=at_most(per_class, 5.0),
            baseline=f"naive per record per field group: {naive} ms",
            ratio=speed_ratio(per_class, naive, lower_is_better=True),
            note=f"{raw.get('cedar_calls_per_answer')} Cedar calls "
            f"({raw.get('equivalence_classes')} equivalence classes)",
        ),
        Figure(
            "policy decision for the same answer, classes decided by an earlier request, median",
            raw.get("kept_decisions_median_ms"),
            "ms",
            note="decisions kept across requests: same analyst, context and day, no Cedar call",
        ),
        Figure(
            "policy decision, every record its own class, median",
            raw.get("all_distinct_classes_median_ms"),
            "ms",
            note="worst case: no two records share a class",
        ),
        Figure("single-record decisions", raw.get("single_decisions_per_s"), "decisions/s"),
    ]


def audit_core_figures(raw: Raw, quick: bool) -> list[Figure]:
    size = raw.get("tree_size")
    full = not quick and size == 1_000_000
    entries = raw.get("export_entries") or 1
    us = raw.get("verify_export_us_per_entry")
    projected = round(us * 1_000_000 / 1e6, 1) if isinstance(us, int | float) else None
    verify_s = raw.get("verify_export_s")
    return [
        Figure(
            f"inclusion proof, random index, {size:,}-entry log, median",
            raw.get("inclusion_proof_median_ms"),
            "ms",
            goal="≤ 1 (1,000,000 entries)",
            goal_met=at_most(raw.get("inclusion_proof_median_ms"), 1.0, full),
            note=f"p99 {raw.get('inclusion_proof_p99_ms')} ms",
        ),
        Figure(
            f"`audit verify` of a {entries:,}-entry export",
            verify_s,
            "s",
            goal="≤ 10 (1,000,000 entries)",
            goal_met=at_most(verify_s, 10.0, full),
            note=f"{us} µs/entry, {raw.get('export_mb')} MB; projected 1,000,000: {projected} s; "
            f"{raw.get('canonical_check')}",
        ),
    ]


def audit_store_figures(raw: Raw, quick: bool) -> list[Figure]:
    sqlite = dig(raw, "sqlite_group_commit.appends_per_s")
    plain = dig(raw, "sqlite_plain_batched_inserts.inserts_per_s")
    threads = dig(raw, "sqlite_group_commit.threads")
    figures = [
        Figure(
            f"durable audit appends, SQLite, group commit ({threads} threads)",
            sqlite,
            "appends/s",
            goal="≥ 20,000",
            goal_met=at_least(sqlite, 20_000),
            baseline=f"plain SQLite inserts, same bytes and batches: {plain}/s",
            ratio=raw.get("sqlite_ratio_to_plain"),
            note=f"mean batch {dig(raw, 'sqlite_group_commit.mean_batch')}",
        ),
        Figure(
            "durable audit appends, SQLite, asyncio "
            f"({dig(raw, 'sqlite_asyncio_group_commit.tasks')} tasks)",
            dig(raw, "sqlite_asyncio_group_commit.appends_per_s"),
            "appends/s",
            baseline=f"plain SQLite inserts: {plain}/s",
            ratio=speed_ratio(dig(raw, "sqlite_asyncio_group_commit.appends_per_s"), plain),
        ),
    ]
    for key, label in (
        ("postgres_group_commit", "PostgreSQL, group commit (16 threads)"),
        ("postgres_asyncio_group_commit", "PostgreSQL, asyncio (256 tasks)"),
    ):
        value = dig(raw, f"{key}.appends_per_s")
        figures.append(
            Figure(
                f"durable audit appends, {label}",
                value if value is not None else dig(raw, f"{key}.skipped"),
                "appends/s",
            )
        )
    return figures


def synth_figures(raw: Raw, quick: bool) -> list[Figure]:
    rate = raw.get("records_per_second")
    return [
        Figure(
            f"synthetic data generation ({raw.get('records'):,} records, "
            f"{raw.get('forces')} forces)",
            rate,
            "records/s",
            goal="1,000,000 in ≤ 5 min (≥ 3,334/s)",
            goal_met=at_least(rate, 3_334),
            note=f"{raw.get('planted_links')} planted links, {raw.get('megabytes_written')} MB",
        )
    ]


def ingest_figures(raw: Raw, quick: bool) -> list[Figure]:
    count = raw.get("records")
    base = dig(raw, "baseline_plaintext_sqlite.records_per_s")
    baseline = f"plaintext validate + insert, same records: {base}/s"
    sqlite = dig(raw, "gateway_sqlite.records_per_s")
    figures = [
        Figure(
            f"bulk import over HTTP, SQLite node ({count:,} records, 1 uploader)",
            sqlite,
            "records/s",
            goal="≥ 5,000",
            goal_met=at_least(sqlite, 5_000),
            baseline=baseline,
            ratio=raw.get("sqlite_ratio_to_baseline"),
            note="ratio goal ≥ 0.5: "
            + ("met" if at_least(raw.get("sqlite_ratio_to_baseline"), 0.5) else "not met"),
        ),
        Figure(
            "peak RSS of the SQLite node during import",
            dig(raw, "gateway_sqlite.peak_rss_mb"),
            "MB",
            note=_workers_note(dig(raw, "gateway_sqlite")),
        ),
    ]
    pg = dig(raw, "gateway_postgres.records_per_s")
    figures.append(
        Figure(
            f"bulk import over HTTP, PostgreSQL node ({count:,} records, 1 uploader)",
            pg if pg is not None else dig(raw, "gateway_postgres.skipped"),
            "records/s",
            baseline=baseline,
            ratio=raw.get("postgres_ratio_to_baseline"),
        )
    )
    if pg is not None:
        figures.append(
            Figure(
                "peak RSS of the PostgreSQL node during import",
                dig(raw, "gateway_postgres.peak_rss_mb"),
                "MB",
                note=_workers_note(dig(raw, "gateway_postgres")),
            )
        )
    big = raw.get("million", {})
    size = big.get("records", 0)
    judge = size >= 1_000_000
    rss = dig(big, "node_rss_end.rss_mb")
    lookup = dig(big, "phone_lookup.median_ms")
    figures += [
        Figure(
            f"node RSS while serving {size:,} records",
            rss,
            "MB",
            goal="≤ 300 (1,000,000 records)",
            goal_met=at_most(rss, 300, judge),
            note=f"peak {dig(big, 'node_rss_end.peak_rss_mb')} MB; database "
            f"{big.get('database_mb')} MB; loaded at {big.get('records_per_s')} records/s",
        ),
        Figure(
            f"lookup by phone number, {size:,}-record node, median",
            lookup,
            "ms",
            goal="≤ 5 (1,000,000 records)",
            goal_met=at_most(lookup, 5.0, judge),
            note=f"blind index → record ids → stored rows; p95 "
            f"{dig(big, 'phone_lookup.p95_ms')} ms; concurrency 1; "
            f"{dig(big, 'phone_lookup.lookups')} lookups",
        ),
    ]
    return figures


def replicas_figures(raw: Raw, quick: bool) -> list[Figure]:
    if "skipped" in raw:
        return [Figure("app replicas on one PostgreSQL database", raw["skipped"])]
    one = raw["one_replica"]
    two = raw["two_replicas"]
    audit = two.get("audit", {})
    sizes = audit.get("checkpoint_sizes_seen_by_each_replica", [])
    return [
        Figure(
            f"bulk import, 2 app replicas, one PostgreSQL ({two['records']:,} records, "
            f"{two['uploaders']} uploaders)",
            two["records_per_s"],
            "records/s",
            baseline=f"1 replica, same uploaders: {one['records_per_s']}/s",
            ratio=raw.get("two_over_one"),
            note=f"peak RSS per replica {two['peak_rss_mb_per_replica']} MB",
        ),
        Figure(
            "audit log written by 2 replicas verifies as one log",
            audit.get("verified"),
            goal="true",
            goal_met=audit.get("verified") is True and len(set(sizes)) == 1,
            note=f"{audit.get('entries')} entries exported and checked with "
            f"`gateway audit verify`; checkpoint size seen by each replica {sizes}",
        ),
    ]


def national_figures(raw: Raw, quick: bool) -> list[Figure]:
    figures = []
    for row in raw.get("sweep", []):
        figures.append(
            Figure(
                f"federated search fan-out, {row['partners']} partners "
                f"({row['concurrent_analysts']} concurrent analysts), p50 / p95 / p99",
                f"{row['p50_ms']} / {row['p95_ms']} / {row['p99_ms']}",
                "ms",
                note=f"{row['searches_per_s']} searches/s; coordinator CPU "
                f"{row['coordinator_cpu_ms_per_search']} ms/search "
                f"({row['coordinator_cpu_ms_per_partner_call']} ms/partner); statuses "
                f"{row['statuses']}",
            )
        )
        figures.append(
            Figure(
                f"coordinator CPU per search, {row['partners']} partners",
                row["coordinator_cpu_ms_per_search"],
                "ms",
            )
        )
    labels = {
        "one_analyst": "one analyst at a time",
        "httpx_client": "partner calls through httpx instead of aiohttp",
        "tight_deadline": "tighter deadline",
        "no_connection_reuse": "no connection reuse",
    }
    last = (raw.get("sweep") or [{}])[-1]
    breakdown = raw.get("call_breakdown")
    if breakdown:
        figures.append(
            Figure(
                "coordinator CPU per partner call outside HTTP (sign / verify / validate)",
                f"{breakdown['sign_request_us']} / {breakdown['verify_response_us']} / "
                f"{breakdown['validate_answer_us']}",
                "µs",
            )
        )
    for key, label in labels.items():
        row = raw.get(key)
        if not row:
            continue
        figures.append(
            Figure(
                f"fan-out to {row['partners']} partners, {label} ({row['concurrent_analysts']} "
                f"analysts, deadline {row['deadline_s']} s, pool {row['pooling']}), "
                "p50 / p95 / p99",
                f"{row['p50_ms']} / {row['p95_ms']} / {row['p99_ms']}",
                "ms",
                baseline=f"aiohttp, 2 s deadline: p99 {last.get('p99_ms')} ms, "
                f"CPU {last.get('coordinator_cpu_ms_per_search')} ms/search",
                ratio=speed_ratio(
                    row["coordinator_cpu_ms_per_search"],
                    last.get("coordinator_cpu_ms_per_search"),
                    lower_is_better=True,
                ),
                note=f"ratio = coordinator CPU relative to the sweep's last row; "
                f"CPU {row['coordinator_cpu_ms_per_search']} ms/search; "
                f"{row['searches_per_s']} searches/s; statuses {row['statuses']}",
            )
        )
    return figures


# The issue 6 goals, attached to whatever names the federation benchmark reports.
_FEDERATION_GOALS: tuple[tuple[str, str, float], ...] = (
    ("hits", "p50", 15.0),
    ("hits", "p95", 40.0),
    ("records", "p95", 80.0),
)


def federation_figures(raw: Raw, quick: bool) -> list[Figure]:
    """The federation benchmark arrives later; report its leaves and attach the issue 6 goals
    to the figures whose names say what they are."""
    figures = flatten(raw)
    for fig in figures:
        name = fig.name.lower()
        if not isinstance(fig.value, int | float) or isinstance(fig.value, bool):
            continue
        for mode, stat, limit in _FEDERATION_GOALS:
            if mode in name and stat in name and name.endswith("_ms"):
                fig.goal = f"≤ {limit:g} (3 nodes, 100,000 records each)"
                fig.goal_met = fig.value <= limit
        # The paced phases' rate is what the analysts offered, so it is reported, not judged.
        if "searches_per_s" in name and not name.startswith(("one_analyst", "paced_")):
            fig.goal, fig.goal_met = "≥ 150", fig.value >= 150
        if fig.goal is not None and name.startswith("paced_"):
            fig.note = f"16 analysts offering {raw.get('paced_offered_per_s')} searches/s together"
        elif fig.goal is not None and name.startswith(("hits_", "records_")):
            fig.note = "16 analysts in a closed loop: as many searches as the nodes take"
        if name == "hits_p50_ms" and isinstance(raw.get("single_node_p50_ms"), int | float):
            fig.baseline = f"single node, same API: {raw['single_node_p50_ms']} ms"
            fig.ratio = speed_ratio(fig.value, raw["single_node_p50_ms"], lower_is_better=True)
    return figures


_REGISTRY = (
    ("crypto", "field encryption vs raw AES-GCM", "crypto_bench", crypto_figures),
    ("policy", "equivalence-class vs naive decisions", "policy_bench", policy_figures),
    ("audit_core", "proofs and export verification", "audit_core_bench", audit_core_figures),
    ("audit_store", "durable appends vs plain inserts", "audit_store_bench", audit_store_figures),
    ("synth", "synthetic data generation", "synth_bench", synth_figures),
    ("ingest", "bulk import over HTTP vs plaintext insert", "ingest_bench", ingest_figures),
    ("replicas", "two app replicas on one PostgreSQL", "replicas_bench", replicas_figures),
    ("national", "44-node fan-out simulation", "national_sim", national_figures),
    # Filled by the federation helper's module; reported as missing until it exists.
    ("federation", "federated search vs one node vs SQL", "federation_bench", federation_figures),
)
BENCHMARKS: list[Benchmark] = [
    Benchmark(name, description, f"bench.{module}", adapter)
    for name, description, module, adapter in _REGISTRY
]


# --- running and reporting --------------------------------------------------------------------


def machine_description() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gb: float | None = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or None
        )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "os": platform.platform(),
        "git_commit": commit,
    }


def select(names: Iterable[str] | None, registry: list[Benchmark]) -> list[Benchmark]:
    if not names:
        return list(registry)
    wanted = [n.strip() for name in names for n in name.split(",") if n.strip()]
    known = {b.name: b for b in registry}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; known: {sorted(known)}")
    return [known[n] for n in wanted]


def speed_probe(repeat: int = 5) -> float:
    """CPU milliseconds of one fixed piece of Python work (JSON, hashing, dicts and strings, as
    the gateway does), the best of `repeat`. A virtual machine's speed changes with its
    neighbours (the same code has measured 30% apart an hour apart on one machine), so every
    benchmark is bracketed by this yardstick: two runs whose probes differ ran on a faster or
    slower core. It runs in one process, so agreeing probes do not rule out other drift.
    Lower is faster."""
    document = {"id": "probe", "names": [{"given": "Given", "family": "Family"}] * 4, "n": 1}
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for n in range(2_000):
            document["n"] = n
            text = json.dumps(document, sort_keys=True)
            hashlib.sha256(text.encode()).hexdigest()
            parsed = json.loads(text)
            "/".join(sorted(f"{k}={v}" for k, v in parsed.items() if k != "names"))
        best = min(best, time.process_time() - started)
    return round(best * 1000, 2)


def run_one(bench: Benchmark, quick: bool) -> BenchResult:
    result = BenchResult(bench.name, bench.description, status="ok")
    result.probe_before_ms = speed_probe()
    result.load_before = os.getloadavg()
    started = time.perf_counter()
    try:
        main = bench.resolve()
        if main is None:
            result.status = "missing"
            result.error = f"{bench.module} is not built yet"
        else:
            result.raw = main(quick)
            adapter = bench.adapter or (lambda raw, _quick: flatten(raw))
            result.figures = adapter(result.raw, quick)
    except Exception as exc:
        result.status = "error"
        result.error = f"{type(exc).__name__}: {exc}\n" + "".join(
            traceback.format_exc().splitlines(keepends=True)[-12:]
        )
    result.seconds = round(time.perf_counter() - started, 1)
    result.load_after = os.getloadavg()
    result.probe_after_ms = speed_probe()
    return result


def run(
    *,
    quick: bool,
    names: Iterable[str] | None = None,
    out_dir: Path = RESULTS_DIR,
    registry: list[Benchmark] | None = None,
    echo: Callable[[str], object] = print,
) -> dict[str, Any]:
    """Run the selected benchmarks one after another and write latest.json and latest.md."""
    chosen = select(names, BENCHMARKS if registry is None else registry)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    results = []
    for bench in chosen:
        echo(f"bench: {bench.name} ({bench.description}) ...")
        result = run_one(bench, quick)
        echo(f"bench: {bench.name} {result.status} in {result.seconds} s")
        results.append(result)
    report = {
        "mode": "quick" if quick else "full",
        "date": started_at.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine_description(),
        "benchmarks": [asdict(r) for r in results],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(
        json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8"
    )
    (out_dir / "latest.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:,.3f}".rstrip("0").rstrip(".")
        return text
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Mapping[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"# Benchmark results ({report['mode']} run)",
        "",
        f"- date: {report['date']}; total {report['seconds']} s; commit {machine['git_commit']}",
        f"- machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM; "
        f"Python {machine['python']}; {machine['os']}",
        "- ratio = speed of the measured path relative to its baseline measured in the same run "
        "(1.0 = as fast; 0.5 = half as fast). Load = 1-minute load average before/after each "
        "benchmark (the machine is shared). Probe = CPU ms of a fixed piece of Python work "
        "before/after each benchmark (`harness.speed_probe`; lower is faster): runs whose "
        "probes differ ran on a faster or slower core (see docs/benchmarks.md).",
        "",
    ]
    goals: list[tuple[str, Mapping[str, Any]]] = []
    for bench in report["benchmarks"]:
        before, after = bench["load_before"][0], bench["load_after"][0]
        probed = bench.get("probe_before_ms", 0.0), bench.get("probe_after_ms", 0.0)
        lines += [
            f"## {bench['name']}: {bench['description']}",
            "",
            f"status {bench['status']}, {bench['seconds']} s, load {before:.2f} → {after:.2f}, "
            f"probe {probed[0]:.1f} → {probed[1]:.1f} ms",
            "",
        ]
        if bench["status"] != "ok":
            lines += ["```", str(bench["error"]).strip(), "```", ""]
            continue
        lines += [
            "| figure | value | unit | goal | met | baseline | ratio | note |",
            "|---|---:|---|---|---|---|---:|---|",
        ]
        for fig in bench["figures"]:
            met = fig["goal_met"]
            lines.append(
                "| "
                + " | ".join(
                    _cell(x)
                    for x in (
                        fig["name"],
                        fig["value"],
                        fig["unit"],
                        fig["goal"],
                        "" if met is None else ("yes" if met else "**no**"),
                        fig["baseline"],
                        fig["ratio"],
                        fig["note"],
                    )
                )
                + " |"
            )
            if fig["goal"]:
                goals.append((bench["name"], fig))
        lines.append("")
    if goals:
        lines += [
            "## Goals from the issues",
            "",
            "| benchmark | figure | goal | measured | met |",
            "|---|---|---|---:|---|",
        ]
        for name, fig in goals:
            met = fig["goal_met"]
            verdict = "not judged at this size" if met is None else ("yes" if met else "**no**")
            lines.append(
                f"| {name} | {_cell(fig['name'])} | {_cell(fig['goal'])} | "
                f"{_cell(fig['value'])} {_cell(fig['unit'])} | {verdict} |"
            )
        lines.append("")
    return "\n".join(lines)
