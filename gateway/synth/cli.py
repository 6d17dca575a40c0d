"""The `gateway synth` command: write a synthetic multi-force data set and its ground truth.

`synth` is a plain typer command function; the main CLI registers it with
`app.command("synth")(synth)`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.synth.generator import (
    GROUND_TRUTH_FILE,
    MIN_RECORDS,
    PLANTED_LINK_TYPES,
    SynthError,
    SynthSummary,
    canonical_forces,
    check_sentinels,
    generate,
)


def _read_sentinels(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise typer.BadParameter(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise typer.BadParameter(f"{path} must hold a JSON list of strings")
    try:
        return check_sentinels(data)
    except SynthError as exc:
        raise typer.BadParameter(str(exc)) from None


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} exists and is not a directory")
    existing = out if out.exists() else next((p for p in out.parents if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"{out} is not writable")


def _summary_table(summary: SynthSummary) -> Table:
    kinds = sorted({kind for counts in summary.kinds.values() for kind in counts})
    table = Table(title=f"Synthetic data in {summary.out_dir} (seed {summary.seed})")
    table.add_column("kind")
    for force in summary.forces:
        table.add_column(force, justify="right")
    table.add_column("total", justify="right")
    for kind in kinds:
        row = [summary.kinds[force].get(kind, 0) for force in summary.forces]
        table.add_row(kind, *(f"{n:,}" for n in row), f"{sum(row):,}")
    totals = [sum(summary.kinds[force].values()) for force in summary.forces]
    table.add_row("all records", *(f"{n:,}" for n in totals), f"{sum(totals):,}", style="bold")
    return table


def synth(
    forces: str = typer.Option(
        ...,
        "--forces",
        help="Comma-separated force codes, e.g. 05,20,01 (PNC codes; aliases such as 02 for the "
        "Met are accepted). Order does not matter. One NDJSON file is written per force.",
    ),
    records: int = typer.Option(
        10_000,
        "--records",
        help="Records PER FORCE (so --forces 05,20,01 --records 10000 writes 30,000 records). "
        "A run over several forces needs at least 200 per force.",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Random seed: the same seed and options give byte-identical files."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help=f"Output directory (created if missing): <force>.ndjson per force and "
        f"{GROUND_TRUTH_FILE} listing every planted cross-force link.",
    ),
    sentinels: Path | None = typer.Option(
        None,
        "--sentinels",
        help="JSON file with a list of sentinel strings. Each is planted in one person's family "
        "name, one intelligence report's text and one address line per force, so tests can prove "
        "no sentinel is stored in plaintext. Placements are listed in the ground truth.",
    ),
) -> None:
    """Write realistic synthetic records for several forces, with planted cross-force links
    (county-line deal numbers, suspects under spelling variants, premises with victims in more
    than one force) and a ground-truth file for measuring search quality."""
    try:
        codes = canonical_forces(forces.split(","))
    except SynthError as exc:
        raise typer.BadParameter(str(exc), param_hint="--forces") from None
    if records < 1 or (len(codes) > 1 and records < MIN_RECORDS):
        raise typer.BadParameter(
            f"must be at least {MIN_RECORDS} per force when several forces are given "
            "(the planted cross-force links need room), and at least 1 otherwise",
            param_hint="--records",
        )
    _check_out_dir(out)
    planted = _read_sentinels(sentinels) if sentinels is not None else []

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]synth[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("records", total=records * len(codes))

        def advance(force: str, count: int) -> None:
            bar.update(task, advance=count, description=f"force {force}")

        try:
            summary = generate(codes, records, seed, out, sentinels=planted, progress=advance)
        except SynthError as exc:
            raise typer.BadParameter(str(exc)) from None
        except OSError as exc:
            raise typer.BadParameter(f"cannot write to {out}: {exc.strerror}") from None

    report = Console()
    report.print(_summary_table(summary))
    links = ", ".join(f"{summary.planted_links[kind]} {kind}" for kind in PLANTED_LINK_TYPES)
    report.print(f"Planted cross-force links: {links} (see {summary.ground_truth})")
    if summary.sentinel_placements:
        report.print(f"Sentinels planted: {len(summary.sentinel_placements)} placements")
    report.print(
        f"{summary.total_records:,} records in {summary.seconds:.2f} s "
        f"({summary.records_per_second:,.0f} records/s)"
    )
