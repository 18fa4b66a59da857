"""Pure assignment strategies for A/B experiments (no ORM, no I/O).

- ``draw``: random assignment, an independent weighted draw per request.
- ``hashing``: deterministic assignment of a subject key via bucket layouts.
- ``bandit``: Thompson-sampling allocation from accumulated outcomes.
- ``simulation``: a seeded run of the bandit loop for tests and reports.
"""

from .bandit import ArmStats, Reward, share_apply_floor, thompson_allocation
from .draw import WeightedDraw, random_choose, weights_validate
from .hashing import (
    BUCKETS,
    HashAssigner,
    Layout,
    bucket_counts,
    bucket_of,
    layout_arm,
    layout_counts,
    layout_initial,
    layout_rebalance,
    layout_validate,
)
from .simulation import BanditSimulation, bandit_simulate

__all__ = [
    "BUCKETS",
    "ArmStats",
    "BanditSimulation",
    "HashAssigner",
    "Layout",
    "Reward",
    "WeightedDraw",
    "bandit_simulate",
    "bucket_counts",
    "bucket_of",
    "layout_arm",
    "layout_counts",
    "layout_initial",
    "layout_rebalance",
    "layout_validate",
    "random_choose",
    "share_apply_floor",
    "thompson_allocation",
    "weights_validate",
]
