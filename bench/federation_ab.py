"""Compare two versions of the code on federated search, both at once, on one noisy machine.

Run: `.venv/bin/python -m bench.federation_ab OLD_REV NEW_REV [--rounds 3] [--seconds 15]
[--records 100000] [--workdir DIR]`. Not part of `make bench`: it is for judging a change.

On a shared VM the same code's throughput moves by a third within minutes, so two versions run
one after the other can swap places. Here two federations of the same size (A and B, on
different ports) run at the same time, each loaded by half of the 16 analysts; one runs OLD_REV,
the other NEW_REV, and the two swap between the federations every round. Both versions then see
the same machine at every moment, and node CPU per search is compared within each round.

Each revision is checked out into its own git worktree under the work directory, and its nodes
are started from that tree (`python -m gateway` puts the working directory first on
`sys.path`). The federations' data are made once by the current code and reused with
`--workdir`; both revisions must therefore read the same database schema (no migration between
them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.federation_bench import FORCES, SEED, _load_phase, _query_pool
from bench.node_process import cpu_seconds

ANALYSTS_PER_FEDERATION = 8
REPO = Path(__file__).resolve().parent.parent


def checkout(rev: str, workdir: Path, name: str) -> Path:
    """A worktree of `rev` (made once; moved to `rev` if it exists)."""
    tree = workdir / f"code-{name}"
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev],
            check=True,
            capture_output=True,
        )
    else:
        subprocess.run(["git", "-C", str(tree), "checkout", "--detach", rev], check=True)
    return tree


@contextmanager
def _in_directory(path: Path) -> Any:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def prepare_federations(workdir: Path, records: int) -> dict[str, Any]:
    """Federations A and B (made with the current code; B's ports chosen while A's are taken)."""
    from gateway.up import Federation, import_data, prepare, running

    quiet: Any = lambda *_args, **_kwargs: None  # noqa: E731 - progress lines are not wanted
    a = prepare(workdir / "fed-A", FORCES, records, seed=SEED, log=quiet)
    with running(a):
        import_data(a, log=quiet)
        b = prepare(workdir / "fed-B", FORCES, records, seed=SEED, log=quiet)
    with running(b):
        import_data(b, log=quiet)
    loaded = {name: Federation.load(workdir / f"fed-{name}") for name in ("A", "B")}
    return {name: fed for name, fed in loaded.items() if fed is not None}


def paired_summary(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per round, NEW's node CPU per search and throughput relative to OLD's in the same round;
    then the median and range of those ratios (CPU below 1.0 and throughput above 1.0: NEW is
    cheaper and faster)."""
    cpu = [r["new"]["cpu_ms"] / r["old"]["cpu_ms"] for r in rounds]
    rate = [r["new"]["per_s"] / r["old"]["per_s"] for r in rounds]
    return {
        "rounds": len(rounds),
        "cpu_ratio_median": round(statistics.median(cpu), 3),
        "cpu_ratio_range": [round(min(cpu), 3), round(max(cpu), 3)],
        "throughput_ratio_median": round(statistics.median(rate), 3),
        "throughput_ratio_range": [round(min(rate), 3), round(max(rate), 3)],
    }


def one_round(
    feds: dict[str, Any], trees: dict[str, Path], versions: dict[str, str], seconds: float
) -> dict[str, dict[str, Any]]:
    """Both federations under load at once; `versions` maps federation name to "old"/"new"."""
    from gateway.identity.issuer import mint_analyst_token
    from gateway.up import running

    tokens = {
        name: {
            f"{FORCES[n % len(FORCES)]}/{n}": mint_analyst_token(
                fed.node(FORCES[n % len(FORCES)]).settings(fed.workdir),
                user_id=f"ab-analyst-{n}",
                roles=("analyst",),
                vetting="NPPV3",
                ttl_seconds=3600,
            )
            for n in range(ANALYSTS_PER_FEDERATION)
        }
        for name, fed in feds.items()
    }
    pools = {
        name: _query_pool(fed.workdir / "synthetic", random.Random(SEED))
        for name, fed in feds.items()
    }
    with ExitStack() as stack:
        pids: dict[str, list[int]] = {}
        for name, fed in feds.items():
            tree = trees[versions[name]]
            os.environ["PYTHONPATH"] = str(tree)
            with _in_directory(tree):
                procs = stack.enter_context(running(fed))
            pids[name] = [p.pid for p in procs.procs.values()]
        os.environ.pop("PYTHONPATH", None)

        async def load(name: str, phase_seconds: float) -> dict[str, Any]:
            fed = feds[name]
            return await _load_phase(
                urls={spec.force: spec.url for spec in fed.nodes},
                tokens=tokens[name],
                pool=pools[name],
                mode="hits",
                own_only=False,
                seconds=phase_seconds,
                analysts=ANALYSTS_PER_FEDERATION,
            )

        async def measure() -> dict[str, dict[str, Any]]:
            await asyncio.gather(*(load(name, 3.0) for name in feds))  # warm-up
            before = {name: sum(map(cpu_seconds, p)) for name, p in pids.items()}
            results = await asyncio.gather(*(load(name, seconds) for name in feds))
            after = {name: sum(map(cpu_seconds, p)) for name, p in pids.items()}
            out: dict[str, dict[str, Any]] = {}
            for name, result in zip(feds, results, strict=True):
                searches = max(int(result["searches"]), 1)
                cpu_ms = (after[name] - before[name]) * 1000 / searches
                out[versions[name]] = {
                    "federation": name,
                    "per_s": float(result["searches_per_s"]),
                    "p50_ms": float(result["p50_ms"]),
                    "cpu_ms": round(cpu_ms, 2),
                    "failed": int(result["failed"]),
                }
            return out

        return asyncio.run(measure())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.federation_ab", description=__doc__)
    parser.add_argument("old", help="the revision to compare against (e.g. main~3)")
    parser.add_argument("new", help="the revision under test (e.g. HEAD)")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=15.0, help="load per round (s)")
    parser.add_argument("--records", type=int, default=100_000, help="records per force")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "federation-ab",
        help="worktrees and federations, kept between runs",
    )
    args = parser.parse_args(argv)
    os.environ["GATEWAY_RATE_LIMIT_ENABLED"] = "false"  # measures capacity, not the limiter
    args.workdir.mkdir(parents=True, exist_ok=True)
    trees = {
        "old": checkout(args.old, args.workdir, "old"),
        "new": checkout(args.new, args.workdir, "new"),
    }
    feds = prepare_federations(args.workdir, args.records)
    rounds = []
    for _ in range(args.rounds):
        for versions in ({"A": "old", "B": "new"}, {"A": "new", "B": "old"}):
            result = one_round(feds, trees, versions, args.seconds)
            rounds.append(result)
            print(json.dumps({"round": len(rounds), **result}), flush=True)
    print(json.dumps(paired_summary(rounds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
