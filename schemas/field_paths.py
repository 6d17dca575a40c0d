"""Field specs per record kind, read from the models, and walking a record's leaf values.

`field_specs` derives every leaf path of a kind from the `FieldMeta` each model field declares;
`walk_fields` visits the present values of a record in JSON form (what storage encrypts and
indexes) and `set_pointer` puts a (decrypted) value back at its pointer.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from functools import cache
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from schemas.fields import FieldGroup, FieldMeta, FieldSpec, FieldValue
from schemas.records import RecordBase, record_model
from schemas.validation import escape_pointer_token


class MissingFieldMetaError(TypeError):
    """A model leaf field declares no FieldMeta (every leaf must say how it is protected)."""


class UnknownFieldPathError(KeyError):
    """A record holds a value at a path its kind does not define."""


def _strip(annotation: Any) -> tuple[Any, list[FieldMeta]]:
    """Remove Annotated wrappers and Optional, collecting FieldMeta on the way."""
    metas: list[FieldMeta] = []
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            base, *extras = get_args(annotation)
            metas.extend(extra for extra in extras if isinstance(extra, FieldMeta))
            annotation = base
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                raise TypeError(f"only Optional unions are supported in bodies: {annotation}")
            annotation = members[0]
        else:
            return annotation, metas


def _model_specs(model: type[BaseModel], prefix: str) -> Iterator[FieldSpec]:
    for name, info in model.model_fields.items():
        path = f"{prefix}/{escape_pointer_token(name)}"
        metas = [item for item in info.metadata if isinstance(item, FieldMeta)]
        annotation, inner = _strip(info.annotation)
        metas.extend(inner)
        while get_origin(annotation) is list:
            path += "/*"
            annotation, inner = _strip(get_args(annotation)[0])
            metas.extend(inner)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _model_specs(annotation, path)
            continue
        if not metas:
            raise MissingFieldMetaError(f"{model.__name__}.{name} ({path}) declares no FieldMeta")
        meta = metas[-1]
        yield FieldSpec(path=path, sensitive=meta.sensitive, index=meta.index, group=meta.group)


@cache
def _specs(kind: str) -> dict[str, FieldSpec]:
    model = record_model(kind)
    return {spec.path: spec for spec in _model_specs(model, "")}


def model_field_specs(model: type[RecordBase]) -> list[FieldSpec]:
    """Leaf field specs of a record model class (any kind, any schema version)."""
    return list(_model_specs(model, ""))


def field_specs(kind: str) -> list[FieldSpec]:
    """Every leaf field of a v1 record kind, envelope included, in model order."""
    return list(_specs(kind).values())


def field_groups(kind: str) -> dict[str, FieldGroup]:
    """Generic path -> field group for a v1 record kind (what policy releases or withholds)."""
    return {path: spec.group for path, spec in _specs(kind).items()}


def spec_for_pointer(kind: str, pointer: str) -> FieldSpec:
    """The spec of a concrete pointer such as /body/names/0/family_name."""
    generic = "/".join("*" if part.isdigit() else part for part in pointer.split("/"))
    try:
        return _specs(kind)[generic]
    except KeyError:
        raise UnknownFieldPathError(pointer) from None


def walk_fields(record: dict[str, Any]) -> Iterator[FieldValue]:
    """Each present, non-null leaf of a record in JSON form, with its concrete pointer and spec.

    Lists of scalars yield one value per item. The record must be valid for its kind (as produced
    by `model_dump(mode="json")`); a value at an unknown path raises UnknownFieldPathError.
    """
    specs = _specs(record["kind"])

    def visit(value: Any, pointer: str, generic: str) -> Iterator[FieldValue]:
        if value is None:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                token = escape_pointer_token(key)
                yield from visit(item, f"{pointer}/{token}", f"{generic}/{token}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from visit(item, f"{pointer}/{index}", f"{generic}/*")
        else:
            spec = specs.get(generic)
            if spec is None:
                raise UnknownFieldPathError(pointer)
            yield FieldValue(pointer=pointer, spec=spec, value=value)

    yield from visit(record, "", "")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _parts(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/': {pointer!r}")
    return [_unescape(token) for token in pointer[1:].split("/")]


# RFC 6901 evaluation is a few lines and no JSON pointer library is installed; only existing
# object members and list items can be addressed (no "-" append), which is all storage needs.
def _step(container: Any, token: str) -> Any:
    if isinstance(container, list):
        return container[int(token)]
    if isinstance(container, dict):
        return container[token]
    raise KeyError(token)


def get_pointer(data: Any, pointer: str) -> Any:
    """The value at an RFC 6901 pointer; raises KeyError or IndexError when absent."""
    current = data
    for token in _parts(pointer):
        current = _step(current, token)
    return current


def set_pointer(data: Any, pointer: str, value: Any) -> None:
    """Replace the value at an RFC 6901 pointer in place (the member or item must exist, or be an
    object member to add)."""
    parts = _parts(pointer)
    if not parts:
        raise ValueError("cannot replace the whole document in place")
    parent = get_pointer(data, "".join("/" + escape_pointer_token(p) for p in parts[:-1]))
    last = parts[-1]
    if isinstance(parent, list):
        parent[int(last)] = value
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise KeyError(pointer)
