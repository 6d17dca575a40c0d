"""kill -9 a node while it signs audit checkpoints under a stream of acknowledged writes.

The node signs a checkpoint every 10 ms while entries arrive, so a kill lands in the middle of
checkpointing again and again. After each crash the log must verify (every entry recomputes to
a tree consistent with the last checkpoint signed before the crash) and every write that was
acknowledged must be both stored and in the log.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import httpx
import pytest

from gateway.node import open_audit_store
from schemas.examples import example_record
from tests.gateway.conftest import register_client
from tests.hardening.conftest import (
    NodeProcess,
    check_store,
    federated_node,
    free_port,
    verify_audit_log,
)

TRIALS = 6
WRITERS = 3
SEED = int(os.environ.get("GATEWAY_CRASH_SEED", "20261128"))


def checkpoints_signed(settings: object) -> int:
    store = open_audit_store(settings)  # type: ignore[arg-type]
    try:
        return len(store.checkpoints())
    finally:
        store.close()


@pytest.mark.slow
def test_kill_during_checkpointing_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    settings = federated_node(tmp_path, checkpoint_interval_seconds=0.01).settings
    client_id, secret = register_client(settings, "rms", ["records:write", "records:read"])
    node = NodeProcess(settings, free_port())
    acknowledged: set[str] = set()
    lock = threading.Lock()
    try:
        for trial in range(TRIALS):
            node.start()
            token = node.token(client_id, secret)
            before = checkpoints_signed(settings)
            stop = threading.Event()

            def write(
                writer: int, trial: int = trial, token: str = token, stop: threading.Event = stop
            ) -> None:
                with httpx.Client(
                    base_url=node.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
                ) as http:
                    n = 0
                    while not stop.is_set():
                        record_id = f"c{trial}-w{writer}-{n}"
                        record = example_record("person", id=record_id, owner_force="20")
                        try:
                            response = http.put(f"/v1/records/{record_id}", json=record)
                        except httpx.TransportError:
                            return  # the node is gone; this write was never acknowledged
                        assert response.status_code == 201, response.text
                        with lock:
                            acknowledged.add(record_id)
                        n += 1

            threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
            for thread in threads:
                thread.start()
            stop.wait(timeout=rng.uniform(0.3, 1.5))
            node.kill()
            stop.set()
            for thread in threads:
                thread.join(timeout=60)

            assert checkpoints_signed(settings) > before, "no checkpoint was being signed"
            verify_audit_log(settings)
            state = check_store(settings, prefix=f"c{trial}-")
            mine = {r for r in acknowledged if r.startswith(f"c{trial}-")}
            assert mine, "no write was acknowledged before the kill"
            assert mine <= set(state.versions), "an acknowledged write was lost"
            assert mine <= state.audited, "an acknowledged write is missing from the audit log"
        print(f"checkpoint crash trials: {TRIALS}, acknowledged writes: {len(acknowledged)}")
    finally:
        node.kill()
