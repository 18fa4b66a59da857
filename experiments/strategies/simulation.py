"""A seeded simulation of the bandit loop, for tests, benches and reports."""

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bandit import ArmStats, thompson_allocation
from .draw import WeightedDraw

__all__ = ["BanditSimulation", "bandit_simulate"]


@dataclass(frozen=True, slots=True)
class BanditSimulation:
    """Outcome of ``bandit_simulate``.

    counts: assignments per arm.
    successes: conversions per arm.
    allocations: every allocation computed, in order: the one computed
        before any data (used for the first batch), one per
        ``update_every`` assignments, and one from all the data at the end
        (which served no traffic).
    """

    counts: list[int]
    successes: list[int]
    allocations: list[list[float]]

    @property
    def cumulative_share(self) -> list[float]:
        """Fraction of all assignments that went to each arm."""
        total = sum(self.counts)
        return [count / total for count in self.counts]

    @property
    def final_allocation(self) -> list[float]:
        """The allocation computed from all the data, after the run."""
        return self.allocations[-1]


def bandit_simulate(
    *,
    true_rates: Sequence[float],
    assignments: int,
    update_every: int,
    floor: float,
    seed: int,
    draws: int = 10_000,
) -> BanditSimulation:
    """Simulate Thompson allocation against Bernoulli arms.

    Each assignment draws an arm from the current allocation (a
    ``WeightedDraw``, as the request path does) and a conversion with that
    arm's true rate, observed at once. Every ``update_every`` assignments
    the allocation is recomputed from the accumulated successes/trials, as
    a rollup would, and once more at the end. Deterministic for a given
    ``seed``.
    """
    if assignments < 1 or update_every < 1:
        raise ValueError("assignments and update_every must be >= 1")
    requests = random.Random(seed)
    posterior_rng = np.random.default_rng(seed)
    n = len(true_rates)
    counts = [0] * n
    successes = [0] * n

    def allocate() -> list[float]:
        arms = [
            ArmStats(trials=c, successes=s)
            for c, s in zip(counts, successes, strict=True)
        ]
        return thompson_allocation(
            arms=arms, floor=floor, draws=draws, rng=posterior_rng
        )

    allocations = [allocate()]
    draw = WeightedDraw(allocations[-1])
    for done in range(1, assignments + 1):
        arm = draw.choose(requests.random())
        counts[arm] += 1
        if requests.random() < true_rates[arm]:
            successes[arm] += 1
        if done % update_every == 0 or done == assignments:
            allocations.append(allocate())
            draw = WeightedDraw(allocations[-1])
    return BanditSimulation(counts=counts, successes=successes, allocations=allocations)
