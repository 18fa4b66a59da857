"""Performance-weighted allocation: Thompson sampling with a floor.

Computed periodically from rollups (not per request): the result is a list
of traffic shares that the request path turns into a ``WeightedDraw``.

Each arm's share is a floor plus its part of the remaining traffic in
proportion to the Monte Carlo probability that it is the best arm:

    share_i = floor + (1 - n * floor) * P(arm i is best)     (active arms)
    share_i = 0                                              (paused arms)

where n is the number of active (not paused) arms. "Best" compares one
posterior sample of each arm's value, minus penalties:

    value_i = theta_i - error_penalty * error_rate_i
                      - latency_penalty_per_ms * latency_ms_i

``theta_i`` is sampled from the arm's posterior (see ``thompson_allocation``
for the two reward models); ``error_rate_i = errors / requests`` (0 without
requests) and ``latency_ms_i`` are the rollup's point values, not sampled,
so penalties shift an arm's value by a fixed amount in the reward's units
(for conversions: probability points, e.g. error_penalty=1 costs an arm
with 2% errors two points of conversion rate).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["ArmStats", "Reward", "share_apply_floor", "thompson_allocation"]

Reward = Literal["conversion", "continuous"]

# Below this, a pooled variance is treated as "no spread"; see
# _continuous_samples.
_MIN_RELATIVE_VARIANCE = 1e-12


@dataclass(frozen=True, slots=True)
class ArmStats:
    """Accumulated outcomes of one arm, as rollups provide them.

    trials: subjects/requests with an observed outcome (conversion mode) or
        number of reward observations (continuous mode).
    successes: conversions among ``trials`` (conversion mode).
    reward_sum, reward_sq_sum: sum of rewards and of squared rewards over
        ``trials`` observations (continuous mode).
    requests, errors: requests served and how many failed; the error rate
        for the penalty is errors / requests.
    latency_ms: the latency the penalty uses, in milliseconds (the caller
        picks the statistic, e.g. mean or p99; the rule is linear in it).
    paused: set by guardrails; a paused arm gets share 0 and no floor.
    """

    trials: int = 0
    successes: int = 0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0
    requests: int = 0
    errors: int = 0
    latency_ms: float = 0.0
    paused: bool = False

    @property
    def error_rate(self) -> float:
        """errors / requests, or 0.0 when there were no requests."""
        return self.errors / self.requests if self.requests else 0.0


def share_apply_floor(*, p_best: Sequence[float], floor: float) -> list[float]:
    """Return ``floor + (1 - n * floor) * p`` for each of the n values.

    ``p_best`` must sum to 1; the result then sums to 1 and every entry is
    at least ``floor``. Raises ``ValueError`` unless 0 <= n * floor <= 1.
    """
    n = len(p_best)
    if floor < 0 or n * floor > 1 + 1e-12:
        raise ValueError(f"floor must be in [0, 1/{n}], got {floor}")
    rest = max(1 - n * floor, 0.0)
    return [floor + rest * p for p in p_best]


def _conversion_samples(
    arms: Sequence[ArmStats],
    *,
    draws: int,
    rng: np.random.Generator,
    prior: tuple[float, float],
) -> np.ndarray:
    alpha0, beta0 = prior
    if not (alpha0 > 0 and beta0 > 0):
        raise ValueError(f"prior must be two positive numbers, got {prior!r}")
    for arm in arms:
        if not 0 <= arm.successes <= arm.trials:
            raise ValueError(
                f"need 0 <= successes <= trials, got {arm.successes}/{arm.trials}"
            )
    a = np.array([alpha0 + arm.successes for arm in arms], dtype=float)
    b = np.array([beta0 + arm.trials - arm.successes for arm in arms], dtype=float)
    return rng.beta(a, b, size=(draws, len(arms)))


def _continuous_samples(
    arms: Sequence[ArmStats],
    pooled: Sequence[ArmStats],
    *,
    draws: int,
    rng: np.random.Generator,
) -> np.ndarray:
    # Normal likelihood with unknown mean and variance, conjugate
    # Normal-Inverse-Gamma prior (Murphy, "Conjugate Bayesian analysis of
    # the Gaussian distribution", 2007, section 6). The prior is weak and
    # empirical: centred on the mean of all rewards of all arms, worth one
    # observation (kappa0 = 1), with prior expected variance equal to the
    # pooled variance of individual rewards (alpha0 = 2, beta0 = pooled
    # variance). An arm without data therefore samples its mean from a
    # Student t as wide as the rewards themselves (so it gets explored),
    # and an arm with a few identical rewards is not treated as certain.
    # The marginal posterior of the mean is Student t with 2 * alpha_n
    # degrees of freedom, location mu_n, scale sqrt(beta_n / (alpha_n *
    # kappa_n)); that is what is sampled.
    for arm in (*arms, *pooled):
        if arm.trials < 0 or arm.reward_sq_sum < 0:
            raise ValueError("trials and reward_sq_sum must be >= 0")
    total_n = sum(arm.trials for arm in pooled)
    total_sum = sum(arm.reward_sum for arm in pooled)
    total_sq = sum(arm.reward_sq_sum for arm in pooled)
    mu0 = total_sum / total_n if total_n else 0.0
    pooled_var = max(total_sq / total_n - mu0 * mu0, 0.0) if total_n else 0.0
    # With no spread at all (no data, or all rewards equal) every arm looks
    # identical; a tiny variance keeps the samples distinct so ties are
    # broken at random (equal shares) rather than always by arm order.
    pooled_var = max(pooled_var, _MIN_RELATIVE_VARIANCE * (1.0 + mu0 * mu0))
    kappa0, alpha0, beta0 = 1.0, 2.0, pooled_var

    loc = np.empty(len(arms))
    scale = np.empty(len(arms))
    dof = np.empty(len(arms))
    for i, arm in enumerate(arms):
        n = arm.trials
        mean = arm.reward_sum / n if n else 0.0
        # Sum of squared deviations from the arm's own mean, clipped: the
        # sums come from float rollups and can lose a little precision.
        ssd = max(arm.reward_sq_sum - n * mean * mean, 0.0)
        kappa_n = kappa0 + n
        alpha_n = alpha0 + n / 2
        beta_n = beta0 + ssd / 2 + kappa0 * n * (mean - mu0) ** 2 / (2 * kappa_n)
        loc[i] = (kappa0 * mu0 + arm.reward_sum) / kappa_n
        scale[i] = math.sqrt(beta_n / (alpha_n * kappa_n))
        dof[i] = 2 * alpha_n
    return loc + scale * rng.standard_t(dof, size=(draws, len(arms)))


def thompson_allocation(
    *,
    arms: Sequence[ArmStats],
    rng: np.random.Generator,
    floor: float = 0.05,
    draws: int = 10_000,
    reward: Reward = "conversion",
    error_penalty: float = 0.0,
    latency_penalty_per_ms: float = 0.0,
    prior: tuple[float, float] = (1.0, 1.0),
) -> list[float]:
    """Return each arm's traffic share (same order as ``arms``, sums to 1).

    Active arms get ``floor + (1 - n_active * floor) * P(best)``, paused
    arms 0; P(best) is estimated from ``draws`` joint posterior samples (the
    module docstring gives the value and penalty rule).

    Reward models:
      - ``"conversion"``: Beta-Bernoulli; theta ~ Beta(prior[0] +
        successes, prior[1] + trials - successes).
      - ``"continuous"``: theta is the arm's mean reward, sampled from a
        Normal-Inverse-Gamma posterior (unknown variance) built from
        trials, reward_sum and reward_sq_sum with a weak prior centred on
        the pooled rewards of all arms; ``prior`` is not used.

    Raises ``ValueError`` when there are no arms, every arm is paused,
    ``len(arms) * floor > 1`` or floor < 0 (checked against all arms, paused
    or not, so a valid configuration stays valid when guardrails un-pause
    an arm), ``draws < 1``, penalties are negative, ``reward`` is unknown or
    the stats are inconsistent.
    """
    if not arms:
        raise ValueError("at least one arm is required")
    if floor < 0 or len(arms) * floor > 1 + 1e-12:
        raise ValueError(
            f"floor must be in [0, 1/{len(arms)}] for {len(arms)} arms, got {floor}"
        )
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if error_penalty < 0 or latency_penalty_per_ms < 0:
        raise ValueError("penalties must be >= 0")
    active = [i for i, arm in enumerate(arms) if not arm.paused]
    if not active:
        raise ValueError("every arm is paused; there is nothing to allocate to")
    active_arms = [arms[i] for i in active]

    if reward == "conversion":
        samples = _conversion_samples(active_arms, draws=draws, rng=rng, prior=prior)
    elif reward == "continuous":
        samples = _continuous_samples(active_arms, arms, draws=draws, rng=rng)
    else:
        raise ValueError(f"reward must be 'conversion' or 'continuous', got {reward!r}")

    if error_penalty or latency_penalty_per_ms:
        penalty = np.array(
            [
                error_penalty * arm.error_rate + latency_penalty_per_ms * arm.latency_ms
                for arm in active_arms
            ]
        )
        samples = samples - penalty

    wins = np.bincount(samples.argmax(axis=1), minlength=len(active_arms))
    p_best = (wins / draws).tolist()
    floored = share_apply_floor(p_best=p_best, floor=floor)
    shares = [0.0] * len(arms)
    for i, share in zip(active, floored, strict=True):
        shares[i] = share
    return shares
