"""The `pkcs11` KEK provider: KEK versions are non-extractable AES-256 keys inside a token.

One secret-key object per version, labelled "<prefix>-v<N>" (default prefix "gateway-kek").
Keys are generated in the token with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false, so neither
the gateway nor anyone holding the PIN can read them out; wrapping and unwrapping run inside
the token as CKM_AES_GCM encrypt/decrypt with the version name as associated data (the same
construction as the local provider; see `gateway.keys.local` for why GCM over RFC 3394 wrap).
CKM_AES_KEY_WRAP would need each data key to become a token object first, which buys nothing
here because data keys must come back out to the application to encrypt fields anyway.

Retiring a version destroys its key object. Versions are numbered without gaps and the newest
is always current, so a missing object numbered below the current one is a retired version.

The user PIN comes from a file (mode 0600) or an environment variable; it is never stored on
the provider object, logged or put in an error message.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (
    DeviceError,
    DeviceRemoved,
    NoSuchToken,
    ObjectHandleInvalid,
    PKCS11Error,
    SessionClosed,
    SessionHandleInvalid,
    TokenNotPresent,
    UserNotLoggedIn,
)
from pkcs11.mechanisms import GCMParams

from gateway.keys.errors import (
    KekRetirementRefusedError,
    KekUnavailableError,
    KekVersionRetiredError,
    KekVersionUnknownError,
    KeyStoreError,
    KeyUnwrapError,
    Pkcs11ConfigError,
)
from gateway.keys.provider import (
    KekVersionInfo,
    KekVersionState,
    WrappedKey,
    version_name,
    version_number,
    wrap_associated_data,
)

DEFAULT_MODULE_PATH = Path("/usr/lib/softhsm/libsofthsm2.so")
DEFAULT_PIN_ENV = "GATEWAY_KEK_PIN"
_NONCE_BYTES = 12
# What a token says once it was removed or the module finalised under us: these are not a
# wrong key or a tampered blob, and must not be reported as one.
_TOKEN_GONE: tuple[type[PKCS11Error], ...] = (
    DeviceError,
    DeviceRemoved,
    ObjectHandleInvalid,
    SessionClosed,
    SessionHandleInvalid,
    TokenNotPresent,
    UserNotLoggedIn,
)


def _token_gone(label: str, exc: PKCS11Error) -> KekUnavailableError:
    return KekUnavailableError(
        f"the PKCS#11 token {label!r} is not reachable ({type(exc).__name__}); "
        "nothing can be wrapped or unwrapped until it is back and the node restarts"
    )


@dataclass(frozen=True, slots=True)
class Pkcs11Settings:
    """Where the token is and how to find the PIN (the PIN itself is not held here)."""

    token_label: str
    module_path: Path = DEFAULT_MODULE_PATH
    pin_file: Path | None = None
    pin_env: str = DEFAULT_PIN_ENV
    key_label_prefix: str = "gateway-kek"


def read_user_pin(settings: Pkcs11Settings) -> str:
    """The user PIN: from `pin_file` (must be 0600) when set, else from the environment."""
    if settings.pin_file is not None:
        try:
            info = settings.pin_file.stat()
        except FileNotFoundError:
            raise Pkcs11ConfigError(f"PIN file not found: {settings.pin_file}") from None
        if info.st_mode & 0o077:
            raise Pkcs11ConfigError(
                f"PIN file {settings.pin_file} has mode {stat.S_IMODE(info.st_mode):04o}; "
                "it must not be accessible by group or others (chmod 600)"
            )
        pin = settings.pin_file.read_text(encoding="utf-8").strip()
    else:
        pin = os.environ.get(settings.pin_env, "").strip()
    if not pin:
        source = settings.pin_file or f"environment variable {settings.pin_env}"
        raise Pkcs11ConfigError(f"no PKCS#11 user PIN in {source}")
    return pin


@dataclass(eq=False, slots=True)
class _SharedSession:
    session: Any
    lock: threading.Lock
    users: int = 0


# PKCS#11 login state belongs to the application, not the session: a second C_Login fails and
# closing any logged-in session logs every session out. So providers on the same token in one
# process share one logged-in session, closed when the last of them closes.
_SESSIONS: dict[tuple[str, str], _SharedSession] = {}
_SESSIONS_LOCK = threading.Lock()


def _open_session(settings: Pkcs11Settings) -> Any:
    try:
        library = pkcs11.lib(str(settings.module_path))
        token = library.get_token(token_label=settings.token_label)
        return token.open(user_pin=read_user_pin(settings), rw=True)
    except NoSuchToken:
        raise Pkcs11ConfigError(f"no PKCS#11 token labelled {settings.token_label!r}") from None
    except PKCS11Error as exc:
        # The exception class name says what failed (e.g. PinIncorrect) without the PIN.
        raise Pkcs11ConfigError(
            f"cannot open PKCS#11 token {settings.token_label!r}: {type(exc).__name__}"
        ) from None
    except OSError as exc:
        raise Pkcs11ConfigError(
            f"cannot load PKCS#11 module {settings.module_path}: {exc.strerror or exc}"
        ) from None


def _acquire_session(settings: Pkcs11Settings) -> _SharedSession:
    key = (str(settings.module_path), settings.token_label)
    with _SESSIONS_LOCK:
        shared = _SESSIONS.get(key)
        if shared is None:
            shared = _SharedSession(session=_open_session(settings), lock=threading.Lock())
            _SESSIONS[key] = shared
        shared.users += 1
        return shared


def _release_session(settings: Pkcs11Settings, shared: _SharedSession) -> None:
    key = (str(settings.module_path), settings.token_label)
    with _SESSIONS_LOCK:
        shared.users -= 1
        if shared.users > 0:
            return
        if _SESSIONS.get(key) is shared:
            del _SESSIONS[key]
        # A session already gone (library re-initialised, token removed) has nothing to release.
        with shared.lock, contextlib.suppress(PKCS11Error):
            shared.session.close()


def init_pkcs11_kek(settings: Pkcs11Settings) -> None:
    """Generate KEK version v1 in an empty token; refuses if KEK versions already exist."""
    Pkcs11KekProvider(settings, initialise=True).close()


class Pkcs11KekProvider:
    """KEK versions held as non-extractable AES keys in a PKCS#11 token (HSM or SoftHSM2).

    Uses one logged-in read-write session per token and process (shared by every provider on
    that token); calls are serialised with its lock because a session runs one operation at a
    time.
    """

    def __init__(self, settings: Pkcs11Settings, *, initialise: bool = False) -> None:
        self._settings = settings
        self._label = re.compile(re.escape(settings.key_label_prefix) + r"-(v[1-9][0-9]*)")
        self._shared = _acquire_session(settings)
        self._session = self._shared.session
        self._lock = self._shared.lock
        self._closed = False
        self._keys: dict[str, Any] = {}
        with self._lock:
            self._refresh()
            problem = None
            if not self._keys and not initialise:
                problem = (
                    f"token {settings.token_label!r} holds no {settings.key_label_prefix}-v<N> "
                    "keys; run the gateway's key initialisation first"
                )
            elif self._keys and initialise:
                problem = (
                    f"token {settings.token_label!r} already holds KEK versions; "
                    "refusing to initialise it again"
                )
            elif initialise:
                self._generate(1)
                self._refresh()
        if problem is not None:
            self.close()
            raise Pkcs11ConfigError(problem)

    def __repr__(self) -> str:
        return (
            f"Pkcs11KekProvider(token={self._settings.token_label!r}, "
            f"prefix={self._settings.key_label_prefix!r})"
        )

    def _label_for(self, version: str) -> str:
        return f"{self._settings.key_label_prefix}-{version}"

    def _refresh(self) -> None:
        """Re-read which version objects exist in the token."""
        keys: dict[str, Any] = {}
        try:
            for obj in self._session.get_objects(
                {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES}
            ):
                match = self._label.fullmatch(str(obj[Attribute.LABEL]))
                if match is not None:
                    keys[match.group(1)] = obj
        except _TOKEN_GONE as exc:
            raise _token_gone(self._settings.token_label, exc) from None
        if not keys and self._keys:
            # Versions are never all destroyed (the current one cannot be retired): an empty
            # token is not ours any more, so keep nothing and say the token is gone.
            self._keys = {}
            raise KekUnavailableError(
                f"the PKCS#11 token {self._settings.token_label!r} no longer holds its KEK "
                "versions (removed or replaced)"
            )
        self._keys = keys

    def _highest(self) -> int:
        return max((version_number(v) for v in self._keys), default=0)

    def _generate(self, number: int) -> None:
        self._session.generate_key(
            KeyType.AES,
            256,
            label=self._label_for(version_name(number)),
            id=secrets.token_bytes(8),
            store=True,
            template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
                Attribute.SIGN: False,
                Attribute.VERIFY: False,
                Attribute.DERIVE: False,
                Attribute.MODIFIABLE: False,
            },
        )

    def _key_for(self, version: str) -> Any:
        if self._closed:
            raise KeyStoreError("the PKCS#11 KEK provider has been closed")
        key = self._keys.get(version)
        if key is None:
            # Another replica may have rotated since this session last looked.
            self._refresh()
            key = self._keys.get(version)
        if key is not None:
            return key
        if not self._keys:
            raise KekUnavailableError(
                f"the PKCS#11 token {self._settings.token_label!r} holds no KEK version now"
            )
        if version_number(version) < self._highest():
            raise KekVersionRetiredError(f"KEK version {version} is retired")
        raise KekVersionUnknownError(f"KEK version {version} does not exist in the token")

    @property
    def current_version(self) -> str:
        if not self._keys:
            raise KekUnavailableError(
                f"the PKCS#11 token {self._settings.token_label!r} holds no KEK version now"
            )
        return version_name(self._highest())

    def key_object(self, version: str) -> Any:
        """The token's key object for `version` (for attribute inspection; it cannot be read)."""
        with self._lock:
            return self._key_for(version)

    def wrap(self, data_key: bytes) -> WrappedKey:
        if not data_key:
            raise ValueError("refusing to wrap an empty key")
        with self._lock:
            try:
                return self._wrap_under_current(data_key)
            except PKCS11Error:
                # The cached current key may have been retired by another replica's rotation.
                self._refresh()
                try:
                    return self._wrap_under_current(data_key)
                except _TOKEN_GONE as exc:
                    raise _token_gone(self._settings.token_label, exc) from None

    def _wrap_under_current(self, data_key: bytes) -> WrappedKey:
        version = self.current_version
        key = self._key_for(version)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = key.encrypt(
            bytes(data_key),
            mechanism=Mechanism.AES_GCM,
            mechanism_param=GCMParams(nonce, wrap_associated_data(version)),
        )
        return WrappedKey(kek_version=version, blob=nonce + bytes(sealed))

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        nonce, sealed = wrapped.blob[:_NONCE_BYTES], wrapped.blob[_NONCE_BYTES:]
        with self._lock:
            key = self._key_for(wrapped.kek_version)
            if len(nonce) != _NONCE_BYTES or not sealed:
                raise KeyUnwrapError("wrapped key blob is truncated")
            try:
                plain = key.decrypt(
                    sealed,
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(nonce, wrap_associated_data(wrapped.kek_version)),
                )
            except _TOKEN_GONE as exc:
                raise _token_gone(self._settings.token_label, exc) from None
            except PKCS11Error:
                # SoftHSM reports a GCM tag mismatch as a general error; either way the blob
                # did not authenticate under this version.
                raise KeyUnwrapError(
                    f"wrapped key does not authenticate under KEK version {wrapped.kek_version}"
                ) from None
        return bytes(plain)

    def create_version(self) -> str:
        with self._lock:
            if self._closed:
                raise KeyStoreError("the PKCS#11 KEK provider has been closed")
            self._refresh()
            self._generate(self._highest() + 1)
            self._refresh()
            return self.current_version

    def retire_version(self, version: str) -> None:
        with self._lock:
            self._refresh()
            number = version_number(version)
            if number > self._highest():
                raise KekVersionUnknownError(f"KEK version {version} does not exist in the token")
            if number == self._highest():
                raise KekRetirementRefusedError(
                    f"KEK version {version} is current; create a new version before retiring it"
                )
            key = self._keys.get(version)
            if key is None:
                return
            key.destroy()
            self._refresh()

    def versions(self) -> list[KekVersionInfo]:
        with self._lock:
            self._refresh()
            highest = self._highest()
            infos = []
            for number in range(1, highest + 1):
                name = version_name(number)
                if name not in self._keys:
                    state = KekVersionState.RETIRED
                elif number == highest:
                    state = KekVersionState.CURRENT
                else:
                    state = KekVersionState.ACTIVE
                infos.append(KekVersionInfo(version=name, state=state))
            return infos

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._keys = {}
        _release_session(self._settings, self._shared)
