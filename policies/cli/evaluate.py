"""``autopilot evaluate``: strategies side by side on the same seeds, with the oracle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from envs.errors import InputError
from envs.io import OutputSet, check_output_path, check_outputs_distinct, new_run_id
from envs.market_env import resolve_scenario
from envs.presets import PRESETS
from policies.cli import add_prior_argument, seed_arg
from policies.evaluate import check_horizons, evaluate_many, format_table
from policies.strategy import strategy_names

DEFAULT_STRATEGIES = "even,proportional,pid,online-lp,mpc,oracle"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compare strategies on scenarios (common random numbers)",
        description="Run every strategy on every scenario over the same seeds and report "
        "score, GMV, spend, ROI, budget and ROI violations and the percentage of the "
        "clairvoyant oracle's score.",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        default=None,
        metavar="S",
        help="preset name or TOML path; repeat for several (default: default)",
    )
    parser.add_argument(
        "--strategies",
        "--strategy",
        default=DEFAULT_STRATEGIES,
        help=f"comma-separated strategy names (default: {DEFAULT_STRATEGIES})",
    )
    parser.add_argument("--episodes", type=int, default=10, help="episodes per scenario")
    parser.add_argument("--seed", type=seed_arg, default=0, help="seed of the first episode")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument(
        "--plot", type=Path, default=None, help="write a PNG (one per scenario when several)"
    )
    parser.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="ppo-mpc policy (.safetensors) for the ppo-mpc strategy",
    )
    add_prior_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def parse_strategies(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InputError("--strategies is empty; give comma-separated names such as mpc,pid")
    known = strategy_names()
    for name in names:
        if name not in known:
            raise InputError(
                f"unknown strategy {name!r} in --strategies; use any of {', '.join(known)}"
            )
    return names


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise InputError(f"--episodes {args.episodes}: give at least 1 episode")
    strategies = parse_strategies(args.strategies)
    scenarios = args.scenario or ["default"]
    scenario_objects = [resolve_scenario(s) for s in scenarios]  # fail fast on a bad file
    check_horizons(scenario_objects)
    plots = _plot_paths(args.plot, [sc.name for sc in scenario_objects]) if args.plot else []
    from policies.plots import plot_format

    formats = [plot_format(path) for path in plots]  # refuse .jpeg and the like before work
    for path in [args.json, *plots]:
        if path is not None:
            check_output_path(path)
    inputs = [s for s in scenarios if s not in PRESETS] + [args.policy]
    check_outputs_distinct(inputs, [args.json, *plots])
    kwargs = {"ppo-mpc": {"path": args.policy}} if args.policy else {}
    report = evaluate_many(
        strategies,
        scenario_objects,
        args.episodes,
        args.seed,
        progress=not args.no_progress,
        strategy_kwargs=kwargs,
        prior=args.prior,
    )
    results = report.pop("_results")
    print(format_table(report))
    # Every output of the run, or none: the JSON and the plots carry one run id.
    run_id = new_run_id()
    outputs = OutputSet()
    if args.json:
        outputs.add_text(args.json, json.dumps({"run_id": run_id} | report, indent=2) + "\n")
    if args.plot:
        from policies.plots import strategy_figure_writer

        for (name, per_strategy), path, fmt in zip(results.items(), plots, formats, strict=True):
            shown = {s: per_strategy[s] for s in strategies}
            title = f"{name} (prior: {args.prior}; run {run_id})"
            writer = strategy_figure_writer(shown, title, fmt, per_strategy.get("oracle"))
            outputs.add(path, writer)
    written = [path for path in [args.json, *plots] if path is not None]
    replaced = [path for path in written if Path(path).exists()]
    outputs.commit()
    for path in written:
        print(f"{'replaced' if path in replaced else 'wrote'} {path}")
    return 0


def _plot_paths(plot: Path, names: list[str]) -> list[Path]:
    """One plot per scenario: ``plot`` itself for one, ``STEM-NAME.png`` for several."""
    if len(names) == 1:
        return [plot]
    return [plot.with_name(f"{plot.stem}-{name}{plot.suffix or '.png'}") for name in names]
