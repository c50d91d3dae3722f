"""``autopilot recommend``: tomorrow's per-hour bids from hourly performance logs."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import pandas as pd

from bidder.logs import read_logs, table_format, table_writer
from bidder.recommend import (
    COMMISSION_COLUMN,
    DEFAULT_MODEL,
    NEUTRAL_PLAN_NOTE,
    RECOMMENDATION_COLUMNS,
    RESPONSE_MODELS,
    Recommendation,
    RecommendError,
    check_budget_risk,
    check_settings,
    recommend,
)
from envs.io import OutputSet, check_output_path, check_outputs_distinct, new_run_id
from policies.cli import add_backend_arguments, amount_arg, first_given, ratio_arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="fit hourly logs and write tomorrow's per-hour bids (docs/recommend.md)",
        description="Fit every arm's response from the hourly logs (docs/logs.md), plan the "
        "given day with the MPC bidder under the budget and the ROI target, and write one "
        "row per product, channel and hour (bid in CPM, planned spend, expected GMV and "
        "ROI) plus a JSON summary (by default beside it: same name, .json).",
    )
    parser.add_argument(
        "--history", help="hourly logs, .csv or .parquet (required without --batch)"
    )
    parser.add_argument(
        "--budget",
        type=amount_arg,
        help="the day's total budget: 120000, 120,000, 120k or 12w (required without --batch)",
    )
    parser.add_argument(
        "--roi-target",
        type=ratio_arg,
        help="GMV / spend target: 4 or 400%% (required without --batch)",
    )
    parser.add_argument("--date", help="the day to plan, YYYY-MM-DD (required without --batch)")
    parser.add_argument(
        "--out", help="recommendations, .csv or .parquet (required without --batch)"
    )
    parser.add_argument(
        "--summary",
        default=None,
        help="the JSON summary (default: --out with the suffix .json)",
    )
    parser.add_argument(
        "--report",
        default=None,
        metavar="PATH.html",
        help="also write the plan as one self-contained HTML page: figures, breakdowns "
        "and a heat-map of the bids",
    )
    parser.add_argument(
        "--budget-risk",
        type=float,
        default=None,
        metavar="P",
        help="plan so that spend without the platform's cap exceeds the budget with "
        "probability at most P (e.g. 0.05); default: expected spend up to the budget",
    )
    parser.add_argument(
        "--model",
        default=None,
        choices=RESPONSE_MODELS,
        help="response curves to plan with: parametric (the closed form on the fitted "
        "parameters) or empirical (each channel's auction curves learned from the logs); "
        f"default: {DEFAULT_MODEL}",
    )
    parser.add_argument(
        "--policy",
        default=None,
        help="a ppo-mpc policy .safetensors file; it is checked, but the day-ahead plan is the neutral "
        "plan (the policy plans hour by hour from live results)",
    )
    parser.add_argument(
        "--batch",
        default=None,
        metavar="FILE",
        help="plan many campaigns: a TOML file of [[campaign]] tables (docs/scale.md); "
        "writes OUT-DIR/<id>.csv and .json per campaign and OUT-DIR/batch_report.csv",
    )
    parser.add_argument("--out-dir", default=None, help="the output folder of --batch")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes for --batch (default: the number of cores; with --backend ray "
        "and no --address, the CPUs of the local Ray)",
    )
    add_backend_arguments(parser)
    parser.set_defaults(func=run)


def summary_path(out: str | Path) -> Path:
    """The JSON summary's path: the recommendation file's with the suffix ``.json``."""
    return Path(out).with_suffix(".json")


def _parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise RecommendError(f"--date {text!r} is not a date; write it as YYYY-MM-DD") from None


def recommendation_frame(recommendation: Recommendation, run_id: str) -> pd.DataFrame:
    """The rows a recommendation file holds: :data:`RECOMMENDATION_COLUMNS` and ``run_id``."""
    columns = list(RECOMMENDATION_COLUMNS)
    if COMMISSION_COLUMN in recommendation.table.columns:
        columns.insert(columns.index("bid") + 1, COMMISSION_COLUMN)
    return recommendation.table[columns].assign(run_id=run_id)


def summary_text(recommendation: Recommendation, run_id: str) -> str:
    """The JSON summary file's text."""
    return json.dumps({"run_id": run_id} | recommendation.summary, indent=2) + "\n"


def write_recommendation(
    recommendation: Recommendation,
    out: str | Path,
    summary: str | Path | None = None,
    run_id: str | None = None,
    report: str | Path | None = None,
) -> Path:
    """Write the rows (CSV or Parquet by suffix), the JSON summary (``summary``, by
    default :func:`summary_path` of ``out``) and, where ``report`` names one, the HTML
    report (:func:`report_html`): all or none.

    Both carry one run id (the table's ``run_id`` column, the summary's ``run_id``), so
    a reader can tell that they belong together: ``run_id``, or a new one.

    Returns:
        The summary's path.
    """
    out = Path(out)
    run_id = new_run_id() if run_id is None else run_id
    summary = summary_path(out) if summary is None else Path(summary)
    outputs = OutputSet()
    outputs.add(
        out, table_writer(recommendation_frame(recommendation, run_id), out, "recommendation file")
    )
    outputs.add_text(summary, summary_text(recommendation, run_id))
    if report is not None:
        outputs.add_text(report, report_html(recommendation, run_id, source=str(out)))
    outputs.commit()
    recommendation.summary["run_id"] = run_id
    return summary


def report_html(recommendation: Recommendation, run_id: str, source: str = "") -> str:
    """The recommendation as an HTML page (:mod:`policies.report`)."""
    from policies.report import Report, recommendation_section

    summary = {"run_id": run_id} | recommendation.summary
    meta = f"run {run_id}" + (f"; the rows are in {source}" if source else "")
    page = Report(f"Bid recommendation for {summary['date']}", meta)
    return page.add(recommendation_section(recommendation.table, summary)).html()


def check_policy(path: str | Path) -> str:
    """Load a ppo-mpc policy file so that a bad one is refused; return the plan note.

    The policy's features describe a campaign in progress (spend so far, last hour's
    results), which a day-ahead plan does not have, so the day is planned with the
    neutral plan and the policy plans hour by hour during the day.

    Raises:
        InputError: the file is not a ppo-mpc policy (the message says why).
    """
    from policies.ppo import load_ppo_model

    load_ppo_model(path)
    return (
        f"{NEUTRAL_PLAN_NOTE}; policy {Path(path).name} checked, "
        "it plans hour by hour during the day"
    )


SINGLE_FLAGS = (
    "history",
    "budget",
    "roi_target",
    "date",
    "out",
    "summary",
    "budget_risk",
    "model",
    "policy",
    "report",
)


def run(args: argparse.Namespace) -> int:
    if args.batch is not None:
        return run_batch_command(args)
    for flag in ("history", "budget", "roi_target", "date", "out"):
        if getattr(args, flag) is None:
            raise RecommendError(
                f"--{flag.replace('_', '-')} is required (or give --batch FILE --out-dir DIR)"
            )
    if first_given(args, ("out_dir", "workers", "address")) or args.backend != "local":
        raise RecommendError(
            "--out-dir, --workers, --backend and --address go with --batch; give --out for "
            "one campaign"
        )
    # Everything a user can get wrong is checked before anything is written.
    table_format(args.out, "recommendation file")
    check_output_path(args.out, "recommendation file")
    summary_file = summary_path(args.out) if args.summary is None else Path(args.summary)
    check_output_path(summary_file, "recommendation summary")
    if args.report is not None:
        from policies.report import check_report_path

        check_report_path(args.report)
    check_outputs_distinct([args.history, args.policy], [args.out, summary_file, args.report])
    date = _parse_date(args.date)
    check_settings(args.budget, args.roi_target)
    check_budget_risk(args.budget_risk)
    plan_note = NEUTRAL_PLAN_NOTE
    if args.policy is not None:
        plan_note = check_policy(args.policy)
    logs = read_logs(args.history)
    recommendation = recommend(
        logs,
        args.budget,
        args.roi_target,
        date,
        source=str(args.history),
        plan_note=plan_note,
        budget_risk=args.budget_risk,
        model=args.model or DEFAULT_MODEL,
    )
    written = [p for p in (args.out, summary_file, args.report) if p is not None]
    replaced = [str(path) for path in written if Path(path).exists()]
    summary = write_recommendation(recommendation, args.out, summary_file, report=args.report)
    s = recommendation.summary
    print(
        f"wrote {len(recommendation.table):,} rows ({s['arms']} arms x 24 hours) for {s['date']} "
        f"to {args.out} and the summary to {summary}: planned spend {s['planned_spend']:,.0f} "
        f"of {s['budget']:,.0f}, expected GMV {s['expected_gmv']:,.0f}, "
        f"ROI {s['expected_roi']:.2f}; uncapped spend below {s['spend_risk']['p95']:,.0f} "
        f"with 95% probability, over the budget with "
        f"{100 * s['spend_risk']['probability_over_budget']:.0f}%; "
        f"{len(s['thin_arms'])} thin arms"
        + (f"; {s['budget_note']}" if s["budget_note"] else "")
        + "".join(f"; warning: {text}" for text in s["warnings"])
    )
    if args.report is not None and str(args.report) not in replaced:
        print(f"wrote {args.report}")
    for path in replaced:
        print(f"replaced {path}")
    return 0


def run_batch_command(args: argparse.Namespace) -> int:
    """``recommend --batch FILE --out-dir DIR``: exit 0 when every campaign is planned, 1
    when some are refused (their rows in the report say why)."""
    from policies.batch import read_batch, run_batch
    from policies.parallel import check_backend, default_workers

    flag = first_given(args, SINGLE_FLAGS)
    if flag:
        raise RecommendError(
            f"{flag} is for one campaign; with --batch every campaign's "
            "settings come from the batch file"
        )
    if args.out_dir is None:
        raise RecommendError("--batch needs --out-dir DIR, the folder for the outputs")
    workers = default_workers() if args.workers is None else args.workers
    check_backend(args.backend, workers, args.address)
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RecommendError(f"--out-dir {out_dir}: not a folder; give a folder path")
    campaigns = read_batch(args.batch)
    check_outputs_distinct(
        [args.batch],
        [out_dir / f"{c.id}{suffix}" for c in campaigns for suffix in (".csv", ".json")],
    )
    rows = run_batch(campaigns, out_dir, workers, backend=args.backend, address=args.address)
    ok = sum(row["status"] == "ok" for row in rows)
    reused = sum(bool(row["reused"]) for row in rows)
    refused = [row for row in rows if row["status"] != "ok"]
    print(
        f"planned {ok - reused} campaigns, kept {reused} complete from an earlier run, refused "
        f"{len(refused)}; report in {out_dir / 'batch_report.csv'} (and .parquet)"
    )
    for row in refused[:5]:
        print(f"refused {row['id']}: {row['error']}")
    return 1 if refused else 0
