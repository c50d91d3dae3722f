"""``autopilot demo``: the autopilot on the built-in default scenario."""

from __future__ import annotations

import argparse

import numpy as np

from policies.evaluate import run_episode
from policies.strategy import make_strategy


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a simulated day of the default scenario and print its figures"
    )
    parser.add_argument("--scenario", default="default", help="preset name or TOML path")
    parser.add_argument("--strategy", default="even", help="strategy to run")
    parser.add_argument("--seed", type=int, default=0, help="market seed")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = run_episode(make_strategy(args.strategy), args.scenario, args.seed)
    trace = result.trace
    print(f"scenario {result.scenario}, strategy {result.strategy}, seed {result.seed}")
    print(f"{'hour':>4} {'spend':>10} {'gmv':>11} {'roi':>6} {'cum. spend':>11}")
    cumulative = np.cumsum(trace["spend"].sum(axis=1))
    for t, hour in enumerate(result.hour_of_day):
        spend, gmv = trace["spend"][t].sum(), trace["gmv"][t].sum()
        roi = gmv / spend if spend > 0 else 0.0
        print(f"{hour:>4} {spend:>10,.0f} {gmv:>11,.0f} {roi:>6.2f} {cumulative[t]:>11,.0f}")
    print(f"budget {result.budget:,.0f}  spend {result.spend:,.0f}  GMV {result.gmv:,.0f}  "
          f"ROI {result.roi:.2f} (target {result.roi_target:g})  score {result.score:,.0f}")
    return 0
