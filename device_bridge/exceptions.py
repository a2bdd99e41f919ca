"""Errors of the device bridge: one root, each subclass carrying its context and its fix."""

from __future__ import annotations

from pathlib import Path

from protocol.exceptions import PlatformError


class BridgeError(PlatformError):
    """Root of every error raised by `device_bridge`."""


class DbcLoadError(BridgeError, ValueError):
    """A DBC file that cantools cannot parse even after the documented repairs."""

    def __init__(self, source: str | Path, reason: str, repairs: tuple[str, ...] = ()) -> None:
        self.source = str(source)
        self.reason = reason
        self.repairs = repairs
        tried = f" after repairs {list(repairs)}" if repairs else ""
        super().__init__(
            f"cannot load DBC {self.source}{tried}: {reason}; fix the file (or add a repair to "
            "device_bridge/dbc.py) or choose another DBC"
        )


class DbcNotFoundError(BridgeError, FileNotFoundError):
    """A DBC file named by a mapping that is not where it should be."""

    def __init__(self, name: str, looked_in: tuple[str, ...]) -> None:
        self.name = name
        self.looked_in = looked_in
        super().__init__(
            f"DBC {name!r} not found (looked in {list(looked_in)}); pass --dbc-dir DIR (the "
            "directory holding it), or set DIMO_BRIDGE_DBC_DIR or DIMO_BRIDGE_DBC_PATHS"
        )


class LogFormatError(BridgeError, ValueError):
    """A recorded log whose format cannot be told from its name or is unsupported."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot read log {self.path}: {reason}; the bridge reads candump -L, ASC, BLF, TRC, "
            "python-can CSV, SavvyCAN/GVRET CSV and header-row tables; name the format with "
            "--format if it was told wrong"
        )


class EmptyLogError(LogFormatError):
    """A log that gave no frame at all: the wrong format was assumed or every line is bad."""

    def __init__(self, path: str | Path, assumed: str, offending: str) -> None:
        self.assumed = assumed
        self.offending = offending
        super().__init__(
            path, f"read 0 frames assuming {assumed}; first offending line: {offending}"
        )


class NoReadingsError(BridgeError, ValueError):
    """A log whose frames decoded into no mapped signal at all."""

    def __init__(self, path: str | Path, frames: int, assumed: str, detail: str) -> None:
        self.path = str(path)
        self.frames = frames
        self.assumed = assumed
        self.detail = detail
        super().__init__(
            f"log {self.path}: {frames:,} frames decoded into 0 mapped signals (assumed "
            f"{assumed}); {detail}; check the mapping's buses/channels and DBC, or the "
            "format (--format) and time unit (--time-unit)"
        )


class MappingError(BridgeError, ValueError):
    """A vehicle mapping file that is malformed or names signals that do not exist."""

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"invalid mapping {self.source}: {reason}; correct the mapping file")


class MappingNotFoundError(BridgeError, FileNotFoundError):
    """A vehicle mapping name that matches no file."""

    def __init__(self, name: str, available: tuple[str, ...]) -> None:
        self.name = name
        self.available = available
        super().__init__(
            f"no mapping {name!r}; use one of {list(available)} or a path to a YAML/JSON file"
        )


class CanBusError(BridgeError, OSError):
    """The CAN interface could not be opened or read."""

    def __init__(self, interface: str, channel: str, reason: str) -> None:
        self.interface = interface
        self.channel = channel
        self.reason = reason
        super().__init__(
            f"CAN bus {interface}:{channel} failed: {reason}; check DIMO_BRIDGE_CAN_INTERFACE "
            "and DIMO_BRIDGE_CAN_CHANNEL and that the interface is up"
        )


class KeyLoadError(BridgeError):
    """Root of the errors about the device key."""


class MissingDeviceKeyError(KeyLoadError, LookupError):
    """No device key is configured."""

    def __init__(self) -> None:
        super().__init__(
            "no device key: set DIMO_BRIDGE_KEYSTORE (with DIMO_BRIDGE_KEYSTORE_PASSWORD or "
            "DIMO_BRIDGE_KEYSTORE_PASSWORD_FILE) or DIMO_BRIDGE_DEVICE_KEY (hex)"
        )


class MalformedKeystoreError(KeyLoadError, ValueError):
    """A keystore file that is not a Web3 Secret Storage (eth-account keyfile) JSON document."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"keystore {self.path} is malformed: {reason}; point DIMO_BRIDGE_KEYSTORE at the "
            "keyfile JSON written by eth-account (`Account.encrypt`) or `dimo bridge keygen`"
        )


class WrongKeystorePasswordError(KeyLoadError, ValueError):
    """The keystore's password does not decrypt it (MAC mismatch)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(
            f"wrong password for keystore {self.path} (MAC mismatch); check "
            "DIMO_BRIDGE_KEYSTORE_PASSWORD or the file DIMO_BRIDGE_KEYSTORE_PASSWORD_FILE names"
        )


class MissingKeystorePasswordError(KeyLoadError, LookupError):
    """A keystore is configured but no password is."""

    def __init__(self, path: str | Path, reason: str = "no password configured") -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot unlock keystore {self.path}: {reason}; set DIMO_BRIDGE_KEYSTORE_PASSWORD "
            "or DIMO_BRIDGE_KEYSTORE_PASSWORD_FILE"
        )


class MalformedDeviceKeyError(KeyLoadError, ValueError):
    """A hex device key that is not a secp256k1 private key."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"DIMO_BRIDGE_DEVICE_KEY is not a device key: {reason}; give 64 hex digits "
            "(optionally 0x-prefixed) of a secp256k1 private key"
        )


class BridgeConfigError(BridgeError, ValueError):
    """Settings that do not make a runnable bridge."""

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        super().__init__(f"setting {setting}: {reason}")


class QueueError(BridgeError, OSError):
    """The on-disk queue could not be opened or written."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"bundle queue {self.path}: {reason}; check the disk (space, permissions) and "
            "DIMO_BRIDGE_QUEUE_PATH"
        )


class QueueFullError(QueueError):
    """The queue holds its maximum of signed bundles; nothing new may be signed into it."""

    def __init__(self, path: str | Path, limit: int) -> None:
        self.limit = limit
        super().__init__(
            path,
            f"full ({limit} signed bundles awaiting receipts); the bridge coalesces closed "
            "windows until uploads make room; raise DIMO_BRIDGE_QUEUE_MAX_BUNDLES or check the "
            "oracle link",
        )


class SequenceExhaustedError(QueueError):
    """The device's bundle sequence would leave uint64."""

    def __init__(self, path: str | Path, device: str) -> None:
        self.device = device
        super().__init__(path, f"sequence of device {device} reached 2**64 - 1; use a new key")


class UploadError(BridgeError, ConnectionError):
    """An upload attempt failed; the bundles stay queued and are retried."""

    def __init__(self, url: str, reason: str, *, retryable: bool = True) -> None:
        self.url = url
        self.reason = reason
        self.retryable = retryable
        super().__init__(
            f"upload to {url} failed: {reason}; the bundles stay queued"
            + ("" if retryable else "; check DIMO_BRIDGE_ORACLE_URL and the oracle's version")
        )


class IngestContractError(UploadError):
    """The oracle answered outside the ingest contract (wrong shape, count or receipt)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, f"answer breaks the ingest contract: {reason}", retryable=True)


class IsoTpError(BridgeError, OSError):
    """An ISO-TP (ISO 15765-2) transfer failed."""

    def __init__(self, arbitration_id: int, reason: str) -> None:
        self.arbitration_id = arbitration_id
        self.reason = reason
        super().__init__(
            f"ISO-TP transfer on id {arbitration_id:#x} failed: {reason}; check the ECU "
            "addresses (request 0x7DF/0x7E0, response 0x7E8) and the bus"
        )


class IsoTpTimeoutError(IsoTpError, TimeoutError):
    """No frame came within the ISO-TP timeout (N_Bs / N_Cr)."""


class IsoTpProtocolError(IsoTpError, ValueError):
    """A frame broke ISO-TP: wrong sequence number, unknown frame type, overflow."""


class ObdError(BridgeError):
    """Root of the OBD-II errors."""


class ObdNoResponseError(ObdError, TimeoutError):
    """No ECU answered an OBD-II request."""

    def __init__(self, service: int, pid: int) -> None:
        self.service = service
        self.pid = pid
        super().__init__(
            f"no ECU answered OBD-II service {service:#04x} PID {pid:#04x}; check that the "
            "ignition is on and the PID is supported (service 01 PID 00)"
        )


class ObdNegativeResponseError(ObdError, ValueError):
    """The ECU answered with a negative response (0x7F)."""

    def __init__(self, service: int, pid: int, code: int) -> None:
        self.service = service
        self.pid = pid
        self.code = code
        super().__init__(
            f"ECU refused service {service:#04x} PID {pid:#04x} with NRC {code:#04x}; the PID "
            "is probably unsupported on this vehicle"
        )


class ObdMalformedResponseError(ObdError, ValueError):
    """An OBD-II answer of the wrong service, PID or length."""

    def __init__(self, service: int, pid: int, payload: bytes, reason: str) -> None:
        self.service = service
        self.pid = pid
        self.payload = payload
        self.reason = reason
        super().__init__(
            f"malformed answer to service {service:#04x} PID {pid:#04x} ({payload.hex()}): "
            f"{reason}; the ECU does not follow SAE J1979 for this PID, leave it out"
        )
