"""Canonical JSON follows RFC 8785: the RFC's own sample and its number serialisation table."""

import json
import math
import struct

import pytest

from schemas import canonical_json, parse_record
from schemas.canonical import canonical_sha256
from schemas.examples import example_record

# RFC 8785 section 3.2.2 input (as JSON text) and section 3.2.3 output.
RFC_SAMPLE_INPUT = r"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
RFC_SAMPLE_OUTPUT = (
    '{"literals":[null,true,false],'
    '"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
).encode()

# RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical JSON number text.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


def test_rfc_sample_object_canonicalises_to_the_rfc_output() -> None:
    assert canonical_json(json.loads(RFC_SAMPLE_INPUT)) == RFC_SAMPLE_OUTPUT


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_appendix_b_numbers_serialise_as_the_rfc_says(bits: str, expected: str) -> None:
    assert canonical_json(_double(bits)) == expected.encode()


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000"])
def test_nan_and_infinity_are_refused(bits: str) -> None:
    value = _double(bits)
    assert math.isnan(value) or math.isinf(value)
    with pytest.raises(Exception):  # noqa: B017 - the library's own error type is not public API
        canonical_json(value)


def test_keys_are_sorted_by_utf16_code_units() -> None:
    # U+1F600 (surrogates D83D DE00) sorts before U+FB33 in UTF-16 order, after it by code point.
    data = {"\ufb33": 1, "\U0001f600": 2, "a": 3}
    assert canonical_json(data) == '{"a":3,"\U0001f600":2,"\ufb33":1}'.encode()


def test_a_model_and_its_json_data_give_the_same_bytes() -> None:
    record = parse_record(example_record("person"))
    assert canonical_json(record) == canonical_json(record.model_dump(mode="json"))
    assert canonical_sha256(record) == canonical_sha256(record.model_dump(mode="json"))
    assert len(canonical_sha256(record)) == 64
