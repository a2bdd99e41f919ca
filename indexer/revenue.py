"""Licence revenue per vehicle, replayed from indexed events by DataMarket's streaming rule."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from indexer import schema as s

#: (time, sequence, vehicle, cost, fee, stream end or `_START` / `_STOP` for a vehicle's
#: start or stop of earning).
_Event = tuple[int, int, int, int, int, int]
_START, _STOP = -1, -2
_FOREVER = 1 << 63


@dataclass
class Stream:
    """One product's revenue stream as `DataMarket` keeps it (see `IDataMarket`).

    A sale adds its price less the fee to the stream, which releases at a constant rate from
    the last accrual to `end`; each accrual credits `floor(released / n)` to each of the `n`
    earning vehicles (opted in and paired). The contract accrues at a sale and whenever a
    vehicle starts or stops earning; so does this replay, so the floors fall the same way.
    """

    acc: int = 0
    last: int = 0
    end: int = 0
    streaming: int = 0
    earning: set[int] = field(default_factory=set)
    snapshot: dict[int, int] = field(default_factory=dict)
    accrued: dict[int, int] = field(default_factory=dict)

    def pending_share(self, t: int) -> int:
        """What an accrual at `t` would credit each earning vehicle."""
        if self.streaming == 0 or not self.earning:
            return 0
        return self._released(t) // len(self.earning)

    def _released(self, t: int) -> int:
        if self.streaming == 0:
            return 0
        if t >= self.end:
            return self.streaming
        return self.streaming * (t - self.last) // (self.end - self.last)

    def accrue(self, t: int) -> None:
        released = self._released(t)
        self.acc += released // len(self.earning) if self.earning else 0
        self.streaming -= released
        self.last = t

    def start(self, vehicle: int, t: int) -> None:
        if vehicle in self.earning:
            return
        self.accrue(t)
        self.snapshot[vehicle] = self.acc
        self.earning.add(vehicle)

    def stop(self, vehicle: int, t: int) -> None:
        if vehicle not in self.earning:
            return
        self.accrue(t)
        self.accrued[vehicle] = self.accrued.get(vehicle, 0) + self.acc - self.snapshot[vehicle]
        self.earning.discard(vehicle)

    def buy(self, t: int, cost: int, fee: int, end: int) -> None:
        self.accrue(t)
        self.end = max(self.end, end)
        self.streaming += cost - fee

    def earned(self, vehicle: int, t: int) -> int:
        """All `vehicle` has earned from the stream up to `t` (claimed or not)."""
        due = self.accrued.get(vehicle, 0)
        if vehicle in self.earning:
            due += self.acc + self.pending_share(t) - self.snapshot[vehicle]
        return due


def head_timestamp(conn: Connection) -> int:
    """The timestamp of the last indexed block (0 before any)."""
    return int(conn.execute(select(func.max(s.blocks.c.timestamp))).scalar() or 0)


def streamed_revenue(conn: Connection, product_id: int, now: int) -> dict[int, int]:
    """What each vehicle has earned from `product_id`'s licence sales up to `now`.

    A vehicle earns while it is both opted in (an `opt_ins` interval) and paired (a
    `pairings` interval); the product's sales (`purchases`) feed the stream.
    """
    o, p, pu = s.opt_ins, s.pairings, s.purchases
    opted: dict[int, list[tuple[int, int | None]]] = {}
    for row in conn.execute(
        select(o.c.vehicle_id, o.c.opted_in_at, o.c.opted_out_at).where(
            o.c.product_id == product_id
        )
    ):
        opted.setdefault(row.vehicle_id, []).append((row.opted_in_at, row.opted_out_at))
    if not opted:
        return {}
    paired: dict[int, list[tuple[int, int | None]]] = {}
    for row in conn.execute(
        select(p.c.vehicle_id, p.c.paired_at, p.c.unpaired_at).where(
            p.c.vehicle_id.in_(list(opted))
        )
    ):
        paired.setdefault(row.vehicle_id, []).append((row.paired_at, row.unpaired_at))
    # A vehicle's own starts and stops keep their order (many blocks can share a second);
    # between vehicles, or against a sale, the order within one second changes nothing.
    events: list[_Event] = []
    for vehicle, spans in opted.items():
        earning: list[tuple[int, int | None]] = []
        for a_start, a_end in spans:
            for b_start, b_end in paired.get(vehicle, ()):
                start = max(a_start, b_start)
                ends = [e for e in (a_end, b_end) if e is not None]
                end = min(ends) if ends else None
                if end is None or end >= start:
                    earning.append((start, end))
        earning.sort(key=lambda span: (span[0], _FOREVER if span[1] is None else span[1]))
        for start, end in earning:
            events.append((start, len(events), vehicle, 0, 0, _START))
            if end is not None:
                events.append((end, len(events), vehicle, 0, 0, _STOP))
    for sale in conn.execute(
        select(pu.c.bought_at, pu.c.cost, pu.c.fee, pu.c.stream_end).where(
            pu.c.product_id == product_id
        )
    ):
        events.append(
            (sale.bought_at, len(events), -1, int(sale.cost), int(sale.fee), sale.stream_end)
        )
    stream = Stream()
    for t, _, vehicle, cost, fee, end in sorted(events):
        if t > now:
            break
        if end == _START:
            stream.start(vehicle, t)
        elif end == _STOP:
            stream.stop(vehicle, t)
        else:
            stream.buy(t, cost, fee, end)
    return {vehicle: stream.earned(vehicle, now) for vehicle in opted}
