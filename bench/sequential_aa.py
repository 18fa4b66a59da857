"""Simulate peeking at A/B experiments: the mSPRT against a naive z test.

Acceptance: in an A/A simulation (fixed seed) peeking every 100 events over
500 experiments, the sequential test's false-positive rate is at most 5 %,
while the naive z test's is visibly higher.

Each simulated experiment has two arms. Every ``--peek`` events per arm
both arms' cumulative conversions are looked at, up to ``--max-events``
per arm, and three policies decide at ``--alpha``:

- mSPRT: ``experiments.statistics.msprt`` with the running-minimum p-value;
  stop at the first look where it is below alpha (always valid).
- naive z: ``two_proportion_ztest`` at every look; stop at the first p
  below alpha (what a dashboard invites, and not valid).
- fixed z: ``two_proportion_ztest`` once, at ``--max-events`` (valid, but
  only if nobody looks before).

In the A/A part both arms convert at ``--rate``, so every stop is a false
positive. In the A/B part the second arm converts at ``--power-rate``, and
the share of experiments stopped is each policy's power (with the median
events per arm at which it stopped). Rates come with 95 % Wilson intervals.

Conversions are drawn per block of ``--peek`` events with numpy (binomial
counts, then cumulative sums), which is the same in distribution as
drawing every event; the tests themselves are the shipped functions,
called once per look. No Django is needed. The last line is
``BENCHJSON {...}`` with every figure.

Usage (from the repository root)::

    .venv/bin/python bench/sequential_aa.py
    .venv/bin/python bench/sequential_aa.py --experiments 500 \\
        --max-events 10000 --peek 100 --rate 0.1 --seed 20240601
"""

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.statistics import (  # noqa: E402
    MSPRT_TAU,
    msprt,
    two_proportion_ztest,
    wilson_interval,
)

POLICIES = ("msprt", "naive_z", "fixed_z")
LABELS = {
    "msprt": "mSPRT, stop at first p < alpha",
    "naive_z": "z test, stop at first p < alpha (naive)",
    "fixed_z": "z test once, at the last look",
}


@dataclass(frozen=True, kw_only=True)
class PolicyResult:
    """How many experiments a policy stopped, and after how many events."""

    stopped: int
    experiments: int
    stop_events: list[int]

    @property
    def rate(self) -> float:
        return self.stopped / self.experiments

    def as_dict(self) -> dict[str, float | int | None]:
        low, high = wilson_interval(successes=self.stopped, trials=self.experiments)
        return {
            "stopped": self.stopped,
            "experiments": self.experiments,
            "rate": self.rate,
            "rate_low": low,
            "rate_high": high,
            "median_stop_events": (
                float(statistics.median(self.stop_events)) if self.stop_events else None
            ),
        }


def simulate(
    *,
    rng: np.random.Generator,
    experiments: int,
    looks: int,
    peek: int,
    rate_a: float,
    rate_b: float,
    alpha: float,
    tau: float,
) -> dict[str, PolicyResult]:
    """Run ``experiments`` two-arm experiments and apply every policy."""
    conversions_a = rng.binomial(peek, rate_a, size=(experiments, looks)).cumsum(1)
    conversions_b = rng.binomial(peek, rate_b, size=(experiments, looks)).cumsum(1)
    stops: dict[str, list[int]] = {policy: [] for policy in POLICIES}
    for row_a, row_b in zip(
        conversions_a.tolist(), conversions_b.tolist(), strict=True
    ):
        previous_p = 1.0
        stopped = {"msprt": False, "naive_z": False}
        for look, (successes_a, successes_b) in enumerate(
            zip(row_a, row_b, strict=True)
        ):
            counts = {
                "successes_a": successes_a,
                "trials_a": (look + 1) * peek,
                "successes_b": successes_b,
                "trials_b": (look + 1) * peek,
            }
            if not stopped["msprt"]:
                previous_p = msprt(**counts, tau=tau, previous_p=previous_p).p_value
                if previous_p < alpha:
                    stopped["msprt"] = True
                    stops["msprt"].append(counts["trials_a"])
            if not stopped["naive_z"] or look == looks - 1:
                p_value = two_proportion_ztest(**counts).p_value
                if p_value < alpha and not stopped["naive_z"]:
                    stopped["naive_z"] = True
                    stops["naive_z"].append(counts["trials_a"])
                if p_value < alpha and look == looks - 1:
                    stops["fixed_z"].append(counts["trials_a"])
    return {
        policy: PolicyResult(
            stopped=len(events), experiments=experiments, stop_events=events
        )
        for policy, events in stops.items()
    }


def report(*, title: str, results: dict[str, PolicyResult], what: str) -> None:
    print(title)
    for policy in POLICIES:
        figures = results[policy].as_dict()
        median = figures["median_stop_events"]
        stopped_at = f", median stop at {median:,.0f} events/arm" if median else ""
        print(
            f"  {LABELS[policy]:<42} {what} {figures['stopped']:>3}/"
            f"{figures['experiments']} = {100 * figures['rate']:5.1f} % "
            f"[95 % CI {100 * figures['rate_low']:4.1f}-"
            f"{100 * figures['rate_high']:4.1f} %]{stopped_at}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument(
        "--max-events", type=int, default=10_000, help="events per arm at the end"
    )
    parser.add_argument("--peek", type=int, default=100, help="events per arm per look")
    parser.add_argument("--rate", type=float, default=0.1, help="A/A conversion rate")
    parser.add_argument(
        "--power-rate",
        type=float,
        default=0.12,
        help="the second arm's rate in the A/B part (0 skips it)",
    )
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--tau", type=float, default=MSPRT_TAU)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    if args.peek <= 0 or args.max_events < args.peek:
        parser.error("need 0 < --peek <= --max-events")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    looks = args.max_events // args.peek
    max_events = looks * args.peek
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(
        f"{args.experiments} experiments, a look every {args.peek} events per arm "
        f"up to {max_events:,} ({looks} looks), alpha {args.alpha}, "
        f"mSPRT tau {args.tau}, seed {args.seed}"
    )
    common = {
        "rng": rng,
        "experiments": args.experiments,
        "looks": looks,
        "peek": args.peek,
        "alpha": args.alpha,
        "tau": args.tau,
    }
    aa = simulate(**common, rate_a=args.rate, rate_b=args.rate)
    report(
        title=f"A/A, both arms at {args.rate:.1%}: false positives",
        results=aa,
        what="rejected",
    )
    result = {
        "args": vars(args),
        "aa": {policy: aa[policy].as_dict() for policy in POLICIES},
    }
    if args.power_rate:
        ab = simulate(**common, rate_a=args.rate, rate_b=args.power_rate)
        report(
            title=(
                f"A/B, {args.rate:.1%} vs {args.power_rate:.1%}: "
                "power (real difference found)"
            ),
            results=ab,
            what="detected",
        )
        result["ab"] = {policy: ab[policy].as_dict() for policy in POLICIES}
    elapsed = time.perf_counter() - started
    result["seconds"] = elapsed
    print(f"runtime: {elapsed:.1f} s")
    verdict = aa["msprt"].rate <= args.alpha and aa["naive_z"].rate > aa["msprt"].rate
    print(
        f"acceptance (mSPRT false positives <= {args.alpha:.0%}, naive z higher): "
        f"{'met' if verdict else 'NOT met'}"
    )
    print("BENCHJSON " + json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
