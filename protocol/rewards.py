"""Rewards: the versioned points formula, streaks, the pro-rata split and the allocation tree.

Everything here is a pure function of its arguments, so anyone who gathers the same public
inputs (anchored batches fetched by CID, chain state) gets the same points, amounts and root.
The formula is versioned: `POINTS_VERSION` names it in every allocation document, and any
change to a constant or a rule below is a new version.

Points of vehicle `v` in epoch `e` (`dimo-points-v1`):

| symbol | definition |
| --- | --- |
| `H` | hours of the epoch (168 one-hour slots from its start) that overlap the window |
| | of at least one valid anchored bundle of `v` |
| `R` | signals `v`'s model can report (the model catalog, `rewards/models.yaml`) |
| `S` | signals present in `v`'s valid anchored bundles of the epoch |
| `C` | `len(S & R)`, the covered signals |
| connected | `H >= MIN_CONNECTED_HOURS` (1) |
| `P_c` | connection points: `floor(6000 * H * C / (168 * len(R)))`; 0 if `R` is empty |
| `(s, m)` | the streak before the epoch: weeks counted, weeks missed in a row |
| `(s', m')` | the streak after it (table below) |
| `P_s` | streak points: the points of the level of `s'` when connected, else 0 |
| `P` | `P_c + P_s` when connected, else 0 |
| amount | `floor(B * P / sum(P))` DIMO wei; `B` is the epoch's cap (`epoch_cap`) |

| streak | rule |
| --- | --- |
| connected | `(s', m') = (s + 1, 0)` |
| not connected | `m' = m + 1`; when `m'` is a multiple of 3, `s'` is the first week of the |
| | level below `s`'s (level 1 stays at 0); otherwise `s' = s` |

| level | weeks `s'` | `P_s` |
| --- | --- | --- |
| 1 | 0-3 | 0 |
| 2 | 4-20 | 1,000 |
| 3 | 21-35 | 2,000 |
| 4 | 36 and more | 3,000 |

A vehicle is identified by its VehicleId token, never by its device: a new device on the
same vehicle keeps the streak. A missed week does not reset the streak; three missed weeks
in a row drop one level (the rule DIMO's rewards-api applies). Vehicles with no points get no
leaf; the rounding dust (less than one wei per vehicle) is never minted.

Worked examples (tests/rewards/test_formula.py holds these and more):

| `H` | `C` | `len(R)` | `P_c` |
| --- | --- | --- | --- |
| 168 | 9 | 9 | 6,000 |
| 84 | 9 | 9 | 3,000 |
| 168 | 3 | 9 | 2,000 |
| 100 | 7 | 9 | floor(4,200,000 / 1,512) = 2,777 |
| 1 | 1 | 14 | floor(6,000 / 2,352) = 2 |

Leaves are `(uint256 epoch, uint256 vehicleId, uint256 amount)` in OpenZeppelin's
StandardMerkleTree (double-hashed, sorted pairs), which `MerkleProof.verify` checks on-chain.
The oracles sign EIP-712 `RewardsRoot(uint256 epoch,bytes32 root,uint256 total,bytes cid)` in
the domain `{DIMO, 1, chainId, Rewards}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from protocol.crypto import keccak256
from protocol.eip712 import Eip712Domain, type_hash
from protocol.exceptions import ProtocolError
from protocol.merkle import StandardMerkleTree

__all__ = [
    "CONNECTION_POINTS",
    "DEFAULT_DECAY_BPS",
    "DEFAULT_DECAY_EPOCHS",
    "DEFAULT_INITIAL_CAP",
    "EPOCH_SECONDS",
    "HOURS_PER_EPOCH",
    "HOUR_MS",
    "LEAF_ENCODING",
    "MIN_CONNECTED_HOURS",
    "MISSES_PER_LEVEL_DROP",
    "POINTS_VERSION",
    "REWARDS_ROOT_TYPE",
    "REWARDS_ROOT_TYPEHASH",
    "STREAK_LEVELS",
    "Activity",
    "EpochAllocation",
    "InvalidActivity",
    "InvalidIssuance",
    "RewardsFormulaError",
    "StreakLevel",
    "StreakState",
    "VehiclePoints",
    "advance_streak",
    "allocate",
    "allocation_tree",
    "connection_points",
    "epoch_cap",
    "hours_in",
    "level_of",
    "root_digest",
    "root_struct_hash",
    "score",
    "split",
]

POINTS_VERSION: Final = "dimo-points-v1"
EPOCH_SECONDS: Final = 7 * 24 * 3600
HOURS_PER_EPOCH: Final = 168
HOUR_MS: Final = 3_600_000
#: Connection points of a week connected every hour with every reportable signal.
CONNECTION_POINTS: Final = 6_000
#: Hours with data that make a week count as connected.
MIN_CONNECTED_HOURS: Final = 1
#: Consecutive missed weeks that drop the streak one level.
MISSES_PER_LEVEL_DROP: Final = 3
#: Issuance defaults, as the Rewards contract's constructor sets them.
DEFAULT_INITIAL_CAP: Final = 1_105_000 * 10**18
DEFAULT_DECAY_BPS: Final = 1_500
DEFAULT_DECAY_EPOCHS: Final = 52
_BPS: Final = 10_000
#: An element of a proof: bytes, or the 0x hex a document or the API carries.
_E = TypeVar("_E")

LEAF_ENCODING: Final = ("uint256", "uint256", "uint256")
REWARDS_ROOT_TYPE: Final = "RewardsRoot(uint256 epoch,bytes32 root,uint256 total,bytes cid)"
REWARDS_ROOT_TYPEHASH: Final = type_hash(REWARDS_ROOT_TYPE)
_UINT256: Final = 2**256


class RewardsFormulaError(ProtocolError):
    """Root of the errors of the rewards formula."""


class InvalidActivity(RewardsFormulaError, ValueError):
    """A vehicle's measured activity is outside what the formula accepts."""

    def __init__(self, vehicle_id: int, reason: str) -> None:
        self.vehicle_id = vehicle_id
        self.reason = reason
        super().__init__(
            f"activity of vehicle {vehicle_id} is invalid: {reason}; activity comes from "
            "`rewards.activity`, hours as a 168-bit mask of the epoch's hours"
        )


class InvalidIssuance(RewardsFormulaError, ValueError):
    """An epoch, budget or issuance schedule outside what the contract accepts."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"invalid issuance input: {reason}; read the cap and schedule from the Rewards "
            "contract (`capOf`, `issuanceSchedule`)"
        )


@dataclass(frozen=True, slots=True)
class StreakLevel:
    """A streak level: reached at `min_weeks` counted weeks, worth `points` a connected week."""

    level: int
    min_weeks: int
    points: int


STREAK_LEVELS: Final = (
    StreakLevel(1, 0, 0),
    StreakLevel(2, 4, 1_000),
    StreakLevel(3, 21, 2_000),
    StreakLevel(4, 36, 3_000),
)


@dataclass(frozen=True, slots=True)
class StreakState:
    """A vehicle's streak after an epoch.

    Attributes:
        weeks: Connected weeks counted (`s`); drops to a level's first week after misses.
        missed: Weeks missed in a row (`m`); 0 after a connected week.
    """

    weeks: int = 0
    missed: int = 0


@dataclass(frozen=True, slots=True)
class Activity:
    """What the epoch's valid anchored bundles show of one vehicle: the formula's inputs.

    Attributes:
        hours: Bit `i` set when hour `i` of the epoch (0..167) overlaps a bundle's window.
        signals: VSS names present in the vehicle's bundles.
        reportable: VSS names the vehicle's model can report.
    """

    hours: int
    signals: frozenset[str]
    reportable: frozenset[str]


@dataclass(frozen=True, slots=True)
class VehiclePoints:
    """One vehicle's points in an epoch, with every intermediate value of the formula."""

    vehicle_id: int
    hours: int
    covered: int
    reportable: int
    connected: bool
    connection_points: int
    streak_before: StreakState
    streak_after: StreakState
    streak_points: int
    points: int


@dataclass(frozen=True)
class EpochAllocation:
    """An epoch's allocation.

    Attributes:
        epoch: The epoch.
        budget: The epoch's cap that was split, in wei.
        total: Sum of the amounts (at most `budget`).
        total_points: Sum of the points.
        vehicles: Points of every vehicle with activity or a streak, by vehicle id.
        amounts: Amount of every vehicle with points, by vehicle id (ascending).
        streaks: Streak state after the epoch of every vehicle with counted weeks.
        tree: The Merkle tree over `(epoch, vehicleId, amount)`, values in vehicle order;
            None when no vehicle has points.
    """

    epoch: int
    budget: int
    total: int
    total_points: int
    vehicles: dict[int, VehiclePoints]
    amounts: dict[int, int]
    streaks: dict[int, StreakState]
    tree: StandardMerkleTree | None

    @property
    def root(self) -> bytes | None:
        """The tree's root, or None for an empty allocation."""
        return None if self.tree is None else self.tree.root


# --------------------------------------------------------------------------------------------
# Formula
# --------------------------------------------------------------------------------------------


def hours_in(window_start_ms: int, window_end_ms: int, epoch_start_ms: int) -> int:
    """The mask of the epoch's hours that the window `[start, end)` overlaps.

    Args:
        window_start_ms: Window start, unix ms.
        window_end_ms: Window end (exclusive), unix ms; after the start.
        epoch_start_ms: The epoch's start, unix ms.

    Returns:
        A mask with bit `i` set for each hour `i` in 0..167 the window overlaps; 0 when the
        window lies outside the epoch.
    """
    first = max((window_start_ms - epoch_start_ms) // HOUR_MS, 0)
    last = min((window_end_ms - 1 - epoch_start_ms) // HOUR_MS, HOURS_PER_EPOCH - 1)
    if window_end_ms <= window_start_ms or last < first:
        return 0
    return ((1 << (last - first + 1)) - 1) << first


def level_of(weeks: int) -> StreakLevel:
    """The streak level reached with `weeks` counted weeks."""
    reached = STREAK_LEVELS[0]
    for level in STREAK_LEVELS:
        if weeks < level.min_weeks:
            break
        reached = level
    return reached


def advance_streak(state: StreakState, connected: bool) -> StreakState:
    """The streak after one more epoch.

    Args:
        state: The streak before the epoch.
        connected: Whether the vehicle was connected in the epoch.

    Returns:
        Connected: one more counted week, no misses. Not connected: one more miss, and
        every `MISSES_PER_LEVEL_DROP`-th miss in a row puts the counted weeks at the first
        week of the level below (level 1 stays at 0).
    """
    if connected:
        return StreakState(state.weeks + 1, 0)
    missed = state.missed + 1
    weeks = state.weeks
    if missed % MISSES_PER_LEVEL_DROP == 0:
        below = max(level_of(weeks).level - 1, 1)
        weeks = STREAK_LEVELS[below - 1].min_weeks
    return StreakState(weeks, missed)


def connection_points(hours: int, covered: int, reportable: int) -> int:
    """`floor(CONNECTION_POINTS * hours * covered / (HOURS_PER_EPOCH * reportable))`.

    Args:
        hours: Connected hours `H`, 0..168.
        covered: Covered signals `C`, 0..`reportable`.
        reportable: Reportable signals `len(R)`; 0 gives 0 points.

    Returns:
        The connection points `P_c`.

    Raises:
        ValueError: an argument is out of range.
    """
    if not 0 <= hours <= HOURS_PER_EPOCH:
        raise ValueError(f"hours {hours} is outside 0..{HOURS_PER_EPOCH}")
    if reportable < 0 or not 0 <= covered <= reportable:
        raise ValueError(f"covered {covered} is outside 0..reportable ({reportable})")
    if reportable == 0:
        return 0
    return CONNECTION_POINTS * hours * covered // (HOURS_PER_EPOCH * reportable)


def score(vehicle_id: int, activity: Activity | None, before: StreakState) -> VehiclePoints:
    """One vehicle's points in an epoch.

    Args:
        vehicle_id: The vehicle.
        activity: Its activity in the epoch, or None if it sent nothing valid.
        before: Its streak before the epoch.

    Returns:
        The points and every intermediate value.

    Raises:
        InvalidActivity: the hours mask has bits past hour 167.
    """
    if activity is None:
        hours = covered = reportable = 0
    else:
        if activity.hours < 0 or activity.hours >> HOURS_PER_EPOCH:
            raise InvalidActivity(vehicle_id, "the hours mask has bits outside 0..167")
        hours = activity.hours.bit_count()
        reportable = len(activity.reportable)
        covered = len(activity.signals & activity.reportable)
    connected = hours >= MIN_CONNECTED_HOURS
    after = advance_streak(before, connected)
    p_c = connection_points(hours, covered, reportable) if connected else 0
    p_s = level_of(after.weeks).points if connected else 0
    return VehiclePoints(
        vehicle_id, hours, covered, reportable, connected, p_c, before, after, p_s, p_c + p_s
    )


def split(budget: int, points: Mapping[int, int]) -> dict[int, int]:
    """Split `budget` pro rata to points, floored to the wei.

    Args:
        budget: What is split, in wei.
        points: Points by vehicle id; vehicles with 0 points get nothing.

    Returns:
        `floor(budget * p / sum(points))` for every vehicle whose amount is above 0, in
        ascending vehicle order. The sum is at most `budget` (short by less than one wei per
        vehicle).

    Raises:
        InvalidIssuance: the budget is negative or points are negative.
    """
    if budget < 0:
        raise InvalidIssuance(f"budget {budget} is negative")
    total = 0
    for vehicle_id, p in points.items():
        if p < 0:
            raise InvalidIssuance(f"vehicle {vehicle_id} has negative points {p}")
        total += p
    if total == 0:
        return {}
    out: dict[int, int] = {}
    for vehicle_id in sorted(points):
        amount = budget * points[vehicle_id] // total
        if amount:
            out[vehicle_id] = amount
    return out


def epoch_cap(
    epoch: int,
    initial_cap: int = DEFAULT_INITIAL_CAP,
    decay_bps: int = DEFAULT_DECAY_BPS,
    decay_epochs: int = DEFAULT_DECAY_EPOCHS,
) -> int:
    """The issuance cap of `epoch`, as the contract's `capOf` computes it.

    `initial_cap`, reduced by `decay_bps` every `decay_epochs` epochs, floored at every step.

    Raises:
        InvalidIssuance: a negative epoch or cap, `decay_bps` above 10,000 or
            `decay_epochs` 0.
    """
    if epoch < 0 or initial_cap < 0 or not 0 <= decay_bps <= _BPS or decay_epochs <= 0:
        raise InvalidIssuance(
            f"epoch {epoch}, initial cap {initial_cap}, decay {decay_bps} bps every "
            f"{decay_epochs} epochs"
        )
    cap = initial_cap
    keep = _BPS - decay_bps
    for _ in range(epoch // decay_epochs):
        if cap == 0 or keep == _BPS:
            break
        cap = cap * keep // _BPS
    return cap


def allocation_tree(epoch: int, amounts: Mapping[int, int]) -> StandardMerkleTree:
    """The tree over `(epoch, vehicleId, amount)`, values in ascending vehicle order.

    Raises:
        InvalidIssuance: no amounts (a tree needs a leaf).
    """
    if not amounts:
        raise InvalidIssuance(f"epoch {epoch} has no amounts; nothing to post")
    values = [(epoch, vehicle_id, amounts[vehicle_id]) for vehicle_id in sorted(amounts)]
    return StandardMerkleTree.of(values, LEAF_ENCODING)


def claim_proof(proof: Sequence[_E], cached_depth: int) -> list[_E]:
    """The part of a whole proof that `Rewards.claim` needs once the epoch's level at
    `cached_depth` is stored on-chain: the proof without its last `cached_depth` elements,
    which lead from that level to the root.

    Raises:
        InvalidIssuance: the proof is shorter than `cached_depth` (no leaf of a tree whose
            level is whole there has one).
    """
    if not 0 <= cached_depth <= len(proof):
        raise InvalidIssuance(
            f"a proof of {len(proof)} elements cannot stop at cached depth {cached_depth}"
        )
    return list(proof[: len(proof) - cached_depth])


def allocate(
    epoch: int,
    budget: int,
    activity: Mapping[int, Activity],
    streaks_before: Mapping[int, StreakState],
) -> EpochAllocation:
    """Points, amounts, streaks and tree of one epoch.

    Args:
        epoch: The epoch.
        budget: Its cap, in wei (what is split).
        activity: Activity of every vehicle with valid anchored bundles in the epoch.
        streaks_before: Streak states after the previous epoch (missing: a fresh streak).

    Returns:
        The allocation. A vehicle's streak is carried when its counted weeks are above 0
        (a state with 0 weeks behaves as a fresh one).

    Raises:
        InvalidActivity: an activity mask is malformed.
        InvalidIssuance: a negative epoch, or the budget or a total past uint256.
    """
    if epoch < 0 or not 0 <= budget < _UINT256:
        raise InvalidIssuance(f"epoch {epoch} with budget {budget}")
    fresh = StreakState()
    vehicles: dict[int, VehiclePoints] = {}
    for vehicle_id in sorted(set(activity) | set(streaks_before)):
        vehicles[vehicle_id] = score(
            vehicle_id, activity.get(vehicle_id), streaks_before.get(vehicle_id, fresh)
        )
    points = {v: p.points for v, p in vehicles.items() if p.points}
    amounts = split(budget, points)
    streaks = {v: p.streak_after for v, p in vehicles.items() if p.streak_after.weeks}
    tree = allocation_tree(epoch, amounts) if amounts else None
    return EpochAllocation(
        epoch=epoch,
        budget=budget,
        total=sum(amounts.values()),
        total_points=sum(points.values()),
        vehicles=vehicles,
        amounts=amounts,
        streaks=streaks,
        tree=tree,
    )


# --------------------------------------------------------------------------------------------
# What the oracles sign
# --------------------------------------------------------------------------------------------


def root_struct_hash(epoch: int, root: bytes, total: int, cid: bytes) -> bytes:
    """`hashStruct(RewardsRoot)` as `Rewards._rootDigest` encodes it.

    Args:
        epoch: The epoch.
        root: The allocation root (32 bytes).
        total: The allocation's total, in wei.
        cid: The allocation document's CID in binary form.
    """
    if len(root) != 32:
        raise ValueError(f"a root is 32 bytes, got {len(root)}")
    return keccak256(
        REWARDS_ROOT_TYPEHASH
        + epoch.to_bytes(32, "big")
        + root
        + total.to_bytes(32, "big")
        + keccak256(cid)
    )


def root_digest(domain: Eip712Domain, epoch: int, root: bytes, total: int, cid: bytes) -> bytes:
    """The EIP-712 digest the oracles sign to post a root (the contract's `rootDigest`).

    Args:
        domain: `{DIMO, 1, chainId, Rewards}`.
        epoch: The epoch.
        root: The allocation root.
        total: The allocation's total, in wei.
        cid: The allocation document's CID in binary form.
    """
    return domain.digest(root_struct_hash(epoch, root, total, cid))
