"""Fixtures for the key layer: a private SoftHSM2 installation and both KEK providers.

SoftHSM reads SOFTHSM2_CONF when the PKCS#11 library initialises, and python-pkcs11 loads a
module once per process, so the configuration and token directory are per test session; each
test still gets a fresh token of its own (the library is re-initialised to see it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.keys import KekProvider, LocalKeyFileProvider, init_local_keyfile

SOFTHSM_MODULE = Path(
    os.environ.get("GATEWAY_TEST_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class SoftHsmToken:
    """A freshly initialised, empty SoftHSM2 token."""

    label: str
    user_pin: str
    so_pin: str
    module_path: Path


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private SoftHSM2 configuration; skips locally, fails under CI, if SoftHSM2 is absent."""
    if shutil.which("softhsm2-util") is None or not SOFTHSM_MODULE.exists():
        message = "SoftHSM2 is not installed (make system-deps)"
        if IN_CI:
            pytest.fail(f"{message}; it is required under CI")
        pytest.skip(message)
    root = tmp_path_factory.mktemp("softhsm")
    tokens = root / "tokens"
    tokens.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield conf
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def softhsm_token(softhsm_conf: Path) -> SoftHsmToken:
    """A new token in the private SoftHSM2, visible to the already-loaded PKCS#11 library."""
    import pkcs11

    token = SoftHsmToken(
        label=f"gw-test-{secrets.token_hex(4)}",
        user_pin=secrets.token_hex(8),
        so_pin=secrets.token_hex(8),
        module_path=SOFTHSM_MODULE,
    )
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            token.label,
            "--pin",
            token.user_pin,
            "--so-pin",
            token.so_pin,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(softhsm_conf)},
    )
    # Slots are enumerated at C_Initialize: re-initialise so the new token is found.
    pkcs11.lib(str(SOFTHSM_MODULE)).reinitialize()
    return token


def write_pin_file(directory: Path, pin: str) -> Path:
    path = directory / "kek.pin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(pin + "\n")
    return path


@dataclass
class ProviderUnderTest:
    """A provider plus a way to open the same key store again (a restart or another replica)."""

    provider: KekProvider
    reopen: Callable[[], KekProvider]


@pytest.fixture(params=["local", "pkcs11"])
def kek(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProviderUnderTest]:
    """Each KEK provider in turn, freshly initialised with version v1."""
    opened: list[KekProvider] = []
    if request.param == "local":
        path = tmp_path / "keys" / "kek.json"
        init_local_keyfile(path)

        def factory() -> KekProvider:
            provider = LocalKeyFileProvider(path)
            opened.append(provider)
            return provider

    else:
        from gateway.keys.hsm import Pkcs11KekProvider, Pkcs11Settings, init_pkcs11_kek

        token = request.getfixturevalue("softhsm_token")
        settings = Pkcs11Settings(
            token_label=token.label,
            module_path=token.module_path,
            pin_file=write_pin_file(tmp_path, token.user_pin),
        )
        init_pkcs11_kek(settings)

        def factory() -> KekProvider:
            provider = Pkcs11KekProvider(settings)
            opened.append(provider)
            return provider

    try:
        yield ProviderUnderTest(provider=factory(), reopen=factory)
    finally:
        for provider in opened:
            provider.close()
