"""The committed JSON Schema files equal freshly generated ones and validate real records."""

import json
from pathlib import Path

import jsonschema
import pytest

from schemas import KINDS, export_json_schemas, parse_record
from schemas.examples import example_record
from schemas.json_schema import COMMITTED_DIR, json_schema_documents, render_json_schema


def test_committed_schema_files_equal_freshly_generated_ones() -> None:
    documents = json_schema_documents()
    committed = {path.name for path in COMMITTED_DIR.glob("*.json")}
    assert committed == set(documents), "regenerate with export_json_schemas(COMMITTED_DIR)"
    for name, document in documents.items():
        assert (COMMITTED_DIR / name).read_text(encoding="utf-8") == render_json_schema(document), (
            f"{name} is stale: regenerate with export_json_schemas(COMMITTED_DIR)"
        )


def test_export_writes_one_file_per_kind_and_the_union(tmp_path: Path) -> None:
    written = export_json_schemas(tmp_path / "v1")
    assert sorted(path.name for path in written) == sorted(
        [f"{kind}.schema.json" for kind in KINDS] + ["record.schema.json"]
    )
    for path in written:
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(document)


def _validator(name: str) -> jsonschema.Draft202012Validator:
    document = json.loads((COMMITTED_DIR / name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(
        document, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.mark.parametrize("kind", KINDS)
def test_kind_and_union_schemas_accept_a_valid_record(kind: str) -> None:
    data = parse_record(example_record(kind)).model_dump(mode="json")
    _validator(f"{kind}.schema.json").validate(data)
    _validator("record.schema.json").validate(data)


@pytest.mark.parametrize(
    ("change", "value"),
    [("kind", "nominal"), ("id", "has space"), ("schema_version", "2"), ("extra", 1)],
)
def test_union_schema_rejects_what_the_models_reject(change: str, value: object) -> None:
    data = parse_record(example_record("person")).model_dump(mode="json")
    data[change] = value
    assert list(_validator("record.schema.json").iter_errors(data))
