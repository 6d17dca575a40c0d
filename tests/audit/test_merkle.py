"""RFC 9162 hashing, roots and proofs: published vectors, a naive reference, and proof cost."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.errors import ConsistencyProofError, InclusionProofError, TreeSizeError
from audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_at,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "rfc6962_reference.json").read_text(encoding="utf-8")
)
LEAVES = [leaf_hash(bytes.fromhex(h)) for h in VECTORS["leaves_hex"]]


class NodeStore:
    """An in-memory perfect-node store that counts reads, standing in for a database table."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.frontier = Frontier()
        self.reads = 0

    def append(self, leaf: bytes) -> None:
        for level, index, value in self.frontier.append(leaf):
            self.nodes[(level, index)] = value

    def get(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.nodes[(level, index)]


def store_of(leaves: list[bytes]) -> NodeStore:
    store = NodeStore()
    for leaf in leaves:
        store.append(leaf)
    return store


# A reference written straight from the RFC's recursive definitions, independent of the module.
def ref_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + ref_root(leaves[:k]) + ref_root(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_root(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_root(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [ref_root(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], whole), ref_root(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_root(leaves[:k])]


def leaves_of(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 0x08]) + value[1:]


# --- published vectors -------------------------------------------------------------------------


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == VECTORS["roots_by_size"]["0"]
    assert Frontier().root() == EMPTY_ROOT


def test_leaf_and_node_hashes_match_reference_vectors() -> None:
    levels = VECTORS["node_hashes_by_level"]
    assert [h.hex() for h in LEAVES] == levels[0]
    assert node_hash(LEAVES[0], LEAVES[1]).hex() == levels[1][0]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_reference_vectors(size: int) -> None:
    store = store_of(LEAVES)
    expected = VECTORS["roots_by_size"][str(size)]
    assert root_at(size, store.get).hex() == expected
    assert root_from_leaves(LEAVES[:size]).hex() == expected
    assert store_of(LEAVES[:size]).frontier.root().hex() == expected


def test_appends_report_every_perfect_node_of_the_reference_tree() -> None:
    store = store_of(LEAVES)
    for level, row in enumerate(VECTORS["node_hashes_by_level"]):
        for index, value in enumerate(row):
            assert store.nodes[(level, index)].hex() == value
    assert len(store.nodes) == 8 + 4 + 2 + 1


def test_append_returns_the_nodes_it_completes() -> None:
    frontier = Frontier()
    frontier.append(LEAVES[0])
    frontier.append(LEAVES[1])
    frontier.append(LEAVES[2])
    completed = frontier.append(LEAVES[3])
    assert [(level, index) for level, index, _ in completed] == [(0, 3), (1, 1), (2, 0)]
    assert frontier.size == 4


@pytest.mark.parametrize(
    "case", VECTORS["inclusion_proofs"], ids=lambda c: f"{c['index']}-{c['size']}"
)
def test_inclusion_proofs_match_reference_vectors(case: dict[str, object]) -> None:
    store = store_of(LEAVES)
    index, size = int(str(case["index"])), int(str(case["size"]))
    proof = inclusion_proof(index, size, store.get)
    assert [p.hex() for p in proof] == case["proof"]
    verify_inclusion(LEAVES[index], index, size, proof, root_at(size, store.get))


@pytest.mark.parametrize(
    "case", VECTORS["consistency_proofs"], ids=lambda c: f"{c['old_size']}-{c['new_size']}"
)
def test_consistency_proofs_match_reference_vectors(case: dict[str, object]) -> None:
    store = store_of(LEAVES)
    old, new = int(str(case["old_size"])), int(str(case["new_size"]))
    proof = consistency_proof(old, new, store.get)
    assert [p.hex() for p in proof] == case["proof"]
    verify_consistency(old, new, proof, root_at(old, store.get), root_at(new, store.get))


# --- corrupted proofs are refused (the probes transparency-dev's verifier tests apply) ---------


def inclusion_probes(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, Callable[[], None]]]:
    def check(i: int, n: int, p: list[bytes], r: bytes, lf: bytes) -> Callable[[], None]:
        return lambda: verify_inclusion(lf, i, n, p, r)

    probes = [
        ("index - 1", check(index - 1, size, proof, root, leaf)),
        ("index + 1", check(index + 1, size, proof, root, leaf)),
        ("index ^ 2", check(index ^ 2, size, proof, root, leaf)),
        ("size * 2", check(index, size * 2, proof, root, leaf)),
        ("size / 2", check(index, size // 2, proof, root, leaf)),
        ("wrong leaf", check(index, size, proof, root, b"WrongLeaf")),
        ("empty root", check(index, size, proof, EMPTY_ROOT, leaf)),
        ("trailing root", check(index, size, [*proof, root], root, leaf)),
        ("preceding root", check(index, size, [root, *proof], root, leaf)),
    ]
    for i in range(len(proof)):
        mutated = list(proof)
        mutated[i] = flip(mutated[i])
        probes.append((f"flipped proof[{i}]", check(index, size, mutated, root, leaf)))
    if proof:
        probes.append(("removed component", check(index, size, proof[:-1], root, leaf)))
    return probes


@pytest.mark.parametrize("case", VECTORS["inclusion_proofs"][1:], ids=lambda c: str(c["size"]))
def test_corrupted_inclusion_proofs_are_refused(case: dict[str, object]) -> None:
    store = store_of(LEAVES)
    index, size = int(str(case["index"])), int(str(case["size"]))
    proof = inclusion_proof(index, size, store.get)
    for name, probe in inclusion_probes(
        index, size, proof, root_at(size, store.get), LEAVES[index]
    ):
        with pytest.raises(InclusionProofError):
            probe()
        assert name


@pytest.mark.parametrize(
    "case", VECTORS["consistency_proofs"][1:], ids=lambda c: f"{c['old_size']}-{c['new_size']}"
)
def test_corrupted_consistency_proofs_are_refused(case: dict[str, object]) -> None:
    store = store_of(LEAVES)
    old, new = int(str(case["old_size"])), int(str(case["new_size"]))
    proof = consistency_proof(old, new, store.get)
    r1, r2 = root_at(old, store.get), root_at(new, store.get)
    probes: list[tuple[int, int, list[bytes], bytes, bytes]] = [
        (old - 1, new, proof, r1, r2),
        (old + 1, new, proof, r1, r2),
        (old ^ 2, new, proof, r1, r2),
        (old, new * 2, proof, r1, r2),
        (old, new // 2, proof, r1, r2),
        (old, new, proof, b"WrongRoot", r2),
        (old, new, proof, r1, b"WrongRoot"),
        (old, new, proof, r2, r1),
        (old, new, [], r1, r2),
        (old, new, [*proof, r1], r1, r2),
        (old, new, [*proof, r2], r1, r2),
        (old, new, [r1, *proof], r1, r2),
        (old, new, [r2, *proof], r1, r2),
        (old, new, [proof[0], *proof], r1, r2),
        (old, new, proof[:-1], r1, r2),
    ]
    for i in range(len(proof)):
        mutated = list(proof)
        mutated[i] = flip(mutated[i])
        probes.append((old, new, mutated, r1, r2))
    for o, n, p, a, b in probes:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(o, n, p, a, b)


def test_trivial_consistency_cases() -> None:
    some = leaf_hash(b"x")
    verify_consistency(0, 5, [], EMPTY_ROOT, some)
    verify_consistency(3, 3, [], some, some)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(3, 3, [], some, EMPTY_ROOT)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(0, 1, [EMPTY_ROOT], EMPTY_ROOT, some)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(0, 1, [], some, some)  # the empty tree has exactly one root
    with pytest.raises(ConsistencyProofError):
        verify_consistency(2, 1, [], some, some)


def test_out_of_range_requests_are_refused() -> None:
    store = store_of(LEAVES)
    with pytest.raises(TreeSizeError):
        inclusion_proof(8, 8, store.get)
    with pytest.raises(TreeSizeError):
        inclusion_proof(0, 0, store.get)
    with pytest.raises(TreeSizeError):
        consistency_proof(5, 4, store.get)
    with pytest.raises(InclusionProofError):
        verify_inclusion(LEAVES[0], 0, 0, [], EMPTY_ROOT)


def test_append_refuses_something_that_is_not_a_leaf_hash() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Frontier().append(b"raw entry bytes")


# --- against a naive reference ------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=300), data=st.data())
def test_roots_and_proofs_agree_with_naive_reference(size: int, data: st.DataObject) -> None:
    leaves = leaves_of(size)
    store = store_of(leaves)
    old = data.draw(st.integers(min_value=0, max_value=size), label="old")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    root = root_at(size, store.get)
    old_root = root_at(old, store.get)

    assert root == ref_root(leaves) == store.frontier.root() == root_from_leaves(leaves)
    assert old_root == ref_root(leaves[:old])

    proof = inclusion_proof(index, size, store.get)
    assert proof == ref_path(index, leaves)
    verify_inclusion(leaves[index], index, size, proof, root)

    cproof = consistency_proof(old, size, store.get)
    expected = [] if old in (0, size) else ref_subproof(old, leaves, True)
    assert cproof == expected
    verify_consistency(old, size, cproof, old_root, root)

    if proof:
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="pos")
        mutated = list(proof)
        mutated[position] = flip(mutated[position])
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaves[index], index, size, mutated, root)
    if cproof:
        position = data.draw(st.integers(min_value=0, max_value=len(cproof) - 1), label="cpos")
        mutated = list(cproof)
        mutated[position] = flip(mutated[position])
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, size, mutated, old_root, root)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=0, max_value=300))
def test_frontier_rebuilt_from_store_continues_the_same_tree(size: int) -> None:
    leaves = leaves_of(size + 5)
    store = store_of(leaves[:size])
    rebuilt = Frontier.from_nodes(size, store.get)
    assert rebuilt.size == size
    assert rebuilt.root() == store.frontier.root()
    for leaf in leaves[size:]:
        rebuilt.append(leaf)
    assert rebuilt.root() == ref_root(leaves)


# --- proof cost ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1000, 4097, 65_535])
def test_proofs_and_roots_read_logarithmically_many_nodes(size: int) -> None:
    store = store_of(leaves_of(size))
    bound = 2 * math.ceil(math.log2(size)) + 2
    for index in (0, 1, size // 3, size // 2, size - 2, size - 1):
        store.reads = 0
        inclusion_proof(index, size, store.get)
        assert store.reads <= bound, (index, store.reads)
    for old in (1, 7, size // 3, size - 1):
        store.reads = 0
        consistency_proof(old, size, store.get)
        assert store.reads <= bound, (old, store.reads)
    store.reads = 0
    root_at(size - 1, store.get)
    assert store.reads <= math.ceil(math.log2(size)) + 1
