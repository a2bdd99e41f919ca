"""The device key: from an encrypted eth-account keystore or from the environment (hex)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

from device_bridge.config import BridgeSettings
from device_bridge.exceptions import (
    MalformedDeviceKeyError,
    MalformedKeystoreError,
    MissingDeviceKeyError,
    MissingKeystorePasswordError,
    WrongKeystorePasswordError,
)
from protocol.crypto import private_key_bytes, private_key_to_address

__all__ = ["DeviceKey", "load_device_key", "load_keystore", "write_keystore"]

_KEYSTORE_FIELDS = ("crypto", "version")
_CRYPTO_FIELDS = ("cipher", "cipherparams", "ciphertext", "kdf", "kdfparams", "mac")


@dataclass(frozen=True)
class DeviceKey:
    """The device's secp256k1 key and its address (the DeviceId token id)."""

    private_key: bytes = field(repr=False)
    address: str

    @classmethod
    def from_private_key(cls, private_key: bytes | str) -> DeviceKey:
        """Build from 32 bytes or 64 hex digits.

        Raises:
            MalformedDeviceKeyError: not a secp256k1 private key.
        """
        try:
            raw = private_key_bytes(private_key)
        except ValueError as exc:
            raise MalformedDeviceKeyError(str(exc)) from None
        return cls(raw, private_key_to_address(raw))


def _read_keyfile(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MalformedKeystoreError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedKeystoreError(path, f"unreadable: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedKeystoreError(path, f"not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise MalformedKeystoreError(path, "the top level is not a JSON object")
    crypto = doc.get("crypto", doc.get("Crypto"))
    if "Crypto" in doc and "crypto" not in doc:
        doc["crypto"] = crypto
    missing = [f for f in _KEYSTORE_FIELDS if f not in doc]
    if missing:
        raise MalformedKeystoreError(path, f"missing {missing}")
    if doc["version"] != 3:
        raise MalformedKeystoreError(path, f"version {doc['version']!r}; only version 3 is read")
    if not isinstance(crypto, dict) or any(f not in crypto for f in _CRYPTO_FIELDS):
        raise MalformedKeystoreError(path, f"'crypto' must hold {list(_CRYPTO_FIELDS)}")
    return doc


def load_keystore(path: str | Path, password: str) -> DeviceKey:
    """Decrypt an eth-account (Web3 Secret Storage v3) keyfile.

    Args:
        path: the keyfile JSON.
        password: its password.

    Returns:
        The device key.

    Raises:
        MalformedKeystoreError: missing, unreadable, not JSON, or not a v3 keyfile.
        WrongKeystorePasswordError: the password does not decrypt it.
    """
    path = Path(path)
    doc = _read_keyfile(path)
    try:
        raw = Account.decrypt(doc, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WrongKeystorePasswordError(path) from None
        raise MalformedKeystoreError(path, str(exc)) from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedKeystoreError(path, f"bad field {exc}") from None
    key = DeviceKey.from_private_key(bytes(raw))
    stated = doc.get("address")
    if isinstance(stated, str) and stated.lower().removeprefix("0x") != key.address[2:].lower():
        raise MalformedKeystoreError(path, f"its address {stated} is not the key's {key.address}")
    return key


def write_keystore(path: str | Path, key: DeviceKey, password: str, *, iterations: int = 0) -> Path:
    """Encrypt a device key into a keyfile (mode 0600) that `load_keystore` reads.

    Args:
        path: where to write; parent directories are created.
        key: the key.
        password: the password.
        iterations: scrypt n (a power of two); 0 for eth-account's default (2**18).

    Returns:
        The path written.
    """
    path = Path(path)
    if iterations:
        doc = Account.encrypt(key.private_key, password, iterations=iterations)
    else:
        doc = Account.encrypt(key.private_key, password)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
    return path


def _password(settings: BridgeSettings, keystore: Path) -> str:
    if settings.keystore_password is not None:
        return settings.keystore_password.get_secret_value()
    if settings.keystore_password_file is not None:
        try:
            text = settings.keystore_password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise MissingKeystorePasswordError(
                keystore, f"password file {settings.keystore_password_file}: {exc.strerror}"
            ) from None
        return text.splitlines()[0] if text else ""
    raise MissingKeystorePasswordError(keystore)


def load_device_key(settings: BridgeSettings) -> DeviceKey:
    """Load the device key the settings name: the keystore if set, else the hex key.

    Args:
        settings: the bridge settings (`keystore` + password or password file, or `device_key`).

    Returns:
        The device key.

    Raises:
        MissingDeviceKeyError: neither is configured.
        MissingKeystorePasswordError, WrongKeystorePasswordError, MalformedKeystoreError:
            the keystore cannot be unlocked.
        MalformedDeviceKeyError: the hex key is not a key.
    """
    if settings.keystore is not None:
        return load_keystore(settings.keystore, _password(settings, settings.keystore))
    if settings.device_key is not None:
        return DeviceKey.from_private_key(settings.device_key.get_secret_value().strip())
    raise MissingDeviceKeyError()
