"""``autopilot diagnose``: find ROI drops in hourly logs and explain their causes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bidder.diagnose import DEFAULT_BASELINE_DAYS, Diagnosis, diagnose, format_report
from bidder.logs import read_logs
from envs.io import atomic_write_text, check_output_path, check_outputs_distinct
from policies.cli import date_arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diagnose",
        help="find ROI drops on a date and attribute them to causes",
        description="Compare a date's ROI per campaign, product and arm with the trailing "
        "days (same hours) and split each significant drop into creative decline, "
        "competitor pressure, competitor price cut, order value change and traffic shift.",
    )
    parser.add_argument("--history", required=True, help="hourly logs, .csv or .parquet")
    parser.add_argument(
        "--date",
        default=None,
        type=date_arg,
        help="date to diagnose, YYYY-MM-DD (default: the last in the history)",
    )
    parser.add_argument(
        "--baseline-days",
        type=int,
        default=DEFAULT_BASELINE_DAYS,
        help=f"trailing days to compare with (default {DEFAULT_BASELINE_DAYS})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--out", default=None, help="also write the report to this file (.json: JSON, else text)"
    )
    parser.set_defaults(func=run)


def _as_json(diagnosis: Diagnosis) -> str:
    return json.dumps(diagnosis.to_dict(), indent=2, allow_nan=False, default=_plain) + "\n"


def _plain(value: object) -> object:
    # numpy scalars that slipped into the report
    return value.item() if hasattr(value, "item") else str(value)


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_output_path(args.out, "diagnosis report")
        check_outputs_distinct([args.history], [args.out])
    diagnosis = diagnose(read_logs(args.history), args.date, args.baseline_days)
    text = _as_json(diagnosis) if args.json else format_report(diagnosis)
    print(text, end="")
    if args.out is not None:
        as_json = Path(args.out).suffix.lower() == ".json"
        replaced = Path(args.out).exists()
        atomic_write_text(
            Path(args.out), _as_json(diagnosis) if as_json else format_report(diagnosis)
        )
        # Printed JSON stays parseable: the note then goes to standard error.
        note = f"{'replaced' if replaced else 'wrote'} {args.out}"
        print(note, file=sys.stderr if args.json else sys.stdout)
    return 0
