"""Sentinel strings land in sensitive fields of every force, and the ground truth says where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.synth import SynthError, generate
from tests.synth.conftest import RUN_FORCES, SENTINELS

Records = dict[str, list[dict[str, Any]]]


def test_each_sentinel_is_in_a_name_a_free_text_and_an_address_of_every_force(
    ground_truth: dict[str, Any], run_records: Records
) -> None:
    placements = ground_truth["sentinels"]
    assert len(placements) == len(SENTINELS) * 3 * len(RUN_FORCES)
    records = {(f, r["id"]): r for f, rs in run_records.items() for r in rs}
    fields = set()
    for placement in placements:
        record = records[(placement["force"], placement["record_id"])]
        value: Any = record
        for token in placement["field"].strip("/").split("/"):
            value = value[int(token)] if isinstance(value, list) else value[token]
        assert SENTINELS[placement["sentinel"]] in value
        fields.add(placement["field"])
    assert fields == {"/body/names/0/family_name", "/body/text", "/body/address_lines/0"}


def test_sentinels_are_not_written_into_the_ground_truth(ground_truth: dict[str, Any]) -> None:
    text = repr(ground_truth)
    assert not any(sentinel in text for sentinel in SENTINELS)


@pytest.mark.parametrize("bad", [" padded", "", "x" * 500, 42])
def test_sentinels_that_validation_would_alter_are_refused(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(SynthError, match="sentinel 0"):
        generate(["05"], 20, 1, tmp_path, sentinels=[bad])
