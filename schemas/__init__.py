"""Standard record schemas v1: record models, field metadata, validation, canonical JSON, forces.

The public surface is re-exported here; the modules behind it are:
records (models and the kind registry), values (validated scalar types), fields (field metadata
types), field_paths (field specs and walking records), validation (parse_record, parse_ndjson),
canonical (RFC 8785), forces (force registry), json_schema (JSON Schema export), examples.
"""

from schemas.canonical import canonical_json, canonical_sha256
from schemas.field_paths import (
    field_groups,
    field_specs,
    get_pointer,
    set_pointer,
    spec_for_pointer,
    walk_fields,
)
from schemas.fields import FieldGroup, FieldMeta, FieldSpec, FieldValue, IndexKind
from schemas.forces import Force, UnknownForceError, all_forces, get_force, is_force_code
from schemas.json_schema import export_json_schemas
from schemas.records import (
    KINDS,
    SCHEMA_VERSION,
    Record,
    RecordBase,
    RecordRef,
    UnknownRecordKindError,
    record_model,
)
from schemas.validation import ParsedLine, RecordValidationError, parse_ndjson, parse_record

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "FieldGroup",
    "FieldMeta",
    "FieldSpec",
    "FieldValue",
    "Force",
    "IndexKind",
    "ParsedLine",
    "Record",
    "RecordBase",
    "RecordRef",
    "RecordValidationError",
    "UnknownForceError",
    "UnknownRecordKindError",
    "all_forces",
    "canonical_json",
    "canonical_sha256",
    "export_json_schemas",
    "field_groups",
    "field_specs",
    "get_force",
    "get_pointer",
    "is_force_code",
    "parse_ndjson",
    "parse_record",
    "record_model",
    "set_pointer",
    "spec_for_pointer",
    "walk_fields",
]
