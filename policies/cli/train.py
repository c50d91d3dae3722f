"""``autopilot train``: train the PPO planner that sets the MPC bidder's plan."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from policies.cli import add_perturb_arguments, seed_arg
from policies.train import TrainConfig, train


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train",
        help="train the PPO planner (ppo-mpc) on simulated markets",
        description="Train a PPO policy that chooses the MPC bidder's plan (ROI risk, "
        "trend tilt, forecast trend) every hour, over presets and randomised markets. Writes the "
        "policy (.safetensors: tensors and settings, docs/security.md), a .json with the config and learning curve beside it, checkpoints, "
        "and TensorBoard logs under runs/.",
    )
    parser.add_argument(
        "--scenario",
        default=defaults.scenario,
        help="mixed (presets + randomised), sampled, or a preset name / TOML "
        f"path (default: {defaults.scenario})",
    )
    parser.add_argument(
        "--timesteps",
        type=int,
        default=defaults.timesteps,
        help=f"environment steps in total (default: {defaults.timesteps})",
    )
    parser.add_argument("--seed", type=seed_arg, default=defaults.seed, help="random seed")
    parser.add_argument("--out", default=defaults.out, help="policy file to write (.safetensors)")
    parser.add_argument(
        "--n-envs",
        type=int,
        default=defaults.n_envs,
        help="parallel environments, one process each (default: 2)",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=defaults.eval_every,
        help="evaluate and checkpoint every N steps (0: never)",
    )
    parser.add_argument(
        "--eval-seeds",
        type=int,
        default=defaults.eval_seeds,
        help=f"evaluation days per preset at each evaluation (default: {defaults.eval_seeds})",
    )
    parser.add_argument(
        "--runs-dir",
        default=defaults.runs_dir,
        help="TensorBoard log folder ('' turns logging off)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint beside --out"
    )
    parser.add_argument(
        "--prior",
        default=defaults.prior,
        help="what the bidder knows before each training campaign: fitted, cold or true, or "
        f"several joined by commas to mix them, e.g. fitted,cold (default: {defaults.prior})",
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=defaults.pool,
        help="draw N campaigns per environment once and replay them, their priors and MPC "
        "alone's baseline cached (default: 0, a fresh campaign every episode)",
    )
    parser.add_argument(
        "--features",
        choices=("all", "base"),
        default=defaults.features,
        help="what the policy observes: all the planner's features, or base, those of "
        f"policies trained before the forecast-error features (default: {defaults.features})",
    )
    add_perturb_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = dataclasses.replace(
        TrainConfig(),
        scenario=args.scenario,
        timesteps=args.timesteps,
        seed=args.seed,
        out=args.out,
        n_envs=args.n_envs,
        eval_every=args.eval_every,
        eval_seeds=args.eval_seeds,
        prior=args.prior,
        pool=args.pool,
        features=args.features,
        perturb=1.0 if args.perturb is None else args.perturb,
        perturb_intervals=None if args.perturb_intervals is None else str(args.perturb_intervals),
        runs_dir=args.runs_dir,
        resume=args.resume,
        progress=not args.no_progress,
    )
    replaced = Path(args.out).exists()
    summary = train(config)
    curve = summary["learning_curve"]
    last = f"; last evaluation {curve[-1]['pct_of_mpc']:.1f}% of MPC alone" if curve else ""
    rounded = ""
    if summary["timesteps"] > config.timesteps:
        rounded = (
            f" ({config.timesteps} asked for, rounded up to whole rollouts of "
            f"{config.n_steps} steps x {config.n_envs} "
            f"environment{'s' if config.n_envs != 1 else ''})"
        )
    print(
        f"trained {summary['timesteps']} steps{rounded} in {summary['wall_s']:.0f} s{last}; "
        f"{'replaced' if replaced else 'wrote'} {args.out}"
    )
    return 0
