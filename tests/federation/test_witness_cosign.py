"""The witness's side of cosigning, asked through `POST /federation/v1/cosign` as a partner asks:
it cosigns only a checkpoint signed by the partner's log key that extends the last one it
cosigned, tells a partner whose proof starts elsewhere which size it knows, refuses an older
checkpoint, and stores a tree that does not extend the cosigned one as a fork.

Force 05's checkpoints and proofs come from a real audit log (`audit.log.AuditLog` over its SQLite
store) signed with node 05's key under its origin, so every note and proof is genuine unless a
test forges it on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import delete

from audit.checkpoint import Checkpoint, SignedNote, sign_checkpoint, verify_checkpoint
from audit.log import AuditLog
from audit.store.sqlite import SQLiteAuditStore
from gateway.federation.members import log_origin, witness_name
from gateway.federation.protocol import (
    SIGNATURE_HEADER,
    sign_request,
    verify_response,
)
from gateway.federation.tables import CosignatureRow, WitnessStateRow
from gateway.federation.witness import collect_cosignatures, cosigned_by, forks
from gateway.identity.signing import NodeSigningKey, load_signing_key_file
from gateway.settings import Settings
from tests.federation.conftest import (
    RunningNode,
    member_for,
    node_settings,
    phone,
    running_federation,
    write_manifest,
)

COSIGN = "/federation/v1/cosign"
ORIGIN = log_origin("05")


class PartnerLog:
    """Force 05's audit log as the audit package keeps it, in a file of the test's own."""

    def __init__(self, path: Path, key: NodeSigningKey) -> None:
        self.log = AuditLog(
            SQLiteAuditStore(path), origin=ORIGIN, key_name=ORIGIN, signing_key=key.private_key
        )

    def grow_to(self, size: int, tag: str) -> str:
        """Append entries up to `size` and return the signed checkpoint of that tree."""
        for n in range(self.log.size(), size):
            self.log.append(f"{tag}-{n}".encode())
        return self.log.checkpoint().to_text()

    def proof(self, old_size: int, new_size: int) -> list[str]:
        return [h.hex() for h in self.log.consistency_proof(old_size, new_size)]

    def close(self) -> None:
        self.log.close()


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def nodes(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> tuple[Settings, ...]:
    """Log owner 05 and witness 20 (on `backend`), both in the manifest."""
    overrides: dict[str, Any] = {}
    if backend == "postgres":
        url = request.getfixturevalue("pg_database")
        overrides["database_url"] = url.replace("postgresql://", "postgresql+psycopg://")
    s05 = node_settings(tmp_path, "05")
    s20 = node_settings(tmp_path, "20", **overrides)
    write_manifest([s05, s20], [member_for(s05), member_for(s20)])
    return s05, s20


@pytest.fixture
def key05(nodes: tuple[Settings, ...]) -> NodeSigningKey:
    return load_signing_key_file(nodes[0].signing_key_file)


@pytest.fixture
def history(tmp_path: Path, key05: NodeSigningKey) -> Iterator[PartnerLog]:
    """05's genuine log."""
    partner = PartnerLog(tmp_path / "log-05.db", key05)
    yield partner
    partner.close()


@pytest.fixture
def rewritten(tmp_path: Path, key05: NodeSigningKey) -> Iterator[PartnerLog]:
    """Another history of 05's log, signed with the same key: what a log that rewrote its past
    would show."""
    partner = PartnerLog(tmp_path / "log-05-rewritten.db", key05)
    yield partner
    partner.close()


async def ask(
    witness: RunningNode,
    key: NodeSigningKey,
    *,
    old_size: int,
    proof: list[str],
    checkpoint: str,
) -> tuple[httpx.Response, str]:
    """Node 05's signed cosign request to the witness; the response and the request token."""
    body = json.dumps({"old_size": old_size, "proof": proof, "checkpoint": checkpoint}).encode()
    token = sign_request(
        key, sender="05", audience=witness.force, method="POST", path=COSIGN, body=body
    )
    response = await witness.http.post(COSIGN, content=body, headers={SIGNATURE_HEADER: token})
    return response, token


def signed_by_witness(witness: RunningNode, response: httpx.Response, token: str) -> int:
    """Check the answer is signed by the witness for this very request; return the signed status."""
    claims = verify_response(
        response.headers.get(SIGNATURE_HEADER),
        response.content,
        sender=witness.force,
        audience="05",
        keys=member_for(witness.settings).signing_keys,
        request_token=token,
    )
    return claims.status


async def witness_state(witness: RunningNode) -> tuple[int, str] | None:
    async with witness.node.db.sessions() as session:
        state = await session.get(WitnessStateRow, "05")
    return None if state is None else (state.size, state.root_hash)


def root_of(note: str) -> str:
    return Checkpoint.parse_body(SignedNote.parse(note).text).root_hash.hex()


def assert_cosigned(
    witness: RunningNode, key05: NodeSigningKey, response: httpx.Response, note: str
) -> None:
    """200 with the note the log signed, plus a cosignature that verifies under the witness's key
    published in the manifest."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["witness"] == "20"
    cosigned = body["cosigned"]
    assert SignedNote.parse(cosigned).text == SignedNote.parse(note).text
    assert cosigned_by(member_for(witness.settings), cosigned) is not None
    assert witness_name("20") in cosigned
    # The log's own signature is still there and still verifies.
    verify_checkpoint(cosigned, ORIGIN, ORIGIN, key05.private_key.public_key())


def test_the_witness_cosigns_a_checkpoint_that_extends_the_one_it_cosigned(
    nodes: tuple[Settings, ...], key05: NodeSigningKey, history: PartnerLog
) -> None:
    """First sight (from size 0), then a larger tree with its genuine consistency proof: both
    cosigned, and the witness's state follows the log."""
    first = history.grow_to(3, "a")
    second = history.grow_to(7, "a")

    async def run() -> None:
        async with running_federation([nodes[1]]) as fed:
            witness = fed.nodes["20"]
            response, token = await ask(witness, key05, old_size=0, proof=[], checkpoint=first)
            assert_cosigned(witness, key05, response, first)
            assert signed_by_witness(witness, response, token) == 200
            assert await witness_state(witness) == (3, root_of(first))

            response, _ = await ask(
                witness, key05, old_size=3, proof=history.proof(3, 7), checkpoint=second
            )
            assert_cosigned(witness, key05, response, second)
            assert await witness_state(witness) == (7, root_of(second))
            assert await forks(witness.node) == []

    anyio.run(run)


async def fork_evidence(witness: RunningNode) -> list[tuple[str, int, str, str, str]]:
    return [(e.force, e.size, e.reason, e.note_a, e.note_b) for e in await forks(witness.node)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_larger_tree_that_does_not_extend_the_cosigned_one_is_a_fork(
    nodes: tuple[Settings, ...],
    key05: NodeSigningKey,
    history: PartnerLog,
    rewritten: PartnerLog,
) -> None:
    """A genuine larger checkpoint with a proof that does not verify, and a rewritten history
    with its own genuine proof, are each refused with 409 `fork: true` and stored as evidence
    ("inconsistent", the cosigned note and the new one). The witness's state stays where it was,
    so the genuine proof is still cosigned afterwards."""
    first = history.grow_to(3, "a")
    second = history.grow_to(7, "a")
    rewritten.grow_to(1, "a")  # the first entry is shared, the rest is not
    other = rewritten.grow_to(8, "b")
    bogus = [bytes([n]) * 32 for n in range(len(history.proof(3, 7)))]

    async def run() -> None:
        async with running_federation([nodes[1]]) as fed:
            witness = fed.nodes["20"]
            response, _ = await ask(witness, key05, old_size=0, proof=[], checkpoint=first)
            assert response.status_code == 200, response.text

            response, _ = await ask(
                witness, key05, old_size=3, proof=[h.hex() for h in bogus], checkpoint=second
            )
            assert response.status_code == 409, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["fork"] is True
            assert "cosigned" not in response.json()
            assert await fork_evidence(witness) == [("05", 7, "inconsistent", first, second)]

            response, _ = await ask(
                witness, key05, old_size=3, proof=rewritten.proof(3, 8), checkpoint=other
            )
            assert response.status_code == 409, response.text
            assert response.json()["fork"] is True
            assert await fork_evidence(witness) == [
                ("05", 7, "inconsistent", first, second),
                ("05", 8, "inconsistent", first, other),
            ]

            # Nothing was cosigned or moved: the genuine extension is still accepted.
            assert await witness_state(witness) == (3, root_of(first))
            response, _ = await ask(
                witness, key05, old_size=3, proof=history.proof(3, 7), checkpoint=second
            )
            assert_cosigned(witness, key05, response, second)

    anyio.run(run)


def test_a_proof_from_another_size_is_answered_409_with_the_size_the_witness_knows(
    nodes: tuple[Settings, ...], key05: NodeSigningKey, history: PartnerLog
) -> None:
    """The witness tells the log where it stands (signed, for this request), cosigns nothing,
    stores no fork and keeps its state."""
    first = history.grow_to(3, "a")
    second = history.grow_to(7, "a")

    async def run() -> None:
        async with running_federation([nodes[1]]) as fed:
            witness = fed.nodes["20"]
            # Never cosigned anything for 05: it knows size 0.
            response, token = await ask(
                witness, key05, old_size=3, proof=history.proof(3, 7), checkpoint=second
            )
            assert response.status_code == 409, response.text
            assert response.json()["known_size"] == 0
            assert "cosigned" not in response.json()
            assert signed_by_witness(witness, response, token) == 409
            assert await witness_state(witness) is None

            response, _ = await ask(witness, key05, old_size=0, proof=[], checkpoint=first)
            assert response.status_code == 200, response.text
            for old_size, proof in ((0, []), (5, history.proof(5, 7))):
                response, token = await ask(
                    witness, key05, old_size=old_size, proof=proof, checkpoint=second
                )
                assert response.status_code == 409, (old_size, response.text)
                assert response.json()["known_size"] == 3
                assert response.json().get("fork") is not True
                assert "cosigned" not in response.json()
                assert signed_by_witness(witness, response, token) == 409
            assert await witness_state(witness) == (3, root_of(first))
            assert await forks(witness.node) == []

    anyio.run(run)


def test_a_checkpoint_older_than_the_one_cosigned_is_refused(
    nodes: tuple[Settings, ...], key05: NodeSigningKey, history: PartnerLog
) -> None:
    """Once the witness has cosigned size 7, a checkpoint of size 3 of the same log is refused
    with 409 whatever size the proof claims to start from: nothing cosigned, no fork stored, the
    state stays at 7."""
    older = history.grow_to(3, "a")
    newer = history.grow_to(7, "a")

    async def run() -> None:
        async with running_federation([nodes[1]]) as fed:
            witness = fed.nodes["20"]
            response, _ = await ask(witness, key05, old_size=0, proof=[], checkpoint=newer)
            assert response.status_code == 200, response.text
            for old_size in (7, 0):
                response, _ = await ask(
                    witness, key05, old_size=old_size, proof=[], checkpoint=older
                )
                assert response.status_code == 409, (old_size, response.text)
                assert response.json()["known_size"] == 7
                assert "older" in response.json()["detail"]
                assert response.json().get("fork") is not True
                assert "cosigned" not in response.json()
            assert await witness_state(witness) == (7, root_of(newer))
            assert await forks(witness.node) == []

    anyio.run(run)


def test_a_checkpoint_not_signed_by_the_partners_log_key_is_refused_403(
    nodes: tuple[Settings, ...], key05: NodeSigningKey, history: PartnerLog
) -> None:
    """The request is validly signed by node 05, but the checkpoint is not signed by 05's log
    key (another key under 05's origin name), or is 05's signature over another log's origin.
    Refused with 403 problem+json before anything is remembered."""
    genuine = history.grow_to(3, "a")
    tree = Checkpoint.parse_body(SignedNote.parse(genuine).text)
    stranger = NodeSigningKey.generate()
    wrong_key = sign_checkpoint(tree, ORIGIN, stranger.private_key).to_text()
    other_origin = log_origin("20")
    wrong_log = sign_checkpoint(
        Checkpoint(other_origin, tree.size, tree.root_hash), ORIGIN, key05.private_key
    ).to_text()

    async def run() -> None:
        async with running_federation([nodes[1]]) as fed:
            witness = fed.nodes["20"]
            for forged in (wrong_key, wrong_log):
                response, _ = await ask(witness, key05, old_size=0, proof=[], checkpoint=forged)
                assert response.status_code == 403, response.text
                assert response.headers["content-type"].startswith("application/problem+json")
                assert "signature" in response.json()["detail"]
                assert "cosigned" not in response.json()
            assert await witness_state(witness) is None
            assert await forks(witness.node) == []
            # The genuine note is then cosigned from size 0: nothing was stored for 05.
            response, _ = await ask(witness, key05, old_size=0, proof=[], checkpoint=genuine)
            assert_cosigned(witness, key05, response, genuine)

    anyio.run(run)


# --- the log owner's side: collecting cosignatures ---------------------------------------------


def test_a_log_owner_that_lost_its_cosignatures_retries_from_the_size_the_witness_knows(
    nodes: tuple[Settings, ...],
) -> None:
    """Node 05 no longer has the cosignatures it collected (restored database), so it asks from
    size 0; the witness answers 409 with the size it cosigned last, and 05 retries once from
    there with a genuine proof and gets its new checkpoint cosigned."""

    async def run() -> None:
        async with running_federation(list(nodes)) as fed:
            n05 = fed.nodes["05"]
            client = n05.app.state.federation.client
            await n05.load([phone("05", "ph-05-1", "+447911123456")])
            [first] = await collect_cosignatures(n05.node, client)
            assert (first.witness, first.error) == ("20", None)
            assert first.size
            # 05's log grows (a search logs a consult and a completion).
            await fed.nodes["20"].load([phone("20", "ph-20-1", "+447911123456")])
            assert (await n05.search(mode="hits", phone="+447911123456")).status_code == 200
            async with n05.node.db.sessions() as session:
                await session.execute(delete(CosignatureRow))
                await session.commit()
            [second] = await collect_cosignatures(n05.node, client)
            assert second.error is None, second
            assert second.size is not None and first.size is not None
            assert second.size > first.size
            assert await witness_state(fed.nodes["20"]) is not None
            assert (await witness_state(fed.nodes["20"]) or (0, ""))[0] == second.size

    anyio.run(run)


def test_a_witness_that_cosigned_a_larger_tree_is_reported_and_the_others_still_cosign(
    tmp_path: Path,
) -> None:
    """Witness 20 has cosigned a tree of 05's log larger than the one 05 now holds (05's log was
    restored from an old backup, or someone showed 20 another history). 05 cannot prove its
    smaller tree from that size: the round reports 20 with the sizes, and witness 01 still
    cosigns."""
    settings = [node_settings(tmp_path, f) for f in ("05", "20", "01")]
    write_manifest(settings, [member_for(s) for s in settings])
    key05 = load_signing_key_file(settings[0].signing_key_file)
    ahead = PartnerLog(tmp_path / "log-05-ahead.db", key05)

    async def run() -> None:
        async with running_federation(settings) as fed:
            n05 = fed.nodes["05"]
            await n05.load([phone("05", "ph-05-1", "+447911123456")])
            size = n05.node.audit.log.size()
            assert size > 0
            larger = await anyio.to_thread.run_sync(ahead.grow_to, size + 5, "ahead")
            response, _ = await ask(fed.nodes["20"], key05, old_size=0, proof=[], checkpoint=larger)
            assert response.status_code == 200, response.text

            results = await collect_cosignatures(n05.node, n05.app.state.federation.client)
            by_witness = {r.witness: r for r in results}
            assert by_witness["01"].error is None
            assert by_witness["01"].size is not None and by_witness["01"].size >= size
            assert by_witness["20"].size is None
            assert by_witness["20"].error is not None
            assert str(size + 5) in by_witness["20"].error
            # 20 still stands where it stood, and stored no fork.
            assert (await witness_state(fed.nodes["20"]) or (0, ""))[0] == size + 5
            assert await forks(fed.nodes["20"].node) == []

    try:
        anyio.run(run)
    finally:
        ahead.close()
