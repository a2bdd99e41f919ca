"""DIMO's Identity API as GraphQL at `/query`: vehicles, their devices, definitions, grants.

Field names and shapes follow DIMO's Identity API as its SDKs query it; types this platform
does not have (synthetic devices, DCN names) answer null. Resolvers are thin over
`indexer.identity_queries`, run in a worker thread with one connection (in autocommit: they only
read) per call; a page of vehicles and its `totalCount` share one. Queries deeper than
`graphql_max_depth` are refused before they run, and `first`/`last` are bounded. Plain data
fields, most of an answer, are read by `LeanExecutor` (`indexer.api.graphql.execution`)
without graphql-core's per-field resolver chain.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NewType

import anyio
import strawberry
from fastapi import Request
from sqlalchemy import Connection, Engine
from strawberry.extensions import (
    AddValidationRules,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.fastapi import BaseContext, GraphQLRouter
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.nodes import SelectedField, Selection

from indexer import identity_queries as q
from indexer.api.deps import db_limiter, get_read_engine_of
from indexer.api.graphql.execution import LeanExecutor, MsgspecGraphQLRouter
from indexer.config import IndexerSettings
from protocol.privileges import DIMO_PRIVILEGES, dimo_ids_of, dimo_permissions_hex

#: A 0x-prefixed 20-byte address (EIP-55 on output), DIMO's `Address` scalar.
Address = NewType("Address", str)
#: An RFC 3339 UTC time, DIMO's `Time` scalar.
Time = NewType("Time", str)
#: An unsigned integer too large for Int, as a decimal string.
BigInt = NewType("BigInt", str)
#: A decimal number as a string, DIMO's `BigDecimal` scalar.
BigDecimal = NewType("BigDecimal", str)


def _parse_address(value: Any) -> str:
    if not (
        isinstance(value, str)
        and len(value) == 42
        and value.startswith("0x")
        and all(c in "0123456789abcdefABCDEF" for c in value[2:])
    ):
        raise ValueError(f"{value!r} is not a 0x-prefixed 20-byte address")
    return value


#: The last second RFC 3339 can write (year 9999): later expiries ("never") are shown as it.
_MAX_TIME = 253_402_300_799


def _time(ts: int) -> str:
    return datetime.fromtimestamp(min(ts, _MAX_TIME), UTC).isoformat().replace("+00:00", "Z")


def _tokens(wei: int) -> str:
    return str(Decimal(wei) / Decimal(10**18))


@dataclass
class IdentityContext(BaseContext):
    """What resolvers get: the engine, the settings and the request's clock."""

    engine: Engine
    settings: IndexerSettings
    now_s: int

    async def run(self, fn: Callable[[Connection], Any]) -> Any:
        """Run `fn` with a connection in a worker thread (bounded like the REST routes)."""

        def job() -> Any:
            with self.engine.connect() as conn:
                return fn(conn)

        return await anyio.to_thread.run_sync(job, limiter=db_limiter())


def _info_ctx(info: strawberry.Info) -> IdentityContext:
    ctx = info.context
    assert isinstance(ctx, IdentityContext)
    return ctx


# --------------------------------------------------------------------------------------------
# pagination (relay)
# --------------------------------------------------------------------------------------------


@strawberry.type
class PageInfo:
    """Relay page info."""

    start_cursor: str | None
    end_cursor: str | None
    has_previous_page: bool
    has_next_page: bool


def _cursor(n: int) -> str:
    return base64.b64encode(str(n).encode()).decode()


def _uncursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        return int(base64.b64decode(cursor.encode(), validate=True).decode())
    except ValueError:
        raise ValueError(f"cursor {cursor!r} is not one this API gave") from None


def _page_size(info: strawberry.Info, first: int | None, last: int | None) -> tuple[int, bool]:
    """(size, from_end) of a connection's arguments, bounded by the settings."""
    top = _info_ctx(info).settings.graphql_max_page
    if first is not None and last is not None:
        raise ValueError("pass first or last, not both")
    size = first if first is not None else last if last is not None else top
    if not 0 <= size <= top:
        raise ValueError(f"first and last must be between 0 and {top}")
    return size, last is not None and first is None


# --------------------------------------------------------------------------------------------
# types
# --------------------------------------------------------------------------------------------


@strawberry.type
class Manufacturer:
    """A manufacturer of devices or vehicles."""

    token_id: int
    name: str


@strawberry.type
class Definition:
    """A vehicle's make, model and year."""

    id: str | None
    make: str | None
    model: str | None
    year: int | None


@strawberry.type
class AftermarketDevice:
    """The device paired to a vehicle (its token id is its address as an integer)."""

    token_id: BigInt
    address: Address
    owner: Address | None
    paired_at: Time | None
    manufacturer: Manufacturer | None


@strawberry.type
class SyntheticDevice:
    """A synthetic device (none on this platform: always null)."""

    token_id: int
    address: Address


@strawberry.type
class DCN:
    """A DIMO Canonical Name (none on this platform: always null)."""

    node: str
    name: str | None
    vehicle: Vehicle | None = None


@strawberry.type
class Privilege:
    """One DIMO privilege a user holds on a vehicle (from a live grant)."""

    id: int
    user: Address
    set_at: Time
    expires_at: Time


@strawberry.type
class PrivilegeEdge:
    """An edge of a privileges connection."""

    cursor: str
    node: Privilege


@strawberry.type
class PrivilegesConnection:
    """A vehicle's privileges."""

    total_count: int
    edges: list[PrivilegeEdge]
    nodes: list[Privilege]
    page_info: PageInfo


@strawberry.type
class Sacd:
    """A grant (DIMO's SACD) of a vehicle: `permissions` has two bits per privilege id."""

    grantee: Address
    permissions: str
    source: str
    created_at: Time
    expires_at: Time


@strawberry.type
class SacdEdge:
    """An edge of a SACD connection."""

    cursor: str
    node: Sacd


@strawberry.type
class SacdConnection:
    """A vehicle's live grants."""

    total_count: int
    edges: list[SacdEdge]
    nodes: list[Sacd]
    page_info: PageInfo


@strawberry.type
class Earning:
    """Rewards paid for a vehicle in one week (epoch)."""

    week: int
    beneficiary: Address
    sent_at: Time
    aftermarket_device_tokens: BigDecimal
    synthetic_device_tokens: BigDecimal
    connection_streak: int | None
    streak_tokens: BigDecimal


@strawberry.type
class EarningEdge:
    """An edge of an earnings connection."""

    cursor: str
    node: Earning


@strawberry.type
class EarningsConnection:
    """A vehicle's rewards history."""

    total_count: int
    edges: list[EarningEdge]
    nodes: list[Earning]
    page_info: PageInfo


def _slice(items: list[Any], first: int | None, after: str | None) -> tuple[list[Any], int, bool]:
    position = _uncursor(after)
    start = 0 if position is None else position + 1
    size = len(items) if first is None else first
    return items[start : start + size], start, start + size < len(items)


def _info_page(start: int, count: int, has_next: bool) -> PageInfo:
    return PageInfo(
        start_cursor=_cursor(start) if count else None,
        end_cursor=_cursor(start + count - 1) if count else None,
        has_previous_page=start > 0,
        has_next_page=has_next,
    )


@strawberry.type
class VehicleEarnings:
    """A vehicle's rewards."""

    total_tokens: BigDecimal
    rows: strawberry.Private[list[tuple[int, int, str, int]]]

    @strawberry.field
    def history(self, first: int | None = None, after: str | None = None) -> EarningsConnection:
        """Weeks of rewards, newest first."""
        page, start, more = _slice(self.rows, first, after)
        nodes = [
            Earning(
                week=epoch,
                beneficiary=Address(owner),
                sent_at=Time(_time(at)),
                aftermarket_device_tokens=BigDecimal(_tokens(amount)),
                synthetic_device_tokens=BigDecimal("0"),
                connection_streak=None,
                streak_tokens=BigDecimal("0"),
            )
            for epoch, amount, owner, at in page
        ]
        return EarningsConnection(
            total_count=len(self.rows),
            edges=[EarningEdge(cursor=_cursor(start + i), node=n) for i, n in enumerate(nodes)],
            nodes=nodes,
            page_info=_info_page(start, len(nodes), more),
        )


def _minted_at(root: Vehicle) -> Time:
    return Time(_time(root.minted_ts))


@strawberry.type
class Vehicle:
    """A vehicle NFT."""

    token_id: int
    owner: Address
    # Written only when asked for: a page of vehicles rarely asks.
    minted_at: Time = strawberry.field(resolver=_minted_at)
    definition: Definition
    aftermarket_device: AftermarketDevice | None
    synthetic_device: SyntheticDevice | None = None
    dcn: DCN | None = None
    name: str | None = None
    image_uri: str | None = None
    minted_ts: strawberry.Private[int]

    @strawberry.field
    def id(self) -> strawberry.ID:
        """A global id of the vehicle."""
        return strawberry.ID(f"V_{self.token_id}")

    @strawberry.field
    def manufacturer(self) -> Manufacturer | None:
        """The vehicle's make (null: the platform mints through connections, not makers)."""
        return None

    @strawberry.field
    async def sacds(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
    ) -> SacdConnection:
        """The vehicle's live grants, by grantee."""
        ctx = _info_ctx(info)
        size, _ = _page_size(info, first, None)
        grants = await ctx.run(lambda c: q.live_grants(c, self.token_id, ctx.now_s))
        page, start, more = _slice(grants, size, after)
        nodes = [
            Sacd(
                grantee=Address(g.grantee),
                permissions=dimo_permissions_hex(g.scopes),
                source=g.terms_cid,
                created_at=Time(_time(g.granted_at)),
                expires_at=Time(_time(g.expiry)),
            )
            for g in page
        ]
        return SacdConnection(
            total_count=len(grants),
            edges=[SacdEdge(cursor=_cursor(start + i), node=n) for i, n in enumerate(nodes)],
            nodes=nodes,
            page_info=_info_page(start, len(nodes), more),
        )

    @strawberry.field
    async def privileges(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
    ) -> PrivilegesConnection:
        """The DIMO privileges live grants hold, one node per (grantee, privilege id)."""
        ctx = _info_ctx(info)
        size, _ = _page_size(info, first, None)
        grants = await ctx.run(lambda c: q.live_grants(c, self.token_id, ctx.now_s))
        every = [
            Privilege(
                id=i,
                user=Address(g.grantee),
                set_at=Time(_time(g.granted_at)),
                expires_at=Time(_time(g.expiry)),
            )
            for g in grants
            for i in dimo_ids_of(g.scopes)
        ]
        page, start, more = _slice(every, size, after)
        return PrivilegesConnection(
            total_count=len(every),
            edges=[PrivilegeEdge(cursor=_cursor(start + i), node=n) for i, n in enumerate(page)],
            nodes=page,
            page_info=_info_page(start, len(page), more),
        )

    @strawberry.field
    async def earnings(self, info: strawberry.Info) -> VehicleEarnings | None:
        """Rewards paid for the vehicle."""
        ctx = _info_ctx(info)
        rows = await ctx.run(lambda c: q.vehicle_rewards(c, self.token_id))
        total = sum(amount for _, amount, _, _ in rows)
        return VehicleEarnings(total_tokens=BigDecimal(_tokens(total)), rows=rows)


def _vehicle(row: q.VehicleRow) -> Vehicle:
    device = None
    if row.device is not None:
        maker = None
        if row.manufacturer_id is not None:
            maker = Manufacturer(token_id=row.manufacturer_id, name=row.manufacturer_name or "")
        device = AftermarketDevice(
            token_id=BigInt(str(int(row.device, 16))),
            address=Address(row.device),
            owner=None if row.device_owner is None else Address(row.device_owner),
            paired_at=None if row.device_paired_at is None else Time(_time(row.device_paired_at)),
            manufacturer=maker,
        )
    return Vehicle(
        token_id=row.token_id,
        owner=Address(row.owner),
        minted_ts=row.minted_at,
        definition=Definition(
            id=None if row.make is None else f"{row.make}_{row.model}_{row.year}".lower(),
            make=row.make,
            model=row.model,
            year=row.year,
        ),
        aftermarket_device=device,
    )


def _selects(selections: list[Selection], name: str) -> bool:
    """Whether `selections` (through fragments, whatever their directives) ask for `name`."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name == name:
                return True
        elif _selects(selection.selections, name):
            return True
    return False


@strawberry.type
class VehicleEdge:
    """An edge of a vehicles connection."""

    cursor: str
    node: Vehicle


@strawberry.input
class VehiclesFilter:
    """Filters of `vehicles`: its owner, or a grantee holding a live grant on it."""

    owner: Address | None = None
    privileged: Address | None = None


def _vehicle_edges(root: VehicleConnection) -> list[VehicleEdge]:
    return [VehicleEdge(cursor=_cursor(v.token_id), node=v) for v in root.nodes]


@strawberry.type
class VehicleConnection:
    """A page of vehicles; `totalCount` is counted only when asked for, edges made only then."""

    edges: list[VehicleEdge] = strawberry.field(resolver=_vehicle_edges)
    nodes: list[Vehicle]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Any]]

    @strawberry.field
    async def total_count(self) -> int:
        """How many vehicles match the filter."""
        return int(await self.count())


@strawberry.type
class UserRewards:
    """Rewards a user was paid."""

    total_tokens: BigDecimal


@strawberry.type
class Query:
    """DIMO's Identity API."""

    @strawberry.field
    async def vehicles(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter_by: VehiclesFilter | None = None,
    ) -> VehicleConnection:
        """Vehicles, newest token id first, optionally filtered by owner or grantee."""
        ctx = _info_ctx(info)
        size, from_end = _page_size(info, first, last)
        owner = filter_by.owner if filter_by else None
        privileged = filter_by.privileged if filter_by else None
        after_id, before_id = _uncursor(after), _uncursor(before)
        wants_total = _selects(info.selected_fields, "totalCount")

        def page_and_total(c: Connection) -> tuple[list[q.VehicleRow], int | None]:
            rows = q.vehicle_page(
                c,
                owner=owner,
                privileged=privileged,
                now_s=ctx.now_s,
                limit=size + 1,
                before_id=before_id,
                after_id=after_id,
                from_end=from_end,
            )
            if after_id is None and before_id is None and len(rows) <= size:
                return rows, len(rows)  # the page holds every match: that is the count
            # Asked for: counted in the same thread and connection as the page.
            total = _count(c) if wants_total else None
            return rows, total

        def _count(c: Connection) -> int:
            return q.vehicle_count(c, owner=owner, privileged=privileged, now_s=ctx.now_s)

        rows, total = await ctx.run(page_and_total)
        more = len(rows) > size
        rows = (rows[1:] if from_end else rows[:size]) if more else rows
        vehicles = [_vehicle(r) for r in rows]
        info_page = PageInfo(
            start_cursor=_cursor(vehicles[0].token_id) if vehicles else None,
            end_cursor=_cursor(vehicles[-1].token_id) if vehicles else None,
            has_previous_page=more if from_end else after is not None,
            has_next_page=before is not None if from_end else more,
        )

        async def count() -> int:
            return total if total is not None else int(await ctx.run(_count))

        return VehicleConnection(nodes=vehicles, page_info=info_page, count=count)

    @strawberry.field
    async def vehicle(self, info: strawberry.Info, token_id: int) -> Vehicle | None:
        """One vehicle by token id (null when there is none)."""
        ctx = _info_ctx(info)
        row = await ctx.run(lambda c: q.vehicle_one(c, token_id, ctx.now_s))
        return None if row is None else _vehicle(row)

    @strawberry.field
    async def rewards(self, info: strawberry.Info, user: Address) -> UserRewards | None:
        """Rewards paid to `user`."""
        ctx = _info_ctx(info)
        total = await ctx.run(lambda c: q.user_rewards_total(c, user))
        return UserRewards(total_tokens=BigDecimal(_tokens(total)))

    @strawberry.field
    def privilege_names(self) -> list[str]:
        """DIMO's privilege names by id (1-based; docs/privileges.md maps them to scopes)."""
        return [name for _, (name, _) in sorted(DIMO_PRIVILEGES.items())]


async def identity_context(request: Request) -> IdentityContext:
    """The context of one GraphQL request, from the app's state (as the REST routes use it):
    the engine in autocommit, as every resolver only reads."""
    state = request.app.state
    return IdentityContext(
        engine=get_read_engine_of(request), settings=state.settings, now_s=int(state.clock())
    )


def identity_schema(
    settings: IndexerSettings,
    executor: type[StrawberryGraphQLCoreExecutionContext] = LeanExecutor,
) -> strawberry.Schema:
    """The Identity API's schema with its limits, run by `executor`: `LeanExecutor` (see
    `indexer.api.graphql.execution`) unless a test compares it with Strawberry's own."""
    scalars: dict[object, Any] = {
        Address: strawberry.scalar(
            name="Address",
            description="A 0x-prefixed 20-byte address (EIP-55 on output)",
            serialize=str,
            parse_value=_parse_address,
        ),
        Time: strawberry.scalar(name="Time", description="An RFC 3339 UTC time"),
        BigInt: strawberry.scalar(
            name="BigInt", description="An unsigned integer too large for Int, in decimal"
        ),
        BigDecimal: strawberry.scalar(name="BigDecimal", description="A decimal number"),
    }
    depth_rule = QueryDepthLimiter(max_depth=settings.graphql_max_depth).validation_rules
    return strawberry.Schema(
        query=Query,
        config=StrawberryConfig(scalar_map=scalars),
        execution_context_class=executor,
        # The SDKs send a few fixed query texts with variables: parse and validate each once.
        # The depth rule is made once, so that every request's extension adds the same rule
        # class and the validation cache (keyed by the rules too) answers a text seen before.
        extensions=[
            lambda: AddValidationRules(depth_rule),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
        ],
    )


def identity_router(settings: IndexerSettings) -> GraphQLRouter[IdentityContext, None]:
    """The Identity API's router: POST (and GraphiQL on GET) at `/query`."""
    # Out of the OpenAPI document: GraphQL describes itself (introspection, GraphiQL on GET).
    return MsgspecGraphQLRouter(
        identity_schema(settings),
        path="/query",
        context_getter=identity_context,
        tags=["dimo-identity"],
        include_in_schema=False,
    )


__all__ = ["IdentityContext", "identity_router", "identity_schema"]
