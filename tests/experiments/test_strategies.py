"""Assignment strategies: random draws, hash layouts, Thompson allocation."""

import json
import random
from itertools import pairwise

import numpy as np
import pytest
from scipy.stats import binom

from experiments.strategies import (
    BUCKETS,
    ArmStats,
    HashAssigner,
    WeightedDraw,
    bandit_simulate,
    bucket_counts,
    bucket_of,
    layout_arm,
    layout_counts,
    layout_initial,
    layout_rebalance,
    layout_validate,
    random_choose,
    thompson_allocation,
)

KEYS = [f"user-{i}" for i in range(1000)]


def assert_within_binomial(*, hits: int, n: int, p: float) -> None:
    low, high = binom.interval(0.999, n, p)
    assert low <= hits <= high, f"{hits}/{n} outside 99.9% interval for p={p}"


def bucket_arms(layout: list[list[int]]) -> list[int]:
    return [layout_arm(layout=layout, bucket=b) for b in range(BUCKETS)]


def moved_buckets(before: list[list[int]], after: list[list[int]]) -> int:
    return sum(
        a != b for a, b in zip(bucket_arms(before), bucket_arms(after), strict=True)
    )


def is_compact(layout: list[list[int]]) -> bool:
    return all(a[2] != b[2] for a, b in pairwise(layout))


# Random draw


def test_weighted_draw_matches_weights():
    # given
    rng = random.Random(1234)
    draw = WeightedDraw([0.7, 0.3])
    # when
    first = sum(draw.choose(rng.random()) == 0 for _ in range(10_000))
    # then
    assert_within_binomial(hits=first, n=10_000, p=0.7)


def test_random_choose_is_reproducible_with_a_seeded_rng():
    picks_a = [random_choose(weights=[1, 1, 2], rng=random.Random(7)) for _ in range(5)]
    rng = random.Random(7)
    picks_b = [random_choose(weights=[1, 1, 2], rng=rng) for _ in range(200)]
    assert len(set(picks_a)) == 1
    assert set(picks_b) == {0, 1, 2}


def test_weighted_draw_never_chooses_zero_weight_arms():
    draw = WeightedDraw([0.0, 1.0, 0.0])
    assert {draw.choose(u) for u in (0.0, 0.5, 0.999999999999, 1.0)} == {1}
    assert WeightedDraw([1.0, 0.0]).choose(0.9999999999999999) == 0


@pytest.mark.parametrize(
    "weights",
    [[], [0, 0], [1, -1], [1, float("nan")], [1, float("inf")]],
    ids=["empty", "all-zero", "negative", "nan", "inf"],
)
def test_weighted_draw_rejects_invalid_weights(weights):
    with pytest.raises(ValueError):
        WeightedDraw(weights)


# Hash-based


def test_bucket_of_is_stable_and_in_range():
    # A fixed value: the bucket must not change across processes or releases,
    # or every running experiment would reshuffle its subjects.
    assert bucket_of(salt="exp-1", key="user-42") == bucket_of(
        salt="exp-1", key="user-42"
    )
    assert bucket_of(salt="exp-1", key="user-42") == 9192
    assert all(0 <= bucket_of(salt="s", key=k) < BUCKETS for k in KEYS)


@pytest.mark.parametrize(
    ("weights", "counts"),
    [
        ([0.5, 0.5], [5000, 5000]),
        ([0.7, 0.3], [7000, 3000]),
        ([1, 1, 1], [3334, 3333, 3333]),
        ([0.6, 0.4, 0.0], [6000, 4000, 0]),
        ([2, 1], [6667, 3333]),
        ([0.1, 0.2, 0.7], [1000, 2000, 7000]),
    ],
    ids=["halves", "70-30", "thirds", "zero-arm", "unnormalised", "float-noise"],
)
def test_bucket_counts_round_to_exactly_all_buckets(weights, counts):
    assert bucket_counts(weights=weights) == counts


def test_hash_assignment_is_sticky_and_matches_weights():
    # given
    assigner = HashAssigner(salt="exp-1", layout=layout_initial(weights=[0.7, 0.3]))
    # when: every key makes five requests
    arms_per_key = {key: {assigner.choose(key) for _ in range(5)} for key in KEYS}
    # then
    assert all(len(arms) == 1 for arms in arms_per_key.values())
    first = sum(arms == {0} for arms in arms_per_key.values())
    assert_within_binomial(hits=first, n=len(KEYS), p=0.7)


def test_hash_assigner_agrees_with_bucket_of_and_layout_arm():
    layout = layout_rebalance(
        layout=layout_initial(weights=[0.5, 0.3, 0.2]), weights=[0.2, 0.3, 0.4, 0.1]
    )
    assigner = HashAssigner(salt="exp-1", layout=layout)
    assert [assigner.choose(k) for k in KEYS] == [
        layout_arm(layout=layout, bucket=bucket_of(salt="exp-1", key=k)) for k in KEYS
    ]


def test_rebalance_50_50_to_60_40_moves_a_tenth():
    # given
    before = layout_initial(weights=[0.5, 0.5])
    # when
    after = layout_rebalance(layout=before, weights=[0.6, 0.4])
    # then
    assert moved_buckets(before, after) == BUCKETS // 10
    assert layout_counts(layout=after) == [6000, 4000]
    old = HashAssigner(salt="exp-1", layout=before)
    new = HashAssigner(salt="exp-1", layout=after)
    moved_keys = sum(old.choose(k) != new.choose(k) for k in KEYS)
    assert 70 <= moved_keys <= 130
    # only arm 1 gave buckets up, so only its subjects can have moved
    assert all(old.choose(k) == 1 for k in KEYS if old.choose(k) != new.choose(k))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]),
        ([0.2, 0.5, 0.3], [0.4, 0.2, 0.4]),
        ([1, 1, 1], [0.5, 0.25, 0.25]),
        ([0.25, 0.25, 0.5], [0.0, 0.6, 0.4]),
    ],
    ids=["swap-ends", "middle-shrinks", "thirds-to-half", "retire-first"],
)
def test_three_arm_rebalance_moves_the_minimum(start, end):
    # given
    before = layout_initial(weights=start)
    old_counts = bucket_counts(weights=start)
    new_counts = bucket_counts(weights=end)
    # when
    after = layout_rebalance(layout=before, weights=end)
    # then
    minimum = sum(max(n - o, 0) for o, n in zip(old_counts, new_counts, strict=True))
    assert moved_buckets(before, after) == minimum
    assert layout_counts(layout=after)[: len(new_counts)] == new_counts
    assert is_compact(after)
    # arms that keep their count keep every bucket
    old_arms, new_arms = bucket_arms(before), bucket_arms(after)
    for arm, (o, n) in enumerate(zip(old_counts, new_counts, strict=True)):
        if o == n:
            owned = [b for b in range(BUCKETS) if old_arms[b] == arm]
            assert all(new_arms[b] == arm for b in owned)


def test_repeated_rebalances_stay_minimal_valid_and_compact():
    rng = random.Random(3)
    layout = layout_initial(weights=[1, 1, 1, 1])
    for _ in range(50):
        weights = [rng.choice([0, 1, 2, 5]) + rng.random() for _ in range(4)]
        old_counts = layout_counts(layout=layout)
        old_counts += [0] * (4 - len(old_counts))
        new = layout_rebalance(layout=layout, weights=weights)
        new_counts = bucket_counts(weights=weights)
        minimum = sum(
            max(n - o, 0) for o, n in zip(old_counts, new_counts, strict=True)
        )
        assert moved_buckets(layout, new) == minimum
        assert layout_validate(layout=new) == new
        assert is_compact(new)
        layout = new


def test_adding_an_arm_takes_only_freed_buckets():
    # given
    before = layout_initial(weights=[0.5, 0.5])
    # when
    after = layout_rebalance(layout=before, weights=[0.4, 0.4, 0.2])
    # then
    assert layout_counts(layout=after) == [4000, 4000, 2000]
    assert moved_buckets(before, after) == 2000
    old_arms, new_arms = bucket_arms(before), bucket_arms(after)
    assert all(n in (o, 2) for o, n in zip(old_arms, new_arms, strict=True))


def test_zero_weight_arm_gets_no_subjects():
    # given
    before = layout_initial(weights=[0.5, 0.3, 0.2])
    # when
    after = layout_rebalance(layout=before, weights=[0.5, 0.5, 0.0])
    assigner = HashAssigner(salt="exp-1", layout=after)
    # then
    assert all(arm != 2 for _, _, arm in after)
    assert {assigner.choose(k) for k in KEYS} == {0, 1}
    assert moved_buckets(before, after) == 2000
    assert layout_initial(weights=[0.0, 1.0]) == [[0, BUCKETS, 1]]


def test_rebalance_refuses_to_drop_an_arm():
    layout = layout_initial(weights=[1, 1, 1])
    with pytest.raises(ValueError, match="weight 0"):
        layout_rebalance(layout=layout, weights=[1, 1])


def test_different_salts_assign_independently():
    # given
    layout = layout_initial(weights=[0.5, 0.5])
    first = HashAssigner(salt="exp-1", layout=layout)
    second = HashAssigner(salt="exp-2", layout=layout)
    # when
    agree = sum(first.choose(k) == second.choose(k) for k in KEYS)
    # then: independent 50/50 assignments agree half the time
    assert_within_binomial(hits=agree, n=len(KEYS), p=0.5)


def test_layout_round_trips_through_json():
    layout = layout_rebalance(
        layout=layout_initial(weights=[0.5, 0.3, 0.2]), weights=[0.2, 0.3, 0.4, 0.1]
    )
    loaded = json.loads(json.dumps(layout))
    assert loaded == layout
    assert layout_validate(layout=loaded) == layout
    original = HashAssigner(salt="exp-1", layout=layout)
    restored = HashAssigner(salt="exp-1", layout=loaded)
    assert [original.choose(k) for k in KEYS] == [restored.choose(k) for k in KEYS]


@pytest.mark.parametrize(
    "layout",
    [
        [[0, 5000, 0], [5001, BUCKETS, 1]],
        [[0, 5000, 0], [4999, BUCKETS, 1]],
        [[0, 5000, 0]],
        [[0, BUCKETS, -1]],
        [[0, 0, 0], [0, BUCKETS, 1]],
        [[0, BUCKETS]],
        [],
    ],
    ids=["gap", "overlap", "short", "negative-arm", "empty-segment", "no-arm", "none"],
)
def test_layout_validate_rejects_broken_layouts(layout):
    with pytest.raises(ValueError):
        layout_validate(layout=layout)
    with pytest.raises(ValueError):
        HashAssigner(salt="exp-1", layout=layout)


# Thompson sampling


def allocate(arms, **kwargs):
    return thompson_allocation(arms=arms, rng=np.random.default_rng(11), **kwargs)


@pytest.mark.parametrize(
    ("n_arms", "floor"),
    [(2, 0.51), (3, 0.34), (2, -0.01)],
    ids=["two-arms-over-half", "three-arms-over-third", "negative"],
)
def test_floor_must_fit_every_arm(n_arms, floor):
    with pytest.raises(ValueError, match="floor"):
        allocate([ArmStats()] * n_arms, floor=floor)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"arms": []},
        {"arms": [ArmStats(paused=True)] * 2},
        {"arms": [ArmStats()] * 2, "draws": 0},
        {"arms": [ArmStats()] * 2, "reward": "clicks"},
        {"arms": [ArmStats(trials=1, successes=2)] * 2},
        {"arms": [ArmStats()] * 2, "error_penalty": -1},
        {"arms": [ArmStats()] * 2, "prior": (0, 1)},
    ],
    ids=[
        "no-arms",
        "all-paused",
        "no-draws",
        "bad-reward",
        "bad-stats",
        "neg-pen",
        "prior",
    ],
)
def test_invalid_allocation_requests_raise(kwargs):
    with pytest.raises(ValueError):
        allocate(**kwargs)


def test_floor_at_its_maximum_gives_equal_shares():
    shares = allocate([ArmStats(trials=100, successes=50), ArmStats()], floor=0.5)
    assert shares == pytest.approx([0.5, 0.5])


def test_paused_arm_gets_nothing():
    # given: the paused arm would otherwise be the clear winner
    arms = [
        ArmStats(trials=1000, successes=50),
        ArmStats(trials=1000, successes=300, paused=True),
        ArmStats(trials=1000, successes=60),
    ]
    # when
    shares = allocate(arms, floor=0.1)
    # then
    assert shares[1] == 0.0
    assert sum(shares) == pytest.approx(1.0)
    assert min(shares[0], shares[2]) >= 0.1


def test_clear_winner_gets_most_traffic_and_the_floor_holds():
    arms = [
        ArmStats(trials=2000, successes=100),
        ArmStats(trials=2000, successes=200),
        ArmStats(trials=2000, successes=90),
    ]
    shares = allocate(arms, floor=0.05)
    assert shares[1] >= 0.85
    assert min(shares) >= 0.05
    assert sum(shares) == pytest.approx(1.0)


def test_no_data_splits_traffic_evenly():
    shares = allocate([ArmStats()] * 4, floor=0.05)
    assert shares == pytest.approx([0.25] * 4, abs=0.02)


def test_error_penalty_lowers_an_erroring_arm():
    # given: identical conversions, arm 1 fails 10% of its requests
    arms = [
        ArmStats(trials=1000, successes=100, requests=1000, errors=0),
        ArmStats(trials=1000, successes=100, requests=1000, errors=100),
    ]
    # when
    neutral = allocate(arms)
    penalised = allocate(arms, error_penalty=1.0)
    # then
    assert neutral[1] == pytest.approx(0.5, abs=0.05)
    assert penalised[1] < 0.15
    assert penalised[1] >= 0.05


def test_latency_penalty_lowers_a_slow_arm():
    arms = [
        ArmStats(trials=1000, successes=100, latency_ms=20.0),
        ArmStats(trials=1000, successes=100, latency_ms=120.0),
    ]
    # 100 ms slower at 0.0005/ms costs five points of conversion rate
    shares = allocate(arms, latency_penalty_per_ms=0.0005)
    assert shares[1] < 0.15


def continuous_stats(rewards):
    rewards = np.asarray(rewards, dtype=float)
    return ArmStats(
        trials=len(rewards),
        reward_sum=float(rewards.sum()),
        reward_sq_sum=float((rewards**2).sum()),
    )


def test_continuous_reward_prefers_the_higher_mean():
    # given: noisy rewards, arm 1's mean is 0.2 higher
    data = np.random.default_rng(5)
    arms = [
        continuous_stats(data.normal(1.0, 0.5, size=500)),
        continuous_stats(data.normal(1.2, 0.5, size=500)),
    ]
    # when
    shares = allocate(arms, reward="continuous")
    # then
    assert shares[1] >= 0.9


def test_continuous_reward_explores_an_arm_without_data():
    # given: arm 1 has no observations yet
    data = np.random.default_rng(5)
    arms = [continuous_stats(data.normal(1.0, 0.5, size=500)), ArmStats()]
    # when
    shares = allocate(arms, reward="continuous", floor=0.0)
    # then: it is neither ignored nor preferred
    assert 0.2 <= shares[1] <= 0.8


def test_continuous_reward_without_spread_splits_evenly():
    arms = [continuous_stats([1.0] * 10), continuous_stats([1.0] * 10)]
    shares = allocate(arms, reward="continuous")
    assert shares == pytest.approx([0.5, 0.5], abs=0.05)


def test_bandit_simulation_sends_most_traffic_to_the_better_arm():
    # given: 5% vs 7% true conversion, an allocation every 500 assignments
    floor = 0.05
    # when
    result = bandit_simulate(
        true_rates=[0.05, 0.07],
        assignments=20_000,
        update_every=500,
        floor=floor,
        seed=2024,
    )
    # then
    assert sum(result.counts) == 20_000
    assert len(result.allocations) == 20_000 // 500 + 1
    assert result.cumulative_share[1] >= 0.70
    assert all(min(allocation) >= floor for allocation in result.allocations)
    assert result.cumulative_share[0] >= floor
    assert result.final_allocation[1] > 0.9
