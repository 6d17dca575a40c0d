"""The bulk endpoint's line splitter: however the body arrives in chunks, the same lines.

The splitter trims its buffer once per received chunk rather than once per line, so a line can
start in one chunk and end several chunks later. These tests cut bodies at arbitrary points and
compare with a plain split of the whole body.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import PayloadTooLarge
from gateway.records.endpoints import _ndjson_lines


class ChunkedBody:
    """Stands in for a Starlette request: only `stream()` is used by the splitter."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in pairwise(points)]


def run(chunks: list[bytes], max_line_bytes: int) -> tuple[list[bytes], str]:
    digest = hashlib.sha256()

    async def collect() -> list[bytes]:
        body = ChunkedBody(chunks)
        return [line async for line in _ndjson_lines(body, max_line_bytes, digest)]  # type: ignore[arg-type]

    return asyncio.run(collect()), digest.hexdigest()


def expected_lines(body: bytes) -> list[bytes]:
    *complete, tail = body.split(b"\n")
    return complete + ([tail] if tail.strip() else [])


lines = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"x")), max_size=30)


@settings(max_examples=300, deadline=None)
@given(lines=lines, trailing=st.booleans(), cuts=st.lists(st.integers(0, 2000), max_size=40))
def test_any_chunking_gives_the_lines_of_the_whole_body(
    lines: list[bytes], trailing: bool, cuts: list[int]
) -> None:
    body = b"\n".join(lines) + (b"\n" if trailing else b"")
    got, digest = run(split(body, cuts), max_line_bytes=64)
    assert got == expected_lines(body)
    assert digest == hashlib.sha256(body).hexdigest()


@settings(max_examples=200, deadline=None)
@given(
    before=st.integers(0, 5),
    long_size=st.integers(17, 60),
    terminated=st.booleans(),
    cuts=st.lists(st.integers(0, 500), max_size=20),
)
def test_an_over_long_line_is_refused_with_its_number(
    before: int, long_size: int, terminated: bool, cuts: list[int]
) -> None:
    body = b"".join(b"ok\n" for _ in range(before)) + b"y" * long_size
    body += b"\nok\n" if terminated else b""
    with pytest.raises(PayloadTooLarge) as refused:
        run(split(body, cuts), max_line_bytes=16)
    assert f"Line {before + 1} is longer than 16 bytes" in str(refused.value.detail)


def test_a_line_of_exactly_the_limit_is_accepted() -> None:
    body = b"a" * 16 + b"\n" + b"b" * 16
    got, _ = run([body[:5], body[5:20], body[20:]], max_line_bytes=16)
    assert got == [b"a" * 16, b"b" * 16]
