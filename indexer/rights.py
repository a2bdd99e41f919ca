"""Read rights per signal: the times of a vehicle's data a caller may read, privilege by privilege.

A caller's rights on one vehicle are a *coverage*: for each privilege, a set of half-open time
intervals `[from_ms, to_ms)` of readings it may read. They come from three sources, all read
from the chain's projections:

- **Ownership.** The periods the caller owned the vehicle, from its `VehicleId` `Transfer`
  events, cover every privilege. Data follows the right, not the car: a previous owner keeps
  nothing after the transfer, and a new owner gets nothing from before it.
- **Grant.** A live grant (the `grants` row of the caller, in the vehicle's current transfer
  epoch, not expired) covers its scopes over the granting owner's current ownership period.
  A transfer starts a new epoch, so it voids every grant of the previous owner.
- **Licence.** A live licence (not expired) on a product covers the product's scopes over the
  intervals the vehicle was opted in to that product. `DataMarket` keeps an opt-in across a
  vehicle transfer (the new owner may opt out), so an opt-in interval runs on through it.

Open periods (the current ownership, an opt-in not yet ended) end at "now", the API's clock.
A signal needs the privilege the VSS catalog gives it (`protocol.vss`); a signal outside the
catalog needs `RAW`.

The facts behind a coverage (ownership periods, the caller's grant, its licensed opt-ins) are
read in one indexed query and cached by (caller, vehicle, indexed block and its hash), so a
synced block or a reorg invalidates them; the coverage itself is recomputed from them at each
request's "now", so expiry is exact without touching the database.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    Text,
    and_,
    cast,
    literal,
    null,
    select,
    union_all,
)

from indexer import schema as s
from indexer.exceptions import VehicleNotFound
from protocol.privileges import Privilege
from protocol.vss import CATALOG

Interval = tuple[int, int]
#: Sorted, disjoint, non-adjacent, non-empty half-open intervals.
Intervals = tuple[Interval, ...]

#: The single-bit privileges, lowest bit first.
PRIVILEGES: Final[tuple[Privilege, ...]] = tuple(Privilege)
#: The privilege a signal outside the VSS catalog needs.
UNCATALOGUED_PRIVILEGE: Final = Privilege.RAW
#: Entries a `RightsCache` keeps by default.
DEFAULT_CACHE_SIZE: Final = 8192
_ZERO: Final = "0x" + "00" * 20

# -------------------------------------------------------------------------------------------
# interval arithmetic
# -------------------------------------------------------------------------------------------


def normalize(intervals: Iterable[Interval]) -> Intervals:
    """`intervals` as a canonical set: empty ones dropped, overlapping or touching ones merged.

    Args:
        intervals: Half-open `[a, b)` pairs in any order; pairs with `b <= a` are empty.

    Returns:
        The same set of instants as sorted, disjoint, non-adjacent intervals.
    """
    out: list[Interval] = []
    for a, b in sorted(iv for iv in intervals if iv[1] > iv[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return tuple(out)


def union(*sets: Iterable[Interval]) -> Intervals:
    """The instants in any of `sets`."""
    return normalize(iv for one in sets for iv in one)


def intersect(a: Intervals, b: Intervals) -> Intervals:
    """The instants in both normalized sets `a` and `b`."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def clip(a: Intervals, start: int, end: int) -> Intervals:
    """The instants of the normalized set `a` inside `[start, end)`."""
    return intersect(a, ((start, end),)) if end > start else ()


def contains(a: Intervals, t: int) -> bool:
    """Whether instant `t` is in the normalized set `a`."""
    i = bisect.bisect_right(a, t, key=lambda iv: iv[0]) - 1
    return i >= 0 and a[i][0] <= t < a[i][1]


def length(a: Intervals) -> int:
    """How many milliseconds the normalized set `a` holds."""
    return sum(b - x for x, b in a)


# -------------------------------------------------------------------------------------------
# privileges of signals
# -------------------------------------------------------------------------------------------


def signal_privilege(name: str) -> Privilege:
    """The privilege that reads signal `name` (`RAW` for a signal outside the VSS catalog)."""
    entry = CATALOG.get(name)
    return entry.privilege if entry is not None else UNCATALOGUED_PRIVILEGE


def privilege_bits(scopes: int) -> list[Privilege]:
    """The single privileges set in `scopes`, lowest bit first (undefined bits ignored)."""
    return [p for p in PRIVILEGES if scopes & p.value]


@dataclass(frozen=True)
class Coverage:
    """What one caller may read of one vehicle, at one instant ("now").

    Attributes:
        vehicle_id: The vehicle.
        caller: The caller's address, lowercase.
        now_ms: The instant the coverage was computed for; open periods end there.
        by_privilege: For each single privilege, the intervals it covers (absent: none).
        is_owner: Whether the caller owns the vehicle now.
    """

    vehicle_id: int
    caller: str
    now_ms: int
    by_privilege: Mapping[Privilege, Intervals]
    is_owner: bool
    #: `of`'s answers so far (the coverage never changes; a proof asks per signal per bundle).
    _of: dict[Privilege, Intervals] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    #: `for_signal`'s answers so far (a proof query asks per signal of each of 24 bundles).
    _for: dict[str, Intervals] = field(default_factory=dict, init=False, repr=False, compare=False)

    def of(self, privilege: Privilege) -> Intervals:
        """The intervals `privilege` covers; for several bits, the times all of them cover."""
        found = self._of.get(privilege)
        if found is not None:
            return found
        bits = privilege_bits(privilege.value)
        out: Intervals = ()
        if bits:
            out = self.by_privilege.get(bits[0], ())
            for bit in bits[1:]:
                out = intersect(out, self.by_privilege.get(bit, ()))
        self._of[privilege] = out
        return out

    def for_signal(self, name: str) -> Intervals:
        """The intervals in which readings of signal `name` may be read."""
        found = self._for.get(name)
        if found is None:
            found = self._for[name] = self.of(signal_privilege(name))
        return found

    def any(self) -> bool:
        """Whether the caller may read anything of the vehicle."""
        return any(self.by_privilege.values())


# -------------------------------------------------------------------------------------------
# facts from the chain's projections
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ownership:
    """One period in which one account owned the vehicle.

    Attributes:
        owner: The owner, lowercase.
        start_ms: Time of the transfer (or mint) that made it the owner, unix ms.
        end_ms: Time of the transfer that ended it, or None while it lasts.
    """

    owner: str
    start_ms: int
    end_ms: int | None


@dataclass(frozen=True)
class GrantFact:
    """The caller's current grant on the vehicle (the `grants` row).

    Attributes:
        scopes: Privilege mask.
        expiry_s: Unix seconds from which it is void.
        epoch: The vehicle's transfer epoch when it was granted.
    """

    scopes: int
    expiry_s: int
    epoch: int


@dataclass(frozen=True)
class LicencedOptIn:
    """One opt-in interval of the vehicle to a product the caller holds a licence for.

    Attributes:
        product_id: The product.
        scopes: The product's privilege mask.
        expiry_s: The caller's licence expiry, unix seconds.
        start_ms: Opt-in time, unix ms.
        end_ms: Opt-out time, unix ms, or None while opted in.
    """

    product_id: int
    scopes: int
    expiry_s: int
    start_ms: int
    end_ms: int | None


@dataclass(frozen=True)
class RightsFacts:
    """Everything the chain says about one caller's rights on one vehicle, free of "now".

    Attributes:
        vehicle_id: The vehicle.
        caller: The caller, lowercase.
        epoch: The vehicle's current transfer epoch.
        ownerships: The vehicle's ownership periods, oldest first; the last one is open.
        grant: The caller's grant row, or None.
        licences: Opt-in intervals of the vehicle to products the caller is licensed for.
    """

    vehicle_id: int
    caller: str
    epoch: int
    ownerships: tuple[Ownership, ...]
    grant: GrantFact | None
    licences: tuple[LicencedOptIn, ...]

    def coverage(self, now_ms: int) -> Coverage:
        """The caller's coverage at `now_ms` (unix ms): what it may read, privilege by privilege."""
        spans: dict[Privilege, list[Interval]] = {p: [] for p in PRIVILEGES}
        current = self.ownerships[-1] if self.ownerships else None
        for o in self.ownerships:
            if o.owner == self.caller:
                span = (o.start_ms, now_ms if o.end_ms is None else o.end_ms)
                for p in PRIVILEGES:
                    spans[p].append(span)
        g = self.grant
        live = g is not None and g.epoch == self.epoch and g.expiry_s * 1000 > now_ms
        if g is not None and live and current is not None:
            for p in privilege_bits(g.scopes):
                spans[p].append((current.start_ms, now_ms))
        for lic in self.licences:
            if lic.expiry_s * 1000 > now_ms:
                span = (lic.start_ms, now_ms if lic.end_ms is None else lic.end_ms)
                for p in privilege_bits(lic.scopes):
                    spans[p].append(span)
        by_privilege = {p: iv for p, iv in ((p, normalize(v)) for p, v in spans.items()) if iv}
        return Coverage(
            self.vehicle_id,
            self.caller,
            now_ms,
            by_privilege,
            current is not None and current.owner == self.caller,
        )


def _n(column: Any) -> Any:
    return cast(column, BigInteger)


def _no_n() -> Any:
    return cast(null(), BigInteger)


def _kind(k: str) -> Any:
    return literal(k, String).label("kind")


def _facts_query(vehicle_id: int, caller: str) -> Any:
    """One statement returning the vehicle, its transfers, the caller's grant and licences.

    Each row is `(kind, n1, n2, n3, n4, n5, text)`; every part is served by an index (the
    vehicles and grants primary keys, `events.key1`, the licences primary key with the
    `opt_ins (vehicle_id, product_id)` index).
    """
    v, e, g = s.vehicles, s.events, s.grants
    lic, pr, o = s.licences, s.products, s.opt_ins
    vehicle = select(
        _kind("v"),
        _n(v.c.epoch).label("n1"),
        _n(v.c.minted_at).label("n2"),
        _no_n().label("n3"),
        _no_n().label("n4"),
        _no_n().label("n5"),
        cast(v.c.owner, Text).label("txt"),
    ).where(v.c.id == vehicle_id)
    transfers = select(
        _kind("t"),
        _n(e.c.block_number),
        _n(e.c.tx_index),
        _n(e.c.log_index),
        _n(e.c.block_timestamp),
        _no_n(),
        cast(e.c.args, Text),
    ).where(
        e.c.key1 == f"vehicle:{vehicle_id}",
        e.c.contract == "VehicleId",
        e.c.name == "Transfer",
    )
    grant = select(
        _kind("g"),
        _n(g.c.scopes),
        _n(g.c.expiry),
        _n(g.c.epoch),
        _no_n(),
        _no_n(),
        cast(null(), Text),
    ).where(g.c.vehicle_id == vehicle_id, g.c.grantee == caller)
    licensed = (
        select(
            _kind("l"),
            _n(pr.c.scopes),
            _n(lic.c.expiry),
            _n(o.c.opted_in_at),
            _n(o.c.opted_out_at),
            _n(lic.c.product_id),
            cast(null(), Text),
        )
        .select_from(
            lic.join(pr, pr.c.id == lic.c.product_id).join(
                o, and_(o.c.product_id == lic.c.product_id, o.c.vehicle_id == vehicle_id)
            )
        )
        .where(lic.c.buyer == caller)
    )
    return union_all(vehicle, transfers, grant, licensed)


def load_facts(conn: Connection, vehicle_id: int, caller: str) -> RightsFacts:
    """Reads `caller`'s rights facts on `vehicle_id` from the index, in one query.

    Args:
        conn: A connection to the index.
        vehicle_id: The vehicle.
        caller: The caller's address (any case).

    Raises:
        VehicleNotFound: no such vehicle is indexed.
    """
    who = caller.lower()
    rows = conn.execute(_facts_query(vehicle_id, who)).all()
    vehicle = next((r for r in rows if r.kind == "v"), None)
    if vehicle is None:
        raise VehicleNotFound(vehicle_id)
    transfers = sorted((r for r in rows if r.kind == "t"), key=lambda r: (r.n1, r.n2, r.n3))
    ownerships: list[Ownership] = []
    for r in transfers:
        args = json.loads(r.txt)
        at = int(r.n4) * 1000
        if ownerships:
            prev = ownerships[-1]
            ownerships[-1] = Ownership(prev.owner, prev.start_ms, at)
        to = str(args["to"]).lower()
        if to != _ZERO:  # a burn ends the last period and starts none
            ownerships.append(Ownership(to, at, None))
    if not ownerships:  # the mint Transfer is not indexed (a partial history): from the mint
        ownerships.append(Ownership(str(vehicle.txt).lower(), int(vehicle.n2) * 1000, None))
    grant = next((GrantFact(int(r.n1), int(r.n2), int(r.n3)) for r in rows if r.kind == "g"), None)
    licences = tuple(
        sorted(
            (
                LicencedOptIn(
                    int(r.n5),
                    int(r.n1),
                    int(r.n2),
                    int(r.n3) * 1000,
                    None if r.n4 is None else int(r.n4) * 1000,
                )
                for r in rows
                if r.kind == "l"
            ),
            key=lambda x: (x.product_id, x.start_ms),
        )
    )
    return RightsFacts(vehicle_id, who, int(vehicle.n1), tuple(ownerships), grant, licences)


# -------------------------------------------------------------------------------------------
# cache
# -------------------------------------------------------------------------------------------


def index_version(conn: Connection) -> tuple[int, str]:
    """The indexed chain's checkpoint `(last_block, last_hash)`; `(-1, "")` before any sync."""
    row = conn.execute(
        select(s.sync_state.c.last_block, s.sync_state.c.last_hash).where(s.sync_state.c.id == 1)
    ).first()
    return (-1, "") if row is None else (int(row.last_block), str(row.last_hash))


class RightsCache:
    """Rights facts by (caller, vehicle, indexed block, its hash), least recently used first out.

    A new synced block (or a reorg, which changes the hash) makes every older entry unreachable;
    they age out. Safe to share between threads.

    Args:
        size: Most entries kept.
        checkpoint_ttl_s: Seconds a read of the sync checkpoint is reused (0: read it on every
            call). Rights then trail the index by at most this much.
        monotonic: The clock of that reuse.
    """

    def __init__(
        self,
        size: int = DEFAULT_CACHE_SIZE,
        checkpoint_ttl_s: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 1:
            raise ValueError(f"cache size {size} must be at least 1")
        self.size = size
        self.checkpoint_ttl_s = checkpoint_ttl_s
        self._monotonic = monotonic
        self._checkpoint: tuple[float, tuple[int, str]] | None = None
        self._entries: OrderedDict[tuple[str, int, int, str], RightsFacts] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def facts(self, conn: Connection, vehicle_id: int, caller: str) -> RightsFacts:
        """`caller`'s facts on `vehicle_id`: from the cache if the index has not moved since.

        Costs one primary-key read of the checkpoint, plus `load_facts`'s one query on a miss.

        Raises:
            VehicleNotFound: no such vehicle is indexed (never cached).
        """
        block, block_hash = self._version(conn)
        key = (caller.lower(), vehicle_id, block, block_hash)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        facts = load_facts(conn, vehicle_id, caller)
        with self._lock:
            self._entries[key] = facts
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return facts

    def _version(self, conn: Connection) -> tuple[int, str]:
        """The checkpoint, read at most once per `checkpoint_ttl_s` (0: on every call)."""
        if self.checkpoint_ttl_s <= 0:
            return index_version(conn)
        now = self._monotonic()
        held = self._checkpoint
        if held is not None and now - held[0] < self.checkpoint_ttl_s:
            return held[1]
        version = index_version(conn)
        self._checkpoint = (now, version)
        return version

    def coverage(self, conn: Connection, vehicle_id: int, caller: str, now_ms: int) -> Coverage:
        """`caller`'s coverage of `vehicle_id` at `now_ms` (see `RightsFacts.coverage`)."""
        return self.facts(conn, vehicle_id, caller).coverage(now_ms)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()


def coverage_of(conn: Connection, vehicle_id: int, caller: str, now_ms: int) -> Coverage:
    """`caller`'s coverage of `vehicle_id` at `now_ms`, read without a cache.

    Raises:
        VehicleNotFound: no such vehicle is indexed.
    """
    return load_facts(conn, vehicle_id, caller).coverage(now_ms)
