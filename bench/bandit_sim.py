"""The weighted (Thompson sampling) strategy on simulated traffic.

Acceptance: true conversion 5 % against 7 %; after 20,000 assignments at
least 70 % of traffic has gone to the better arm, and the floor holds.

Runs ``experiments.strategies.bandit_simulate`` (the request path's
weighted draw, the allocation recomputed every ``--update-every``
assignments as a rollup would) over ``--seeds`` seeds and prints the
distribution of the better arm's cumulative share, the worse arm's least
allocation ever computed (the floor), and the final allocation. No Django
is needed. The last line is ``BENCHJSON {...}``.

    .venv/bin/python bench/bandit_sim.py [--seeds 50] [--update-every 500]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.strategies import bandit_simulate  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--assignments", type=int, default=20_000)
    parser.add_argument("--update-every", type=int, default=500)
    parser.add_argument("--floor", type=float, default=0.05)
    parser.add_argument("--rates", default="0.05,0.07")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    better = rates.index(max(rates))
    started = time.perf_counter()
    shares, floors, finals = [], [], []
    for seed in range(args.seeds):
        run = bandit_simulate(
            true_rates=rates,
            assignments=args.assignments,
            update_every=args.update_every,
            floor=args.floor,
            seed=seed,
        )
        shares.append(run.cumulative_share[better])
        floors.append(min(min(a) for a in run.allocations))
        finals.append(run.final_allocation[better])
    seconds = time.perf_counter() - started
    ordered = sorted(shares)
    summary = {
        "args": vars(args),
        "better_share_min": ordered[0],
        "better_share_p10": ordered[len(ordered) // 10],
        "better_share_median": statistics.median(ordered),
        "better_share_max": ordered[-1],
        "runs_below_70pct": sum(s < 0.7 for s in shares),
        "least_allocation": min(floors),
        "final_allocation_median": statistics.median(finals),
        "seconds": seconds,
    }
    print(
        f"{args.seeds} seeds, rates {rates}, {args.assignments:,} assignments, "
        f"allocation every {args.update_every}, floor {args.floor:g}"
    )
    print(
        f"better arm's cumulative share: min {summary['better_share_min']:.3f}, "
        f"p10 {summary['better_share_p10']:.3f}, median "
        f"{summary['better_share_median']:.3f}, max {summary['better_share_max']:.3f}; "
        f"runs below 70 %: {summary['runs_below_70pct']}"
    )
    print(
        f"least share any allocation gave an arm: {summary['least_allocation']:.4f} "
        f"(floor {args.floor:g}); final allocation to the better arm, median "
        f"{summary['final_allocation_median']:.3f}"
    )
    print(f"runtime {seconds:.1f} s")
    print("BENCHJSON " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
