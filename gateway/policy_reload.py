"""Reloading the node's policy set while it serves, with every change in the audit log.

The node watches its policy directory (file names, sizes and modification times). When it
changes, the engine loads the new set; a set that fails to load or validate is refused and the
last good set stays in force (fail closed: nothing half-loaded ever decides). Both outcomes are
audited as `policy_change` entries carrying the policy-set hash then in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from pathlib import Path

import structlog

from audit.entry import Actor, SecurityEvent
from audit.store.base import AuditUnavailable
from gateway.node import Node
from policies import EXAMPLE_POLICY_DIR, ReloadResult

log = structlog.get_logger(__name__)

DEFAULT_INTERVAL_SECONDS = 5.0


def policy_dir_fingerprint(directory: Path) -> str:
    """Cheap fingerprint of the files a policy set is made of."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(directory)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class PolicyWatcher:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.directory = node.settings.policy_dir or EXAMPLE_POLICY_DIR
        self.fingerprint = policy_dir_fingerprint(self.directory)

    async def check(self) -> ReloadResult | None:
        """Reload when the directory changed; audit the outcome. None when nothing changed."""
        current = await asyncio.to_thread(policy_dir_fingerprint, self.directory)
        if current == self.fingerprint:
            return None
        self.fingerprint = current
        result = await asyncio.to_thread(self.node.policies.reload, self.directory)
        if result.ok:
            log.info("policies.reloaded", policy_hash=result.policy_hash, changed=result.changed)
        else:
            log.warning(
                "policies.reload_refused",
                policy_hash=result.policy_hash,
                problem_count=len(result.problems),
            )
        try:
            await self.node.audit.record(
                SecurityEvent.POLICY_CHANGE,
                actor=Actor(client_id="policy-watcher", force=self.node.settings.force_code),
                decision="installed" if result.ok else "refused",
                policy_hash=result.policy_hash,
                purpose=("reload" if result.ok else "reload_failed"),
                sealed={
                    "previous_hash": result.previous_hash,
                    "problems": list(result.problems)[:20],
                },
            )
        except AuditUnavailable:
            log.error("policies.change_not_audited", policy_hash=result.policy_hash)
        return result

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await self.check()


def start_policy_watcher(node: Node) -> asyncio.Task[None] | None:
    interval = node.settings.policy_reload_seconds
    if not interval:
        return None
    watcher = PolicyWatcher(node)
    node.policy_watcher = watcher
    return asyncio.create_task(watcher.run(interval), name="policy-watcher")


async def stop_policy_watcher(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
