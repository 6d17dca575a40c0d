"""Request and response shapes of the sync API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class WriteResult(BaseModel):
    record_id: str
    version: int
    status: Literal["created", "replaced", "unchanged"]


class EraseResult(BaseModel):
    record_id: str
    erased_version: int
    reason: str


class BulkLine(BaseModel):
    line: int
    status: Literal["accepted", "rejected"]
    record_id: str | None = None
    version: int | None = None
    outcome: Literal["created", "replaced", "unchanged"] | None = None
    errors: list[dict[str, str]] = Field(default_factory=list)


class BulkResult(BaseModel):
    accepted: int
    rejected: int
    created: int
    replaced: int
    unchanged: int
    atomic: bool
    committed: bool
    lines: list[BulkLine]


class Change(BaseModel):
    seq: int
    record_id: str
    version: int
    op: Literal["upsert", "delete"]
    reason: str | None = None
    at: str


class ChangePage(BaseModel):
    changes: list[Change]
    next_cursor: str = Field(description="Pass as `since` to resume after the last change.")


class StoredRecordResponse(BaseModel):
    """A record as its owning force sent it (decrypted), with the node-assigned version."""

    model_config = {"extra": "allow"}

    id: str
    kind: str
    version: int

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
