"""`gateway synth` through typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from gateway.synth.cli import synth

app = typer.Typer()
app.command()(synth)
runner = CliRunner()


def test_help_explains_every_option() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for option in ("--forces", "--records", "--seed", "--out", "--sentinels"):
        assert option in result.output
    assert "PER FORCE" in result.output


def test_small_run_writes_files_and_a_summary(tmp_path: Path) -> None:
    sentinels = tmp_path / "sentinels.json"
    sentinels.write_text(json.dumps(["SENTINEL-CLI-1"]))
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "--forces",
            "05,20,01",
            "--records",
            "300",
            "--seed",
            "7",
            "--out",
            str(out),
            "--sentinels",
            str(sentinels),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "01.ndjson",
        "05.ndjson",
        "20.ndjson",
        "ground_truth.json",
    ]
    assert "records/s" in result.output
    assert "deal_line" in result.output
    assert "900" in result.output
    assert "SENTINEL-CLI-1" in (out / "05.ndjson").read_text()


def test_unknown_force_code_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--forces", "05,99", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown force code '99'" in result.output
    assert not any(tmp_path.iterdir())


def test_too_few_records_for_several_forces_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--forces", "05,20", "--records", "10", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--records" in result.output


def test_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = runner.invoke(app, ["--forces", "05", "--records", "5", "--out", str(target)])
    assert result.exit_code == 2
    assert "not a directory" in result.output


def test_sentinel_file_must_be_a_json_list(tmp_path: Path) -> None:
    bad = tmp_path / "s.json"
    bad.write_text('{"not": "a list"}')
    result = runner.invoke(
        app,
        ["--forces", "05", "--records", "5", "--out", str(tmp_path / "o"), "--sentinels", str(bad)],
    )
    assert result.exit_code == 2
    assert "JSON list" in result.output
