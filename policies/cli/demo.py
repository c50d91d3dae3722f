"""``autopilot demo``: the autopilot on the built-in default scenario against the baselines."""

from __future__ import annotations

import argparse
from pathlib import Path

from policies.cli import add_prior_argument, evaluate, seed_arg
from policies.strategy import strategy_names

#: The autopilot first, then the baselines and the clairvoyant limit.
DEMO_ORDER = ("ppo-mpc", "mpc", "proportional", "pid", "online-lp", "even", "oracle")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the autopilot on the default scenario against the baselines and oracle",
        description="Runs the autopilot and every baseline on the same simulated days of "
        "a scenario, prints the comparison and writes the pacing / channel / ROI plot.",
    )
    parser.add_argument("--scenario", default="default", help="preset name or TOML path")
    parser.add_argument("--episodes", type=int, default=5, help="simulated days")
    parser.add_argument("--seed", type=seed_arg, default=0, help="seed of the first day")
    parser.add_argument("--plot", type=Path, default=Path("runs/demo.png"), help="plot path")
    add_prior_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    known = strategy_names()
    strategies = ",".join(name for name in DEMO_ORDER if name in known)
    print(
        f"the autopilot against the baselines and the oracle on {args.scenario}, "
        f"{args.episodes} simulated days (prior: {args.prior}); the plot goes to {args.plot}",
        flush=True,
    )
    return evaluate.run_evaluation(
        argparse.Namespace(
            scenario=[args.scenario],
            strategies=strategies,
            episodes=args.episodes,
            seed=args.seed,
            json=None,
            plot=args.plot,
            report=None,
            policy=None,
            no_progress=False,
            prior=args.prior,
            perturb=None,
            perturb_intervals=None,
        )
    )
