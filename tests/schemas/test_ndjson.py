"""NDJSON bulk input: each line yields a record or its errors, with a 1-based line number."""

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import parse_ndjson
from schemas.examples import example_record
from schemas.records import PersonRecord, VehicleRecord
from schemas.validation import _reject_constant, load_json_text


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


# --- the orjson fast path of line decoding ---------------------------------------------------


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-(2**64) - 2, max_value=2**64 + 2)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


# Characters JSON is made of, and some it refuses (a lone surrogate, NUL) or reads differently.
_JSONISH = '{}[]:,"\\ -+.eE0123456789tfnaulrsNIy\ud800\x00é'


def _typed(value: Any) -> Any:
    """A value with its JSON types made visible (1, 1.0 and True compare equal in Python)."""
    if isinstance(value, dict):
        return ("object", [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("array", [_typed(v) for v in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def _outcome(load: Any, text: str) -> tuple[str, Any]:
    try:
        return "value", _typed(load(text))
    except RecursionError:
        return "error", "recursion"
    except ValueError as exc:
        return "error", str(exc)


def _reference(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _assert_same(text: str) -> None:
    assert _outcome(load_json_text, text) == _outcome(_reference, text)


@settings(max_examples=400, deadline=None)
@given(_json_values, st.booleans(), st.booleans())
def test_line_decoding_equals_json_loads(value: Any, ascii_only: bool, spaced: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=1 if spaced else None)
    _assert_same(text)
    _assert_same(text + "\r")
    _assert_same(text[:-1])  # truncated: both refuse, with json's message


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(_JSONISH), max_size=30))
def test_line_decoding_equals_json_loads_on_arbitrary_text(text: str) -> None:
    _assert_same(text)


def test_line_decoding_keeps_json_loads_values_where_orjson_differs() -> None:
    for text in (
        '{"n": 100000000000000000000000000000}',
        '{"n": -18446744073709551617}',
        '{"s": "\\ud800"}',
        '{"f": 1e400}',
        '{"a": 1, "a": 2}',
        '{"x": NaN}',
        '{"x": -Infinity}',
        "\ufeff{}",
    ):
        _assert_same(text)
