"""Identity and rights: vehicles, devices, pairings, manufacturers, grants, products, licences.

Everything here is public chain data, so anonymous callers may read it; only
`GET /vehicles?readable_by_me=true` needs a signed-in caller. Lists are keyset paginated
(`indexer.api.pagination`). "Now" is the app's clock, so grant and licence expiry follow it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Row, Select, func, select, union

from indexer import schema as s
from indexer.api.allocations import AllocationOut, allocation_out, allocation_query
from indexer.api.deps import (
    INT64_MAX,
    Caller,
    Clock,
    DbConn,
    OptionalCaller,
    Rights,
    VehicleId,
    get_rights_cache,
)
from indexer.api.latest import LatestValuesOut, latest_out
from indexer.api.models import (
    ADDRESS_PATTERN,
    AccessOut,
    DeviceOut,
    GrantOut,
    LicenceOut,
    ManufacturerOut,
    OptInOut,
    PairingOut,
    ProductOut,
    RevenueOut,
    VehicleOut,
    checksum,
    checksum_or_none,
    cid_text,
    privilege_list,
)
from indexer.api.pagination import MAX_LIMIT, Keyset, Page, PageParams, Paging
from indexer.api.problems import problem_responses
from indexer.exceptions import (
    DeviceNotFound,
    PrivilegeMissing,
    ProductNotFound,
    TokenRejected,
    VehicleNotFound,
)
from indexer.queries import known_signals
from indexer.revenue import head_timestamp, streamed_revenue
from indexer.reward_docs import reward_allocations

ProductId = Annotated[int, Path(ge=0, le=INT64_MAX, description="Product id")]
DeviceAddress = Annotated[
    str, Path(pattern=ADDRESS_PATTERN, description="Device address, 0x hex, any case")
]
_TEXT = r"^[^\x00-\x1f]+$"


def _address_query(what: str) -> Any:
    return Query(pattern=ADDRESS_PATTERN, description=f"{what}, 0x hex address, any case")


def _id_query(what: str) -> Any:
    return Query(ge=0, le=INT64_MAX, description=what)


v, m, d = s.vehicles, s.models, s.devices
p, g, o = s.pairings, s.grants, s.opt_ins
mf, pr, lic = s.manufacturers, s.products, s.licences

vehicles = APIRouter(prefix="/vehicles", tags=["vehicles"])
devices = APIRouter(prefix="/devices", tags=["devices"])
manufacturers = APIRouter(prefix="/manufacturers", tags=["devices"])
market = APIRouter(tags=["market"])
rights = APIRouter(prefix="/grants", tags=["rights"])

# --------------------------------------------------------------------------------------------
# Vehicles
# --------------------------------------------------------------------------------------------

VEHICLES = Keyset("vehicles", v.c.id)
PAIRINGS = Keyset("vehicle-pairings", p.c.block_number, p.c.log_index)
VEHICLE_GRANTS = Keyset("vehicle-grants", g.c.grantee)
OPT_INS = Keyset("vehicle-opt-ins", o.c.block_number, o.c.log_index)
REVENUE = Keyset("vehicle-revenue", o.c.product_id)


def _vehicle_query() -> Select[Any]:
    return select(v, m.c.make, m.c.model).select_from(v.join(m, m.c.id == v.c.model_id))


def _vehicle_out(row: Row[Any]) -> VehicleOut:
    return VehicleOut(
        id=row.id,
        owner=checksum(row.owner),
        model_id=row.model_id,
        make=row.make,
        model=row.model,
        year=row.year,
        vin_commitment=row.vin_commitment,
        minter=checksum(row.minter),
        device=checksum_or_none(row.device),
        epoch=row.epoch,
        minted_at=row.minted_at,
        minted_block=row.minted_block,
    )


def _readable_by(caller: str, now: int) -> Any:
    """Ids of the vehicles `caller` (lowercase) may read now: owned, granted or licensed."""
    owned = select(v.c.id).where(v.c.owner == caller)
    granted = (
        select(g.c.vehicle_id)
        .join(v, v.c.id == g.c.vehicle_id)
        .where(g.c.grantee == caller, g.c.expiry > now, g.c.epoch == v.c.epoch)
    )
    licensed = (
        select(o.c.vehicle_id)
        .join(lic, lic.c.product_id == o.c.product_id)
        .where(lic.c.buyer == caller, lic.c.expiry > now, o.c.opted_out_block.is_(None))
    )
    return union(owned, granted, licensed)


def _vehicle_row(conn: Connection, vehicle_id: int) -> Row[Any]:
    row = conn.execute(_vehicle_query().where(v.c.id == vehicle_id)).first()
    if row is None:
        raise VehicleNotFound(vehicle_id)
    return row


@vehicles.get(
    "",
    response_model=Page[VehicleOut],
    summary="List vehicles",
    responses=problem_responses(400, 401),
    # Anonymous callers may list; only readable_by_me=true needs the token (security: or none).
    openapi_extra={"security": [{}]},
)
def list_vehicles(
    conn: DbConn,
    paging: Paging,
    caller: OptionalCaller,
    clock: Clock,
    owner: Annotated[str | None, _address_query("Current owner")] = None,
    make: Annotated[
        str | None,
        Query(min_length=1, max_length=200, pattern=_TEXT, description="Make, any case"),
    ] = None,
    model: Annotated[
        str | None,
        Query(min_length=1, max_length=200, pattern=_TEXT, description="Model, any case"),
    ] = None,
    year: Annotated[int | None, Query(ge=0, le=65_535, description="Model year")] = None,
    readable_by_me: Annotated[
        bool,
        Query(
            description="Only vehicles the signed-in caller may read now: owned, under a live "
            "grant, or opted in to a product the caller holds a live licence of"
        ),
    ] = False,
) -> Page[VehicleOut]:
    """Vehicles by token id, filtered by owner, make, model, year and the caller's rights."""
    query = _vehicle_query()
    if owner is not None:
        query = query.where(v.c.owner == owner.lower())
    if make is not None or model is not None:
        # The catalog is small: find its model ids, then the vehicles by (model_id, year).
        wanted = select(m.c.id)
        if make is not None:
            wanted = wanted.where(func.lower(m.c.make) == make.lower())
        if model is not None:
            wanted = wanted.where(func.lower(m.c.model) == model.lower())
        query = query.where(v.c.model_id.in_(wanted))
    if year is not None:
        query = query.where(v.c.year == year)
    if readable_by_me:
        if caller is None:
            raise TokenRejected(
                "readable_by_me=true lists the vehicles the caller may read, so it needs "
                "`Authorization: Bearer <token>`; sign in with POST /auth/login"
            )
        query = query.where(v.c.id.in_(_readable_by(caller.lower(), int(clock()))))
    rows = conn.execute(VEHICLES.apply(query, paging)).all()
    return VEHICLES.page(rows, paging, _vehicle_out)


@vehicles.get(
    "/{vehicle_id}",
    response_model=VehicleOut,
    summary="One vehicle",
    responses=problem_responses(404),
)
def get_vehicle(conn: DbConn, vehicle_id: VehicleId) -> VehicleOut:
    """The vehicle with its make, model, owner, epoch and paired device."""
    return _vehicle_out(_vehicle_row(conn, vehicle_id))


@vehicles.get(
    "/{vehicle_id}/access/{account}",
    response_model=AccessOut,
    summary="What an account may read of a vehicle",
    responses=problem_responses(404, 422),
)
def get_access(
    conn: DbConn,
    clock: Clock,
    cache: Rights,
    vehicle_id: VehicleId,
    account: Annotated[str, Path(pattern=ADDRESS_PATTERN, description="Account, 0x hex")],
) -> AccessOut:
    """The account's rights on the vehicle now, per privilege, from ownership, grants and
    licences (all public chain facts). The triggers service asks it before each firing."""
    coverage = cache.coverage(conn, vehicle_id, account, int(clock() * 1000))
    return _access_out(vehicle_id, account, coverage)


@market.get(
    "/accounts/{account}/access",
    response_model=list[AccessOut],
    summary="What an account may read of many vehicles",
    tags=["vehicles"],
    responses=problem_responses(422),
)
def get_accesses(
    conn: DbConn,
    clock: Clock,
    cache: Rights,
    account: Annotated[str, Path(pattern=ADDRESS_PATTERN, description="Account, 0x hex")],
    vehicle: Annotated[
        list[Annotated[int, Field(ge=0, le=INT64_MAX)]],
        Query(min_length=1, max_length=1000, description="Vehicle token ids"),
    ],
) -> list[AccessOut]:
    """`GET /vehicles/{id}/access/{account}` for up to 1,000 vehicles at once; a vehicle the
    index does not know is left out, and an id out of range is a 422 problem."""
    now_ms = int(clock() * 1000)
    out = []
    for vehicle_id in dict.fromkeys(vehicle):
        try:
            coverage = cache.coverage(conn, vehicle_id, account, now_ms)
        except VehicleNotFound:
            continue
        out.append(_access_out(vehicle_id, account, coverage))
    return out


def _access_out(vehicle_id: int, account: str, coverage: Any) -> AccessOut:
    return AccessOut(
        vehicle_id=vehicle_id,
        account=checksum(account),
        now_ms=coverage.now_ms,
        is_owner=coverage.is_owner,
        privileges={
            str(p.name): [(a, b) for a, b in spans]
            for p, spans in coverage.by_privilege.items()
            if spans
        },
    )


def _pairing_out(row: Row[Any]) -> PairingOut:
    return PairingOut(
        device=checksum(row.device),
        vehicle_id=row.vehicle_id,
        owner=checksum(row.owner),
        paired_at=row.paired_at,
        paired_block=row.paired_block,
        paired_tx_hash=row.tx_hash,
        unpaired_at=row.unpaired_at,
        unpaired_block=row.unpaired_block,
        unpaired_tx_hash=row.unpaired_tx_hash,
        reason=row.reason,
    )


@vehicles.get(
    "/{vehicle_id}/pairings",
    response_model=Page[PairingOut],
    summary="A vehicle's pairing history",
    responses=problem_responses(400, 404),
)
def vehicle_pairings(conn: DbConn, paging: Paging, vehicle_id: VehicleId) -> Page[PairingOut]:
    """Every device pairing of the vehicle, oldest first, open or ended."""
    _vehicle_row(conn, vehicle_id)
    query = select(p).where(p.c.vehicle_id == vehicle_id)
    rows = conn.execute(PAIRINGS.apply(query, paging)).all()
    return PAIRINGS.page(rows, paging, _pairing_out)


def _grant_out(row: Row[Any], now: int) -> GrantOut:
    return GrantOut(
        vehicle_id=row.vehicle_id,
        grantee=checksum(row.grantee),
        owner=checksum(row.owner),
        scopes=row.scopes,
        privileges=privilege_list(row.scopes),
        expiry=row.expiry,
        epoch=row.epoch,
        live=row.epoch == row.vehicle_epoch and row.expiry > now,
        terms_cid=cid_text(row.terms_cid),
        terms_cid_hex=row.terms_cid,
        granted_at=row.granted_at,
        block_number=row.block_number,
        tx_hash=row.tx_hash,
    )


def _grant_query() -> Select[Any]:
    return select(g, v.c.epoch.label("vehicle_epoch")).join(v, v.c.id == g.c.vehicle_id)


@vehicles.get(
    "/{vehicle_id}/grants",
    response_model=Page[GrantOut],
    summary="A vehicle's live grants",
    responses=problem_responses(400, 404),
)
def vehicle_grants(
    conn: DbConn, paging: Paging, clock: Clock, vehicle_id: VehicleId
) -> Page[GrantOut]:
    """Grants in force now: made in the vehicle's current epoch and not expired, by grantee.

    A transfer of the vehicle starts a new epoch, so it voids every earlier grant.
    """
    vehicle = _vehicle_row(conn, vehicle_id)
    now = int(clock())
    query = _grant_query().where(
        g.c.vehicle_id == vehicle_id, g.c.epoch == vehicle.epoch, g.c.expiry > now
    )
    rows = conn.execute(VEHICLE_GRANTS.apply(query, paging)).all()
    return VEHICLE_GRANTS.page(rows, paging, lambda r: _grant_out(r, now))


def _opt_in_out(row: Row[Any]) -> OptInOut:
    return OptInOut(
        vehicle_id=row.vehicle_id,
        product_id=row.product_id,
        owner=checksum(row.owner),
        opted_in_at=row.opted_in_at,
        opted_in_block=row.block_number,
        opted_out_at=row.opted_out_at,
        opted_out_block=row.opted_out_block,
        opted_out_by=checksum_or_none(row.opted_out_by),
        active=row.opted_out_block is None,
    )


@vehicles.get(
    "/{vehicle_id}/opt-ins",
    response_model=Page[OptInOut],
    summary="A vehicle's data product opt-ins",
    responses=problem_responses(400, 404),
)
def vehicle_opt_ins(
    conn: DbConn,
    paging: Paging,
    vehicle_id: VehicleId,
    active: Annotated[
        bool | None, Query(description="true: only open opt-ins; false: only ended ones")
    ] = None,
) -> Page[OptInOut]:
    """Every opt-in interval of the vehicle, oldest first."""
    _vehicle_row(conn, vehicle_id)
    query = select(o).where(o.c.vehicle_id == vehicle_id)
    if active is not None:
        ended = o.c.opted_out_block.is_not(None)
        query = query.where(~ended if active else ended)
    rows = conn.execute(OPT_INS.apply(query, paging)).all()
    return OPT_INS.page(rows, paging, _opt_in_out)


Position = tuple[int, int]


def _revenue(conn: Connection, vehicle_id: int, product_ids: list[int]) -> dict[int, RevenueOut]:
    """The vehicle's revenue from each of `product_ids`, from the indexed events alone.

    Licence sales stream to the vehicles earning each second (opted in and paired), replayed
    by `indexer.revenue` as of the last indexed block.
    """
    rc = s.revenue_claims
    intervals: dict[int, list[int | None]] = defaultdict(list)
    for row in conn.execute(
        select(o.c.product_id, o.c.opted_out_block).where(
            o.c.vehicle_id == vehicle_id, o.c.product_id.in_(product_ids)
        )
    ):
        intervals[row.product_id].append(row.opted_out_block)
    now = head_timestamp(conn)
    earned: dict[int, int] = defaultdict(int)
    for pid in intervals:
        earned[pid] += streamed_revenue(conn, pid, now).get(vehicle_id, 0)
    # Settlements paid through the market credit the vehicle directly (`SettlementCredited`).
    sc = s.settlement_credits
    for credit in conn.execute(
        select(sc.c.product_id, sc.c.amount).where(
            sc.c.vehicle_id == vehicle_id, sc.c.product_id.in_(product_ids)
        )
    ):
        earned[credit.product_id] += credit.amount
    claimed: dict[int, int] = defaultdict(int)
    last_claim: dict[int, int] = {}
    for paid in conn.execute(
        select(rc.c.product_id, rc.c.amount, rc.c.claimed_at).where(
            rc.c.vehicle_id == vehicle_id, rc.c.product_id.in_(product_ids)
        )
    ):
        claimed[paid.product_id] += paid.amount
        last_claim[paid.product_id] = max(last_claim.get(paid.product_id, 0), paid.claimed_at)
    return {
        pid: RevenueOut(
            product_id=pid,
            opted_in=any(end is None for end in intervals.get(pid, ())),
            earned=str(earned[pid]),
            claimed=str(claimed[pid]),
            claimable=str(earned[pid] - claimed[pid]),
            last_claimed_at=last_claim.get(pid),
        )
        for pid in product_ids
    }


@vehicles.get(
    "/{vehicle_id}/revenue",
    response_model=Page[RevenueOut],
    summary="A vehicle's licence revenue, per product",
    responses=problem_responses(400, 404),
)
def vehicle_revenue(conn: DbConn, paging: Paging, vehicle_id: VehicleId) -> Page[RevenueOut]:
    """Earned, claimed and claimable revenue from each product the vehicle was ever opted in to.

    Revenue belongs to the vehicle: a claim pays its owner at the time of the claim.
    """
    _vehicle_row(conn, vehicle_id)
    query = select(o.c.product_id).where(o.c.vehicle_id == vehicle_id).group_by(o.c.product_id)
    rows, cursor = REVENUE.split(conn.execute(REVENUE.apply(query, paging)).all(), paging)
    revenue = _revenue(conn, vehicle_id, [r.product_id for r in rows])
    return Page(items=[revenue[r.product_id] for r in rows], next_cursor=cursor)


# --------------------------------------------------------------------------------------------
# Devices and manufacturers
# --------------------------------------------------------------------------------------------

DEVICES = Keyset("devices", d.c.address)
MANUFACTURERS = Keyset("manufacturers", mf.c.id)


def _device_query() -> Select[Any]:
    return select(d, mf.c.name.label("manufacturer")).select_from(
        d.outerjoin(mf, mf.c.id == d.c.manufacturer_id)
    )


def _device_out(row: Row[Any]) -> DeviceOut:
    return DeviceOut(
        address=checksum(row.address),
        manufacturer_id=row.manufacturer_id,
        manufacturer=row.manufacturer,
        serial_hash=row.serial_hash,
        owner=checksum(row.owner),
        claimed=row.claimed,
        vehicle_id=row.vehicle_id,
        paired_since=row.paired_since,
        pairings_count=row.pairings_count,
        minted_block=row.minted_block,
    )


@devices.get(
    "",
    response_model=Page[DeviceOut],
    summary="List devices",
    responses=problem_responses(400),
)
def list_devices(
    conn: DbConn,
    paging: Paging,
    owner: Annotated[str | None, _address_query("Current owner")] = None,
    manufacturer_id: Annotated[int | None, _id_query("Manufacturer that minted it")] = None,
    vehicle_id: Annotated[int | None, _id_query("Vehicle it is paired to now")] = None,
) -> Page[DeviceOut]:
    """Devices by address, filtered by owner, manufacturer and paired vehicle."""
    query = _device_query()
    if owner is not None:
        query = query.where(d.c.owner == owner.lower())
    if manufacturer_id is not None:
        query = query.where(d.c.manufacturer_id == manufacturer_id)
    if vehicle_id is not None:
        query = query.where(d.c.vehicle_id == vehicle_id)
    rows = conn.execute(DEVICES.apply(query, paging)).all()
    return DEVICES.page(rows, paging, _device_out)


@devices.get(
    "/{address}",
    response_model=DeviceOut,
    summary="One device",
    responses=problem_responses(404),
)
def get_device(conn: DbConn, address: DeviceAddress) -> DeviceOut:
    """The device with its owner, manufacturer and current pairing."""
    row = conn.execute(_device_query().where(d.c.address == address.lower())).first()
    if row is None:
        raise DeviceNotFound(checksum(address))
    return _device_out(row)


@manufacturers.get(
    "",
    response_model=Page[ManufacturerOut],
    summary="List manufacturers",
    responses=problem_responses(400),
)
def list_manufacturers(conn: DbConn, paging: Paging) -> Page[ManufacturerOut]:
    """Registered device manufacturers and vehicle connections, by id."""
    rows = conn.execute(MANUFACTURERS.apply(select(mf), paging)).all()
    return MANUFACTURERS.page(
        rows,
        paging,
        lambda r: ManufacturerOut(
            id=r.id,
            account=checksum(r.account),
            name=r.name,
            capabilities=r.capabilities,
            active=r.active,
            registered_block=r.registered_block,
        ),
    )


# --------------------------------------------------------------------------------------------
# Data market: products and licences
# --------------------------------------------------------------------------------------------

PRODUCTS = Keyset("products", pr.c.id)
LICENCES = Keyset("licences", lic.c.buyer, lic.c.product_id)


def _products_out(conn: Connection, rows: Sequence[Row[Any]]) -> list[ProductOut]:
    ids = [r.id for r in rows]
    counts: dict[int, int] = {}
    if ids:
        counts = {
            r.product_id: r.n
            for r in conn.execute(
                select(o.c.product_id, func.count().label("n"))
                .where(o.c.product_id.in_(ids), o.c.opted_out_block.is_(None))
                .group_by(o.c.product_id)
            )
        }
    return [
        ProductOut(
            id=r.id,
            curator=checksum(r.curator),
            scopes=r.scopes,
            privileges=privilege_list(r.scopes),
            price_per_period=str(r.price_per_period),
            period_seconds=r.period_seconds,
            terms_cid=cid_text(r.terms_cid),
            terms_cid_hex=r.terms_cid,
            listed_at=r.listed_at,
            vehicles_opted_in=counts.get(r.id, 0),
        )
        for r in rows
    ]


@market.get(
    "/products",
    response_model=Page[ProductOut],
    summary="List data products",
    responses=problem_responses(400),
)
def list_products(
    conn: DbConn,
    paging: Paging,
    curator: Annotated[str | None, _address_query("Curator who listed it")] = None,
) -> Page[ProductOut]:
    """Data products by id, with the number of vehicles opted in now."""
    query = select(pr)
    if curator is not None:
        query = query.where(pr.c.curator == curator.lower())
    rows, cursor = PRODUCTS.split(conn.execute(PRODUCTS.apply(query, paging)).all(), paging)
    return Page(items=_products_out(conn, rows), next_cursor=cursor)


@market.get(
    "/products/{product_id}",
    response_model=ProductOut,
    summary="One data product",
    responses=problem_responses(404),
)
def get_product(conn: DbConn, product_id: ProductId) -> ProductOut:
    """The product: privileges, price, period, terms and vehicles opted in now."""
    row = conn.execute(select(pr).where(pr.c.id == product_id)).first()
    if row is None:
        raise ProductNotFound(product_id)
    return _products_out(conn, [row])[0]


@market.get(
    "/licences",
    response_model=Page[LicenceOut],
    summary="List licences",
    responses=problem_responses(400),
)
def list_licences(
    conn: DbConn,
    paging: Paging,
    clock: Clock,
    buyer: Annotated[str | None, _address_query("Licence holder")] = None,
    product_id: Annotated[int | None, _id_query("The product")] = None,
    active: Annotated[
        bool | None, Query(description="true: only licences not expired now; false: expired")
    ] = None,
) -> Page[LicenceOut]:
    """Licences by buyer and product, filtered by buyer, product and whether they run now."""
    now = int(clock())
    query = select(lic)
    if buyer is not None:
        query = query.where(lic.c.buyer == buyer.lower())
    if product_id is not None:
        query = query.where(lic.c.product_id == product_id)
    if active is not None:
        query = query.where(lic.c.expiry > now if active else lic.c.expiry <= now)
    rows = conn.execute(LICENCES.apply(query, paging)).all()
    return LICENCES.page(
        rows,
        paging,
        lambda r: LicenceOut(
            buyer=checksum(r.buyer),
            product_id=r.product_id,
            expiry=r.expiry,
            active=r.expiry > now,
            first_bought_at=r.first_bought_at,
            periods=r.periods,
            paid=str(r.paid),
        ),
    )


# --------------------------------------------------------------------------------------------
# Grants across vehicles
# --------------------------------------------------------------------------------------------

GRANTS = Keyset("grants", g.c.vehicle_id, g.c.grantee)


@rights.get(
    "",
    response_model=Page[GrantOut],
    summary="List grants",
    responses=problem_responses(400),
)
def list_grants(
    conn: DbConn,
    paging: Paging,
    clock: Clock,
    grantee: Annotated[str | None, _address_query("Who may read")] = None,
    include_void: Annotated[
        bool,
        Query(
            description="Also list grants that are not in force now (expired, or made before "
            "the vehicle's last transfer), with `live` false"
        ),
    ] = False,
) -> Page[GrantOut]:
    """Each vehicle's latest grant to each grantee, by vehicle and grantee; live ones only
    unless `include_void`."""
    now = int(clock())
    query = _grant_query()
    if grantee is not None:
        query = query.where(g.c.grantee == grantee.lower())
    if not include_void:
        query = query.where(g.c.epoch == v.c.epoch, g.c.expiry > now)
    rows = conn.execute(GRANTS.apply(query, paging)).all()
    return GRANTS.page(rows, paging, lambda r: _grant_out(r, now))


# --------------------------------------------------------------------------------------------
# The owner's overview: every vehicle of the signed-in caller with what its card shows
# --------------------------------------------------------------------------------------------

overview = APIRouter(prefix="/overview", tags=["vehicles"])
#: Most vehicles one overview holds (the first by id); an owner with more pages `/vehicles`.
OVERVIEW_MAX_VEHICLES: Final = 100
_ALL = PageParams(None, MAX_LIMIT)


class VehicleOverviewOut(BaseModel):
    """One vehicle of the owner with everything its card shows."""

    vehicle: VehicleOut = Field(description="The vehicle, as `GET /vehicles/{id}` gives it")
    latest: LatestValuesOut = Field(description="As `GET /vehicles/{id}/latest` gives it")
    grants: list[GrantOut] = Field(description="Live grants, as `/vehicles/{id}/grants`")
    opt_ins: list[OptInOut] = Field(description="Open opt-ins, as `/vehicles/{id}/opt-ins`")
    rewards: list[AllocationOut] = Field(description="As `GET /vehicles/{id}/rewards`")
    revenue: list[RevenueOut] = Field(description="As `GET /vehicles/{id}/revenue`")


class OverviewOut(BaseModel):
    """The signed-in owner's vehicles and devices."""

    owner: str = Field(description="The signed-in caller (EIP-55)")
    vehicles: list[VehicleOverviewOut] = Field(
        description=f"The caller's vehicles by id, at most {OVERVIEW_MAX_VEHICLES}"
    )
    more: bool = Field(
        description=f"Whether the caller owns more than {OVERVIEW_MAX_VEHICLES} vehicles"
    )
    devices: list[DeviceOut] = Field(description="The caller's devices, by address")


@overview.get(
    "",
    response_model=OverviewOut,
    summary="Your vehicles, each with its latest values, rights, rewards and revenue",
    responses=problem_responses(401),
)
def get_overview(request: Request, conn: DbConn, caller: Caller, clock: Clock) -> OverviewOut:
    """What an owner's dashboard needs in one request: the signed-in caller's vehicles (at most
    100), each with its latest readable values, live grants, open opt-ins, rewards and licence
    revenue, each as its own route gives it; and the caller's devices."""
    page = list_vehicles(
        conn, PageParams(None, OVERVIEW_MAX_VEHICLES + 1), None, clock, owner=caller
    )
    cache = get_rights_cache(request)
    names = known_signals(conn)
    out = []
    for vehicle in page.items[:OVERVIEW_MAX_VEHICLES]:
        coverage = cache.coverage(conn, vehicle.id, caller, int(clock() * 1000))
        try:
            latest = latest_out(conn, vehicle.id, coverage, names)
        except PrivilegeMissing:  # nothing readable (yet): the card says so
            latest = LatestValuesOut(
                vehicle_id=vehicle.id, at=coverage.now_ms, values=[], withheld=[]
            )
        now = int(clock())
        rewards = conn.execute(
            allocation_query()
            .where(reward_allocations.c.vehicle_id == vehicle.id)
            .order_by(reward_allocations.c.epoch)
        ).all()
        out.append(
            VehicleOverviewOut(
                vehicle=vehicle,
                latest=latest,
                grants=vehicle_grants(conn, _ALL, clock, vehicle.id).items,
                opt_ins=vehicle_opt_ins(conn, _ALL, vehicle.id, active=True).items,
                rewards=[allocation_out(r, now) for r in rewards],
                revenue=vehicle_revenue(conn, _ALL, vehicle.id).items,
            )
        )
    return OverviewOut(
        owner=caller,
        vehicles=out,
        more=len(page.items) > OVERVIEW_MAX_VEHICLES,
        devices=list_devices(conn, _ALL, owner=caller).items,
    )


#: Every identity and rights route, for `app.include_router`.
router = APIRouter()
for _sub in (vehicles, devices, manufacturers, market, rights, overview):
    router.include_router(_sub)
