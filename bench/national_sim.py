"""National-scale simulation (issue 9): one coordinating node fans a federated search out to 3,
10, 22 and 43 partners (every other member of a 44-node federation: 43 territorial forces of
England and Wales plus BTP) and we measure fan-out latency p50/p95/p99, searches/s and the
coordinator's CPU per search.

What is real and what is simulated:
- The coordinator is the real federation client (`gateway.federation.client.PartnerClient`):
  aiohttp with keep-alive and one connection pool per partner, a request JWS signed per
  partner, every answer's signature and request hash verified, a circuit breaker per partner;
  our fan-out gathers the calls under one deadline like the search service does.
- The 43 partners live in one separate "partner farm" process (uvicorn, real loopback sockets), so
  the coordinator's CPU is measured alone. Each simulated partner really verifies the signed
  request (replay cache included) and really signs its answer (binding the request hash), but
  replaces its local search by a wait drawn from a latency model:
  WAN round trip fixed per partner (3-12 ms, the Public Services Network across Great Britain)
  + search time 2 ms + 10 ms x sqrt(relative force size) x lognormal(sigma 0.4)
  + with probability 0.5 % a straggler delay of 100-1500 ms (a garbage-collection pause, a
  database checkpoint, a saturated node).
  Relative force sizes are rough (the Met about 1.0, the big metropolitan forces about 0.2, most
  county forces 0.04-0.1), so a few large forces and many small ones.

Run: ``.venv/bin/python -m bench --only national [--quick]``;
``python -m bench.national_sim --farm CONFIG`` starts the farm (used internally).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.node_process import cpu_seconds
from gateway.federation.client import PartnerClient, PartnerFailure
from gateway.federation.manifest import Member
from gateway.federation.payloads import PartnerAnswer
from gateway.federation.protocol import (
    SIGNATURE_HEADER,
    ProtocolError,
    ReplayCache,
    request_hash,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)
from gateway.identity.signing import NodeSigningKey
from gateway.settings import Settings
from schemas import all_forces

COORDINATOR = "05"
SEARCH_PATH = "/federation/v1/search"
PARTNER_COUNTS = (3, 10, 22, 43)
CONCURRENT_ANALYSTS = 4
STRAGGLER_PROBABILITY = 0.005
# Rough relative sizes (records held), the Met = 1.0; forces not listed are small (0.05).
RELATIVE_SIZE = {
    "01": 1.0, "06": 0.23, "20": 0.22, "13": 0.17, "43": 0.14, "05": 0.12, "44": 0.11,
    "46": 0.11, "42": 0.11, "04": 0.10, "52": 0.10, "10": 0.10, "62": 0.10, "50": 0.10,
    "47": 0.09, "93": 0.09, "14": 0.09, "41": 0.07, "31": 0.07, "33": 0.06, "48": 0.03,
}  # fmt: skip


def federation_members() -> list[str]:
    """The 44 nodes: the territorial forces of England and Wales (codes below 90) and BTP."""
    codes = [
        f.code
        for f in all_forces()
        if (f.code.isdigit() and int(f.code) < 90 and f.code != "98") or f.code == "93"
    ]
    return codes


def partner_order() -> list[str]:
    """Partners in a fixed mixed order (seeded), so each size mixes large and small forces."""
    partners = [c for c in federation_members() if c != COORDINATOR]
    random.Random(44).shuffle(partners)
    return partners


# --- the partner farm (runs in its own process) -------------------------------------------------


@dataclass
class SimulatedPartner:
    force: str
    key: NodeSigningKey
    rtt_s: float
    weight: float
    replay: ReplayCache


def build_farm_app(config: dict[str, Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    coordinator_keys = [config["coordinator_jwk"]]
    rng = random.Random(config["seed"])
    partners: dict[str, SimulatedPartner] = {}
    for force, spec in config["partners"].items():
        private = serialization.load_pem_private_key(spec["pem"].encode(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        partners[force] = SimulatedPartner(
            force=force,
            key=NodeSigningKey.from_private_key(private),
            rtt_s=spec["rtt_ms"] / 1000,
            weight=spec["weight"],
            replay=ReplayCache(),
        )
    checkpoint = config["checkpoint"]
    straggler_p = float(config["straggler_probability"])

    def keys_of(sender: str) -> list[dict[str, Any]]:
        if sender != config["coordinator"]:
            raise ProtocolError("unknown_member", "not a member")
        return coordinator_keys

    async def search(request: Request) -> Response:
        partner = partners.get(request.path_params["force"])
        if partner is None:
            return JSONResponse({"detail": "no such node"}, status_code=404)
        body = await request.body()
        try:
            claims = verify_request(
                request.headers.get(SIGNATURE_HEADER, ""),
                body,
                audience=partner.force,
                method="POST",
                path=SEARCH_PATH,
                keys_of=keys_of,
                replay_cache=partner.replay,
            )
        except ProtocolError as exc:
            return JSONResponse({"detail": exc.reason}, status_code=401)
        service = 0.002 + 0.010 * math.sqrt(partner.weight) * rng.lognormvariate(0, 0.4)
        if rng.random() < straggler_p:
            service += rng.uniform(0.1, 1.5)
        await asyncio.sleep(partner.rtt_s + service)
        hits = rng.choice((0, 0, 0, 1, 2))
        answer = {
            "status": "ok",
            "force": partner.force,
            "mode": "hits",
            "hit_count": hits,
            "hits": [{"ref": f"{partner.force}-{n:08x}", "kind": "person"} for n in range(hits)],
            "decision": f"pointer:{hits}" if hits else "",
            "receipt": {
                "force": partner.force,
                "origin": f"police-gateway/force-{partner.force}",
                "index": 1,
                "leaf_hash": "0" * 64,
                "checkpoint": checkpoint,
            },
        }
        out = json.dumps(answer, separators=(",", ":")).encode()
        signature = sign_response(
            partner.key,
            sender=partner.force,
            audience=claims.sender,
            request_token_hash=claims.request_hash,
            status=200,
            body=out,
        )
        return Response(out, media_type="application/json", headers={SIGNATURE_HEADER: signature})

    return Starlette(routes=[Route("/{force}" + SEARCH_PATH, search, methods=["POST"])])


def run_farm(config_path: Path) -> None:
    """Serve every simulated partner on its own loopback port, as distinct origins: the
    coordinator's HTTP client then keeps separate connections per partner, as in production."""
    import socket

    import uvicorn

    config = json.loads(config_path.read_text())
    sockets = []
    ports = {}
    for force in config["partners"]:
        # The farm picks its own free ports (port 0) so no other process can race for them.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports[force] = sock.getsockname()[1]
    ports_path = config_path.with_suffix(".ports")
    ports_path.with_suffix(".tmp").write_text(json.dumps(ports))
    ports_path.with_suffix(".tmp").rename(ports_path)
    server = uvicorn.Server(
        uvicorn.Config(
            build_farm_app(config),
            log_level="warning",
            access_log=False,
            backlog=4096,
            timeout_graceful_shutdown=2,
        )
    )
    server.run(sockets=sockets)


# --- the coordinator (this process) -------------------------------------------------------------


@dataclass
class CoordinatorNode:
    """What `PartnerClient` reads from a node: its settings and its signing key."""

    settings: Settings
    signing_key: NodeSigningKey


@dataclass
class Farm:
    process: subprocess.Popen[bytes]
    log_path: Path
    members: dict[str, Member]


@contextlib.contextmanager
def start_farm(tmp: Path, coordinator: NodeSigningKey, partners: list[str]) -> Any:
    rng = random.Random(9)
    keys = {force: Ed25519PrivateKey.generate() for force in partners}
    config = {
        "coordinator": COORDINATOR,
        "coordinator_jwk": coordinator.public_jwk(),
        "seed": 11,
        "straggler_probability": STRAGGLER_PROBABILITY,
        "checkpoint": "police-gateway/force-xx\n2\nAAAA\n\n— simulated",
        "partners": {
            force: {
                "pem": key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                "rtt_ms": rng.uniform(3, 12),
                "weight": RELATIVE_SIZE.get(force, 0.05),
            }
            for force, key in keys.items()
        },
    }
    config_path = tmp / "farm.json"
    config_path.write_text(json.dumps(config))
    log_path = tmp / "farm.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.national_sim", "--farm", str(config_path)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        ports_path = config_path.with_suffix(".ports")
        deadline = time.monotonic() + 30
        while not ports_path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("partner farm did not start: " + log_path.read_text()[-1000:])
            time.sleep(0.05)  # readiness poll of a child process
        ports = json.loads(ports_path.read_text())
        members = {
            force: Member(
                force_code=force,
                name=f"force {force}",
                node_url=f"http://127.0.0.1:{ports[force]}/{force}",
                signing_keys=[NodeSigningKey.from_private_key(key).public_jwk()],
            )
            for force, key in keys.items()
        }
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("partner farm exited: " + log_path.read_text()[-1000:])
            with contextlib.suppress(httpx.HTTPError):
                for port in ports.values():
                    httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            time.sleep(0.1)  # readiness poll of a child process
        yield Farm(process=process, members=members, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


class PoolPerPartner(httpx.AsyncBaseTransport):
    """One connection pool per partner origin. httpcore scans every pooled connection on each
    request event, so one shared pool over 43 partners costs CPU that grows with the fan-out;
    separate pools keep each scan to one partner's few connections."""

    def __init__(self) -> None:
        self.pools: dict[tuple[str, int | None], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = (request.url.host, request.url.port)
        pool = self.pools.get(origin)
        if pool is None:
            pool = self.pools[origin] = httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16)
            )
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self.pools.values():
            await pool.aclose()


def new_client(coordinator: CoordinatorNode, pooling: str) -> PartnerClient:
    # "httpx": the same client through httpx (what the in-process tests use), for comparison.
    transport = PoolPerPartner() if pooling == "httpx" else None
    return PartnerClient(coordinator, transport=transport)  # type: ignore[arg-type]


def search_payload(n: int) -> dict[str, Any]:
    return {
        "request_id": f"sim-{n:08d}",
        "principal": {
            "user_id": "analyst-0001",
            "force": COORDINATOR,
            "roles": ["analyst"],
            "vetting": "MV",
            "units": ["mso"],
        },
        "context": {
            "purpose": "investigation",
            "justification": "county line deal number seen in two forces",
            "case_ref": "OP-2025-0042",
            "mode": "hits",
        },
        "terms": {"phone": f"+447700{900000 + n % 999:06d}"},
        "limit": 50,
    }


async def fan_out(
    client: PartnerClient, members: list[Member], payload: dict[str, Any], deadline_s: float
) -> dict[str, str]:
    """Ask every partner at once; whoever has not answered by the deadline is `timeout`. Returns
    a status per force, as the analyst's response shows it."""

    async def ask(member: Member) -> str:
        try:
            reply = await client.call(member, "POST", SEARCH_PATH, payload)
        except PartnerFailure as exc:
            return exc.status
        PartnerAnswer.model_validate(reply.body)
        return "ok"

    tasks = {asyncio.ensure_future(ask(m)): m.force_code for m in members}
    done, pending = await asyncio.wait(tasks, timeout=deadline_s)
    for task in pending:
        task.cancel()
    statuses = {tasks[t]: t.result() for t in done}
    statuses.update({tasks[t]: "timeout" for t in pending})
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return statuses


def _pct(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return round(sorted_values[index] * 1000, 1)


async def measure(
    coordinator: CoordinatorNode,
    farm: Farm,
    partners: list[str],
    searches: int,
    *,
    deadline_s: float,
    pooling: str = "aiohttp",
    analysts: int = CONCURRENT_ANALYSTS,
) -> dict[str, Any]:
    """`pooling`: "aiohttp" (the real PartnerClient: aiohttp, one pool per partner), "httpx"
    (the same client through httpx, one pool per partner: `PoolPerPartner`), or "none" (a new
    client, so new connections, for every search)."""
    members = [farm.members[f] for f in partners]
    reuse_connections = pooling != "none"
    shared = new_client(coordinator, pooling)
    # Warm the connection pool (one connection per partner) so the figures are steady-state.
    await fan_out(shared, members, search_payload(0), 5.0)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(searches):
        queue.put_nowait(n)

    async def analyst() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            client = shared if reuse_connections else new_client(coordinator, "aiohttp")
            t0 = time.perf_counter()
            result = await fan_out(client, members, search_payload(n), deadline_s)
            latencies.append(time.perf_counter() - t0)
            statuses.update(result.values())
            if not reuse_connections:
                await client.aclose()

    farm_cpu0 = cpu_seconds(farm.process.pid)
    cpu0 = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(analyst() for _ in range(analysts)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    farm_cpu = cpu_seconds(farm.process.pid) - farm_cpu0
    await shared.aclose()
    if farm.process.poll() is not None:
        raise RuntimeError("partner farm died: " + farm.log_path.read_text()[-2000:])
    latencies.sort()
    return {
        "partners": len(partners),
        "searches": searches,
        "concurrent_analysts": analysts,
        "deadline_s": deadline_s,
        "pooling": pooling,
        "p50_ms": _pct(latencies, 0.50),
        "p95_ms": _pct(latencies, 0.95),
        "p99_ms": _pct(latencies, 0.99),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
        "searches_per_s": round(searches / elapsed, 1),
        "coordinator_cpu_ms_per_search": round(cpu / searches * 1000, 2),
        "coordinator_cpu_ms_per_partner_call": round(cpu / searches / len(partners) * 1000, 3),
        "farm_cpu_ms_per_search": round(farm_cpu / searches * 1000, 2),
        "statuses": dict(statuses),
    }


def call_breakdown(coordinator_key: NodeSigningKey, samples: int = 300) -> dict[str, float]:
    """Where a partner call's CPU goes outside HTTP: signing the request, verifying the signed
    answer, validating the answer's shape (microseconds per call, one partner key)."""
    partner = NodeSigningKey.generate()
    body = json.dumps(search_payload(1), separators=(",", ":")).encode()
    answer = json.dumps(
        {"status": "ok", "force": "20", "mode": "hits", "hit_count": 0, "hits": [],
         "decision": "", "receipt": {"force": "20", "origin": "o", "index": 1,
                                     "leaf_hash": "0" * 64, "checkpoint": "c"}}
    ).encode()  # fmt: skip
    keys = [partner.public_jwk()]

    def timed(fn: Any) -> float:
        started = time.perf_counter()
        for _ in range(samples):
            fn()
        return round((time.perf_counter() - started) / samples * 1e6, 1)

    token = sign_request(
        coordinator_key, sender=COORDINATOR, audience="20", method="POST", path=SEARCH_PATH,
        body=body,
    )  # fmt: skip
    signature = sign_response(
        partner, sender="20", audience=COORDINATOR, request_token_hash=request_hash(token),
        status=200, body=answer,
    )  # fmt: skip
    return {
        "sign_request_us": timed(
            lambda: sign_request(
                coordinator_key, sender=COORDINATOR, audience="20", method="POST",
                path=SEARCH_PATH, body=body,
            )
        ),
        "verify_response_us": timed(
            lambda: verify_response(
                signature, answer, sender="20", audience=COORDINATOR, keys=keys,
                request_token=token,
            )
        ),
        "validate_answer_us": timed(
            lambda: PartnerAnswer.model_validate(json.loads(answer))
        ),
    }  # fmt: skip


def main(quick: bool) -> dict[str, Any]:
    searches = 40 if quick else 200
    coordinator_key = NodeSigningKey.generate()
    order = partner_order()
    everyone = PARTNER_COUNTS[-1]
    results: dict[str, Any] = {
        "federation_nodes": len(federation_members()),
        "model": {
            "rtt_ms": "3-12 fixed per partner",
            "search_ms": "2 + 10*sqrt(size)*lognormal(0,0.4)",
            "straggler": f"p={STRAGGLER_PROBABILITY}, +100..1500 ms",
        },
        "call_breakdown": call_breakdown(coordinator_key),
    }
    with tempfile.TemporaryDirectory(prefix="national-sim-") as tmp_name:
        tmp = Path(tmp_name)

        def node(deadline: float) -> CoordinatorNode:
            settings = Settings(
                force_code=COORDINATOR, data_dir=tmp, partner_deadline_seconds=deadline
            )
            return CoordinatorNode(settings=settings, signing_key=coordinator_key)

        coordinator = node(2.0)
        with start_farm(tmp, coordinator_key, order) as farm:
            results["sweep"] = [
                asyncio.run(measure(coordinator, farm, order[:count], searches, deadline_s=2.0))
                for count in PARTNER_COUNTS
            ]
            runs = {
                "one_analyst": (coordinator, 2.0, "aiohttp", 1, searches // 2),
                "httpx_client": (coordinator, 2.0, "httpx", CONCURRENT_ANALYSTS, searches),
                "tight_deadline": (node(0.5), 0.5, "aiohttp", CONCURRENT_ANALYSTS, searches),
                "no_connection_reuse": (
                    coordinator, 2.0, "none", CONCURRENT_ANALYSTS, max(12, searches // 4)
                ),
            }  # fmt: skip
            for name, (who, deadline, pooling, analysts, count) in runs.items():
                results[name] = asyncio.run(
                    measure(
                        who,
                        farm,
                        order[:everyone],
                        count,
                        deadline_s=deadline,
                        pooling=pooling,
                        analysts=analysts,
                    )
                )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--farm", type=Path, help="run the partner farm with this config")
    args = parser.parse_args()
    if args.farm:
        run_farm(args.farm)
    else:
        print(json.dumps(main(args.quick), indent=2))
