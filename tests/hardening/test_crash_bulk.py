"""kill -9 a real `gateway serve` during bulk imports, restart it, re-send with the same key.

Each trial uploads its own NDJSON body with its own Idempotency-Key and kills the node at a
random moment (seeded, so a failure can be replayed). After the restart, and before anything is
re-sent, every record the node holds must be whole (data key, decryptable, indexed, in the feed,
audited) and the audit log must verify against the last checkpoint signed before the crash.
Then the same body is re-sent with the same key: every record is present exactly once.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from schemas.examples import example_record
from tests.gateway.conftest import register_client
from tests.hardening.conftest import (
    NodeProcess,
    check_store,
    child_pids,
    federated_node,
    free_port,
    still_running,
    verify_audit_log,
)

TRIALS = 8
RECORDS_PER_TRIAL = 2500
SEED = int(os.environ.get("GATEWAY_CRASH_SEED", "20261128"))


def ndjson(trial: int) -> bytes:
    lines = []
    for n in range(RECORDS_PER_TRIAL):
        record = example_record("phone", id=f"t{trial}-ph-{n}", owner_force="20")
        record["body"]["number"] = f"+44791{trial:02d}{n:05d}"
        lines.append(orjson.dumps(record))
    return b"\n".join(lines) + b"\n"


def upload(url: str, token: str, body: bytes, key: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/records/bulk",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/x-ndjson",
            "Idempotency-Key": key,
        },
        timeout=120,
    )


@pytest.mark.slow
def test_bulk_import_killed_at_random_points_leaves_every_record_whole_or_absent(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    settings = federated_node(tmp_path).settings
    client_id, secret = register_client(settings, "rms", ["records:write", "records:read"])
    node = NodeProcess(settings, free_port())
    bodies = {trial: ndjson(trial) for trial in range(TRIALS)}
    keys = {trial: f"bulk-{trial}-{uuid.uuid4().hex}" for trial in range(TRIALS)}
    acknowledged: dict[str, int] = {}
    killed_before_answer = 0
    partial_trials = 0  # killed after some chunks committed and before the rest
    trials_with_workers = 0
    upload_seconds = 1.0
    try:
        node.start()
        for trial in range(TRIALS):
            token = node.token(client_id, secret)
            outcome: dict[str, Any] = {}

            def send(
                trial: int = trial, token: str = token, outcome: dict[str, Any] = outcome
            ) -> None:
                try:
                    outcome["response"] = upload(node.url, token, bodies[trial], keys[trial])
                except httpx.TransportError as exc:
                    outcome["error"] = exc

            sender = threading.Thread(target=send)
            sender.start()
            # Anywhere from before the request arrives to about when the answer is due (the
            # last re-send of a whole body says how long an upload takes on this machine now).
            sender.join(timeout=rng.uniform(0.02, 1.1) * upload_seconds)
            assert node.process is not None
            helpers = child_pids(node.process.pid)  # bulk-load workers, once started
            trials_with_workers += bool(helpers)
            node.kill()
            # The node's worker processes end with it: none is left behind by a crash.
            assert still_running(helpers, timeout=60) == []
            sender.join(timeout=60)
            assert not sender.is_alive()
            response = outcome.get("response")
            if response is not None:
                assert response.status_code == 200, response.text
                for line in response.json()["lines"]:
                    acknowledged[line["record_id"]] = line["version"]
            else:
                killed_before_answer += 1

            # The crashed node, before anything is re-sent: whole records only, a sound log.
            verify_audit_log(settings)
            state = check_store(settings, prefix=f"t{trial}-")
            for record_id, version in acknowledged.items():
                if record_id.startswith(f"t{trial}-"):
                    assert state.versions.get(record_id) == version, f"{record_id} lost"
            partial_trials += 0 < len(state.versions) < RECORDS_PER_TRIAL

            # Restart and re-send the same body with the same key.
            node.start()
            token = node.token(client_id, secret)
            started = time.perf_counter()
            again = upload(node.url, token, bodies[trial], keys[trial])
            upload_seconds = time.perf_counter() - started
            assert again.status_code == 200, again.text
            report = again.json()
            assert report["accepted"] == RECORDS_PER_TRIAL
            assert report["rejected"] == 0
            for line in report["lines"]:
                acknowledged[line["record_id"]] = line["version"]
        node.stop()

        state = check_store(settings)
        expected = {f"t{t}-ph-{n}" for t in range(TRIALS) for n in range(RECORDS_PER_TRIAL)}
        assert set(state.versions) == expected
        # Present once: a re-sent record is "unchanged", never stored a second time.
        assert set(state.versions.values()) == {1}
        assert verify_audit_log(settings) > 0
        # Some kills must have landed before the answer, or the test proved nothing.
        assert killed_before_answer >= TRIALS // 2, killed_before_answer
        # From the second trial on, the node killed had loaded a whole body with its workers.
        assert trials_with_workers >= TRIALS - 1, trials_with_workers
        print(
            f"bulk crash trials: {TRIALS}, killed before the answer: {killed_before_answer}, "
            f"with part of the upload committed: {partial_trials}, "
            f"with worker processes running: {trials_with_workers}"
        )
    finally:
        node.kill()
