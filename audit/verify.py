"""Offline verification of an audit log export against signed checkpoints.

An export is NDJSON, one line per entry in index order, each line produced by ``export_line``:
``{"entry":<canonical entry JSON>,"index":<i>,"leaf_hash":"<hex>"}`` — itself RFC 8785 canonical
(keys sorted), so the entry's exact bytes sit verbatim inside the line and are hashed as they are.

``verify_export`` recomputes every leaf from the entry bytes, checks each entry is canonical JSON,
checks indexes run 0..n-1 with nothing missing, repeated or reordered, rebuilds the tree and
compares it with the signed checkpoint (and, optionally, an older checkpoint it must extend).
It stops at the first problem and names the index and what is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.checkpoint import Checkpoint, verify_checkpoint
from audit.errors import CheckpointError
from audit.merkle import EMPTY_ROOT, Frontier, leaf_hash

try:  # optional speed-up; the standard library path gives the same answers
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only where orjson is absent
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "Problem",
    "VerifyReport",
    "export_line",
    "is_canonical_json",
    "locate_divergence",
    "verify_export",
]

_HEAD = b'{"entry":'
_INDEX_KEY = b',"index":'
_LEAF_KEY = b',"leaf_hash":"'
_TAIL_FIXED = len(_LEAF_KEY) + 64 + 2  # ,"leaf_hash":"<64 hex>"}
_PROGRESS_EVERY = 100_000
_MAX_SAFE_INTEGER = 2**53 - 1


class Problem(StrEnum):
    """What ``verify_export`` found wrong, first problem only."""

    BAD_SIGNATURE = "bad_signature"  # the checkpoint is not signed by the pinned key / origin
    MALFORMED_LINE = "malformed_line"  # a line is not in export_line's layout
    CHANGED_ENTRY = "changed_entry"  # the entry bytes do not hash to the row's leaf hash
    NOT_CANONICAL = "not_canonical"  # the entry is not RFC 8785 canonical JSON
    MISSING_INDEX = "missing_index"  # an index is absent from the sequence
    OUT_OF_ORDER = "out_of_order"  # rows are present but not in index order
    DUPLICATE = "duplicate"  # the same row appears twice
    FORGED_ROW = "forged_row"  # two different rows claim the same index
    TRUNCATED = "truncated"  # fewer rows than the checkpoint covers
    ROOT_MISMATCH = "root_mismatch"  # the rows build a different tree from the signed one
    OLD_CHECKPOINT_MISMATCH = "old_checkpoint_mismatch"  # the log does not extend an older head


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome: ``ok`` or the first problem, with the index it concerns when there is one."""

    ok: bool
    entries: int
    checkpoint: Checkpoint | None
    root: bytes
    problem: Problem | None = None
    first_bad_index: int | None = None
    detail: str = ""

    @property
    def uncovered(self) -> int:
        """Entries after the checkpoint's size: present, but not yet vouched for by a signature."""
        if self.checkpoint is None:
            return 0
        return max(0, self.entries - self.checkpoint.size)


def export_line(index: int, entry_bytes: bytes, stored_leaf: bytes | None = None) -> bytes:
    """One NDJSON export line (newline included) for the entry stored at ``index``.

    Built by concatenation rather than a JSON library because the entry bytes must appear
    verbatim; the result is still exactly the RFC 8785 form of the line's object. A forensic
    export passes the leaf hash as stored, so an entry changed after it was hashed shows up as
    `changed_entry` at its index instead of only as a different root.
    """
    if index < 0:
        raise ValueError("entry indexes are non-negative")
    return b"".join(
        (
            _HEAD,
            entry_bytes,
            _INDEX_KEY,
            str(index).encode("ascii"),
            _LEAF_KEY,
            (stored_leaf if stored_leaf is not None else leaf_hash(entry_bytes))
            .hex()
            .encode("ascii"),
            b'"}\n',
        )
    )


class _NeedsFullCanonicalisation(Exception):
    """Raised inside json.loads hooks when the quick comparison cannot be trusted."""


def _reject_float(text: str) -> float:
    raise _NeedsFullCanonicalisation


def _checked_int(text: str) -> int:
    value = int(text)
    if abs(value) > _MAX_SAFE_INTEGER:
        raise _NeedsFullCanonicalisation
    return value


def _holds_float(value: object) -> bool:
    """Whether a parsed JSON value holds a float anywhere: that is where general encoders and
    RFC 8785's ECMAScript number form disagree (1.0 against 1)."""
    kind = type(value)
    if kind is dict:
        children: Iterable[object] = value.values()  # type: ignore[attr-defined]
    elif kind is list:
        children = value  # type: ignore[assignment]
    else:
        return kind is float
    for child in children:
        child_kind = type(child)
        if child_kind is float or (
            (child_kind is dict or child_kind is list) and _holds_float(child)
        ):
            return True
    return False


def _quick_canonical_stdlib(data: bytes) -> bool | None:
    """True if canonical, None if only the full RFC 8785 encoder can tell (ASCII input only)."""
    try:
        value = json.loads(data, parse_float=_reject_float, parse_int=_checked_int)
        quick = json.dumps(
            value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
    except (_NeedsFullCanonicalisation, ValueError, UnicodeError):
        return None
    return True if quick == data and type(value) is dict else None


def _quick_canonical_orjson(data: bytes) -> bool | None:
    """As above with orjson, several times faster; integers beyond 2**53 make orjson raise."""
    if _orjson is None:
        return None
    try:
        value = _orjson.loads(data)
        quick = _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS | _orjson.OPT_STRICT_INTEGER)
    except (_orjson.JSONDecodeError, _orjson.JSONEncodeError):
        return None
    if quick != data or type(value) is not dict or _holds_float(value):
        return None
    return True


def _full_canonical(data: bytes) -> bool:
    try:
        value = json.loads(data)
        return type(value) is dict and rfc8785.dumps(value) == data
    except (ValueError, UnicodeError, RecursionError, rfc8785.CanonicalizationError):
        return False


_quick_canonical = _quick_canonical_orjson if _orjson is not None else _quick_canonical_stdlib


def is_canonical_json(data: bytes) -> bool:
    """Whether ``data`` is a JSON object exactly in RFC 8785 canonical form.

    The pure-Python rfc8785 encoder costs ~35 µs an entry, too slow for a million-entry export.
    For ASCII input without floats or integers beyond 2**53, RFC 8785 coincides with a compact,
    key-sorted, non-ASCII-preserving encoding (same key order, same string escapes), so a fast
    encoder's round trip decides; anything else, and every mismatch, is settled by rfc8785.
    """
    if data.isascii() and _quick_canonical(data):
        return True
    return _full_canonical(data)


def _parse_line(line: bytes) -> tuple[int, bytes, bytes] | None:
    """(index, entry bytes, stated leaf hex) from a line in export_line's layout, else None."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if not (line.startswith(_HEAD) and line.endswith(b'"}')) or len(line) < 90:
        return None
    leaf_key_at = len(line) - _TAIL_FIXED
    if line[leaf_key_at : leaf_key_at + len(_LEAF_KEY)] != _LEAF_KEY:
        return None
    index_at = line.rfind(_INDEX_KEY, 0, leaf_key_at)
    if index_at < 0:
        return None
    digits = line[index_at + len(_INDEX_KEY) : leaf_key_at]
    if not digits.isdigit() or (digits[0] == 0x30 and len(digits) > 1):
        return None
    return int(digits), line[len(_HEAD) : index_at], line[-66:-2]


def _index_hint(line: bytes) -> int | None:
    """Best-effort index of a malformed line, to say where it is."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeError):
        return None
    index = value.get("index") if isinstance(value, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def verify_export(
    lines: Iterable[bytes],
    *,
    checkpoint_text: str | bytes,
    origin: str,
    key_name: str,
    public_key: Ed25519PublicKey,
    old_checkpoint_text: str | bytes | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Verify an export against the log's signed checkpoint (see the module docstring)."""
    # 1. The checkpoints must be signed by the pinned key for the pinned origin.
    try:
        checkpoint = verify_checkpoint(checkpoint_text, origin, key_name, public_key)
    except CheckpointError as exc:
        return VerifyReport(False, 0, None, EMPTY_ROOT, Problem.BAD_SIGNATURE, None, str(exc))
    old: Checkpoint | None = None
    if old_checkpoint_text is not None:
        try:
            old = verify_checkpoint(old_checkpoint_text, origin, key_name, public_key)
        except CheckpointError as exc:
            return VerifyReport(
                False, 0, checkpoint, EMPTY_ROOT, Problem.BAD_SIGNATURE, None, f"older: {exc}"
            )
        if old.size > checkpoint.size:
            return VerifyReport(
                False,
                0,
                checkpoint,
                EMPTY_ROOT,
                Problem.OLD_CHECKPOINT_MISMATCH,
                None,
                f"older checkpoint has size {old.size} > {checkpoint.size}",
            )

    # 2. Walk the rows in order, rebuilding the tree and noting the roots at both sizes.
    frontier = Frontier()
    roots_at: dict[int, bytes] = {0: EMPTY_ROOT}
    wanted = {checkpoint.size} | ({old.size} if old else set())
    previous_line = b""
    rows: Iterator[bytes] = iter(lines)
    append = frontier.append
    sha256 = hashlib.sha256

    def fail(problem: Problem, index: int | None, detail: str) -> VerifyReport:
        return VerifyReport(
            False, frontier.size, checkpoint, frontier.root(), problem, index, detail
        )

    for line in rows:
        expected = frontier.size
        parsed = _parse_line(line)
        if parsed is None:
            hint = _index_hint(line)
            return fail(
                Problem.MALFORMED_LINE,
                hint if hint is not None else expected,
                "line is not in the export layout",
            )
        index, entry, stated = parsed
        if index != expected:
            # 2a. Classify the break in the sequence by what it does to the order.
            if index == expected - 1:
                if line.rstrip(b"\n") == previous_line.rstrip(b"\n"):
                    return fail(Problem.DUPLICATE, index, f"row {index} appears twice")
                return fail(Problem.FORGED_ROW, index, f"two different rows claim index {index}")
            if index < expected:
                return fail(Problem.OUT_OF_ORDER, index, f"row {index} after row {expected - 1}")
            following = next(rows, None)
            follower = _parse_line(following) if following is not None else None
            if follower is not None and follower[0] == expected:
                return fail(Problem.OUT_OF_ORDER, expected, f"row {index} before row {expected}")
            return fail(Problem.MISSING_INDEX, expected, f"row {expected} is missing")
        # 2b. The row's leaf hash must be the hash of its entry bytes.
        leaf = sha256(b"\x00" + entry).digest()
        if leaf.hex().encode("ascii") != stated:
            if stated.strip(b"0123456789abcdef"):
                return fail(Problem.MALFORMED_LINE, index, "leaf hash is not lowercase hex")
            return fail(Problem.CHANGED_ENTRY, index, "entry bytes do not match the leaf hash")
        # 2c. Only canonical entries are ever written, so anything else was not written by us.
        if not is_canonical_json(entry):
            return fail(Problem.NOT_CANONICAL, index, "entry is not RFC 8785 canonical JSON")
        append(leaf)
        size = expected + 1
        if size in wanted:
            roots_at[size] = frontier.root()
        previous_line = line
        if progress is not None and size % _PROGRESS_EVERY == 0:
            progress(size)

    count = frontier.size
    if progress is not None and count % _PROGRESS_EVERY:
        progress(count)
    # 3. The rows must reach the checkpoint, and the tree at its size must be the signed one.
    if count < checkpoint.size:
        return fail(
            Problem.TRUNCATED,
            count,
            f"export has {count} rows, the checkpoint covers {checkpoint.size}",
        )
    if old is not None and not hmac.compare_digest(roots_at[old.size], old.root_hash):
        return fail(
            Problem.OLD_CHECKPOINT_MISMATCH,
            None,
            f"the first {old.size} rows do not match the older checkpoint: history was rewritten",
        )
    if not hmac.compare_digest(roots_at[checkpoint.size], checkpoint.root_hash):
        where = f"at or after row {old.size}" if old is not None else "somewhere in the log"
        return fail(
            Problem.ROOT_MISMATCH,
            None,
            f"rows 0..{checkpoint.size - 1} build a different tree from the signed one; "
            f"the difference is {where}",
        )
    return VerifyReport(True, count, checkpoint, frontier.root())


def locate_divergence(
    lines: Iterable[bytes], checkpoint_sizes_and_roots: Sequence[tuple[int, bytes]]
) -> tuple[int, int] | None:
    """Where an export first departs from a series of verified checkpoints of the same log.

    Replays the export's entries in file order and compares the tree head at each checkpoint size
    with that checkpoint's root. Returns ``(low, high)``: the first bad entry is at an index in
    ``[low, high]`` (exact when equal); None when every checkpoint matches. The caller verifies
    the checkpoints' signatures first; this function only does the arithmetic.
    """
    targets = sorted(checkpoint_sizes_and_roots)
    frontier = Frontier()
    good = 0
    position = 0
    for raw in lines:
        parsed = _parse_line(raw)
        if parsed is None:
            break
        _, entry_bytes, _ = parsed
        frontier.append(leaf_hash(entry_bytes))
        position += 1
        while targets and targets[0][0] == position:
            size, root = targets.pop(0)
            if frontier.root() != root:
                return good, size - 1
            good = size
        if not targets:
            return None
    if targets:
        # The export ended before a checkpoint's size: entries from `position` on are missing.
        return max(good, position), targets[0][0] - 1
    return None
