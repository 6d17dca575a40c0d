"""One conformance suite that every KEK provider (local key file, PKCS#11 token) must pass."""

from __future__ import annotations

import secrets

import pytest

from gateway.keys import (
    KekProvider,
    KekRetirementRefusedError,
    KekVersionInfo,
    KekVersionRetiredError,
    KekVersionState,
    KekVersionUnknownError,
    KeyStoreError,
    KeyUnwrapError,
    WrappedKey,
    rewrap,
)
from tests.keys.conftest import ProviderUnderTest


def test_provider_satisfies_the_protocol(kek: ProviderUnderTest) -> None:
    assert isinstance(kek.provider, KekProvider)


def test_fresh_provider_has_v1_current(kek: ProviderUnderTest) -> None:
    assert kek.provider.current_version == "v1"
    assert kek.provider.versions() == [KekVersionInfo("v1", KekVersionState.CURRENT)]


def test_wrap_then_unwrap_returns_the_data_key(kek: ProviderUnderTest) -> None:
    data_key = secrets.token_bytes(32)
    wrapped = kek.provider.wrap(data_key)
    assert wrapped.kek_version == "v1"
    assert data_key not in wrapped.blob
    assert kek.provider.unwrap(wrapped) == data_key


def test_wrapping_twice_gives_different_blobs(kek: ProviderUnderTest) -> None:
    data_key = secrets.token_bytes(32)
    assert kek.provider.wrap(data_key).blob != kek.provider.wrap(data_key).blob


def test_tampered_blob_fails_to_unwrap(kek: ProviderUnderTest) -> None:
    wrapped = kek.provider.wrap(secrets.token_bytes(32))
    for position in (0, 20, len(wrapped.blob) - 1):
        blob = bytearray(wrapped.blob)
        blob[position] ^= 0x01
        with pytest.raises(KeyUnwrapError):
            kek.provider.unwrap(WrappedKey(wrapped.kek_version, bytes(blob)))


def test_truncated_blob_fails_to_unwrap(kek: ProviderUnderTest) -> None:
    wrapped = kek.provider.wrap(secrets.token_bytes(32))
    with pytest.raises(KeyUnwrapError):
        kek.provider.unwrap(WrappedKey(wrapped.kek_version, wrapped.blob[:20]))


def test_blob_relabelled_with_another_version_fails(kek: ProviderUnderTest) -> None:
    wrapped = kek.provider.wrap(secrets.token_bytes(32))
    kek.provider.create_version()
    with pytest.raises(KeyUnwrapError):
        kek.provider.unwrap(WrappedKey("v2", wrapped.blob))


@pytest.mark.parametrize("version", ["v9", "v0", "1", "kek-1", ""])
def test_unknown_version_fails_clearly(kek: ProviderUnderTest, version: str) -> None:
    with pytest.raises(KekVersionUnknownError):
        kek.provider.unwrap(WrappedKey(version, secrets.token_bytes(60)))


def test_create_version_makes_it_current(kek: ProviderUnderTest) -> None:
    old = kek.provider.wrap(secrets.token_bytes(32))
    assert kek.provider.create_version() == "v2"
    assert kek.provider.current_version == "v2"
    assert kek.provider.wrap(secrets.token_bytes(32)).kek_version == "v2"
    assert kek.provider.versions() == [
        KekVersionInfo("v1", KekVersionState.ACTIVE),
        KekVersionInfo("v2", KekVersionState.CURRENT),
    ]
    assert len(kek.provider.unwrap(old)) == 32


def test_rotation_then_retire_leaves_every_rewrapped_key_readable(kek: ProviderUnderTest) -> None:
    provider = kek.provider
    data_keys = [secrets.token_bytes(32) for _ in range(12)]
    stored = [provider.wrap(key) for key in data_keys]

    provider.create_version()
    rewrapped = [rewrap(wrapped, provider) for wrapped in stored]
    provider.retire_version("v1")

    assert all(wrapped.kek_version == "v2" for wrapped in rewrapped)
    assert [provider.unwrap(wrapped) for wrapped in rewrapped] == data_keys
    assert provider.versions() == [
        KekVersionInfo("v1", KekVersionState.RETIRED),
        KekVersionInfo("v2", KekVersionState.CURRENT),
    ]
    with pytest.raises(KekVersionRetiredError):
        provider.unwrap(stored[0])


def test_retired_version_stays_retired_after_reopening(kek: ProviderUnderTest) -> None:
    old = kek.provider.wrap(secrets.token_bytes(32))
    kek.provider.create_version()
    current = kek.provider.wrap(b"k" * 32)
    kek.provider.retire_version("v1")

    reopened = kek.reopen()
    assert reopened.current_version == "v2"
    assert reopened.unwrap(current) == b"k" * 32
    with pytest.raises(KekVersionRetiredError):
        reopened.unwrap(old)


def test_keys_survive_reopening_the_key_store(kek: ProviderUnderTest) -> None:
    data_key = secrets.token_bytes(32)
    wrapped = kek.provider.wrap(data_key)
    assert kek.reopen().unwrap(wrapped) == data_key


def test_rewrap_is_a_no_op_under_the_current_version(kek: ProviderUnderTest) -> None:
    wrapped = kek.provider.wrap(secrets.token_bytes(32))
    assert rewrap(wrapped, kek.provider) is wrapped


def test_current_version_cannot_be_retired(kek: ProviderUnderTest) -> None:
    with pytest.raises(KekRetirementRefusedError):
        kek.provider.retire_version("v1")
    assert len(kek.provider.unwrap(kek.provider.wrap(b"x" * 32))) == 32


def test_retiring_an_unknown_version_fails(kek: ProviderUnderTest) -> None:
    with pytest.raises(KekVersionUnknownError):
        kek.provider.retire_version("v7")


def test_retiring_twice_is_harmless(kek: ProviderUnderTest) -> None:
    kek.provider.create_version()
    kek.provider.retire_version("v1")
    kek.provider.retire_version("v1")
    assert [info.state for info in kek.provider.versions()] == [
        KekVersionState.RETIRED,
        KekVersionState.CURRENT,
    ]


def test_rotation_seen_by_a_second_instance(kek: ProviderUnderTest) -> None:
    other = kek.reopen()
    kek.provider.create_version()
    wrapped = kek.provider.wrap(b"r" * 32)
    assert other.unwrap(wrapped) == b"r" * 32


def test_empty_key_is_refused(kek: ProviderUnderTest) -> None:
    with pytest.raises(ValueError):
        kek.provider.wrap(b"")


def test_closed_provider_refuses_to_work(kek: ProviderUnderTest) -> None:
    wrapped = kek.provider.wrap(b"c" * 32)
    kek.provider.close()
    with pytest.raises(KeyStoreError):
        kek.provider.unwrap(wrapped)


def test_concurrent_wrap_and_unwrap_from_threads(kek: ProviderUnderTest) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def round_trip(seed: int) -> bool:
        data_key = seed.to_bytes(2, "big") * 16
        return all(kek.provider.unwrap(kek.provider.wrap(data_key)) == data_key for _ in range(25))

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(round_trip, range(8)))
