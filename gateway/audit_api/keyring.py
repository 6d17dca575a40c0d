"""The node's audit sealing keys: one AES-256 key per calendar month, in a 0600 key file.

Search terms and justification text in audit entries are sealed under the key of the month they
were written in. At the end of the retention period an operator shreds that month's key
(`gateway audit shred-keys --before YYYY-MM`): the entries stay, the tree still verifies, and the
payloads read as shredded.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path

from audit.sealing import KeyringSealer


class AuditKeyringError(Exception):
    pass


def month_key_id(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return f"audit-{moment:%Y-%m}"


def _write_private(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class AuditKeyFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        if self.path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise AuditKeyringError(f"{self.path.name} is readable by others; chmod 600 it")
        data = json.loads(self.path.read_text(encoding="utf-8"))
        keys = data.get("keys", {})
        if not isinstance(keys, dict):
            raise AuditKeyringError(f"{self.path.name} is malformed")
        return {str(k): str(v) for k, v in keys.items()}

    def load_sealer(self, now: datetime | None = None) -> KeyringSealer:
        """All surviving keys, with this month's key current (created if missing)."""
        keys = self._read()
        current = month_key_id(now)
        if current not in keys:
            keys[current] = base64.b64encode(secrets.token_bytes(32)).decode()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _write_private(self.path, {"keys": keys})
        return KeyringSealer({k: base64.b64decode(v) for k, v in keys.items()}, current)

    def shred_before(self, month: str) -> list[str]:
        """Destroy every month key older than `month` (YYYY-MM). Returns the ids destroyed."""
        keys = self._read()
        cutoff = f"audit-{month}"
        doomed = sorted(k for k in keys if k < cutoff)
        for key_id in doomed:
            del keys[key_id]
        _write_private(self.path, {"keys": keys})
        return doomed
