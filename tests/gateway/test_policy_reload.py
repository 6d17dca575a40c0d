"""Policy changes while the node serves: good sets are installed, bad ones refused; all audited."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient

from audit.entry import decode_entry
from gateway.app import create_app
from gateway.node import init_node
from gateway.policy_reload import PolicyWatcher
from policies import EXAMPLE_POLICY_DIR
from tests.gateway.conftest import NODE_URL, make_settings


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    policy_dir = tmp_path / "policies"
    shutil.copytree(EXAMPLE_POLICY_DIR / "agreements", policy_dir / "agreements")
    settings = make_settings(tmp_path / "node", policy_dir=policy_dir, policy_reload_seconds=0)
    init_node(settings)
    with TestClient(create_app(settings), base_url=NODE_URL) as http:
        yield http, policy_dir


def policy_changes(http: TestClient) -> list[dict[str, object]]:
    log = http.app.state.node.audit.log
    log.flush()
    entries = [decode_entry(raw) for raw in log.entries(0, log.size())]
    return [
        {"decision": e.decision, "policy_hash": e.policy_hash}
        for e in entries
        if str(e.kind) == "policy_change"
    ]


def run_check(watcher: PolicyWatcher):
    async def go():
        return await watcher.check()

    return anyio.run(go)


def test_an_unchanged_directory_reloads_nothing(served) -> None:
    http, _ = served
    watcher = PolicyWatcher(http.app.state.node)
    assert run_check(watcher) is None
    assert policy_changes(http) == []


def test_a_valid_change_is_installed_and_audited(served) -> None:
    http, policy_dir = served
    engine = http.app.state.node.policies
    before = engine.policy_hash
    watcher = PolicyWatcher(http.app.state.node)
    (policy_dir / "agreements" / "met-pointers-only.cedar").unlink()
    (policy_dir / "agreements" / "met-pointers-only.yaml").unlink()
    result = run_check(watcher)
    assert result is not None and result.ok and result.changed
    assert engine.policy_hash == result.policy_hash != before
    assert policy_changes(http) == [{"decision": "installed", "policy_hash": result.policy_hash}]


def test_an_invalid_change_is_refused_and_the_last_good_set_stays(served) -> None:
    http, policy_dir = served
    engine = http.app.state.node.policies
    before = engine.policy_hash
    watcher = PolicyWatcher(http.app.state.node)
    (policy_dir / "agreements" / "own-force-use.cedar").write_text(
        'permit (principal, action == Action::"no_such_action", resource);\n'
    )
    result = run_check(watcher)
    assert result is not None and not result.ok and result.problems
    assert engine.policy_hash == before
    assert policy_changes(http) == [{"decision": "refused", "policy_hash": before}]
