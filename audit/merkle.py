"""RFC 9162 Merkle tree hashing, proofs and their verification over a store of perfect nodes.

A **perfect node** ``(level, index)`` is the root of the complete subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 nodes are leaf hashes. A store keeps every
perfect node as the log grows (``Frontier.append`` reports each one it completes), and every root
and proof here is computed from O(log n) of them fetched through a ``NodeGetter`` callback, so the
maths never touches a database.

Hand-written rather than taken from a library: no maintained Python package implements RFC 9162
proofs over a caller-supplied node store, and the algorithms are short and specified exactly.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from audit.errors import ConsistencyProofError, InclusionProofError, TreeSizeError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "NodeGetter",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_at",
    "root_from_leaves",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

NodeGetter = Callable[[int, int], bytes]
"""``(level, index) -> hash`` of a perfect node that the store holds."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    """Hash of one log entry as a leaf: SHA-256(0x00 || entry)."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The RFC's split point k: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_nodes(start: int, count: int) -> list[tuple[int, int]]:
    """Perfect nodes covering leaves [start, start + count), largest (leftmost) first.

    ``start`` must be a multiple of a power of two at least as large as ``count``'s top bit, which
    holds for every range the RFC's recursion visits (and for prefixes starting at 0).
    """
    nodes: list[tuple[int, int]] = []
    offset = start
    for level in range(count.bit_length() - 1, -1, -1):
        if count >> level & 1:
            nodes.append((level, offset >> level))
            offset += 1 << level
    return nodes


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine perfect subtree roots (largest first) into the RFC root of their concatenation."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def _range_root(start: int, count: int, get_node: NodeGetter) -> bytes:
    return _fold_right([get_node(level, index) for level, index in _range_nodes(start, count)])


class Frontier:
    """The compact range of a growing tree: one perfect subtree root per set bit of its size.

    The log's writer keeps one in memory to append leaves and produce roots without reading the
    store; after a restart it is rebuilt with ``Frontier.from_nodes``.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._size = 0
        # (level, index, hash), largest subtree first, exactly as _range_nodes(0, size) orders them.
        self._nodes: list[tuple[int, int, bytes]] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def nodes(self) -> list[tuple[int, int, bytes]]:
        """A copy of the perfect subtree roots (level, index, hash), largest first."""
        return list(self._nodes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one LEAF HASH; return every perfect node it completes, starting with the leaf."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}")
        level, index, value = 0, self._size, leaf
        completed = [(level, index, value)]
        nodes = self._nodes
        while nodes and nodes[-1][0] == level:
            _, left_index, left_value = nodes.pop()
            level, index, value = level + 1, left_index >> 1, node_hash(left_value, value)
            completed.append((level, index, value))
        nodes.append((level, index, value))
        self._size += 1
        return completed

    def root(self) -> bytes:
        """The RFC 9162 tree head for the current size."""
        if not self._nodes:
            return EMPTY_ROOT
        return _fold_right([value for _, _, value in self._nodes])

    @classmethod
    def from_nodes(cls, size: int, get_node: NodeGetter) -> Frontier:
        """Rebuild the frontier of a tree of ``size`` leaves from the stored perfect nodes."""
        if size < 0:
            raise TreeSizeError(f"tree size must be non-negative, got {size}")
        frontier = cls()
        frontier._size = size
        frontier._nodes = [
            (level, index, get_node(level, index)) for level, index in _range_nodes(0, size)
        ]
        return frontier


def root_at(size: int, get_node: NodeGetter) -> bytes:
    """The tree head for any ``size`` not larger than the store's current size."""
    if size < 0:
        raise TreeSizeError(f"tree size must be non-negative, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return _range_root(0, size, get_node)


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """Naive tree head over leaf HASHES, straight from the RFC definition (tests and exports)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            # An unpaired rightmost node is promoted unchanged, which is exactly the RFC's
            # unbalanced split (left subtree the largest power of two).
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """RFC 9162 2.1.3.1 audit path for leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise TreeSizeError(f"leaf index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, count, position = 0, size, index
    while count > 1:
        k = _largest_power_of_two_below(count)
        if position < k:
            path.append(_range_root(start + k, count - k, get_node))
            count = k
        else:
            path.append(get_node(k.bit_length() - 1, start // k))
            start, count, position = start + k, count - k, position - k
    # The recursion collects siblings top-down; the RFC path lists them from the leaf up.
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, get_node: NodeGetter) -> list[bytes]:
    """RFC 9162 2.1.4.1 proof that the tree of ``old_size`` is a prefix of ``new_size``.

    Empty when ``old_size`` is 0 or equal to ``new_size`` (nothing to prove).
    """
    if not 0 <= old_size <= new_size:
        raise TreeSizeError(f"cannot prove size {old_size} consistent with size {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, count, old, whole_old_tree = 0, new_size, old_size, True
    while old != count:
        k = _largest_power_of_two_below(count)
        if old <= k:
            proof.append(_range_root(start + k, count - k, get_node))
            count = k
        else:
            proof.append(get_node(k.bit_length() - 1, start // k))
            start, count, old, whole_old_tree = start + k, count - k, old - k, False
    if not whole_old_tree:
        # The verifier already knows the old root only when the old tree is a whole subtree here.
        proof.append(_range_root(start, old, get_node))
    proof.reverse()
    return proof


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an audit path (RFC 9162 2.1.3.2); raise ``InclusionProofError`` if it fails."""
    # 1. The index must lie inside the tree.
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is not in a tree of size {size}")
    # 2. fn walks the leaf's position up the tree, sn the last leaf's position.
    fn, sn = index, size - 1
    result = leaf
    # 3. Hash in each sibling on the side the position says.
    for sibling in proof:
        if sn == 0:
            raise InclusionProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                # A right-border node is promoted through levels where it has no sibling.
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    # 4. The path must reach the top exactly, and land on the claimed root.
    if sn != 0:
        raise InclusionProofError("inclusion proof is shorter than the tree is deep")
    if not _equal(result, root):
        raise InclusionProofError("inclusion proof does not lead to the tree head")


def verify_consistency(
    old_size: int,
    new_size: int,
    proof: Sequence[bytes],
    old_root: bytes,
    new_root: bytes,
) -> None:
    """Check a consistency proof (RFC 9162 2.1.4.2); raise ``ConsistencyProofError`` if it fails."""
    # 1. Trivial cases: an empty old tree is a prefix of anything; equal sizes need equal roots.
    if not 0 <= old_size <= new_size:
        raise ConsistencyProofError(f"size {old_size} cannot be a prefix of size {new_size}")
    if old_size == 0:
        if proof:
            raise ConsistencyProofError("a proof from the empty tree must be empty")
        if not _equal(old_root, EMPTY_ROOT):
            raise ConsistencyProofError("the empty tree's root is SHA-256 of nothing")
        return
    if old_size == new_size:
        if proof:
            raise ConsistencyProofError("a proof between equal sizes must be empty")
        if not _equal(old_root, new_root):
            raise ConsistencyProofError("equal sizes with different roots")
        return
    if not proof:
        raise ConsistencyProofError("consistency proof is empty")
    # 2. When the old tree is a whole subtree the proof omits its root; put it back.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3-4. Walk up from the old tree's last leaf, skipping levels where it is a right child.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Rebuild both roots at once from the shared first node.
    old_result = new_result = path[0]
    for node in path[1:]:
        if sn == 0:
            raise ConsistencyProofError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            old_result = node_hash(node, old_result)
            new_result = node_hash(node, new_result)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            new_result = node_hash(new_result, node)
        fn >>= 1
        sn >>= 1
    # 6. Both roots must match and the walk must have reached the top.
    if sn != 0:
        raise ConsistencyProofError("consistency proof is shorter than the tree is deep")
    if not _equal(old_result, old_root):
        raise ConsistencyProofError("consistency proof does not lead to the old tree head")
    if not _equal(new_result, new_root):
        raise ConsistencyProofError("consistency proof does not lead to the new tree head")


def _equal(a: bytes, b: bytes) -> bool:
    # Roots are public, but a constant-time compare costs nothing and keeps one habit everywhere.
    return hmac.compare_digest(a, b)
