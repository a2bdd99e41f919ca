"""From journal rows to outbox rows: each webhook's condition on its vehicles' new readings
(signals) or on the app detectors' events, under its cooldown and its owner's rights.

One call of `Evaluator.step` reads the next journal rows of one latency, and commits in one
transaction the deliveries it fired, the trigger and detector state it changed, and the
cursor past those rows; a crash before the commit re-evaluates the same rows from the same
state, so nothing is lost and nothing fires twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sqlalchemy import Connection, Engine, delete, insert, select

from apps.events import EVENTS, DetectorState, EventParams, detect
from protocol.dimo_signals import LOCATION_BRANCH, SIGNALS, catalog_privilege, dimo_value
from protocol.privileges import Privilege
from triggers.conditions import Condition, compile_condition, signal_context
from triggers.journal import JournalReader, JournalRow
from triggers.rights import IndexerRights
from triggers.signing import new_message_id
from triggers.tables import (
    DeliveryState,
    cursors,
    deliveries,
    detector_state,
    subscriptions,
    trigger_state,
    webhooks,
)
from triggers.targets import origin

__all__ = ["Evaluator", "Latency"]

log = logging.getLogger(__name__)
Latency = Literal["journaled", "anchored"]
LATITUDE: Final = LOCATION_BRANCH + ".Latitude"
LONGITUDE: Final = LOCATION_BRANCH + ".Longitude"


@dataclass(frozen=True)
class Hook:
    """An enabled webhook as the evaluator needs it."""

    id: str
    owner: str
    service: str
    metric: str
    condition: Condition
    cooldown_ms: int
    target_url: str
    display_name: str
    all_vehicles: bool
    privilege: Privilege


def asset_did(chain_id: int, contract: str, vehicle_id: int) -> str:
    """DIMO's DID of a vehicle: `did:erc721:<chain>:<VehicleId contract>:<token id>`."""
    return f"did:erc721:{chain_id}:{contract}:{vehicle_id}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def signal_samples(row: JournalRow, name: str) -> list[tuple[int, Any]]:
    """The samples of DIMO signal `name` in a bundle, in DIMO's form, in time order."""
    readings = row.bundle.readings
    spec = SIGNALS[name]
    if spec.kind == "location":
        lat = dict(readings.get(LATITUDE, ()))
        lon = dict(readings.get(LONGITUDE, ()))
        return [
            (ts, {"latitude": float(lat[ts]), "longitude": float(lon[ts]), "hdop": 0.0})
            for ts in sorted(lat.keys() & lon.keys())
        ]
    assert spec.vss is not None
    out = []
    for ts, value in readings.get(spec.vss, ()):
        v = dimo_value(name, value)
        out.append((int(ts), float(v) if isinstance(v, bool | int | float) else v))
    return out


class Evaluator:
    """Evaluates webhooks over the journal, one latency per instance."""

    def __init__(
        self,
        store: Engine,
        journal: JournalReader,
        rights: IndexerRights,
        latency: Latency,
        *,
        chain_id: int,
        vehicle_contract: str,
        max_cost: int,
        batch: int,
        params: EventParams | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.journal = journal
        self.rights = rights
        self.latency = latency
        self.chain_id = chain_id
        self.contract = vehicle_contract
        self.max_cost = max_cost
        self.batch = batch
        self.params = params or EventParams()
        self.clock = clock
        self._compiled: dict[tuple[str, str], Condition] = {}

    # ---------------------------------------------------------------------------------------

    def _cursor(self, conn: Connection) -> int:
        found = conn.execute(
            select(cursors.c.position).where(cursors.c.name == self.latency)
        ).scalar()
        return 0 if found is None else int(found)

    def _hooks(self, conn: Connection) -> tuple[list[Hook], dict[int, list[Hook]]]:
        """The enabled webhooks of this latency: those on all vehicles, and by vehicle."""
        w = webhooks.c
        rows = conn.execute(
            select(webhooks).where(w.status == "enabled", w.latency == self.latency)
        ).all()
        by_id: dict[str, Hook] = {}
        for r in rows:
            kind = "event" if r.service == "events" else SIGNALS[r.metric_name].kind
            key = (r.condition, kind)
            condition = self._compiled.get(key)
            if condition is None:
                condition = compile_condition(r.condition, kind, 10**9)
                self._compiled[key] = condition
            privilege = (
                EVENTS[r.metric_name] if r.service == "events" else catalog_privilege(r.metric_name)
            )
            by_id[r.id] = Hook(
                r.id,
                r.owner,
                r.service,
                r.metric_name,
                condition,
                int(r.cooldown_s) * 1000,
                r.target_url,
                r.display_name,
                bool(r.all_vehicles),
                privilege,
            )
        everywhere = [h for h in by_id.values() if h.all_vehicles]
        by_vehicle: dict[int, list[Hook]] = defaultdict(list)
        if by_id:
            subs = conn.execute(
                select(subscriptions.c.webhook_id, subscriptions.c.vehicle_id).where(
                    subscriptions.c.webhook_id.in_(list(by_id))
                )
            ).all()
            for webhook_id, vehicle_id in subs:
                hook = by_id[webhook_id]
                if not hook.all_vehicles:
                    by_vehicle[int(vehicle_id)].append(hook)
        return everywhere, by_vehicle

    # ---------------------------------------------------------------------------------------

    def step(self) -> int:
        """Evaluates the next journal rows of this latency; returns how many were read."""
        with self.store.connect() as conn:
            position = self._cursor(conn)
            everywhere, by_vehicle = self._hooks(conn)
        proof: dict[str, Any] | None = None
        if self.latency == "journaled":
            rows = self.journal.journaled_after(position, self.batch)
            if not rows:
                return 0
            new_position = rows[-1].position
        else:
            anchored = self.journal.next_anchored(position)
            if anchored is None:
                return 0
            rows = list(anchored.rows)
            new_position = anchored.id
            proof = {"batchId": anchored.id, "cid": anchored.cid, "txHash": anchored.tx_hash}
        work: list[tuple[JournalRow, list[Hook]]] = []
        for row in rows:
            hooks = by_vehicle.get(row.bundle.vehicle_id, []) + everywhere
            if hooks:
                work.append((row, hooks))
        self._evaluate(work, proof, new_position)
        return len(rows)

    def _evaluate(
        self,
        work: Sequence[tuple[JournalRow, list[Hook]]],
        proof: Mapping[str, Any] | None,
        new_position: int,
    ) -> int:
        now_ms = int(self.clock() * 1000)
        pairs = {(h.id, row.bundle.vehicle_id) for row, hooks in work for h in hooks}
        self.rights.prefetch(
            {(h.owner, row.bundle.vehicle_id) for row, hooks in work for h in hooks}
        )
        event_vehicles = sorted(
            {
                row.bundle.vehicle_id
                for row, hooks in work
                if any(h.service == "events" for h in hooks)
            }
        )
        out: list[dict[str, Any]] = []
        with self.store.begin() as conn:
            state = self._load_state(conn, pairs)
            detectors = self._load_detectors(conn, event_vehicles)
            changed: set[tuple[str, int]] = set()
            for row, hooks in work:
                vehicle = row.bundle.vehicle_id
                events = None
                if vehicle in detectors:
                    events = detect(
                        {k: list(v) for k, v in row.bundle.readings.items()},
                        detectors[vehicle],
                        self.params,
                    )
                for hook in hooks:
                    key = (hook.id, vehicle)
                    st = state.setdefault(key, [None, None, None])
                    if hook.service == "events":
                        items: Iterable[tuple[int, Any, Any]] = (
                            (e.ts, e.value, e) for e in (events or ()) if e.name == hook.metric
                        )
                    else:
                        items = ((ts, v, None) for ts, v in signal_samples(row, hook.metric))
                    for ts, value, event in items:
                        if st[1] is not None and ts <= st[1]:
                            continue  # not newer than what this trigger has seen
                        previous = st[0] if st[0] is not None else value
                        previous_ms = st[1] if st[1] is not None else ts
                        if event is not None:
                            variables = {
                                "name": event.name,
                                "value": float(event.value),
                                "durationNs": int(event.duration_ms) * 1_000_000,
                                "metadata": "",
                                "time": _dt(ts),
                                "now": _dt(now_ms),
                                "source": row.bundle.device,
                                "previousName": event.name,
                                "previousValue": float(previous),
                                "previousDurationNs": 0,
                                "previousMetadata": "",
                                "previousTime": _dt(previous_ms),
                                "previousSource": row.bundle.device,
                            }
                        else:
                            variables = signal_context(
                                value, previous, _dt(ts), _dt(previous_ms), _dt(now_ms)
                            )
                        st[0], st[1] = value, ts
                        changed.add(key)
                        if not hook.condition(variables):
                            continue
                        if st[2] is not None and ts - st[2] < hook.cooldown_ms:
                            continue
                        if not self.rights.access(hook.owner, vehicle).covers(hook.privilege, ts):
                            continue
                        st[2] = ts
                        out.append(self._delivery(hook, row, ts, value, event, proof, now_ms))
            self._save_state(conn, state, changed)
            self._save_detectors(conn, detectors)
            if out:
                conn.execute(insert(deliveries), out)
            self._save_cursor(conn, new_position)
        return len(out)

    # ---------------------------------------------------------------------------------------

    def _delivery(
        self,
        hook: Hook,
        row: JournalRow,
        ts: int,
        value: Any,
        event: Any,
        proof: Mapping[str, Any] | None,
        now_ms: int,
    ) -> dict[str, Any]:
        vehicle = row.bundle.vehicle_id
        message_id = new_message_id()
        body: dict[str, Any] = {
            "id": message_id,
            "service": hook.service,
            "metricName": hook.metric,
            "webhookId": hook.id,
            "webhookName": hook.display_name,
            "assetDID": asset_did(self.chain_id, self.contract, vehicle),
            "condition": hook.condition.source,
            "latency": self.latency,
            "receivedAt": _iso(row.received_ms),
        }
        if event is not None:
            body["event"] = {
                "name": event.name,
                "timestamp": _iso(ts),
                "source": row.bundle.device,
                "durationNs": int(event.duration_ms) * 1_000_000,
                "value": event.value,
                "metadata": "",
            }
        else:
            spec = SIGNALS[hook.metric]
            body["signal"] = {
                "name": hook.metric,
                "unit": spec.unit or "",
                "timestamp": _iso(ts),
                "source": row.bundle.device,
                "valueType": {"float": "float64", "string": "string", "location": "location"}[
                    spec.kind
                ],
                "value": value,
            }
        if proof is not None:
            body["proof"] = {**proof, "leafHash": "0x" + row.leaf_hash.hex()}
        return {
            "id": message_id,
            "webhook_id": hook.id,
            "vehicle_id": vehicle,
            "privilege": int(hook.privilege),
            "reading_ms": ts,
            "target": origin(hook.target_url),
            "payload": json.dumps(body, separators=(",", ":")),
            "state": DeliveryState.PENDING.value,
            "attempts": 0,
            "next_attempt_ms": now_ms,
            "lease_until_ms": 0,
            "created_ms": now_ms,
            "received_ms": row.received_ms,
        }

    def _load_state(
        self, conn: Connection, pairs: set[tuple[str, int]]
    ) -> dict[tuple[str, int], list[Any]]:
        if not pairs:
            return {}
        t = trigger_state.c
        hooks = sorted({p[0] for p in pairs})
        rows = conn.execute(select(trigger_state).where(t.webhook_id.in_(hooks))).all()
        return {
            (r.webhook_id, int(r.vehicle_id)): [
                None if r.previous is None else json.loads(r.previous),
                r.previous_ms,
                r.last_fired_ms,
            ]
            for r in rows
            if (r.webhook_id, int(r.vehicle_id)) in pairs
        }

    def _save_state(
        self,
        conn: Connection,
        state: Mapping[tuple[str, int], list[Any]],
        changed: set[tuple[str, int]],
    ) -> None:
        if not changed:
            return
        t = trigger_state.c
        keys = sorted(changed)
        for hook in sorted({k[0] for k in keys}):
            vehicles = [k[1] for k in keys if k[0] == hook]
            conn.execute(
                delete(trigger_state).where(t.webhook_id == hook, t.vehicle_id.in_(vehicles))
            )
        conn.execute(
            insert(trigger_state),
            [
                {
                    "webhook_id": k[0],
                    "vehicle_id": k[1],
                    "previous": json.dumps(state[k][0]),
                    "previous_ms": state[k][1],
                    "last_fired_ms": state[k][2],
                }
                for k in keys
            ],
        )

    def _load_detectors(self, conn: Connection, vehicles: list[int]) -> dict[int, DetectorState]:
        if not vehicles:
            return {}
        found = {
            int(r.vehicle_id): DetectorState.from_dict(json.loads(r.state))
            for r in conn.execute(
                select(detector_state).where(
                    detector_state.c.latency == self.latency,
                    detector_state.c.vehicle_id.in_(vehicles),
                )
            )
        }
        return {v: found.get(v) or DetectorState() for v in vehicles}

    def _save_detectors(self, conn: Connection, detectors: Mapping[int, DetectorState]) -> None:
        if not detectors:
            return
        d = detector_state.c
        conn.execute(
            delete(detector_state).where(
                d.latency == self.latency, d.vehicle_id.in_(list(detectors))
            )
        )
        conn.execute(
            insert(detector_state),
            [
                {"latency": self.latency, "vehicle_id": v, "state": json.dumps(s.as_dict())}
                for v, s in detectors.items()
            ],
        )

    def _save_cursor(self, conn: Connection, position: int) -> None:
        done = conn.execute(
            cursors.update().where(cursors.c.name == self.latency).values(position=position)
        )
        if done.rowcount == 0:
            conn.execute(insert(cursors).values(name=self.latency, position=position))
