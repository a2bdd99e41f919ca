"""The delivery outbox: firings enter it in the evaluator's transaction; workers claim due
deliveries under a lease (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite's write lock taken at
BEGIN), and record each attempt's outcome: delivered, retried later with exponential backoff
and full jitter, dead-lettered once the retry window has passed, or withheld when the owner's
rights ended. A worker killed mid-delivery leaves its lease to expire: the delivery is sent
again with the same `webhook-id` (at least once)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, and_, bindparam, func, select, update

from triggers.tables import DeliveryState, deliveries, webhooks

__all__ = ["Claimed", "Outcome", "backoff_ms", "claim", "record"]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery leased to this worker, with what it needs to sign and send it."""

    id: str
    webhook_id: str
    owner: str
    vehicle_id: int
    privilege: int
    reading_ms: int
    target_url: str
    target: str
    payload: str
    attempts: int
    created_ms: int
    received_ms: int
    secret: str
    previous_secret: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt (or of a rights check before it)."""

    id: str
    state: DeliveryState
    attempts: int
    next_attempt_ms: int
    error: str | None
    at_ms: int


def backoff_ms(attempts: int, base_s: float, max_s: float, rng: random.Random) -> int:
    """Delay before attempt `attempts + 1`: uniform in [0, min(max, base * 2**attempts)]
    ("full jitter"), at least 1 ms."""
    ceiling = min(max_s, base_s * 2 ** min(attempts, 40))
    return max(1, int(rng.uniform(0, ceiling) * 1000))


def claim(engine: Engine, now_ms: int, limit: int, lease_ms: int) -> list[Claimed]:
    """Leases up to `limit` due deliveries to the caller until `now_ms + lease_ms`."""
    d, w = deliveries.c, webhooks.c
    due = (
        select(d.id)
        .where(
            d.state == DeliveryState.PENDING.value,
            d.next_attempt_ms <= now_ms,
            d.lease_until_ms <= now_ms,
        )
        .order_by(d.next_attempt_ms)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with engine.begin() as conn:
        ids = list(conn.execute(due).scalars())
        if not ids:
            return []
        conn.execute(
            update(deliveries).where(d.id.in_(ids)).values(lease_until_ms=now_ms + lease_ms)
        )
        rows = conn.execute(
            select(
                d.id,
                d.webhook_id,
                w.owner,
                d.vehicle_id,
                d.privilege,
                d.reading_ms,
                w.target_url,
                d.target,
                d.payload,
                d.attempts,
                d.created_ms,
                d.received_ms,
                w.secret,
                w.previous_secret,
                w.previous_secret_until_ms,
            )
            .select_from(deliveries.join(webhooks, w.id == d.webhook_id))
            .where(d.id.in_(ids))
        ).all()
    return [
        Claimed(
            r.id,
            r.webhook_id,
            r.owner,
            int(r.vehicle_id),
            int(r.privilege),
            int(r.reading_ms),
            r.target_url,
            r.target,
            r.payload,
            int(r.attempts),
            int(r.created_ms),
            int(r.received_ms),
            r.secret,
            r.previous_secret
            if r.previous_secret_until_ms is not None and r.previous_secret_until_ms > now_ms
            else None,
        )
        for r in rows
    ]


#: One outcome's update, run once per outcome in one executemany.
_RECORD = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("key"))
    .values(
        state=bindparam("state"),
        attempts=bindparam("attempts"),
        next_attempt_ms=bindparam("next_attempt_ms"),
        lease_until_ms=bindparam("lease_until_ms"),
        last_error=bindparam("last_error"),
        delivered_ms=bindparam("delivered_ms"),
    )
)


def record(engine: Engine, outcomes: Sequence[Outcome]) -> None:
    """Stores the outcomes of attempts, in one transaction; a failed delivery counts against
    its webhook's `failure_count`, a delivered one resets it."""
    if not outcomes:
        return
    d = deliveries.c
    with engine.begin() as conn:
        conn.execute(
            _RECORD,
            [
                {
                    "key": o.id,
                    "state": o.state.value,
                    "attempts": o.attempts,
                    "next_attempt_ms": o.next_attempt_ms,
                    "lease_until_ms": 0,
                    "last_error": o.error,
                    "delivered_ms": o.at_ms if o.state is DeliveryState.DELIVERED else None,
                }
                for o in outcomes
            ],
        )
        failed = [o.id for o in outcomes if o.error is not None]
        ok = [o.id for o in outcomes if o.state is DeliveryState.DELIVERED]
        w = webhooks.c
        if failed:
            hooks = select(d.webhook_id).where(d.id.in_(failed)).scalar_subquery()
            conn.execute(
                update(webhooks).where(w.id.in_(hooks)).values(failure_count=w.failure_count + 1)
            )
        if ok:
            hooks = select(d.webhook_id).where(d.id.in_(ok)).scalar_subquery()
            conn.execute(
                update(webhooks)
                .where(and_(w.id.in_(hooks), w.failure_count != 0))
                .values(failure_count=0)
            )


def counts(engine: Engine) -> dict[str, int]:
    """Deliveries by state."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
        ).all()
    return {str(s): int(n) for s, n in rows}
