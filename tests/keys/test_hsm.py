"""The PKCS#11 provider against a real SoftHSM2 token: non-extractable KEK, PIN handling."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error

from gateway.keys import Pkcs11ConfigError
from gateway.keys.hsm import Pkcs11KekProvider, Pkcs11Settings, init_pkcs11_kek, read_user_pin
from tests.keys.conftest import SoftHsmToken, write_pin_file


@pytest.fixture
def settings(softhsm_token: SoftHsmToken, tmp_path: Path) -> Pkcs11Settings:
    return Pkcs11Settings(
        token_label=softhsm_token.label,
        module_path=softhsm_token.module_path,
        pin_file=write_pin_file(tmp_path, softhsm_token.user_pin),
    )


@pytest.fixture
def provider(settings: Pkcs11Settings) -> Iterator[Pkcs11KekProvider]:
    init_pkcs11_kek(settings)
    opened = Pkcs11KekProvider(settings)
    yield opened
    opened.close()


def test_kek_is_sensitive_and_never_extractable(provider: Pkcs11KekProvider) -> None:
    key = provider.key_object("v1")
    assert key[Attribute.LABEL] == "gateway-kek-v1"
    assert key[Attribute.TOKEN] is True
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert key[Attribute.ALWAYS_SENSITIVE] is True
    assert key[Attribute.VALUE_LEN] == 32


def test_reading_the_kek_value_fails(provider: Pkcs11KekProvider) -> None:
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        _ = provider.key_object("v1")[Attribute.VALUE]


def test_wrapping_the_kek_out_of_the_token_fails(provider: Pkcs11KekProvider) -> None:
    session = provider.key_object("v1").session
    wrapping = session.generate_key(KeyType.AES, 256, template={Attribute.WRAP: True})
    try:
        with pytest.raises(pkcs11.exceptions.KeyUnextractable):
            wrapping.wrap_key(provider.key_object("v1"), mechanism=Mechanism.AES_KEY_WRAP)
    finally:
        wrapping.destroy()


def test_kek_cannot_be_made_extractable(provider: Pkcs11KekProvider) -> None:
    key = provider.key_object("v1")
    with pytest.raises(PKCS11Error):
        key.copy({Attribute.EXTRACTABLE: True})
    with pytest.raises(PKCS11Error):
        key[Attribute.EXTRACTABLE] = True
    assert provider.key_object("v1")[Attribute.EXTRACTABLE] is False


def test_rotation_creates_one_token_object_per_version(provider: Pkcs11KekProvider) -> None:
    provider.create_version()
    provider.create_version()
    provider.retire_version("v1")
    session = provider.key_object("v3").session
    labels = sorted(
        str(obj[Attribute.LABEL])
        for obj in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
    )
    assert labels == ["gateway-kek-v2", "gateway-kek-v3"]


def test_wrong_pin_is_refused_without_echoing_it(
    softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    wrong = "0000111122223333"
    settings = Pkcs11Settings(
        token_label=softhsm_token.label,
        module_path=softhsm_token.module_path,
        pin_file=write_pin_file(tmp_path, wrong),
    )
    with pytest.raises(Pkcs11ConfigError, match="PinIncorrect") as caught:
        init_pkcs11_kek(settings)
    assert wrong not in str(caught.value)


def test_pin_is_read_from_the_environment(
    softhsm_token: SoftHsmToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GW_TEST_KEK_PIN", softhsm_token.user_pin)
    settings = Pkcs11Settings(
        token_label=softhsm_token.label,
        module_path=softhsm_token.module_path,
        pin_env="GW_TEST_KEK_PIN",
    )
    init_pkcs11_kek(settings)
    provider = Pkcs11KekProvider(settings)
    try:
        assert provider.unwrap(provider.wrap(b"e" * 32)) == b"e" * 32
        assert softhsm_token.user_pin not in repr(provider)
        assert softhsm_token.user_pin not in repr(settings)
    finally:
        provider.close()


def test_missing_pin_is_a_configuration_error(
    softhsm_token: SoftHsmToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GW_TEST_ABSENT_PIN", raising=False)
    settings = Pkcs11Settings(token_label=softhsm_token.label, pin_env="GW_TEST_ABSENT_PIN")
    with pytest.raises(Pkcs11ConfigError, match="no PKCS#11 user PIN"):
        read_user_pin(settings)


def test_pin_file_readable_by_others_is_refused(
    softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    pin_file = write_pin_file(tmp_path, softhsm_token.user_pin)
    os.chmod(pin_file, 0o644)
    settings = Pkcs11Settings(token_label=softhsm_token.label, pin_file=pin_file)
    with pytest.raises(Pkcs11ConfigError, match="chmod 600"):
        read_user_pin(settings)


def test_unknown_token_is_a_configuration_error(settings: Pkcs11Settings) -> None:
    absent = Pkcs11Settings(
        token_label="no-such-token", module_path=settings.module_path, pin_file=settings.pin_file
    )
    with pytest.raises(Pkcs11ConfigError, match="no PKCS#11 token"):
        Pkcs11KekProvider(absent)


def test_unloadable_module_is_a_configuration_error(
    settings: Pkcs11Settings, tmp_path: Path
) -> None:
    bogus = Pkcs11Settings(
        token_label=settings.token_label,
        module_path=tmp_path / "missing-module.so",
        pin_file=settings.pin_file,
    )
    with pytest.raises(Pkcs11ConfigError):
        Pkcs11KekProvider(bogus)


def test_uninitialised_token_is_refused(settings: Pkcs11Settings) -> None:
    with pytest.raises(Pkcs11ConfigError, match="holds no gateway-kek"):
        Pkcs11KekProvider(settings)


def test_initialising_twice_is_refused(settings: Pkcs11Settings) -> None:
    init_pkcs11_kek(settings)
    with pytest.raises(Pkcs11ConfigError, match="already holds"):
        init_pkcs11_kek(settings)
    provider = Pkcs11KekProvider(settings)
    try:
        assert provider.current_version == "v1"
    finally:
        provider.close()
