"""``autopilot evaluate``: strategies side by side on the same seeds, with the oracle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from envs.errors import InputError
from envs.io import OutputSet, check_output_path, check_outputs_distinct, new_run_id
from envs.market_env import resolve_scenario
from envs.presets import PRESETS
from policies.cli import (
    PRINT_JSON,
    add_backend_arguments,
    add_json_argument,
    add_perturb_arguments,
    add_prior_argument,
    first_given,
    perturbation_from,
    report_written,
    seed_arg,
)
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
        help=f"comma-separated strategy names (default: {DEFAULT_STRATEGIES})",
    )
    parser.add_argument("--episodes", type=int, help="episodes per scenario (default: 10)")
    parser.add_argument("--seed", type=seed_arg, help="seed of the first episode (default: 0)")
    add_json_argument(parser, "the results", "the table")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="write the figure: .png, .svg or .pdf (one per scenario when several)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="PATH.html",
        help="also write the table and the figures as one self-contained HTML page",
    )
    parser.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="ppo-mpc policy (.safetensors) for the ppo-mpc strategy",
    )
    add_prior_argument(parser)
    add_perturb_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sweep = parser.add_argument_group(
        "sweeps", "a grid or sample of scenarios x strategies x seeds (docs/scale.md)"
    )
    sweep.add_argument("--sweep", default=None, metavar="FILE", help="a TOML sweep file")
    sweep.add_argument(
        "--out",
        default=None,
        help="the sweep's results, one row per episode: .parquet or .csv",
    )
    sweep.add_argument(
        "--summary",
        default=None,
        help="the sweep's summary, one row per cell, prior and strategy "
        "(default: OUT with .summary.csv)",
    )
    sweep.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes for --sweep (default: the number of cores)",
    )
    add_backend_arguments(sweep)
    # Unset, so that --sweep can tell a flag that was given from its default.
    parser.set_defaults(func=run, strategies=None, episodes=None, seed=None, prior=None)


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


SINGLE_FLAGS = (
    "scenario",
    "strategies",
    "episodes",
    "seed",
    "json",
    "plot",
    "report",
    "policy",
    "prior",
    "perturb",
    "perturb_intervals",
)
SWEEP_FLAGS = ("out", "summary", "workers", "address")


def run(args: argparse.Namespace) -> int:
    if args.sweep is not None:
        return run_sweep_command(args)
    flag = first_given(args, SWEEP_FLAGS) or ("--backend" if args.backend != "local" else None)
    if flag:
        raise InputError(f"{flag} goes with --sweep FILE; without it, see --json and --plot")
    from policies.prior import DEFAULT_PRIOR

    args.strategies = DEFAULT_STRATEGIES if args.strategies is None else args.strategies
    args.episodes = 10 if args.episodes is None else args.episodes
    args.seed = 0 if args.seed is None else args.seed
    args.prior = DEFAULT_PRIOR if args.prior is None else args.prior
    return run_evaluation(args)


def run_evaluation(args: argparse.Namespace) -> int:
    """One evaluation (not a sweep): ``args`` holds scenario, strategies, episodes, seed,
    json, plot, report, policy, no_progress and prior, every one set (``autopilot demo``
    calls it with its own)."""
    if args.episodes < 1:
        raise InputError(f"--episodes {args.episodes}: give at least 1 episode")
    strategies = parse_strategies(args.strategies)
    scenarios = args.scenario or ["default"]
    scenario_objects = [resolve_scenario(s) for s in scenarios]  # fail fast on a bad file
    check_horizons(scenario_objects)
    perturbations = [perturbation_from(args, sc) for sc in scenario_objects]
    plots = _plot_paths(args.plot, [sc.name for sc in scenario_objects]) if args.plot else []
    from policies.plots import plot_format

    formats = [plot_format(path) for path in plots]  # refuse .jpeg and the like before work
    printed_json = args.json == PRINT_JSON
    json_path = None if args.json in (None, PRINT_JSON) else Path(args.json)
    report_path = args.report
    for path in [json_path, *plots]:
        if path is not None:
            check_output_path(path)
    if report_path is not None:
        from policies.report import check_report_path

        check_report_path(report_path)
    inputs = [s for s in scenarios if s not in PRESETS] + [args.policy, args.perturb_intervals]
    check_outputs_distinct(inputs, [json_path, *plots, report_path])
    kwargs = {"ppo-mpc": {"path": args.policy}} if args.policy else {}
    report = evaluate_many(
        strategies,
        scenario_objects,
        args.episodes,
        args.seed,
        progress=not args.no_progress,
        strategy_kwargs=kwargs,
        prior=args.prior,
        perturbation=perturbations[0] if perturbations else None,
    )
    results = report.pop("_results")
    # Every output of the run, or none: the JSON, the plots and the report carry one run id.
    run_id = new_run_id()
    as_json = json.dumps({"run_id": run_id} | report, indent=2) + "\n"
    print(as_json if printed_json else format_table(report), end="" if printed_json else "\n")
    outputs = OutputSet()
    if json_path is not None:
        outputs.add_text(json_path, as_json)
    if args.plot:
        from policies.plots import strategy_figure_writer

        for (name, per_strategy), path, fmt in zip(results.items(), plots, formats, strict=True):
            shown = {s: per_strategy[s] for s in strategies}
            title = f"{name} (prior: {args.prior}; run {run_id})"
            writer = strategy_figure_writer(shown, title, fmt, per_strategy.get("oracle"))
            outputs.add(path, writer)
    if report_path is not None:
        outputs.add_text(report_path, report_html(report, results, run_id))
    written = [path for path in [json_path, *plots, report_path] if path is not None]
    replaced = [path for path in written if Path(path).exists()]
    outputs.commit()
    report_written(written, replaced, printed_json)
    return 0


def report_html(report: dict, results: dict, run_id: str) -> str:
    """The evaluation as an HTML page (:mod:`policies.report`): the table and, per
    scenario, the figure of ``--plot``."""
    from policies.report import Report, evaluation_section

    names = ", ".join(report["scenarios"])
    page = Report(f"Strategies compared on {names}", f"run {run_id}")
    return page.add(evaluation_section(report, results)).html()


def _plot_paths(plot: Path, names: list[str]) -> list[Path]:
    """One plot per scenario: ``plot`` itself for one, ``STEM-NAME.png`` for several."""
    if len(names) == 1:
        return [plot]
    return [plot.with_name(f"{plot.stem}-{name}{plot.suffix or '.png'}") for name in names]


def run_sweep_command(args: argparse.Namespace) -> int:
    """``evaluate --sweep FILE --out RESULTS``: every unit of the sweep, resumable."""
    from tqdm import tqdm

    from bidder.logs import table_format
    from policies.parallel import check_backend, default_workers
    from policies.sweep import format_summary, journal_path, read_sweep, run_sweep, summary_path

    flag = first_given(args, SINGLE_FLAGS)
    if flag:
        raise InputError(
            f"{flag} is for one evaluation; with --sweep the sweep file sets "
            "scenarios, strategies, seeds and priors"
        )
    if args.out is None:
        raise InputError("--sweep needs --out RESULTS (.parquet or .csv), one row per episode")
    out = Path(args.out)
    summary = summary_path(out) if args.summary is None else Path(args.summary)
    for path, what in ((out, "sweep results"), (summary, "sweep summary")):
        table_format(path, what)
        check_output_path(path, what)
    journal = journal_path(out)
    if journal.exists() and not journal.is_dir():
        raise InputError(
            f"{journal}: the sweep journals finished units in this folder, but a file has "
            "its name; move the file or choose another --out"
        )
    workers = default_workers() if args.workers is None else args.workers
    check_backend(args.backend, workers, args.address)
    sweep = read_sweep(args.sweep)
    inputs = [args.sweep, sweep.policy] + [
        u.source
        for u in sweep.units
        if not u.source.startswith("sample:") and u.source not in PRESETS
    ]
    check_outputs_distinct(inputs, [out, summary])
    bar = tqdm(total=len(sweep.units), disable=args.no_progress, desc="sweeping", unit="unit")

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    results, table, reused = run_sweep(
        sweep,
        out,
        summary,
        backend=args.backend,
        workers=workers,
        address=args.address,
        progress=progress,
    )
    bar.close()
    print(format_summary(table))
    print(
        f"wrote {len(results):,} episodes ({len(sweep.units):,} units, {reused:,} kept from an "
        f"earlier run) to {out} and the summary to {summary}"
    )
    return 0
