"""The points formula, streaks, split, caps and tree: hand-computed tables and properties."""

from __future__ import annotations

import random

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.crypto import recover_address
from protocol.eip712 import dimo_domain
from protocol.merkle import process_proof
from protocol.rewards import (
    DEFAULT_INITIAL_CAP,
    HOUR_MS,
    HOURS_PER_EPOCH,
    Activity,
    InvalidActivity,
    InvalidIssuance,
    StreakState,
    advance_streak,
    allocate,
    allocation_tree,
    connection_points,
    epoch_cap,
    hours_in,
    level_of,
    root_digest,
    score,
    split,
)

DIMO = 10**18
ALL_HOURS = (1 << HOURS_PER_EPOCH) - 1
R9 = frozenset(f"Vehicle.S{i}" for i in range(9))

# ---------------------------------------------------------------------------------------------
# Hand-computed tables
# ---------------------------------------------------------------------------------------------

#: (H, C, len(R)) -> floor(6000 * H * C / (168 * len(R))), worked out by hand.
CONNECTION_TABLE = [
    (168, 9, 9, 6000),  # every hour, every signal
    (84, 9, 9, 3000),  # half the hours
    (168, 3, 9, 2000),  # a third of the signals
    (84, 3, 9, 1000),  # both halves: 6000 / 2 / 3
    (100, 7, 9, 2777),  # 4,200,000 / 1,512 = 2,777.7
    (1, 1, 14, 2),  # 6,000 / 2,352 = 2.55
    (1, 1, 22, 1),  # 6,000 / 3,696 = 1.62
    (3, 2, 22, 9),  # 36,000 / 3,696 = 9.74
    (167, 22, 22, 5964),  # 6,000 * 167 / 168 = 5,964.3
    (0, 0, 9, 0),  # nothing
    (168, 0, 9, 0),  # connected, but no signal of its model
    (168, 0, 0, 0),  # a model with no known signal
]


@pytest.mark.parametrize(("hours", "covered", "reportable", "expected"), CONNECTION_TABLE)
def test_connection_points_equal_the_hand_computed_table(
    hours: int, covered: int, reportable: int, expected: int
) -> None:
    assert connection_points(hours, covered, reportable) == expected


@pytest.mark.parametrize(
    ("hours", "covered", "reportable"), [(-1, 0, 1), (169, 0, 1), (1, 3, 2), (1, -1, 2)]
)
def test_connection_points_refuse_impossible_inputs(
    hours: int, covered: int, reportable: int
) -> None:
    with pytest.raises(ValueError, match="outside"):
        connection_points(hours, covered, reportable)


#: (weeks, missed, connected) -> (weeks', missed', streak points if connected), by hand.
STREAK_TABLE = [
    # connected weeks count up, and each level starts at its first week
    ((0, 0), True, (1, 0), 0),
    ((2, 0), True, (3, 0), 0),
    ((3, 0), True, (4, 0), 1000),  # level 2 at 4 weeks
    ((19, 0), True, (20, 0), 1000),
    ((20, 0), True, (21, 0), 2000),  # level 3 at 21 weeks
    ((34, 0), True, (35, 0), 2000),
    ((35, 0), True, (36, 0), 3000),  # level 4 at 36 weeks
    ((80, 0), True, (81, 0), 3000),  # no level past 4
    # one or two missed weeks keep the count; a connected week clears the misses
    ((10, 0), False, (10, 1), 0),
    ((10, 1), False, (10, 2), 0),
    ((10, 2), True, (11, 0), 1000),
    # the third miss in a row drops one level, to the first week of the level below
    ((10, 2), False, (0, 3), 0),  # level 2 -> level 1 (0 weeks)
    ((4, 2), False, (0, 3), 0),  # the first week of level 2 drops too
    ((25, 2), False, (4, 3), 0),  # level 3 -> the start of level 2
    ((21, 2), False, (4, 3), 0),
    ((40, 2), False, (21, 3), 0),  # level 4 -> the start of level 3
    ((36, 2), False, (21, 3), 0),
    ((2, 2), False, (0, 3), 0),  # level 1 stays at 0
    ((0, 2), False, (0, 3), 0),
    # misses keep counting: every third one drops another level
    ((21, 3), False, (21, 4), 0),
    ((21, 5), False, (4, 6), 0),
    ((4, 8), False, (0, 9), 0),
    # reconnecting after a drop starts from the dropped count
    ((4, 3), True, (5, 0), 1000),
    ((0, 3), True, (1, 0), 0),
]


@pytest.mark.parametrize(("before", "connected", "after", "points"), STREAK_TABLE)
def test_every_streak_transition_equals_the_hand_computed_table(
    before: tuple[int, int], connected: bool, after: tuple[int, int], points: int
) -> None:
    state = advance_streak(StreakState(*before), connected)
    assert (state.weeks, state.missed) == after
    result = score(1, Activity(1 if connected else 0, R9, R9), StreakState(*before))
    assert result.streak_after == state
    assert result.streak_points == points


@pytest.mark.parametrize(
    ("weeks", "level", "points"),
    [
        (0, 1, 0),
        (3, 1, 0),
        (4, 2, 1000),
        (20, 2, 1000),
        (21, 3, 2000),
        (35, 3, 2000),
        (36, 4, 3000),
        (1000, 4, 3000),
    ],
)
def test_levels_start_at_4_21_and_36_weeks(weeks: int, level: int, points: int) -> None:
    assert (level_of(weeks).level, level_of(weeks).points) == (level, points)


def test_a_vehicle_connected_every_hour_with_every_signal_at_level_4_scores_9000() -> None:
    result = score(7, Activity(ALL_HOURS, R9 | {"Vehicle.Extra"}, R9), StreakState(40, 1))
    assert (result.hours, result.covered, result.reportable) == (168, 9, 9)
    assert (result.connection_points, result.streak_points, result.points) == (6000, 3000, 9000)
    assert result.streak_after == StreakState(41, 0)


def test_a_disconnected_vehicle_scores_nothing_and_misses_a_week() -> None:
    result = score(7, None, StreakState(40, 2))
    assert (result.connected, result.points, result.streak_points) == (False, 0, 0)
    assert result.streak_after == StreakState(21, 3)


def test_an_hours_mask_past_hour_167_is_refused() -> None:
    with pytest.raises(InvalidActivity, match="hours mask"):
        score(7, Activity(1 << HOURS_PER_EPOCH, R9, R9), StreakState())


#: (window start, window end) in ms from the epoch start -> hours mask, by hand.
HOURS_TABLE = [
    ((0, 10_000), 0b1),
    ((3_599_000, 3_601_000), 0b11),  # across the first hour boundary
    ((0, HOUR_MS), 0b1),  # the end is exclusive
    ((HOUR_MS, HOUR_MS + 1), 0b10),
    ((-10_000, 10_000), 0b1),  # starts before the epoch: only its part inside counts
    ((-10_000, 0), 0),  # wholly before
    ((167 * HOUR_MS + 5, 168 * HOUR_MS + 5), 1 << 167),  # runs past the end
    ((168 * HOUR_MS, 168 * HOUR_MS + 10), 0),  # wholly after
    ((2 * HOUR_MS - 1, 5 * HOUR_MS + 1), 0b111110),
]


@pytest.mark.parametrize(("window", "mask"), HOURS_TABLE)
def test_hours_of_a_window_equal_the_hand_computed_table(
    window: tuple[int, int], mask: int
) -> None:
    epoch_start = 1_700_000_000_000
    assert hours_in(epoch_start + window[0], epoch_start + window[1], epoch_start) == mask


def test_split_is_pro_rata_and_floored_to_the_wei() -> None:
    assert split(100, {1: 1, 2: 2}) == {1: 33, 2: 66}
    assert split(10 * DIMO, {3: 6000, 1: 3000, 2: 1000, 4: 0}) == {
        1: 3 * DIMO,
        2: DIMO,
        3: 6 * DIMO,
    }
    assert split(2, {1: 1, 2: 1, 3: 1}) == {}  # every share floors to 0 wei
    assert split(DIMO, {}) == {}


def test_split_refuses_negative_inputs() -> None:
    with pytest.raises(InvalidIssuance):
        split(-1, {1: 1})
    with pytest.raises(InvalidIssuance):
        split(1, {1: -1})


#: epoch -> cap in wei: 1,105,000 DIMO less 15% every 52 epochs, by hand.
CAP_TABLE = [
    (0, 1_105_000 * DIMO),
    (51, 1_105_000 * DIMO),
    (52, 939_250 * DIMO),
    (103, 939_250 * DIMO),
    (104, 798_362_500 * DIMO // 1000),
    (156, 678_608_125 * DIMO // 1000),
]


@pytest.mark.parametrize(("epoch", "cap"), CAP_TABLE)
def test_epoch_caps_equal_the_hand_computed_table(epoch: int, cap: int) -> None:
    assert epoch_cap(epoch) == cap


def test_a_schedule_without_decay_keeps_the_cap_and_a_full_decay_ends_it() -> None:
    assert epoch_cap(10**6, 5, 0, 1) == 5
    assert epoch_cap(1, 5, 10_000, 1) == 0


@pytest.mark.parametrize(("epoch", "bps", "every"), [(-1, 0, 1), (0, 10_001, 1), (0, 0, 0)])
def test_an_invalid_schedule_is_refused(epoch: int, bps: int, every: int) -> None:
    with pytest.raises(InvalidIssuance):
        epoch_cap(epoch, DEFAULT_INITIAL_CAP, bps, every)


def test_allocation_of_a_small_fleet_equals_the_hand_computed_one() -> None:
    # vehicle 1: every hour, all signals, level 2 (weeks 4 -> 5): 6,000 + 1,000 = 7,000
    # vehicle 2: 84 hours, 3 of 9 signals, new: 1,000 + 0 = 1,000
    # vehicle 3: not connected, streak 10 with two misses: drops to 0, no points
    # vehicle 4: connected one hour with one signal of 14, new: floor(6000/2352) = 2
    r14 = frozenset(f"Vehicle.T{i}" for i in range(14))
    activity = {
        1: Activity(ALL_HOURS, R9, R9),
        2: Activity((1 << 84) - 1, frozenset(sorted(R9)[:3]), R9),
        4: Activity(1 << 100, frozenset(sorted(r14)[:1]), r14),
    }
    before = {1: StreakState(4, 0), 3: StreakState(10, 2)}
    budget = 8_002 * DIMO
    allocation = allocate(9, budget, activity, before)
    assert {v: p.points for v, p in allocation.vehicles.items()} == {1: 7000, 2: 1000, 3: 0, 4: 2}
    assert allocation.total_points == 8002
    assert allocation.amounts == {1: 7000 * DIMO, 2: 1000 * DIMO, 4: 2 * DIMO}
    assert allocation.total == budget
    assert allocation.streaks == {1: StreakState(5, 0), 2: StreakState(1, 0), 4: StreakState(1, 0)}


def test_leaves_are_keccak_of_keccak_of_abi_encoded_epoch_vehicle_amount() -> None:
    tree = allocation_tree(3, {7: 5 * DIMO, 2: DIMO})
    assert tree.values == [(3, 2, DIMO), (3, 7, 5 * DIMO)]
    leaf = keccak(keccak(encode(["uint256", "uint256", "uint256"], [3, 7, 5 * DIMO])))
    assert process_proof(leaf, tree.proof(1)) == tree.root


def test_an_empty_allocation_has_no_tree() -> None:
    assert allocate(0, DIMO, {}, {}).tree is None
    with pytest.raises(InvalidIssuance, match="nothing to post"):
        allocation_tree(0, {})


def test_root_digest_is_what_eth_account_signs_as_rewards_root_typed_data() -> None:
    key = keccak(b"an oracle")
    domain = dimo_domain(31337, "0x" + "ab" * 20)
    message = {"epoch": 5, "root": keccak(b"root"), "total": 123 * DIMO, "cid": b"\x01\x55cid"}
    types = {
        "RewardsRoot": [
            {"name": "epoch", "type": "uint256"},
            {"name": "root", "type": "bytes32"},
            {"name": "total", "type": "uint256"},
            {"name": "cid", "type": "bytes"},
        ]
    }
    signed = Account.sign_typed_data(key, domain.as_dict(), types, message)
    digest = root_digest(domain, 5, message["root"], message["total"], message["cid"])
    assert recover_address(digest, bytes(signed.signature)) == Account.from_key(key).address


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

points_maps = st.dictionaries(st.integers(1, 10**6), st.integers(0, 10**5), min_size=0, max_size=60)


@given(budget=st.integers(0, 10**27), points=points_maps)
def test_split_never_pays_more_than_the_budget_and_loses_under_a_wei_per_vehicle(
    budget: int, points: dict[int, int]
) -> None:
    amounts = split(budget, points)
    total_points = sum(points.values())
    assert sum(amounts.values()) <= budget
    for vehicle, p in points.items():
        expected = budget * p // total_points if total_points else 0
        assert amounts.get(vehicle, 0) == expected
    if total_points:
        assert budget - sum(amounts.values()) < max(1, len([p for p in points.values() if p]))


activities = st.dictionaries(
    st.integers(1, 5000),
    st.builds(
        Activity,
        st.integers(0, ALL_HOURS),
        st.frozensets(st.sampled_from(sorted(R9)), max_size=9),
        st.just(R9),
    ),
    max_size=40,
)
streak_maps = st.dictionaries(
    st.integers(1, 5000),
    st.builds(StreakState, st.integers(0, 60), st.integers(0, 10)),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(epoch=st.integers(0, 600), activity=activities, before=streak_maps)
def test_an_allocation_never_exceeds_the_epochs_cap(
    epoch: int, activity: dict[int, Activity], before: dict[int, StreakState]
) -> None:
    cap = epoch_cap(epoch)
    allocation = allocate(epoch, cap, activity, before)
    assert allocation.total == sum(allocation.amounts.values()) <= cap
    assert all(amount > 0 for amount in allocation.amounts.values())
    assert set(allocation.amounts) <= {v for v, p in allocation.vehicles.items() if p.points}


@settings(max_examples=40, deadline=None)
@given(activity=activities, before=streak_maps, seed=st.integers(0, 2**32))
def test_the_same_inputs_give_the_same_root_whatever_their_order(
    activity: dict[int, Activity], before: dict[int, StreakState], seed: int
) -> None:
    first = allocate(4, 10**24, activity, before)
    shuffled_activity: dict[int, Activity] = {}
    keys = list(activity)
    random.Random(seed).shuffle(keys)
    for k in keys:
        shuffled_activity[k] = activity[k]
    shuffled_before = dict(reversed(list(before.items())))
    again = allocate(4, 10**24, shuffled_activity, shuffled_before)
    assert again.root == first.root
    assert again.amounts == first.amounts
    assert again.streaks == first.streaks


@given(epoch=st.integers(0, 2000))
def test_the_cap_never_rises(epoch: int) -> None:
    assert epoch_cap(epoch + 1) <= epoch_cap(epoch) <= DEFAULT_INITIAL_CAP


@given(
    state=st.builds(StreakState, st.integers(0, 100), st.integers(0, 30)),
    history=st.lists(st.booleans(), max_size=60),
)
def test_a_streak_never_goes_negative_and_a_connected_week_clears_the_misses(
    state: StreakState, history: list[bool]
) -> None:
    for connected in history:
        after = advance_streak(state, connected)
        assert after.weeks >= 0
        if connected:
            assert after == StreakState(state.weeks + 1, 0)
        else:
            assert after.missed == state.missed + 1
            assert level_of(after.weeks).level >= level_of(state.weeks).level - 1
        state = after


@given(start=st.integers(-400 * HOUR_MS, 400 * HOUR_MS), length=st.integers(1, 30 * HOUR_MS))
def test_the_hours_mask_marks_exactly_the_hours_a_window_overlaps(start: int, length: int) -> None:
    expected = 0
    for hour in range(HOURS_PER_EPOCH):
        if start < (hour + 1) * HOUR_MS and start + length > hour * HOUR_MS:
            expected |= 1 << hour
    assert hours_in(start, start + length, 0) == expected
