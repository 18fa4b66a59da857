"""Experiment statistics against scipy / statsmodels, the mSPRT against its
definition and an A/A simulation, and the degenerate inputs."""

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from experiments.statistics import (
    MSPRT_TAU,
    SRM_P_THRESHOLD,
    ArmCounts,
    accuracy_interval,
    difference_interval,
    experiment_statistics,
    msprt,
    msprt_interval,
    sample_ratio_mismatch,
    two_proportion_ztest,
    wilson_interval,
)

TOLERANCE = 1e-9

# (successes, trials) for one proportion.
ONE_SAMPLE = [
    pytest.param(0, 1, id="0-of-1"),
    pytest.param(1, 1, id="1-of-1"),
    pytest.param(0, 10, id="none-of-10"),
    pytest.param(10, 10, id="all-of-10"),
    pytest.param(1, 3, id="1-of-3"),
    pytest.param(7, 20, id="7-of-20"),
    pytest.param(512, 1000, id="512-of-1000"),
    pytest.param(98_765, 1_000_000, id="large"),
    pytest.param(3, 1_000_000, id="rare-large"),
]

# (successes_a, trials_a, successes_b, trials_b): a is the control.
TWO_SAMPLE = [
    pytest.param(3, 7, 5, 9, id="small"),
    pytest.param(1, 1, 0, 3, id="tiny-unequal"),
    pytest.param(0, 10, 10, 10, id="none-vs-all"),
    pytest.param(10, 10, 0, 10, id="all-vs-none"),
    pytest.param(0, 25, 1, 4000, id="zero-vs-rare"),
    pytest.param(120, 1000, 150, 1000, id="medium"),
    pytest.param(100, 1000, 100, 1000, id="equal-rates"),
    pytest.param(49_000, 500_000, 50_500, 510_000, id="large-unequal-n"),
    pytest.param(30, 200, 700, 5000, id="unequal-n"),
]

# Cases where the pooled rate is 0 or 1: statsmodels' z test gives NaN.
POOLED_DEGENERATE = [
    pytest.param(0, 10, 0, 10, id="no-successes"),
    pytest.param(10, 10, 25, 25, id="all-successes"),
]

# Two-sample cases where both observed rates are inside (0, 1) for at least
# one arm, so the variance of the difference is positive.
WITH_VARIANCE = [
    case
    for case in TWO_SAMPLE
    if case.id not in {"tiny-unequal", "none-vs-all", "all-vs-none"}
]

CONFIDENCES = [0.8, 0.95, 0.99]


def close(ours: float, theirs: float) -> bool:
    return abs(ours - float(theirs)) <= TOLERANCE


@pytest.mark.parametrize("confidence", CONFIDENCES)
@pytest.mark.parametrize(("successes", "trials"), ONE_SAMPLE)
def test_wilson_interval_equals_statsmodels(successes, trials, confidence):
    ours = wilson_interval(successes=successes, trials=trials, confidence=confidence)
    theirs = proportion_confint(
        successes, trials, alpha=1 - confidence, method="wilson"
    )
    assert close(ours[0], theirs[0]) and close(ours[1], theirs[1])


@pytest.mark.parametrize(("correct", "labelled"), ONE_SAMPLE)
def test_accuracy_interval_is_the_rate_with_its_wilson_interval(correct, labelled):
    ours = accuracy_interval(correct=correct, labelled=labelled)
    low, high = proportion_confint(correct, labelled, alpha=0.05, method="wilson")
    assert ours.value == correct / labelled
    assert close(ours.low, low) and close(ours.high, high)


@pytest.mark.parametrize("confidence", CONFIDENCES)
@pytest.mark.parametrize(
    ("successes_a", "trials_a", "successes_b", "trials_b"),
    TWO_SAMPLE + POOLED_DEGENERATE,
)
def test_difference_interval_equals_statsmodels_newcomb(
    successes_a, trials_a, successes_b, trials_b, confidence
):
    ours = difference_interval(
        successes_a=successes_a,
        trials_a=trials_a,
        successes_b=successes_b,
        trials_b=trials_b,
        confidence=confidence,
    )
    # statsmodels' difference is its first sample minus its second: b - a.
    low, high = confint_proportions_2indep(
        successes_b,
        trials_b,
        successes_a,
        trials_a,
        method="newcomb",
        compare="diff",
        alpha=1 - confidence,
    )
    assert close(ours.value, successes_b / trials_b - successes_a / trials_a)
    assert close(ours.low, low) and close(ours.high, high)
    assert -1.0 <= ours.low <= ours.value <= ours.high <= 1.0


@pytest.mark.parametrize(
    ("successes_a", "trials_a", "successes_b", "trials_b"), TWO_SAMPLE
)
def test_ztest_equals_statsmodels(successes_a, trials_a, successes_b, trials_b):
    ours = two_proportion_ztest(
        successes_a=successes_a,
        trials_a=trials_a,
        successes_b=successes_b,
        trials_b=trials_b,
    )
    z, p_value = proportions_ztest([successes_b, successes_a], [trials_b, trials_a])
    assert close(ours.statistic, z) and close(ours.p_value, p_value)


def test_ztest_is_positive_when_the_challenger_converts_more():
    result = two_proportion_ztest(
        successes_a=100, trials_a=1000, successes_b=150, trials_b=1000
    )
    assert result.statistic > 0


@pytest.mark.parametrize(
    ("successes_a", "trials_a", "successes_b", "trials_b"), POOLED_DEGENERATE
)
def test_ztest_without_variance_says_no_evidence(
    successes_a, trials_a, successes_b, trials_b
):
    result = two_proportion_ztest(
        successes_a=successes_a,
        trials_a=trials_a,
        successes_b=successes_b,
        trials_b=trials_b,
    )
    assert result == (0.0, 1.0)


@pytest.mark.parametrize(
    ("counts", "weights"),
    [
        pytest.param([5000, 5600], [1, 1], id="50-50-mismatch"),
        pytest.param([5000, 5050], [0.5, 0.5], id="50-50-fine"),
        pytest.param([9, 1], [0.9, 0.1], id="small-90-10"),
        pytest.param([100, 200, 300], [1, 2, 3], id="three-arms-exact"),
        pytest.param([1234, 4321, 999], [0.2, 0.7, 0.1], id="three-arms"),
        pytest.param([0, 7], [0.5, 0.5], id="one-arm-empty"),
    ],
)
def test_srm_equals_scipy_chisquare(counts, weights):
    ours = sample_ratio_mismatch(counts=counts, weights=weights)
    expected = [sum(counts) * w / sum(weights) for w in weights]
    theirs = stats.chisquare(counts, expected)
    assert close(ours.statistic, theirs.statistic)
    assert close(ours.p_value, theirs.pvalue)


def test_srm_leaves_out_a_paused_arm_without_traffic():
    ours = sample_ratio_mismatch(counts=[480, 0, 1520], weights=[0.25, 0, 0.75])
    theirs = stats.chisquare([480, 1520], [500, 1500])
    assert close(ours.statistic, theirs.statistic)
    assert close(ours.p_value, theirs.pvalue)


def test_srm_flags_traffic_to_a_zero_weight_arm():
    assert sample_ratio_mismatch(counts=[500, 3], weights=[1, 0]) == (math.inf, 0.0)


@pytest.mark.parametrize(
    ("control", "challenger", "flagged"),
    [
        pytest.param(5000, 5600, True, id="5000-vs-5600"),
        pytest.param(5000, 5050, False, id="5000-vs-5050"),
    ],
)
def test_srm_threshold_on_a_50_50_experiment(control, challenger, flagged):
    result = sample_ratio_mismatch(counts=[control, challenger], weights=[50, 50])
    assert (result.p_value < SRM_P_THRESHOLD) is flagged


def johari_lambda(*, rate_a, rate_b, n, tau):
    """Λ as written in Johari et al. for n observations per arm and a
    per-pair variance 2σ² = rate_a (1 - rate_a) + rate_b (1 - rate_b)."""
    two_sigma2 = rate_a * (1 - rate_a) + rate_b * (1 - rate_b)
    theta = rate_b - rate_a
    return math.sqrt(two_sigma2 / (two_sigma2 + n * tau**2)) * math.exp(
        n**2 * tau**2 * theta**2 / (2 * two_sigma2 * (two_sigma2 + n * tau**2))
    )


def mixture_lambda(*, difference, variance, tau):
    """Λ from its definition: the likelihood of the observed difference
    averaged over θ ~ N(0, τ²), divided by its likelihood under θ = 0."""
    sd = math.sqrt(variance)
    null = stats.norm.logpdf(difference, 0, sd)

    def integrand(theta):
        # The ratio inside the integral, in logs: either likelihood alone
        # underflows when the evidence is strong.
        ratio = math.exp(stats.norm.logpdf(difference, theta, sd) - null)
        return ratio * stats.norm.pdf(theta, 0, tau)

    # The integrand is a Gaussian in θ around the posterior mean: 12 of its
    # standard deviations either side hold all of it but e^-72.
    peak = difference * tau**2 / (tau**2 + variance)
    width = 12 * math.sqrt(tau**2 * variance / (tau**2 + variance))
    value, _ = integrate.quad(
        integrand, peak - width, peak + width, epsabs=0, epsrel=1e-11, limit=200
    )
    return value


@pytest.mark.parametrize("tau", [0.005, MSPRT_TAU, 0.1])
@pytest.mark.parametrize(
    ("successes_a", "successes_b", "n"),
    [
        pytest.param(10, 14, 100, id="small"),
        pytest.param(100, 140, 1000, id="medium"),
        pytest.param(1000, 1100, 10_000, id="large"),
        pytest.param(0, 3, 50, id="zero-control"),
    ],
)
def test_msprt_equals_johari_closed_form(successes_a, successes_b, n, tau):
    ours = msprt(
        successes_a=successes_a,
        trials_a=n,
        successes_b=successes_b,
        trials_b=n,
        tau=tau,
    )
    theirs = johari_lambda(rate_a=successes_a / n, rate_b=successes_b / n, n=n, tau=tau)
    assert math.isclose(ours.statistic, theirs, rel_tol=1e-9)
    assert close(ours.p_value, min(1.0, 1.0 / theirs))


@pytest.mark.parametrize(
    ("successes_a", "trials_a", "successes_b", "trials_b"), WITH_VARIANCE
)
def test_msprt_equals_the_mixture_integral(
    successes_a, trials_a, successes_b, trials_b
):
    rate_a, rate_b = successes_a / trials_a, successes_b / trials_b
    variance = rate_a * (1 - rate_a) / trials_a + rate_b * (1 - rate_b) / trials_b
    ours = msprt(
        successes_a=successes_a,
        trials_a=trials_a,
        successes_b=successes_b,
        trials_b=trials_b,
    )
    theirs = mixture_lambda(
        difference=rate_b - rate_a, variance=variance, tau=MSPRT_TAU
    )
    assert math.isclose(ours.statistic, theirs, rel_tol=1e-7)


def test_msprt_p_value_is_the_running_minimum():
    # given one experiment's cumulative counts, looked at every 50 events
    rng = np.random.default_rng(7)
    conversions = rng.binomial(50, [0.10, 0.13], size=(60, 2)).cumsum(axis=0)
    # when the p-value of each look is fed into the next
    previous, p_values, inverse_lambdas = 1.0, [], []
    for look, (successes_a, successes_b) in enumerate(conversions.tolist()):
        trials = 50 * (look + 1)
        result = msprt(
            successes_a=successes_a,
            trials_a=trials,
            successes_b=successes_b,
            trials_b=trials,
            previous_p=previous,
        )
        previous = result.p_value
        p_values.append(result.p_value)
        inverse_lambdas.append(1.0 / result.statistic)
    # then it never goes up, and is min(1, 1/Λ) over the looks so far
    assert all(b <= a for a, b in zip(p_values, p_values[1:], strict=False))
    assert p_values == pytest.approx(
        [min(1.0, *inverse_lambdas[: i + 1]) for i in range(len(inverse_lambdas))],
        rel=1e-12,
    )
    assert len(set(p_values)) > 3


@pytest.mark.parametrize("confidence", CONFIDENCES)
@pytest.mark.parametrize(
    ("successes_a", "trials_a", "successes_b", "trials_b"), WITH_VARIANCE
)
def test_msprt_interval_is_where_the_test_would_not_reject(
    successes_a, trials_a, successes_b, trials_b, confidence
):
    # The interval holds the θ0 for which Λ of (d - θ0) stays below
    # 1 / alpha, so at its ends Λ equals 1 / alpha exactly.
    rate_a, rate_b = successes_a / trials_a, successes_b / trials_b
    variance = rate_a * (1 - rate_a) / trials_a + rate_b * (1 - rate_b) / trials_b
    tau2 = MSPRT_TAU**2

    def lam(difference):
        return math.sqrt(variance / (variance + tau2)) * math.exp(
            tau2 * difference**2 / (2 * variance * (variance + tau2))
        )

    ours = msprt_interval(
        successes_a=successes_a,
        trials_a=trials_a,
        successes_b=successes_b,
        trials_b=trials_b,
        confidence=confidence,
    )
    alpha = 1 - confidence
    for end in (ours.low, ours.high):
        if -1.0 < end < 1.0:
            assert math.isclose(lam(ours.value - end), 1 / alpha, rel_tol=1e-9)
    p_value = msprt(
        successes_a=successes_a,
        trials_a=trials_a,
        successes_b=successes_b,
        trials_b=trials_b,
    ).p_value
    assert (ours.low > 0 or ours.high < 0) is (p_value < alpha)


def test_msprt_survives_overwhelming_evidence():
    result = msprt(
        successes_a=10_000, trials_a=1_000_000, successes_b=900_000, trials_b=1_000_000
    )
    assert result == (math.inf, 0.0)


def peeking_false_positive_rates(*, seed, experiments, looks, peek, rate):
    rng = np.random.default_rng(seed)
    shape = (experiments, looks)
    arm_a = rng.binomial(peek, rate, size=shape).cumsum(axis=1)
    arm_b = rng.binomial(peek, rate, size=shape).cumsum(axis=1)
    sequential = naive = 0
    for row_a, row_b in zip(arm_a.tolist(), arm_b.tolist(), strict=True):
        previous, sequential_hit, naive_hit = 1.0, False, False
        for look, (successes_a, successes_b) in enumerate(
            zip(row_a, row_b, strict=True)
        ):
            counts = {
                "successes_a": successes_a,
                "trials_a": peek * (look + 1),
                "successes_b": successes_b,
                "trials_b": peek * (look + 1),
            }
            previous = msprt(**counts, previous_p=previous).p_value
            sequential_hit |= previous < 0.05
            naive_hit |= two_proportion_ztest(**counts).p_value < 0.05
        sequential += sequential_hit
        naive += naive_hit
    return sequential / experiments, naive / experiments


def test_aa_peeking_keeps_msprt_false_positives_under_5_percent():
    # given 200 A/A experiments at 10 %, looked at every 100 events per arm
    # up to 2,000, stopping at the first p < 0.05
    sequential, naive = peeking_false_positive_rates(
        seed=20240601, experiments=200, looks=20, peek=100, rate=0.1
    )
    # then the mSPRT stays within its 5 %, and the naive z test does not
    assert sequential <= 0.05
    assert naive >= 0.15
    assert naive > 3 * sequential


DEGENERATE = [
    pytest.param(0, 0, 0, 0, id="no-trials"),
    pytest.param(0, 0, 3, 10, id="control-without-trials"),
    pytest.param(3, 10, 0, 0, id="challenger-without-trials"),
    pytest.param(0, 10, 0, 10, id="no-successes"),
    pytest.param(10, 10, 10, 10, id="all-successes"),
    pytest.param(0, 1, 1, 1, id="one-trial-each"),
    pytest.param(0, 5, 5, 5, id="zero-vs-all"),
]


def all_finite(values):
    return all(v is None or math.isfinite(v) for v in values)


@pytest.mark.parametrize(
    ("successes_a", "trials_a", "successes_b", "trials_b"), DEGENERATE
)
def test_degenerate_inputs_give_finite_answers(
    successes_a, trials_a, successes_b, trials_b
):
    counts = {
        "successes_a": successes_a,
        "trials_a": trials_a,
        "successes_b": successes_b,
        "trials_b": trials_b,
    }
    assert all_finite(wilson_interval(successes=successes_a, trials=trials_a))
    assert all_finite(accuracy_interval(correct=successes_b, labelled=trials_b))
    assert all_finite(difference_interval(**counts))
    assert all_finite(two_proportion_ztest(**counts))
    assert all_finite(msprt(**counts, previous_p=0.3))
    assert all_finite(msprt_interval(**counts))
    assert all_finite(
        sample_ratio_mismatch(counts=[trials_a, trials_b], weights=[1, 1])
    )


def test_no_data_means_no_evidence():
    counts = {"successes_a": 0, "trials_a": 0, "successes_b": 0, "trials_b": 0}
    assert wilson_interval(successes=0, trials=0) == (0.0, 1.0)
    assert accuracy_interval(correct=0, labelled=0) == (None, 0.0, 1.0)
    assert difference_interval(**counts) == (None, -1.0, 1.0)
    assert two_proportion_ztest(**counts) == (0.0, 1.0)
    assert msprt(**counts, previous_p=0.3) == (1.0, 0.3)
    assert msprt_interval(**counts) == (None, -1.0, 1.0)
    assert sample_ratio_mismatch(counts=[0, 0], weights=[1, 1]) == (0.0, 1.0)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda: wilson_interval(successes=5, trials=4), id="more-successes"
        ),
        pytest.param(lambda: wilson_interval(successes=-1, trials=4), id="negative"),
        pytest.param(
            lambda: wilson_interval(successes=1, trials=4, confidence=1.0),
            id="confidence-1",
        ),
        pytest.param(
            lambda: msprt(
                successes_a=1, trials_a=2, successes_b=1, trials_b=2, tau=0.0
            ),
            id="tau-0",
        ),
        pytest.param(
            lambda: msprt(
                successes_a=1, trials_a=2, successes_b=1, trials_b=2, previous_p=2.0
            ),
            id="previous-p-above-1",
        ),
        pytest.param(
            lambda: sample_ratio_mismatch(counts=[1, 2], weights=[1]),
            id="lengths-differ",
        ),
        pytest.param(
            lambda: sample_ratio_mismatch(counts=[1, 2], weights=[1, -1]),
            id="negative-weight",
        ),
    ],
)
def test_impossible_inputs_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_experiment_statistics_reports_every_arm_against_the_control():
    # given a control, a challenger that was over-served, and a paused arm
    arms = [
        ArmCounts(
            name="v1",
            weight=0.5,
            assigned=5000,
            conversions=500,
            conversion_trials=4800,
            correct=450,
            labelled=500,
        ),
        ArmCounts(
            name="v2",
            weight=0.5,
            assigned=5600,
            conversions=640,
            conversion_trials=5400,
            correct=470,
            labelled=500,
            msprt_previous_p=0.2,
        ),
        ArmCounts(name="v3", weight=0, assigned=0),
    ]
    # when
    report = experiment_statistics(arms=arms)
    # then
    json.dumps(report, allow_nan=False)
    v1, v2, v3 = report["arms"]
    assert report["control"] == "v1"
    assert [v1["share"], v2["share"], v3["share"]] == [5000 / 10600, 5600 / 10600, 0]
    assert [v1["expected_share"], v3["expected_share"]] == [0.5, 0.0]
    assert v1["conversion_rate"] == 500 / 4800
    assert v1["conversion_interval"] == list(
        wilson_interval(successes=500, trials=4800)
    )
    assert v2["accuracy"] == 0.94
    assert v1["versus_control"] is None
    versus = v2["versus_control"]
    counts = {
        "successes_a": 500,
        "trials_a": 4800,
        "successes_b": 640,
        "trials_b": 5400,
    }
    difference = difference_interval(**counts)
    assert versus["conversion_difference"] == difference.value
    assert versus["conversion_difference_interval"] == [
        difference.low,
        difference.high,
    ]
    assert versus["z_p_value"] == two_proportion_ztest(**counts).p_value
    assert versus["msprt_p_value"] == msprt(**counts, previous_p=0.2).p_value
    assert versus["accuracy_difference"] == pytest.approx(0.94 - 0.9)
    # a paused arm has no data: undefined rates are None, not NaN
    assert v3["conversion_rate"] is None and v3["accuracy"] is None
    assert v3["versus_control"]["conversion_difference"] is None
    assert v3["versus_control"]["z_p_value"] == 1.0
    srm = report["sample_ratio_mismatch"]
    assert srm["flagged"] is True and srm["threshold"] == SRM_P_THRESHOLD
    assert close(srm["chi2"], stats.chisquare([5000, 5600]).statistic)


def test_experiment_statistics_is_json_ready_for_degenerate_experiments():
    reports = [
        experiment_statistics(arms=[]),
        experiment_statistics(
            arms=[
                ArmCounts(name="a", weight=1, assigned=0),
                ArmCounts(name="b", weight=0, assigned=0),
            ]
        ),
        # a paused arm that still received traffic: chi2 is infinite
        experiment_statistics(
            arms=[
                ArmCounts(name="a", weight=1, assigned=10, conversion_trials=10),
                ArmCounts(name="b", weight=0, assigned=2, conversion_trials=2),
            ]
        ),
    ]
    for report in reports:
        json.dumps(report, allow_nan=False)
    assert reports[0]["control"] is None and reports[0]["arms"] == []
    assert reports[1]["sample_ratio_mismatch"]["flagged"] is False
    srm = reports[2]["sample_ratio_mismatch"]
    assert srm["chi2"] is None and srm["p_value"] == 0.0 and srm["flagged"]
