"""Synthetic data for the gateway (`gateway synth`): realistic records for several forces with
planted cross-force links (deal lines, suspects under spelling variants, premises with victims in
more than one force) and a ground-truth file listing every planted link.

Public surface: `generate` writes a run to disk, `iter_force_records` yields one force's records
without writing, `SynthSummary` describes a finished run, `SynthError` is every refusal.
"""

from gateway.synth.generator import (
    GROUND_TRUTH_FILE,
    PLANTED_LINK_TYPES,
    SentinelPlacement,
    SynthError,
    SynthSummary,
    canonical_forces,
    generate,
    iter_force_records,
)
from gateway.synth.plan import LinkMember, PlantedLink

__all__ = [
    "GROUND_TRUTH_FILE",
    "PLANTED_LINK_TYPES",
    "LinkMember",
    "PlantedLink",
    "SentinelPlacement",
    "SynthError",
    "SynthSummary",
    "canonical_forces",
    "generate",
    "iter_force_records",
]
