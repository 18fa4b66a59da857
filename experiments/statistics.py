"""Statistics for A/B experiments: intervals, tests and the sample ratio check.

Plain functions over counts, shared by ``/ab-test/status``, the dashboard
and the guardrails. Nothing here touches the database or Django.

Conventions:

- Arm ``a`` is the control and arm ``b`` the challenger; every difference is
  ``b - a``, so a positive difference means the challenger converts more.
- Rates and differences are fractions (0.12 is 12 %), never percentages.
- Degenerate but legal inputs (no trials yet, every trial a success, a
  pooled rate of 0 or 1) never raise and never return NaN: they give the
  least informative answer (p-value 1, the widest interval). Impossible
  inputs (negative counts, more successes than trials, a confidence outside
  (0, 1)) raise ``ValueError``.

Every fixed-horizon result equals its statsmodels / scipy counterpart to
1e-9 (checked in ``tests/experiments/test_statistics.py``); statsmodels is
only a test dependency.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from scipy import special, stats

# Sample ratio mismatch alarm: a p-value this small means assignment is
# broken, not unlucky. 0.001 is the usual threshold (Fabijan et al., "Diagnosing
# Sample Ratio Mismatch in Online Controlled Experiments", KDD 2019); it is
# strict because the check runs on every look at every experiment.
SRM_P_THRESHOLD = 0.001

# Standard deviation of the normal mixture over the true difference in
# rates (b - a, absolute) that the mSPRT averages over. The test is most
# sensitive to effects of about this size: 0.02 (two percentage points)
# suits conversion rates of a few to tens of percent, where 1-5 point lifts
# are the ones worth acting on. A tau far from the real effect only costs
# samples (roughly log(tau^2 / V) more), never validity.
# See bench/sequential_aa.py for its false-positive rate and power.
MSPRT_TAU = 0.02


class Estimate(NamedTuple):
    """A point estimate with its interval; ``value`` is None when undefined."""

    value: float | None
    low: float
    high: float


class TestResult(NamedTuple):
    """A test statistic and its p-value (in [0, 1])."""

    # pytest would otherwise try to collect this class from test modules
    # that import it.
    __test__ = False

    statistic: float
    p_value: float


def _check_counts(*, successes: int, trials: int) -> None:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(
            f"need 0 <= successes <= trials, got successes={successes}, trials={trials}"
        )


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _z_critical(confidence: float) -> float:
    """The two-sided normal quantile, e.g. 1.959964 for 0.95."""
    # -ndtri(alpha / 2) is what scipy's norm.isf computes, and stays
    # accurate for confidences very close to 1.
    return float(-special.ndtri((1.0 - confidence) / 2.0))


def _two_sided_normal_p(z: float) -> float:
    # 2 * norm.sf(|z|), written with erfc so that it keeps its precision
    # far in the tail.
    return math.erfc(abs(z) / math.sqrt(2.0))


def wilson_interval(
    *, successes: int, trials: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Returns ``(low, high)``, both in [0, 1]. Equals statsmodels'
    ``proportion_confint(successes, trials, alpha=1 - confidence,
    method="wilson")``. With no trials it returns ``(0.0, 1.0)``.
    Raises ``ValueError`` on impossible counts or confidence.
    """
    _check_counts(successes=successes, trials=trials)
    _check_confidence(confidence)
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    crit = _z_critical(confidence)
    crit2 = crit * crit
    denom = 1.0 + crit2 / trials
    center = (rate + crit2 / (2.0 * trials)) / denom
    dist = crit * math.sqrt(rate * (1.0 - rate) / trials + crit2 / (4.0 * trials**2))
    dist /= denom
    return max(0.0, center - dist), min(1.0, center + dist)


def accuracy_interval(
    *, correct: int, labelled: int, confidence: float = 0.95
) -> Estimate:
    """Accuracy (``correct / labelled``) with its Wilson interval.

    ``value`` is None when nothing has been labelled yet, and the interval
    is then ``(0.0, 1.0)``. Raises ``ValueError`` on impossible counts.
    """
    low, high = wilson_interval(
        successes=correct, trials=labelled, confidence=confidence
    )
    value = correct / labelled if labelled else None
    return Estimate(value, low, high)


def difference_interval(
    *,
    successes_a: int,
    trials_a: int,
    successes_b: int,
    trials_b: int,
    confidence: float = 0.95,
) -> Estimate:
    """Difference of two proportions, ``rate_b - rate_a``, with its interval.

    The interval is Newcombe's hybrid score interval (method 10 of
    Newcombe 1998), built from each arm's Wilson interval: unlike the Wald
    interval it keeps close to nominal coverage at small counts and rates
    near 0 or 1, and it never leaves [-1, 1]. It equals statsmodels'
    ``confint_proportions_2indep(successes_b, trials_b, successes_a,
    trials_a, method="newcomb", compare="diff", alpha=1 - confidence)``
    (statsmodels' first sample is our ``b``).

    While either arm has no trials ``value`` is None and the interval is
    ``(-1.0, 1.0)``. Raises ``ValueError`` on impossible counts.
    """
    _check_counts(successes=successes_a, trials=trials_a)
    _check_counts(successes=successes_b, trials=trials_b)
    _check_confidence(confidence)
    if trials_a == 0 or trials_b == 0:
        return Estimate(None, -1.0, 1.0)
    rate_a = successes_a / trials_a
    rate_b = successes_b / trials_b
    low_a, high_a = wilson_interval(
        successes=successes_a, trials=trials_a, confidence=confidence
    )
    low_b, high_b = wilson_interval(
        successes=successes_b, trials=trials_b, confidence=confidence
    )
    difference = rate_b - rate_a
    below = math.hypot(rate_b - low_b, high_a - rate_a)
    above = math.hypot(rate_a - low_a, high_b - rate_b)
    return Estimate(difference, difference - below, difference + above)


def two_proportion_ztest(
    *, successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> TestResult:
    """Two-sided z test of equal proportions, with the pooled variance.

    ``statistic`` is positive when ``b`` converts more. Equals statsmodels'
    ``proportions_ztest([successes_b, successes_a], [trials_b, trials_a])``.

    Valid only at a sample size fixed in advance: looking at it repeatedly
    and stopping at the first p < 0.05 inflates false positives (use
    :func:`msprt` for that). When the test is undefined (an arm without
    trials, or a pooled rate of 0 or 1) it returns ``(0.0, 1.0)``.
    Raises ``ValueError`` on impossible counts.
    """
    _check_counts(successes=successes_a, trials=trials_a)
    _check_counts(successes=successes_b, trials=trials_b)
    if trials_a == 0 or trials_b == 0:
        return TestResult(0.0, 1.0)
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1.0 - pooled) * (1.0 / trials_a + 1.0 / trials_b)
    if variance <= 0.0:
        return TestResult(0.0, 1.0)
    z = (successes_b / trials_b - successes_a / trials_a) / math.sqrt(variance)
    return TestResult(z, _two_sided_normal_p(z))


def sample_ratio_mismatch(
    *, counts: Sequence[int], weights: Sequence[float]
) -> TestResult:
    """Chi-square goodness of fit of assignment counts against arm weights.

    ``counts[i]`` is how many subjects arm ``i`` was assigned and
    ``weights[i]`` its configured traffic weight (any scale; they are
    normalised over the arms tested). Equals ``scipy.stats.chisquare(counts,
    expected)`` with ``expected = total * weight / sum(weights)``. Compare
    the p-value with ``SRM_P_THRESHOLD``.

    The check assumes the weights held for the whole period the counts
    cover; after a weight change, count assignments since the change.

    - An arm with weight 0 and no assignments (a paused or not yet started
      arm) is left out, as if it were not configured.
    - An arm with weight 0 that was assigned subjects anyway is a mismatch
      by definition: the result is ``(inf, 0.0)``.
    - Fewer than two arms left, or no assignments at all: ``(0.0, 1.0)``.

    Raises ``ValueError`` if the sequences differ in length or hold a
    negative count or a negative or non-finite weight.
    """
    if len(counts) != len(weights):
        raise ValueError(
            f"counts and weights differ in length ({len(counts)} vs {len(weights)})"
        )
    for count, weight in zip(counts, weights, strict=True):
        if count < 0 or weight < 0 or not math.isfinite(weight):
            raise ValueError(
                f"need counts >= 0 and finite weights >= 0, got {count}, {weight}"
            )
    arms = [(c, w) for c, w in zip(counts, weights, strict=True) if w > 0 or c > 0]
    if any(w == 0 for _, w in arms):
        return TestResult(math.inf, 0.0)
    total = sum(c for c, _ in arms)
    if len(arms) < 2 or total == 0:
        return TestResult(0.0, 1.0)
    weight_sum = sum(w for _, w in arms)
    chi2 = 0.0
    for count, weight in arms:
        expected = total * weight / weight_sum
        chi2 += (count - expected) ** 2 / expected
    return TestResult(chi2, float(stats.chi2.sf(chi2, len(arms) - 1)))


def _msprt_moments(
    *, successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> tuple[float, float] | None:
    """The difference b - a and its (unpooled) variance, or None if V is 0."""
    _check_counts(successes=successes_a, trials=trials_a)
    _check_counts(successes=successes_b, trials=trials_b)
    if trials_a == 0 or trials_b == 0:
        return None
    rate_a = successes_a / trials_a
    rate_b = successes_b / trials_b
    variance = rate_a * (1.0 - rate_a) / trials_a + rate_b * (1.0 - rate_b) / trials_b
    if variance <= 0.0:
        return None
    return rate_b - rate_a, variance


def _check_tau(tau: float) -> None:
    if not (tau > 0.0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a positive number, got {tau}")


def msprt(
    *,
    successes_a: int,
    trials_a: int,
    successes_b: int,
    trials_b: int,
    tau: float = MSPRT_TAU,
    previous_p: float = 1.0,
) -> TestResult:
    """Mixture sequential probability ratio test of equal proportions.

    The always-valid test of Johari, Pekelis and Walsh ("Always Valid
    Inference", Operations Research 2022): its p-value may be looked at
    after every event and the experiment stopped the first time it falls
    below alpha, and the false-positive rate still stays at most alpha.

    With the observed difference ``d = rate_b - rate_a``, its variance
    ``V = rate_a (1 - rate_a) / trials_a + rate_b (1 - rate_b) / trials_b``
    and a normal mixture N(0, tau^2) over the true difference::

        statistic = sqrt(V / (V + tau^2)) * exp(tau^2 d^2 / (2 V (V + tau^2)))
        p_value = min(previous_p, 1 / statistic, 1)

    Pass the p-value returned at the previous look as ``previous_p`` to
    keep the running minimum, which is the always-valid p-value proper.
    Without it (the default 1.0) the result is still valid at that look,
    only less sharp. ``statistic`` is ``inf`` when it overflows a float.

    While V is 0 (an arm without trials, or both arms at 0 % or 100 %) the
    data say nothing yet: the result is ``(1.0, min(previous_p, 1))``.
    Raises ``ValueError`` on impossible counts or a tau that is not > 0.
    """
    _check_tau(tau)
    if not 0.0 <= previous_p <= 1.0:
        raise ValueError(f"previous_p must be in [0, 1], got {previous_p}")
    moments = _msprt_moments(
        successes_a=successes_a,
        trials_a=trials_a,
        successes_b=successes_b,
        trials_b=trials_b,
    )
    if moments is None:
        return TestResult(1.0, previous_p)
    difference, variance = moments
    tau2 = tau * tau
    # In logs: exp() alone overflows once the evidence is overwhelming.
    log_statistic = 0.5 * math.log(variance / (variance + tau2)) + (
        tau2 * difference**2 / (2.0 * variance * (variance + tau2))
    )
    statistic = math.exp(log_statistic) if log_statistic < 700.0 else math.inf
    return TestResult(statistic, min(previous_p, math.exp(-log_statistic), 1.0))


def msprt_interval(
    *,
    successes_a: int,
    trials_a: int,
    successes_b: int,
    trials_b: int,
    tau: float = MSPRT_TAU,
    confidence: float = 0.95,
) -> Estimate:
    """Always-valid confidence interval for ``rate_b - rate_a``.

    The interval matching :func:`msprt`: it excludes 0 exactly when that
    look's ``1 / statistic`` is below ``1 - confidence``. With ``alpha = 1 -
    confidence``::

        d +/- sqrt(V (V + tau^2) / tau^2 * (ln((V + tau^2) / V) - 2 ln alpha))

    clipped to [-1, 1]. It covers the true difference at every look at
    once with probability ``confidence``, so the intersection of the
    intervals of all looks so far is valid too (and narrower).

    With no trials in an arm ``value`` is None and the interval is
    ``(-1.0, 1.0)``; while V is 0 the interval is ``(-1.0, 1.0)`` around
    the observed difference. Raises ``ValueError`` on impossible counts,
    confidence or tau.
    """
    _check_tau(tau)
    _check_confidence(confidence)
    moments = _msprt_moments(
        successes_a=successes_a,
        trials_a=trials_a,
        successes_b=successes_b,
        trials_b=trials_b,
    )
    if moments is None:
        if trials_a == 0 or trials_b == 0:
            return Estimate(None, -1.0, 1.0)
        return Estimate(successes_b / trials_b - successes_a / trials_a, -1.0, 1.0)
    difference, variance = moments
    tau2 = tau * tau
    alpha = 1.0 - confidence
    half_width = math.sqrt(
        variance
        * (variance + tau2)
        / tau2
        * (math.log((variance + tau2) / variance) - 2.0 * math.log(alpha))
    )
    return Estimate(
        difference,
        max(-1.0, difference - half_width),
        min(1.0, difference + half_width),
    )


@dataclass(frozen=True, kw_only=True)
class ArmCounts:
    """What is known about one arm of an experiment, as plain counts.

    - ``name``: the arm's label (e.g. the model version).
    - ``weight``: its configured traffic weight, any scale (0 = paused).
    - ``assigned``: subjects assigned to it (requests routed), for the
      sample ratio check.
    - ``conversions`` / ``conversion_trials``: successes among the
      assignments whose outcome has been reported.
    - ``correct`` / ``labelled``: correct predictions among those whose
      ground truth has arrived.
    - ``msprt_previous_p``: the mSPRT p-value this arm (versus the control)
      had at the previous look, if the caller keeps it; 1.0 otherwise.
    """

    name: str
    weight: float
    assigned: int
    conversions: int = 0
    conversion_trials: int = 0
    correct: int = 0
    labelled: int = 0
    msprt_previous_p: float = 1.0


def _interval(estimate: Estimate) -> list[float]:
    return [estimate.low, estimate.high]


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def arm_summary(*, arm: ArmCounts, confidence: float = 0.95) -> dict[str, Any]:
    """One arm's counts, conversion rate and accuracy, each with its
    Wilson interval, as a JSON-ready dict (rates None while undefined)."""
    conversion_low, conversion_high = wilson_interval(
        successes=arm.conversions, trials=arm.conversion_trials, confidence=confidence
    )
    accuracy = accuracy_interval(
        correct=arm.correct, labelled=arm.labelled, confidence=confidence
    )
    return {
        "name": arm.name,
        "weight": arm.weight,
        "assigned": arm.assigned,
        "conversions": arm.conversions,
        "conversion_trials": arm.conversion_trials,
        "conversion_rate": (
            arm.conversions / arm.conversion_trials if arm.conversion_trials else None
        ),
        "conversion_interval": [conversion_low, conversion_high],
        "correct": arm.correct,
        "labelled": arm.labelled,
        "accuracy": accuracy.value,
        "accuracy_interval": _interval(accuracy),
    }


def _versus_control(
    *, control: ArmCounts, arm: ArmCounts, confidence: float, tau: float
) -> dict[str, Any]:
    counts = {
        "successes_a": control.conversions,
        "trials_a": control.conversion_trials,
        "successes_b": arm.conversions,
        "trials_b": arm.conversion_trials,
    }
    difference = difference_interval(**counts, confidence=confidence)
    ztest = two_proportion_ztest(**counts)
    sequential = msprt(**counts, tau=tau, previous_p=arm.msprt_previous_p)
    sequential_interval = msprt_interval(**counts, tau=tau, confidence=confidence)
    accuracy = difference_interval(
        successes_a=control.correct,
        trials_a=control.labelled,
        successes_b=arm.correct,
        trials_b=arm.labelled,
        confidence=confidence,
    )
    return {
        "conversion_difference": difference.value,
        "conversion_difference_interval": _interval(difference),
        "z": ztest.statistic,
        "z_p_value": ztest.p_value,
        "msprt_p_value": sequential.p_value,
        "msprt_interval": _interval(sequential_interval),
        "accuracy_difference": accuracy.value,
        "accuracy_difference_interval": _interval(accuracy),
    }


def experiment_statistics(
    *,
    arms: Sequence[ArmCounts],
    confidence: float = 0.95,
    tau: float = MSPRT_TAU,
    srm_threshold: float = SRM_P_THRESHOLD,
) -> dict[str, Any]:
    """Everything the status endpoint, the dashboard and the guardrails
    show about an experiment, as a JSON-ready dict.

    The first arm is the control. Each arm gets :func:`arm_summary` plus
    ``share`` (its fraction of all assignments, None while there are none)
    and ``expected_share`` (its weight's fraction, None if every weight is
    0); every other arm also gets ``versus_control``: the differences in
    conversion rate and accuracy with their Newcombe intervals, the z test,
    and the mSPRT p-value and always-valid interval (the ones to act on
    when the experiment is watched continuously). ``sample_ratio_mismatch``
    holds the chi-square check of assignments against weights and whether
    its p-value is below ``srm_threshold`` (``chi2`` is None when a paused
    arm received traffic).

    Every number is a finite float or None, never NaN or inf. Raises
    ``ValueError`` on impossible counts.
    """
    _check_confidence(confidence)
    _check_tau(tau)
    total_assigned = sum(arm.assigned for arm in arms)
    total_weight = sum(arm.weight for arm in arms)
    summaries = []
    for index, arm in enumerate(arms):
        summary = arm_summary(arm=arm, confidence=confidence)
        summary["share"] = arm.assigned / total_assigned if total_assigned else None
        summary["expected_share"] = arm.weight / total_weight if total_weight else None
        summary["versus_control"] = (
            None
            if index == 0
            else _versus_control(
                control=arms[0], arm=arm, confidence=confidence, tau=tau
            )
        )
        summaries.append(summary)
    srm = sample_ratio_mismatch(
        counts=[arm.assigned for arm in arms], weights=[arm.weight for arm in arms]
    )
    return {
        "control": arms[0].name if arms else None,
        "confidence": confidence,
        "msprt_tau": tau,
        "arms": summaries,
        "sample_ratio_mismatch": {
            "chi2": _finite_or_none(srm.statistic),
            "p_value": srm.p_value,
            "threshold": srm_threshold,
            "flagged": srm.p_value < srm_threshold,
        },
    }
