"""``autopilot recommend``: tomorrow's per-hour bids from hourly performance logs."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from pathlib import Path

import pandas as pd

from bidder.logs import read_logs
from bidder.recommend import RECOMMENDATION_COLUMNS, Recommendation, RecommendError, recommend
from envs.io import atomic_write, atomic_write_text

#: Output formats by suffix.
OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="fit hourly logs and write tomorrow's per-hour bids (docs/recommend.md)",
        description="Fit every arm's response from the hourly logs (docs/logs.md), plan the "
        "given day with the MPC bidder under the budget and the ROI target, and write one "
        "row per product, channel and hour (bid in CPM, planned spend, expected GMV and "
        "ROI) plus a JSON summary beside it (same name, .json).",
    )
    parser.add_argument("--history", required=True, help="hourly logs, .csv or .parquet")
    parser.add_argument("--budget", required=True, type=float, help="the day's total budget")
    parser.add_argument("--roi-target", required=True, type=float, help="GMV / spend target")
    parser.add_argument("--date", required=True, help="the day to plan, YYYY-MM-DD")
    parser.add_argument("--out", required=True, help="recommendations, .csv or .parquet")
    parser.add_argument(
        "--policy",
        default=None,
        help="a ppo-mpc policy .zip; it is checked, but the day-ahead plan is the neutral "
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


def _output_format(out: str) -> str:
    suffix = Path(out).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise RecommendError(
            f"--out {out}: unknown file type {suffix or '(no suffix)'!r}; use a .csv or "
            ".parquet file"
        )
    return OUTPUT_FORMATS[suffix]


def write_recommendation(recommendation: Recommendation, out: str | Path) -> Path:
    """Write the rows (CSV or Parquet by suffix) and the JSON summary, each atomically.

    Returns:
        The summary's path.
    """
    out = Path(out)
    table: pd.DataFrame = recommendation.table[list(RECOMMENDATION_COLUMNS)]
    if _output_format(str(out)) == "csv":
        atomic_write(out, lambda tmp: table.to_csv(tmp, index=False))
    else:
        atomic_write(out, lambda tmp: table.to_parquet(tmp, index=False))
    summary = summary_path(out)
    atomic_write_text(summary, json.dumps(recommendation.summary, indent=2) + "\n")
    return summary


def run(args: argparse.Namespace) -> int:
    # Everything a user can get wrong is checked before anything is written.
    _output_format(args.out)
    if Path(args.out).suffix.lower() == ".json":  # pragma: no cover - refused above
        raise RecommendError("--out must not be the .json summary")
    date = _parse_date(args.date)
    for name, value in (("--budget", args.budget), ("--roi-target", args.roi_target)):
        if not math.isfinite(value) or value < 0 or (name == "--budget" and value == 0):
            kind = "a positive amount" if name == "--budget" else "a non-negative number"
            raise RecommendError(
                f"{name} {value!r} is not {kind}; give tomorrow's "
                + (
                    "total budget in currency, e.g. --budget 120000"
                    if name == "--budget"
                    else "GMV / spend target, e.g. --roi-target 4"
                )
            )
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
        logs, args.budget, args.roi_target, date, source=str(args.history), plan_note=plan_note
    )
    summary = write_recommendation(recommendation, args.out)
    s = recommendation.summary
    print(
        f"wrote {len(recommendation.table):,} rows ({s['arms']} arms x 24 hours) for {s['date']} "
        f"to {args.out} and the summary to {summary}: planned spend {s['planned_spend']:,.0f} "
        f"of {s['budget']:,.0f}, expected GMV {s['expected_gmv']:,.0f}, "
        f"ROI {s['expected_roi']:.2f}; {len(s['thin_arms'])} thin arms"
    )
    return 0
