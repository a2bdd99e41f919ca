"""Tests of loading the device key from a keystore or the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_bridge.config import BridgeSettings
from device_bridge.exceptions import (
    MalformedDeviceKeyError,
    MalformedKeystoreError,
    MissingDeviceKeyError,
    MissingKeystorePasswordError,
    WrongKeystorePasswordError,
)
from device_bridge.keys import DeviceKey, load_device_key, write_keystore

KEY = DeviceKey.from_private_key("0x" + "17" * 32)


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    return write_keystore(tmp_path / "device.json", KEY, "correct horse", iterations=2)


def test_the_keystore_unlocks_with_the_password_from_the_environment(
    keyfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIMO_BRIDGE_KEYSTORE", str(keyfile))
    monkeypatch.setenv("DIMO_BRIDGE_KEYSTORE_PASSWORD", "correct horse")
    assert load_device_key(BridgeSettings()) == KEY


def test_the_keystore_unlocks_with_a_password_file(keyfile: Path, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("correct horse\n")
    settings = BridgeSettings(keystore=keyfile, keystore_password_file=secret)
    assert load_device_key(settings).address == KEY.address


def test_a_wrong_password_is_a_typed_error(keyfile: Path) -> None:
    settings = BridgeSettings(keystore=keyfile, keystore_password="battery staple")
    with pytest.raises(WrongKeystorePasswordError):
        load_device_key(settings)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"version": 3}', "missing"),
        ('{"version": 4, "crypto": {}}', "version 4"),
        ('{"version": 3, "crypto": {"cipher": "aes-128-ctr"}}', "'crypto' must hold"),
    ],
)
def test_a_malformed_keyfile_is_a_typed_error(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(MalformedKeystoreError, match=reason):
        load_device_key(BridgeSettings(keystore=path, keystore_password="x"))


def test_a_keyfile_whose_address_is_not_its_key_is_malformed(keyfile: Path) -> None:
    doc = json.loads(keyfile.read_text())
    doc["address"] = "00" * 20
    keyfile.write_text(json.dumps(doc))
    with pytest.raises(MalformedKeystoreError, match="not the key's"):
        load_device_key(BridgeSettings(keystore=keyfile, keystore_password="correct horse"))


def test_a_missing_keyfile_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(MalformedKeystoreError, match="no such file"):
        load_device_key(BridgeSettings(keystore=tmp_path / "none.json", keystore_password="x"))


def test_a_keystore_without_a_password_is_a_typed_error(keyfile: Path) -> None:
    with pytest.raises(MissingKeystorePasswordError):
        load_device_key(BridgeSettings(keystore=keyfile))


def test_a_hex_key_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIMO_BRIDGE_DEVICE_KEY", "17" * 32)
    assert load_device_key(BridgeSettings()) == KEY


@pytest.mark.parametrize("value", ["1234", "zz" * 32, "00" * 32])
def test_a_malformed_hex_key_is_a_typed_error(value: str) -> None:
    with pytest.raises(MalformedDeviceKeyError):
        load_device_key(BridgeSettings(device_key=value))


def test_no_key_at_all_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEVICE_KEY", "KEYSTORE", "KEYSTORE_PASSWORD"):
        monkeypatch.delenv(f"DIMO_BRIDGE_{name}", raising=False)
    with pytest.raises(MissingDeviceKeyError):
        load_device_key(BridgeSettings())
