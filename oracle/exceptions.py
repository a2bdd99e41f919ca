"""Errors of the oracle: one root, each subclass carrying its context and its fix."""

from __future__ import annotations

from typing import Any, ClassVar

from protocol.problems import PROBLEM_BASE


class OracleError(Exception):
    """Root of every error raised by `oracle`."""


class OracleConfigError(OracleError, ValueError):
    """Settings or a deployment record that the oracle cannot run with."""

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        super().__init__(f"invalid oracle setting {setting}: {reason}")


class ChainUnavailableError(OracleError, ConnectionError):
    """The chain's JSON-RPC endpoint did not answer or answered with an error."""

    def __init__(self, rpc_url: str, reason: str) -> None:
        self.rpc_url = rpc_url
        self.reason = reason
        super().__init__(
            f"chain RPC {rpc_url} failed: {reason}; check that the node is up and "
            "DIMO_ORACLE_RPC_URL points at it"
        )


# --------------------------------------------------------------------------------------------
# Rejections of a single bundle (each has a stable reason code)
# --------------------------------------------------------------------------------------------


class BundleRejected(OracleError, ValueError):
    """A bundle the oracle refuses; `reason` is the stable code, `status` the HTTP status.

    Subclasses fix `reason`, `status` and `title`; `detail` says what was wrong and how to fix
    it. `problem()` renders the RFC 9457 problem object of the ingest contract.
    """

    reason: ClassVar[str] = "rejected"
    status: ClassVar[int] = 422
    title: ClassVar[str] = "Bundle rejected"

    def __init__(self, detail: str, **context: Any) -> None:
        self.detail = detail
        self.context = context
        super().__init__(f"{self.reason}: {detail}")

    @property
    def type_uri(self) -> str:
        """The problem `type` URI, stable per reason."""
        return PROBLEM_BASE + self.reason

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem details of this rejection."""
        return {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "reason": self.reason,
        }


class MalformedPayload(BundleRejected):
    """The bytes are not a wire-form signed bundle (not canonical CBOR, missing fields...)."""

    reason = "malformed-payload"
    status = 400
    title = "Malformed bundle payload"


class UnsupportedSchema(MalformedPayload):
    """The bundle declares a schema version the oracle does not speak."""

    reason = "unsupported-schema"
    status = 400
    title = "Unsupported bundle schema"

    def __init__(self, version: object, supported: tuple[int, ...]) -> None:
        self.version = version
        super().__init__(
            f"bundle schema {version!r} is not one of {list(supported)}; have the device emit "
            f"schema {max(supported)} (docs/protocol.md)",
            version=version,
        )


class SaltReused(MalformedPayload):
    """Two signals of a schema-2 bundle share a salt, which would link their commitments."""

    reason = "salt-reused"
    status = 422
    title = "Salt reused across signals"

    def __init__(self, signals: tuple[str, ...]) -> None:
        self.signals = signals
        super().__init__(
            f"signals {', '.join(signals)} share one salt; draw 32 fresh random bytes per "
            "signal and bundle",
            signals=list(signals),
        )


class BadSignature(BundleRejected):
    """The signature does not recover to the bundle's device in the oracle's EIP-712 domain."""

    reason = "bad-signature"
    status = 401
    title = "Bad bundle signature"

    def __init__(self, device: str, detail: str) -> None:
        self.device = device
        super().__init__(
            f"{detail}; sign the bundle with the device's own key in the DIMO domain of this "
            "chain's AttestationAnchor",
            device=device,
        )


class UnknownDevice(BundleRejected, LookupError):
    """The signing device is not minted in `DeviceId`."""

    reason = "unknown-device"
    status = 403
    title = "Unknown device"

    def __init__(self, device: str) -> None:
        self.device = device
        super().__init__(
            f"device {device} is not registered on-chain; have its manufacturer mint it in "
            "DeviceId and its owner claim and pair it",
            device=device,
        )


class UnpairedDevice(BundleRejected, PermissionError):
    """The device is not paired to the claimed vehicle for the whole window."""

    reason = "unpaired-device"
    status = 403
    title = "Device not paired to the vehicle"

    def __init__(
        self, device: str, vehicle_id: int, paired_vehicle: int, paired_since_s: int
    ) -> None:
        self.device = device
        self.vehicle_id = vehicle_id
        self.paired_vehicle = paired_vehicle
        self.paired_since_s = paired_since_s
        if paired_vehicle == 0:
            why = "is not paired to any vehicle"
        elif paired_vehicle != vehicle_id:
            why = f"is paired to vehicle {paired_vehicle}"
        else:
            why = f"was paired only at unix time {paired_since_s}, after the window started"
        super().__init__(
            f"device {device} {why}, not to vehicle {vehicle_id} for the bundle's window; pair "
            "it on-chain and send readings taken after the pairing",
            device=device,
            vehicle_id=vehicle_id,
        )


class ReplayedSequence(BundleRejected):
    """The sequence is not above the device's last accepted one, and the content differs."""

    reason = "replayed-sequence"
    status = 409
    title = "Replayed sequence number"

    def __init__(self, device: str, sequence: int, last_sequence: int) -> None:
        self.device = device
        self.sequence = sequence
        self.last_sequence = last_sequence
        super().__init__(
            f"device {device} sent sequence {sequence} but the journal already holds sequence "
            f"{last_sequence}; a device must number its bundles strictly increasingly",
            device=device,
            sequence=sequence,
        )


class ImplausibleValue(BundleRejected):
    """A reading outside the catalog range or the physics (odometer back, SoC > 100...)."""

    reason = "implausible-value"
    status = 422
    title = "Implausible value"

    def __init__(self, signal: str, value: object, why: str) -> None:
        self.signal = signal
        self.value = value
        super().__init__(
            f"{signal} = {value!r} is implausible: {why}; check the sensor mapping and units",
            signal=signal,
        )


class TimestampOutsideWindow(BundleRejected):
    """A reading's timestamp lies outside the bundle's [windowStart, windowEnd]."""

    reason = "timestamp-outside-window"
    status = 422
    title = "Reading timestamp outside the window"

    def __init__(self, signal: str, timestamp: int, window_start: int, window_end: int) -> None:
        self.signal = signal
        self.timestamp = timestamp
        super().__init__(
            f"{signal} at {timestamp} ms is outside the window [{window_start}, {window_end}]; "
            "widen the window or move the reading to its own bundle",
            signal=signal,
        )


class WindowInFuture(BundleRejected):
    """The window ends later than now plus the allowed clock skew."""

    reason = "window-in-future"
    status = 422
    title = "Window in the future"

    def __init__(self, window_end: int, now_ms: int, max_future_ms: int) -> None:
        self.window_end = window_end
        super().__init__(
            f"window ends at {window_end} ms, more than {max_future_ms} ms after the oracle's "
            f"clock ({now_ms} ms); fix the device clock",
            window_end=window_end,
        )


class WindowTooOld(BundleRejected):
    """The window starts earlier than the oracle's acceptance horizon."""

    reason = "window-too-old"
    status = 422
    title = "Window too old"

    def __init__(self, window_start: int, now_ms: int, max_age_ms: int) -> None:
        self.window_start = window_start
        super().__init__(
            f"window starts at {window_start} ms, more than {max_age_ms} ms before the "
            f"oracle's clock ({now_ms} ms); such readings can no longer be attested",
            window_start=window_start,
        )


class UnknownSignal(BundleRejected, LookupError):
    """A signal name the VSS catalog does not know."""

    reason = "unknown-signal"
    status = 422
    title = "Unknown signal"

    def __init__(self, signal: str) -> None:
        self.signal = signal
        super().__init__(
            f"signal {signal!r} is not in the VSS catalog (protocol/vss.py); map it to a "
            "catalog signal on the bridge",
            signal=signal,
        )


#: Every rejection class by its stable reason code.
REJECTIONS: dict[str, type[BundleRejected]] = {
    cls.reason: cls
    for cls in (
        MalformedPayload,
        UnsupportedSchema,
        SaltReused,
        BadSignature,
        UnknownDevice,
        UnpairedDevice,
        ReplayedSequence,
        ImplausibleValue,
        TimestampOutsideWindow,
        WindowInFuture,
        WindowTooOld,
        UnknownSignal,
    )
}


class RequestRejected(OracleError, ValueError):
    """A whole ingest request refused before any bundle is looked at (400 or 413)."""

    def __init__(self, status: int, reason: str, title: str, detail: str) -> None:
        self.status = status
        self.reason = reason
        self.title = title
        self.detail = detail
        super().__init__(f"{reason}: {detail}")

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem details of this request rejection."""
        return {
            "type": PROBLEM_BASE + self.reason,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "reason": self.reason,
        }
