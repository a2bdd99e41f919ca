"""The triggers service's durable state: webhooks, subscriptions, per-vehicle trigger state,
journal cursors and the delivery outbox (with its dead letters).

One SQLAlchemy Core schema for SQLite (embedded default, WAL, synchronous=FULL) and PostgreSQL
(by URL). A fired trigger's outbox row, the trigger state it changed and the journal cursor
that covers the reading commit in one transaction, so a crash neither loses nor repeats a
firing; a delivery leaves the outbox only when its target answered 2xx or it is dead-lettered.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)

metadata = MetaData()

#: Registered webhooks (DIMO's `triggers`), one owner each.
webhooks = Table(
    "trigger_webhooks",
    metadata,
    Column("id", String(36), primary_key=True),  # uuid4
    Column("owner", String(42), nullable=False, index=True),  # lowercase address
    Column("service", String(16), nullable=False),  # "signals" | "events"
    Column("metric_name", String(128), nullable=False),  # DIMO name, e.g. speed
    Column("condition", Text, nullable=False),  # CEL
    Column("cooldown_s", Integer, nullable=False),
    Column("target_url", Text, nullable=False),
    Column("status", String(16), nullable=False),  # "enabled" | "disabled"
    Column("description", Text, nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("latency", String(16), nullable=False),  # "journaled" | "anchored"
    Column("all_vehicles", Boolean, nullable=False),  # every vehicle the owner may read
    Column("secret", String(128), nullable=False),  # whsec_...
    Column("previous_secret", String(128), nullable=True),  # still signs until the time below
    Column("previous_secret_until_ms", BigInteger, nullable=True),
    Column("failure_count", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

#: Vehicles subscribed one by one to a webhook.
subscriptions = Table(
    "trigger_subscriptions",
    metadata,
    Column("webhook_id", String(36), primary_key=True),
    Column("vehicle_id", BigInteger, primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_trigger_subscriptions_vehicle", "vehicle_id"),
)

#: Per webhook and vehicle: the previous value the condition sees and the last firing.
trigger_state = Table(
    "trigger_state",
    metadata,
    Column("webhook_id", String(36), primary_key=True),
    Column("vehicle_id", BigInteger, primary_key=True),
    Column("previous", Text, nullable=True),  # JSON of the previous value
    Column("previous_ms", BigInteger, nullable=True),
    Column("last_fired_ms", BigInteger, nullable=True),  # reading time of the last firing
)

#: Per vehicle and detector input: the last sample the app detectors saw (across bundles).
detector_state = Table(
    "trigger_detector_state",
    metadata,
    Column("latency", String(16), primary_key=True),  # each latency detects on its own
    Column("vehicle_id", BigInteger, primary_key=True),
    Column("state", Text, nullable=False),  # JSON, `apps.events.DetectorState`
)

#: How far each latency has read the oracle's journal.
cursors = Table(
    "trigger_cursors",
    metadata,
    Column("name", String(16), primary_key=True),  # "journaled" | "anchored"
    Column("position", BigInteger, nullable=False),  # journal position or batch id done
)


class DeliveryState(enum.StrEnum):
    """Where a delivery is."""

    PENDING = "pending"  # waiting for its next attempt (or leased to a worker)
    DELIVERED = "delivered"  # the target answered 2xx
    DEAD = "dead"  # retried for the whole retry window; the owner may replay it
    WITHHELD = "withheld"  # the owner's rights on the vehicle ended before delivery


#: The outbox: every firing, signed at send time, with its retry schedule.
deliveries = Table(
    "trigger_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),  # the `webhook-id` (msg_...), idempotency key
    Column("webhook_id", String(36), nullable=False),
    Column("vehicle_id", BigInteger, nullable=False),
    Column("privilege", Integer, nullable=False),  # our privilege bits the payload needs
    Column("reading_ms", BigInteger, nullable=False),  # time of the reading or event
    Column("target", String(300), nullable=False),  # scheme://host:port, the concurrency key
    Column("payload", Text, nullable=False),  # JSON body
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("lease_until_ms", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),  # when the firing was journaled here
    Column("received_ms", BigInteger, nullable=False),  # the oracle's receipt of the reading
    Column("delivered_ms", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_trigger_deliveries_due", "state", "next_attempt_ms"),
    Index("ix_trigger_deliveries_webhook", "webhook_id", "state"),
)

#: Execution option of a connection that only reads: on SQLite its transaction begins
#: deferred, so it never waits for the write lock.
READ_ONLY = "triggers_read_only"


def open_store(url: str, **engine_kwargs: Any) -> Engine:
    """Opens (and creates) the triggers store at a SQLAlchemy `url`.

    SQLite gets WAL, synchronous=FULL and write transactions that take the lock at BEGIN
    (so two workers cannot both claim a delivery); PostgreSQL claims with `FOR UPDATE SKIP
    LOCKED` instead (`triggers.outbox`).
    """
    engine = create_engine(url, **engine_kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    metadata.create_all(engine)
    return engine


def reading(engine: Engine) -> Connection:
    """A connection for reads only (never queues behind writers on SQLite)."""
    return engine.connect().execution_options(**{READ_ONLY: True})
