"""Federation state kept in the node's database: what this node witnessed of each partner's log,
the cosignatures partners gave this node's log, checkpoints seen in receipts, and fork evidence.

None of it is personal data: sizes, roots and signed checkpoint notes only.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class WitnessStateRow(SQLModel, table=True):
    """The last checkpoint of `force`'s log that this node verified consistent and cosigned."""

    __tablename__ = "federation_witness_state"

    force: str = Field(primary_key=True, max_length=8)
    size: int
    root_hash: str = Field(max_length=64)
    note: str
    updated_at: datetime


class SeenCheckpointRow(SQLModel, table=True):
    """A partner checkpoint this node has seen (in a receipt, a cosign request or reconcile).

    One row per (force, size): a second, different root for the same size is a fork. Rows first
    seen longer ago than the retention period are pruned, except each force's largest size
    (`prune_seen_checkpoints`); `seen_at` is indexed for that.
    """

    __tablename__ = "federation_seen_checkpoints"

    force: str = Field(primary_key=True, max_length=8)
    size: int = Field(primary_key=True)
    root_hash: str = Field(max_length=64)
    note: str
    seen_at: datetime = Field(index=True)


class CosignatureRow(SQLModel, table=True):
    """A checkpoint of this node's own log as cosigned by a partner acting as witness."""

    __tablename__ = "federation_cosignatures"

    id: int | None = Field(default=None, primary_key=True)
    witness_force: str = Field(max_length=8, index=True)
    size: int = Field(index=True)
    note: str
    collected_at: datetime


class ForkEvidenceRow(SQLModel, table=True):
    """Two signed checkpoints of one log that cannot both be honest."""

    __tablename__ = "federation_forks"

    id: int | None = Field(default=None, primary_key=True)
    force: str = Field(max_length=8, index=True)
    size: int
    note_a: str
    note_b: str
    reason: str = Field(max_length=64)
    detected_at: datetime


class ReconcileResultRow(SQLModel, table=True):
    """The outcome of one `gateway audit reconcile` run for one partner (kept as history)."""

    __tablename__ = "federation_reconcile_results"

    id: int | None = Field(default=None, primary_key=True)
    force: str = Field(max_length=8, index=True)
    checked: int
    problems: int
    witnessed_size: int | None = None
    first_problem: str | None = Field(default=None, max_length=300)
    ran_at: datetime
