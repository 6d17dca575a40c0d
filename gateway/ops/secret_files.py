"""Secrets as files: `GATEWAY_<SETTING>_FILE=/run/secrets/x` sets `<setting>` from that file.

This is the convention container platforms use for secrets (Docker and compose `secrets:`,
Kubernetes secret volumes): the value never appears in the environment, `docker inspect` or a
process listing. pydantic-settings' own `secrets_dir` wants one fixed directory and file names
derived from field names; a path per setting is what compose files and operators expect.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

FILE_SUFFIX = "_FILE"


class SecretFileError(ValueError):
    """A `_FILE` variable points at nothing usable, or clashes with the plain variable."""


class SecretFilesSource(PydanticBaseSettingsSource):
    """Reads `<PREFIX><FIELD>_FILE` variables; fields that are themselves paths (`*_file`) are
    left alone so `GATEWAY_KEK_FILE` keeps meaning the key file's path."""

    def __init__(self, settings_cls: type[BaseSettings], *, env_prefix: str) -> None:
        super().__init__(settings_cls)
        self.env_prefix = env_prefix

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            if name.endswith("_file"):
                continue
            variable = f"{self.env_prefix}{name.upper()}"
            path = os.environ.get(variable + FILE_SUFFIX)
            if not path:
                continue
            if os.environ.get(variable):
                raise SecretFileError(f"set either {variable} or {variable}{FILE_SUFFIX}, not both")
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                problem = type(exc).__name__
                raise SecretFileError(
                    f"{variable}{FILE_SUFFIX} names a file that cannot be read ({problem})"
                ) from exc
            if not value:
                raise SecretFileError(f"the file named by {variable}{FILE_SUFFIX} is empty")
            values[name] = value
        return values
