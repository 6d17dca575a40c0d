"""Offline export verification: a clean export passes, and each kind of tampering is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import Actor, AuditEntry, RecordRef, encode_entry
from audit.merkle import leaf_hash, root_from_leaves
from audit.verify import Problem, VerifyReport, export_line, is_canonical_json, verify_export
from schemas.enums import S62Operation

ORIGIN = "audit.node20.police.example/log"
KEY = Ed25519PrivateKey.generate()
SIZE = 3000
START = datetime(2025, 2, 1, tzinfo=UTC)


def make_entry(i: int) -> bytes:
    return encode_entry(
        AuditEntry(
            time=START + timedelta(seconds=i),
            node="20",
            kind=S62Operation.DISCLOSE,
            actor=Actor(user_id=f"u-{i % 40:04d}", force="05", roles=("analyst",)),
            purpose="investigation",
            case_ref=f"OP-{i % 13}",
            decision="full",
            records=(RecordRef("20", f"r-{i}", 1 + i % 3),),
            recipient_force="05",
            request_id=f"req-{i}",
        )
    )


ENTRIES = [make_entry(i) for i in range(SIZE)]
LINES = [export_line(i, data) for i, data in enumerate(ENTRIES)]
ROOTS = {
    size: root_from_leaves([leaf_hash(data) for data in ENTRIES[:size]]) for size in (1000, SIZE)
}


def signed(size: int, root: bytes, key: Ed25519PrivateKey = KEY) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, size, root), ORIGIN, key).to_text()


def verify(lines: list[bytes], checkpoint: str | None = None, **kwargs: object) -> VerifyReport:
    return verify_export(
        lines,
        checkpoint_text=checkpoint or signed(SIZE, ROOTS[SIZE]),
        origin=ORIGIN,
        key_name=ORIGIN,
        public_key=KEY.public_key(),
        **kwargs,  # type: ignore[arg-type]
    )


def test_export_line_is_itself_canonical_json() -> None:
    line = LINES[5]
    assert line.endswith(b"\n")
    assert is_canonical_json(line[:-1])
    assert line.startswith(b'{"entry":' + ENTRIES[5] + b',"index":5,"leaf_hash":"')


def test_clean_export_verifies_with_progress() -> None:
    seen: list[int] = []
    report = verify(LINES, progress=seen.append)
    assert report.ok, report
    assert report.entries == SIZE and report.root == ROOTS[SIZE] and report.uncovered == 0
    assert seen == [SIZE]


def test_older_checkpoint_that_is_a_prefix_verifies() -> None:
    report = verify(LINES, old_checkpoint_text=signed(1000, ROOTS[1000]))
    assert report.ok, report


def test_rows_beyond_the_checkpoint_are_reported_as_uncovered() -> None:
    report = verify(LINES, checkpoint=signed(1000, ROOTS[1000]))
    assert report.ok and report.uncovered == SIZE - 1000


def tampered_byte(lines: list[bytes]) -> list[bytes]:
    out = list(lines)
    out[1234] = out[1234].replace(b'"case_ref":"OP-', b'"case_ref":"OQ-', 1)
    return out


def deleted_row(lines: list[bytes]) -> list[bytes]:
    return lines[:700] + lines[701:]


def swapped_rows(lines: list[bytes]) -> list[bytes]:
    out = list(lines)
    out[42], out[43] = out[43], out[42]
    return out


def truncated(lines: list[bytes]) -> list[bytes]:
    return lines[:2500]


def forged_row_inserted(lines: list[bytes]) -> list[bytes]:
    forged = AuditEntry(
        time=START,
        node="20",
        kind=S62Operation.ERASE,
        actor=Actor(user_id="dba"),
        records=(RecordRef("20", "r-1", 1),),
    )
    return [*lines[:900], export_line(900, encode_entry(forged)), *lines[900:]]


def repeated_row(lines: list[bytes]) -> list[bytes]:
    return [*lines[:11], lines[10], *lines[11:]]


def rewritten_with_fresh_hashes(lines: list[bytes]) -> list[bytes]:
    out = list(lines)
    changed = ENTRIES[2000].replace(b'"decision":"full"', b'"decision":"none"')
    out[2000] = export_line(2000, changed)
    return out


def non_canonical_entry(lines: list[bytes]) -> list[bytes]:
    out = list(lines)
    # Same meaning, different bytes (keys out of order), with a leaf hash that matches them.
    spaced = ENTRIES[77].replace(b'{"actor"', b'{"v":1,"actor"', 1).replace(b',"v":1}', b"}")
    out[77] = export_line(77, spaced)
    return out


@pytest.mark.parametrize(
    ("tamper", "problem", "index"),
    [
        (tampered_byte, Problem.CHANGED_ENTRY, 1234),
        (deleted_row, Problem.MISSING_INDEX, 700),
        (swapped_rows, Problem.OUT_OF_ORDER, 42),
        (truncated, Problem.TRUNCATED, 2500),
        (forged_row_inserted, Problem.FORGED_ROW, 900),
        (repeated_row, Problem.DUPLICATE, 10),
        (non_canonical_entry, Problem.NOT_CANONICAL, 77),
        (rewritten_with_fresh_hashes, Problem.ROOT_MISMATCH, None),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_tampering_is_named_at_the_first_bad_index(
    tamper: object, problem: Problem, index: int | None
) -> None:
    assert callable(tamper)
    report = verify(tamper(LINES))
    assert not report.ok
    assert (report.problem, report.first_bad_index) == (problem, index), report.detail


def test_rewrite_after_an_older_checkpoint_is_located_after_it() -> None:
    report = verify(
        rewritten_with_fresh_hashes(LINES), old_checkpoint_text=signed(1000, ROOTS[1000])
    )
    assert report.problem is Problem.ROOT_MISMATCH
    assert "at or after row 1000" in report.detail


def test_rewrite_before_an_older_checkpoint_breaks_the_prefix() -> None:
    out = list(LINES)
    out[10] = export_line(10, ENTRIES[10].replace(b'"decision":"full"', b'"decision":"none"'))
    report = verify(out, old_checkpoint_text=signed(1000, ROOTS[1000]))
    assert report.problem is Problem.OLD_CHECKPOINT_MISMATCH


def test_altered_checkpoint_signature_is_refused() -> None:
    text = signed(SIZE, ROOTS[SIZE])
    body, _, signature_line = text.rpartition("\n\u2014 ")
    name, blob = signature_line.rstrip("\n").split(" ")
    flipped = blob[:10] + ("A" if blob[10] != "A" else "B") + blob[11:]
    report = verify(LINES, checkpoint=f"{body}\n\u2014 {name} {flipped}\n")
    assert (report.problem, report.first_bad_index) == (Problem.BAD_SIGNATURE, None)


def test_checkpoint_from_another_key_is_refused() -> None:
    report = verify(LINES, checkpoint=signed(SIZE, ROOTS[SIZE], Ed25519PrivateKey.generate()))
    assert report.problem is Problem.BAD_SIGNATURE


def test_checkpoint_for_a_different_tree_of_the_same_size_is_refused() -> None:
    other_root = root_from_leaves([leaf_hash(b"other %d" % i) for i in range(SIZE)])
    report = verify(LINES, checkpoint=signed(SIZE, other_root))
    assert (report.problem, report.first_bad_index) == (Problem.ROOT_MISMATCH, None)


def test_malformed_line_is_named() -> None:
    out = list(LINES)
    out[3] = b'{"index":3,"entry":{},"leaf_hash":"00"}\n'
    report = verify(out)
    assert (report.problem, report.first_bad_index) == (Problem.MALFORMED_LINE, 3)


@pytest.mark.parametrize(
    ("data", "canonical"),
    [
        (b'{"a":1,"b":[true,null,"x"]}', True),
        (b'{"b":1,"a":2}', False),  # key order
        (b'{"a": 1}', False),  # whitespace
        (b'{"a":1.0}', False),  # RFC 8785 writes 1
        (b'{"a":1.5}', True),
        (b'{"a":1e21}', False),  # RFC 8785 writes 1e+21
        (b'{"a":9007199254740993}', False),  # beyond IEEE double precision
        (b'{"a":"\\u00e9"}', False),  # must be the raw character
        ('{"a":"é"}'.encode(), True),
        (b'{"a":"\\u001f"}', True),
        (b'{"a":"\\u001F"}', False),  # hex escapes are lowercase
        (b'{"a":"\\/"}', False),
        (b"[1]", False),  # an entry is an object
        (b'{"a":1,"a":1}', False),
    ],
)
def test_canonical_json_check_agrees_with_rfc8785(data: bytes, canonical: bool) -> None:
    assert is_canonical_json(data) is canonical


@pytest.mark.parametrize(
    "data",
    [b'{"a":1,"b":[true,null,"x"]}', b'{"b":1,"a":2}', b'{"a":1.0}', b'{"a":"\\u001F"}', b"[1]"],
)
def test_standard_library_quick_path_never_claims_a_non_canonical_entry(data: bytes) -> None:
    # The path used where orjson is absent: it may defer (None) but never wrongly say True.
    from audit import verify as module

    quick = module._quick_canonical_stdlib(data)
    assert quick is None or quick == module._full_canonical(data)
    assert quick is (True if data == b'{"a":1,"b":[true,null,"x"]}' else None)
