"""`python -m bench [--quick] [--only NAME[,NAME]] [--out DIR] [--list]`: what `make bench` runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.harness import BENCHMARKS, RESULTS_DIR, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the reduced set (under 3 minutes)")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only these (repeat or comma-separate)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where latest.* go")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for bench in BENCHMARKS:
            print(f"{bench.name:12} {bench.description}")
        return 0
    try:
        report = run(quick=args.quick, names=args.only, out_dir=args.out)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote {args.out / 'latest.md'} and latest.json in {report['seconds']} s")
    failed = [b["name"] for b in report["benchmarks"] if b["status"] == "error"]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
