"""Soak: a mixed workload at a fixed rate against a local three-force federation.

`python -m bench.soak --minutes 10` starts forces 05, 20 and 01 as real `gateway serve`
processes (gateway/up.py), imports synthetic data, then sends searches, disclosures, small bulk
imports and audit reads at a fixed rate for the given time. It reports every unexpected answer
(anything but 2xx, or a transport error), the latency per operation, each node's resident memory
at the start and at the end, and whether each node's audit log verifies once the nodes stopped.
Loopback only; every loop is bounded by the run's end time.

`main(quick)` is the harness entry (`make bench`): quick runs one minute, otherwise ten.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from gateway.identity.issuer import mint_analyst_token
from gateway.logging import configure_logging
from gateway.node_offline import verify_local_log
from gateway.settings import Settings
from gateway.up import AUDITOR_TOKEN, Federation, import_data, prepare, running
from schemas.examples import example_record

FORCES = ["05", "20", "01"]
# Operations per second across the federation, and the share of each kind.
DEFAULT_RATE = 8.0
MIX = {"search": 0.45, "disclose": 0.2, "bulk": 0.1, "audit": 0.25}
# Analysts are rate limited per person (20/s, 600/min): spread the load over a team.
ANALYSTS_PER_FORCE = 8
BULK_LINES = 50
MAX_IN_FLIGHT = 64
CASE = "OP-SOAK-1"


def resident_mb(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def verify_node_log(settings: Settings) -> dict[str, Any]:
    """Recompute a stopped node's Merkle tree and check it against its signed checkpoints."""
    report = verify_local_log(settings)
    return {
        "entries": report.entries,
        "verifies": report.ok,
        "problem": None if report.ok else f"{report.problem}: {report.detail}",
    }


def phones_by_force(workdir: Path) -> dict[str, list[str]]:
    """Phone numbers present in each force's synthetic data: searches that find something."""
    found: dict[str, list[str]] = {}
    for force in FORCES:
        numbers = []
        path = workdir / "synthetic" / f"{force}.ndjson"
        with path.open("rb") as fh:
            for line in fh:
                record = orjson.loads(line)
                if record.get("kind") == "phone" and record["body"].get("number"):
                    numbers.append(record["body"]["number"])
        found[force] = numbers[:200]
    return found


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    counts: Counter[str] = field(default_factory=Counter)
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    late_starts: int = 0

    def record(self, kind: str, started: float, outcome: str | None) -> None:
        self.counts[kind] += 1
        self.latencies[kind].append((time.perf_counter() - started) * 1000)
        if outcome is not None:
            self.counts["unexpected"] += 1
            if len(self.unexpected) < 20:
                self.unexpected.append({"kind": kind, "outcome": outcome})

    def summary(self) -> dict[str, Any]:
        per_kind = {}
        for kind, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            per_kind[kind] = {
                "count": len(values),
                "p50_ms": round(statistics.median(ordered), 1),
                "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
                "max_ms": round(ordered[-1], 1),
            }
        return {
            "operations": sum(v["count"] for v in per_kind.values()),
            "unexpected_errors": self.counts["unexpected"],
            "unexpected_samples": self.unexpected,
            "late_starts": self.late_starts,
            "per_kind": per_kind,
        }


class Workload:
    """The four kinds of operation, each returning None when the answer was as expected."""

    def __init__(self, fed: Federation, http: httpx.AsyncClient, rng: random.Random) -> None:
        self.fed = fed
        self.http = http
        self.rng = rng
        self.phones = phones_by_force(fed.workdir)
        self.tokens: dict[tuple[str, int], str] = {}
        self.client_tokens: dict[str, tuple[float, str]] = {}
        self.hits: list[tuple[str, str, str]] = []  # (asking force, owner force, record id)
        self.bulk_serial = itertools.count()

    def analyst(self, force: str) -> str:
        slot = (force, self.rng.randrange(ANALYSTS_PER_FORCE))
        if slot not in self.tokens:
            self.tokens[slot] = mint_analyst_token(
                self.fed.node(force).settings(self.fed.workdir),
                user_id=f"soak-analyst-{force}-{slot[1]}",
                roles=["analyst"],
                vetting="NPPV2",
            )
        return self.tokens[slot]

    async def system_token(self, force: str) -> str:
        cached = self.client_tokens.get(force)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        spec = self.fed.node(force)
        response = await self.http.post(
            f"{spec.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(spec.client_id, spec.client_secret),
        )
        response.raise_for_status()
        body = response.json()
        token = str(body["access_token"])
        self.client_tokens[force] = (time.monotonic() + int(body["expires_in"]) / 2, token)
        return token

    @staticmethod
    def _check(response: httpx.Response) -> str | None:
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    async def search(self) -> str | None:
        force = self.rng.choice(FORCES)
        owner = self.rng.choice([f for f in FORCES if f != force])
        number = self.rng.choice(self.phones[owner])
        response = await self.http.post(
            f"{self.fed.node(force).url}/v1/search",
            json={
                "purpose": "investigation",
                "justification": "Soak test: county line enquiry",
                "case_ref": CASE,
                "mode": "hits",
                "phone": number,
            },
            headers={"Authorization": f"Bearer {self.analyst(force)}"},
        )
        problem = self._check(response)
        if problem is None:
            for result in response.json()["results"]:
                if result["force"] != force and result["status"] not in ("ok", "denied"):
                    return f"partner {result['force']} answered {result['status']}"
                for hit in result.get("hits", []):
                    if result["force"] != force and len(self.hits) < 5000:
                        self.hits.append((force, result["force"], hit["record_id"]))
        return problem

    async def disclose(self) -> str | None:
        if not self.hits:
            return await self.search()
        force, owner, record_id = self.rng.choice(self.hits)
        response = await self.http.post(
            f"{self.fed.node(force).url}/v1/records/{owner}/{record_id}/disclose",
            json={
                "purpose": "investigation",
                "justification": "Soak test: identify the line holder",
                "case_ref": CASE,
            },
            headers={"Authorization": f"Bearer {self.analyst(force)}"},
        )
        problem = self._check(response)
        if problem is None and response.json().get("status") not in ("ok", "denied"):
            return f"disclosure status {response.json().get('status')}"
        return problem

    async def bulk(self) -> str | None:
        force = self.rng.choice(FORCES)
        serial = next(self.bulk_serial)
        lines = []
        for n in range(BULK_LINES):
            record = example_record("phone", id=f"soak-{serial}-{n}", owner_force=force)
            record["body"]["number"] = f"+447911{(serial * BULK_LINES + n) % 10**6:06d}"
            lines.append(orjson.dumps(record))
        response = await self.http.post(
            f"{self.fed.node(force).url}/v1/records/bulk",
            content=b"\n".join(lines) + b"\n",
            headers={
                "Authorization": f"Bearer {await self.system_token(force)}",
                "Content-Type": "application/x-ndjson",
                "Idempotency-Key": f"soak-{uuid.uuid4().hex}",
            },
        )
        problem = self._check(response)
        if problem is None and response.json()["rejected"]:
            return f"{response.json()['rejected']} valid bulk line(s) rejected"
        return problem

    async def audit(self) -> str | None:
        force = self.rng.choice(FORCES)
        base = self.fed.node(force).url
        headers = {"Authorization": f"Bearer {AUDITOR_TOKEN}"}
        if self.rng.random() < 0.5:
            response = await self.http.get(f"{base}/v1/audit/entries?limit=20", headers=headers)
        else:
            response = await self.http.get(f"{base}/v1/audit/checkpoint", headers=headers)
        return self._check(response)


async def drive(fed: Federation, minutes: float, rate: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    tally = Tally()
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        work = Workload(fed, http, rng)
        kinds = list(MIX)
        weights = [MIX[k] for k in kinds]
        operations: dict[str, Callable[[], Awaitable[str | None]]] = {
            "search": work.search,
            "disclose": work.disclose,
            "bulk": work.bulk,
            "audit": work.audit,
        }
        in_flight: set[asyncio.Task[None]] = set()
        gate = asyncio.Semaphore(MAX_IN_FLIGHT)

        async def one(kind: str) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    outcome = await operations[kind]()
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    outcome = f"{type(exc).__name__}"
                tally.record(kind, started, outcome)

        start = time.monotonic()
        end = start + minutes * 60
        for n in itertools.count():
            due = start + n / rate
            if due >= end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                tally.late_starts += 1
            task = asyncio.create_task(one(rng.choices(kinds, weights)[0]))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=60)
    summary = tally.summary()
    summary["achieved_rate_per_s"] = round(summary["operations"] / (minutes * 60), 2)
    return summary


def soak(minutes: float, rate: float, workdir: Path, records: int, seed: int) -> dict[str, Any]:
    # Keep stdout for the result: the offline verification's own log lines are not wanted.
    configure_logging(json_lines=True, level="WARNING")
    fed = prepare(workdir, FORCES, records, log=lambda *_: None)
    started = time.time()
    with running(fed) as procs:
        import_data(fed, log=lambda *_: None)
        rss_start = {f: resident_mb(procs.procs[f].pid) for f in FORCES}
        result = asyncio.run(drive(fed, minutes, rate, seed))
        rss_end = {f: resident_mb(procs.procs[f].pid) for f in FORCES}
    # Nodes stopped (each signed a final checkpoint): verify every log offline.
    audit = {spec.force: verify_node_log(spec.settings(fed.workdir)) for spec in fed.nodes}
    return {
        "minutes": minutes,
        "target_rate_per_s": rate,
        "mix": MIX,
        "forces": FORCES,
        "seconds": round(time.time() - started, 1),
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
        "audit": audit,
        "audit_logs_verify": all(a["verifies"] for a in audit.values()),
        **result,
    }


def main(quick: bool) -> dict[str, Any]:
    """Harness entry: one minute when quick, else the full ten."""
    with tempfile.TemporaryDirectory(prefix="gateway-soak-") as tmp:
        return soak(1.0 if quick else 10.0, DEFAULT_RATE, Path(tmp), 600, 20261128)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="operations per second")
    parser.add_argument("--records", type=int, default=600, help="synthetic records per force")
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    if args.workdir is None:
        with tempfile.TemporaryDirectory(prefix="gateway-soak-") as tmp:
            result = soak(args.minutes, args.rate, Path(tmp), args.records, args.seed)
    else:
        result = soak(args.minutes, args.rate, args.workdir, args.records, args.seed)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    ok = result["unexpected_errors"] == 0 and result["audit_logs_verify"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(cli())
