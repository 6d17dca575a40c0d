"""NDJSON bulk input: each line yields a record or its errors, with a 1-based line number."""

import json

from schemas import parse_ndjson
from schemas.examples import example_record
from schemas.records import PersonRecord, VehicleRecord


def _line(data: object) -> bytes:
    return json.dumps(data).encode()


def test_each_line_is_reported_with_its_line_number() -> None:
    bad_force = example_record("vehicle", owner_force="99")
    lines: list[bytes | str] = [
        _line(example_record("person")),
        b"{not json",
        b"[1, 2]",
        b"",
        _line(bad_force),
        "\u00e9".encode("latin-1"),
        _line(example_record("vehicle")).decode(),
        b'{"kind": "person", "version": NaN}',
        b"x" * 5000,
    ]
    results = list(parse_ndjson(lines, max_line_bytes=4999))
    by_line = {result.line: result for result in results}

    assert 4 not in by_line  # blank lines are skipped, but numbering still counts them
    assert isinstance(by_line[1].record, PersonRecord) and by_line[1].ok
    assert by_line[2].errors[0][0] == "" and "invalid JSON" in by_line[2].errors[0][1]
    assert by_line[3].errors == [("", "line is not a JSON object")]
    assert ("/owner_force", "unknown force code") in by_line[5].errors
    assert by_line[6].errors == [("", "line is not valid UTF-8")]
    assert isinstance(by_line[7].record, VehicleRecord)
    assert "invalid JSON" in by_line[8].errors[0][1]
    assert by_line[9].errors == [("", "line is longer than 4999 bytes")]
    assert [result.ok for result in results] == [
        True,
        False,
        False,
        False,
        False,
        True,
        False,
        False,
    ]


def test_a_long_record_line_within_the_limit_is_accepted() -> None:
    line = _line(example_record("intelligence_report"))
    (result,) = parse_ndjson([line], max_line_bytes=len(line))
    assert result.ok
    (too_long,) = parse_ndjson([line], max_line_bytes=len(line) - 1)
    assert not too_long.ok


def test_lines_with_trailing_newlines_parse() -> None:
    text = "\n".join(json.dumps(example_record(kind)) for kind in ("phone", "event")) + "\n"
    results = list(parse_ndjson(text.splitlines(keepends=True)))
    assert [result.line for result in results] == [1, 2]
    assert all(result.ok for result in results)
