"""``autopilot recommend``: tomorrow's per-hour bids from hourly performance logs."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import pandas as pd

from bidder.logs import read_logs, table_format, table_writer
from bidder.recommend import (
    RECOMMENDATION_COLUMNS,
    Recommendation,
    RecommendError,
    check_budget_risk,
    check_settings,
    recommend,
)
from envs.io import OutputSet, check_output_path, check_outputs_distinct, new_run_id
from policies.cli import amount_arg, ratio_arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="fit hourly logs and write tomorrow's per-hour bids (docs/recommend.md)",
        description="Fit every arm's response from the hourly logs (docs/logs.md), plan the "
        "given day with the MPC bidder under the budget and the ROI target, and write one "
        "row per product, channel and hour (bid in CPM, planned spend, expected GMV and "
        "ROI) plus a JSON summary (by default beside it: same name, .json).",
    )
    parser.add_argument("--history", required=True, help="hourly logs, .csv or .parquet")
    parser.add_argument(
        "--budget",
        required=True,
        type=amount_arg,
        help="the day's total budget: 120000, 120,000, 120k or 12w",
    )
    parser.add_argument(
        "--roi-target", required=True, type=ratio_arg, help="GMV / spend target: 4 or 400%%"
    )
    parser.add_argument("--date", required=True, help="the day to plan, YYYY-MM-DD")
    parser.add_argument("--out", required=True, help="recommendations, .csv or .parquet")
    parser.add_argument(
        "--summary",
        default=None,
        help="the JSON summary (default: --out with the suffix .json)",
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
        "--policy",
        default=None,
        help="a ppo-mpc policy .safetensors file; it is checked, but the day-ahead plan is the neutral "
        "plan (the policy plans hour by hour from live results)",
    )
    parser.set_defaults(func=run)


def summary_path(out: str | Path) -> Path:
    """The JSON summary's path: the recommendation file's with the suffix ``.json``."""
    return Path(out).with_suffix(".json")


def _parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise RecommendError(f"--date {text!r} is not a date; write it as YYYY-MM-DD") from None


def write_recommendation(
    recommendation: Recommendation,
    out: str | Path,
    summary: str | Path | None = None,
    run_id: str | None = None,
) -> Path:
    """Write the rows (CSV or Parquet by suffix) and the JSON summary (``summary``, by
    default :func:`summary_path` of ``out``): both or neither.

    Both carry one run id (the table's ``run_id`` column, the summary's ``run_id``), so
    a reader can tell that they belong together: ``run_id``, or a new one.

    Returns:
        The summary's path.
    """
    out = Path(out)
    run_id = new_run_id() if run_id is None else run_id
    table: pd.DataFrame = recommendation.table[list(RECOMMENDATION_COLUMNS)].assign(run_id=run_id)
    summary = summary_path(out) if summary is None else Path(summary)
    outputs = OutputSet()
    outputs.add(out, table_writer(table, out, "recommendation file"))
    outputs.add_text(
        summary, json.dumps({"run_id": run_id} | recommendation.summary, indent=2) + "\n"
    )
    outputs.commit()
    recommendation.summary["run_id"] = run_id
    return summary


def run(args: argparse.Namespace) -> int:
    # Everything a user can get wrong is checked before anything is written.
    table_format(args.out, "recommendation file")
    check_output_path(args.out, "recommendation file")
    summary_file = summary_path(args.out) if args.summary is None else Path(args.summary)
    check_output_path(summary_file, "recommendation summary")
    check_outputs_distinct([args.history, args.policy], [args.out, summary_file])
    date = _parse_date(args.date)
    check_settings(args.budget, args.roi_target)
    check_budget_risk(args.budget_risk)
    plan_note = "neutral plan (MPC alone)"
    if args.policy is not None:
        # The policy's features describe a campaign in progress (spend so far, last hour's
        # results), which a day-ahead plan does not have; it is loaded so that a bad file
        # is reported, and the day is planned with the neutral plan.
        from policies.ppo import load_ppo_model

        load_ppo_model(args.policy)
        plan_note = (
            f"neutral plan (MPC alone); policy {Path(args.policy).name} checked, "
            "it plans hour by hour during the day"
        )
    logs = read_logs(args.history)
    recommendation = recommend(
        logs,
        args.budget,
        args.roi_target,
        date,
        source=str(args.history),
        plan_note=plan_note,
        budget_risk=args.budget_risk,
    )
    replaced = [str(path) for path in (args.out, summary_file) if Path(path).exists()]
    summary = write_recommendation(recommendation, args.out, summary_file)
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
    for path in replaced:
        print(f"replaced {path}")
    return 0
