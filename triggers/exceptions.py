"""Errors of the triggers service: one root, each a typed RFC 9457 problem with its fix."""

from __future__ import annotations

from typing import Any

from protocol.exceptions import ConfigError, PlatformError, ProblemError


class TriggersError(PlatformError):
    """Root of every error raised by `triggers`."""


class TriggersConfigError(TriggersError, ConfigError):
    """Settings the triggers service cannot run with."""

    service = "triggers"


class TriggersProblem(TriggersError, ProblemError):
    """An error the API answers with as an RFC 9457 problem."""


class Unauthenticated(TriggersProblem, PermissionError):
    """No bearer token, or one that does not check (401)."""

    slug = "token-invalid"
    status = 401
    title = "Authentication required"


class UnknownMetric(TriggersProblem, LookupError):
    """The webhook names a signal or event the service does not know."""

    slug = "trigger-unknown-metric"
    status = 400
    title = "Unknown signal or event"

    def __init__(self, service: str, name: str) -> None:
        super().__init__(
            f"{service} {name!r} is unknown; GET /v1/webhooks/signals lists the signals, "
            "events are behavior.harshBraking, behavior.harshAcceleration, "
            "behavior.harshCornering, charging.started, charging.stopped, "
            "odometer.rollbackSuspected",
            service=service,
            metricName=name,
        )


class ConditionInvalid(TriggersProblem, ValueError):
    """The CEL condition does not compile, uses an unknown name, or is not boolean."""

    slug = "trigger-condition-invalid"
    status = 400
    title = "Condition does not compile"

    def __init__(self, condition: str, message: str) -> None:
        super().__init__(message, condition=condition)


class ConditionTooCostly(TriggersProblem, ValueError):
    """The CEL condition's static cost exceeds the limit."""

    slug = "trigger-condition-too-costly"
    status = 400
    title = "Condition exceeds the cost limit"

    def __init__(self, condition: str, cost: int, limit: int) -> None:
        super().__init__(
            f"the condition costs {cost}, the limit is {limit}; write a shorter condition "
            "with fewer list macros (all, exists, map, filter)",
            condition=condition,
            cost=cost,
            limit=limit,
        )


class TargetRefused(TriggersProblem, ValueError):
    """The target URL is not allowed (scheme, private address, unresolvable host)."""

    slug = "trigger-target-refused"
    status = 400
    title = "Target URL refused"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url!r} is refused: {reason}", targetURL=url)


class CooldownOutOfRange(TriggersProblem, ValueError):
    """The cooldown lies outside the allowed range."""

    slug = "trigger-cooldown-out-of-range"
    status = 400
    title = "Cooldown out of range"

    def __init__(self, value: Any, low: int, high: int) -> None:
        super().__init__(
            f"coolDownPeriod {value!r} must be whole seconds in [{low}, {high}]",
            coolDownPeriod=value,
        )


class InvalidField(TriggersProblem, ValueError):
    """A request field has a value the API does not accept."""

    slug = "trigger-invalid-field"
    status = 400
    title = "Invalid field"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field)


class VerificationFailed(TriggersProblem, ValueError):
    """The target did not echo the verification token."""

    slug = "trigger-verification-failed"
    status = 400
    title = "Webhook verification failed"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"the verification POST to {url} failed: {reason}; the target must answer 200 "
            "with the verification token as its body",
            targetURL=url,
        )


class VehicleNotReadable(TriggersProblem, PermissionError):
    """The caller may not read the vehicle (or the signal of the webhook) it subscribes."""

    slug = "trigger-vehicle-not-readable"
    status = 403
    title = "Vehicle not readable"

    def __init__(self, vehicle_id: int, privilege: str) -> None:
        super().__init__(
            f"you hold no live {privilege} right on vehicle {vehicle_id}; ask its owner for a "
            "grant or buy a licence",
            vehicleId=vehicle_id,
            missingScope=privilege,
        )


class WebhookNotFound(TriggersProblem, LookupError):
    """No webhook of the caller has that id."""

    slug = "trigger-webhook-not-found"
    status = 404
    title = "Webhook not found"

    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"you have no webhook {webhook_id!r}", webhookId=webhook_id)


class RightsUnavailable(TriggersError, ConnectionError):
    """The indexer did not answer a rights question."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"rights lookup at {url} failed: {reason}; check DIMO_TRIGGERS_INDEXER_URL"
        )
