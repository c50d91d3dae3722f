"""``autopilot report``: the nightly page a marketer opens: the last day diagnosed and the
next day planned, from the same hourly logs, in one self-contained HTML file."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pandas as pd

from bidder.diagnose import DEFAULT_BASELINE_DAYS, diagnose
from bidder.logs import read_logs
from bidder.recommend import RecommendError, check_budget_risk, check_settings, recommend
from envs.io import atomic_write_text, check_outputs_distinct, new_run_id
from policies.cli import amount_arg, date_arg, ratio_arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="one HTML page: the last day's ROI diagnosis and the next day's plan",
        description="Diagnose the history's last day (as autopilot diagnose) and plan the "
        "next one (as autopilot recommend), and write both as one self-contained HTML page: "
        "the plan's figures in plain words, per-channel and per-arm breakdowns, a heat-map "
        "of the bids per arm and hour, and every ROI drop with its causes and evidence. "
        "The page holds no script and loads nothing from elsewhere.",
    )
    parser.add_argument("--history", required=True, help="hourly logs, .csv or .parquet")
    parser.add_argument(
        "--budget",
        type=amount_arg,
        required=True,
        help="the planned day's total budget: 120000, 120,000, 120k or 12w",
    )
    parser.add_argument(
        "--roi-target", type=ratio_arg, required=True, help="GMV / spend target: 4 or 400%%"
    )
    parser.add_argument(
        "--date",
        type=date_arg,
        default=None,
        help="the day to plan, YYYY-MM-DD (default: the day after the history's last)",
    )
    parser.add_argument(
        "--diagnose-date",
        type=date_arg,
        default=None,
        help="the day to diagnose, YYYY-MM-DD (default: the history's last)",
    )
    parser.add_argument(
        "--baseline-days",
        type=int,
        default=DEFAULT_BASELINE_DAYS,
        help="trailing days the diagnosis compares with",
    )
    parser.add_argument(
        "--budget-risk",
        type=float,
        default=None,
        metavar="P",
        help="as recommend --budget-risk (default: expected spend up to the budget)",
    )
    parser.add_argument("--out", required=True, metavar="PATH.html", help="the HTML page")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from policies.report import Report, check_report_path, diagnosis_section, recommendation_section

    check_report_path(args.out)
    check_outputs_distinct([args.history], [args.out])
    check_settings(args.budget, args.roi_target)
    check_budget_risk(args.budget_risk)
    logs = read_logs(args.history)
    last = pd.Timestamp(logs["date"].max()).date()
    date = last + dt.timedelta(days=1) if args.date is None else dt.date.fromisoformat(args.date)
    if date <= last:
        raise RecommendError(
            f"--date {date}: the history runs to {last}; plan a later day, e.g. "
            f"{last + dt.timedelta(days=1)}"
        )
    diagnosis = diagnose(logs, args.diagnose_date, args.baseline_days)
    recommendation = recommend(
        logs,
        args.budget,
        args.roi_target,
        date,
        source=str(args.history),
        budget_risk=args.budget_risk,
    )
    run_id = new_run_id()
    summary = {"run_id": run_id} | recommendation.summary
    page = Report(
        f"Autopilot report: {diagnosis.date} diagnosed, {date} planned",
        f"from {args.history}; run {run_id}",
    )
    page.add(diagnosis_section(diagnosis.to_dict()))
    page.add(recommendation_section(recommendation.table, summary))
    replaced = Path(args.out).exists()
    atomic_write_text(Path(args.out), page.html())
    s = recommendation.summary
    print(
        f"{'replaced' if replaced else 'wrote'} {args.out}: {diagnosis.date} "
        + (
            f"has {len(diagnosis.drops)} ROI drop(s), the top cause {diagnosis.top_cause}"
            if diagnosis.drops
            else "has no significant ROI drop"
        )
        + f"; {date} plans {s['planned_spend']:,.0f} of {s['budget']:,.0f} at expected ROI "
        f"{s['expected_roi']:.2f} (target {s['roi_target']:g}"
        + ("" if s["roi_target_met"] else ", missed")
        + ")"
    )
    return 0
