"""``autopilot diagnose``: find ROI drops in hourly logs and explain their causes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bidder.diagnose import DEFAULT_BASELINE_DAYS, Diagnosis, diagnose, format_report
from bidder.logs import read_logs
from envs.io import OutputSet, check_output_path, check_outputs_distinct
from policies.cli import PRINT_JSON, add_json_argument, date_arg, json_default, report_written


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
    add_json_argument(parser, "the diagnosis", "the text")
    parser.add_argument(
        "--out", default=None, help="also write the report to this file (.json: JSON, else text)"
    )
    parser.add_argument(
        "--report",
        default=None,
        metavar="PATH.html",
        help="also write the diagnosis as one self-contained HTML page",
    )
    parser.set_defaults(func=run)


def _as_json(diagnosis: Diagnosis) -> str:
    return json.dumps(diagnosis.to_dict(), indent=2, allow_nan=False, default=json_default) + "\n"


def report_html(diagnosis: Diagnosis, source: str = "") -> str:
    """The diagnosis as an HTML page (:mod:`policies.report`)."""
    from policies.report import Report, diagnosis_section

    page = Report(f"ROI diagnosis for {diagnosis.date}", f"from {source}" if source else "")
    return page.add(diagnosis_section(diagnosis.to_dict())).html()


def run(args: argparse.Namespace) -> int:
    printed_json = args.json == PRINT_JSON
    json_path = None if args.json in (None, PRINT_JSON) else args.json
    for path, what in ((args.out, "diagnosis report"), (json_path, "diagnosis JSON")):
        if path is not None:
            check_output_path(path, what)
    if args.report is not None:
        from policies.report import check_report_path

        check_report_path(args.report)
    check_outputs_distinct([args.history], [args.out, json_path, args.report])
    diagnosis = diagnose(read_logs(args.history), args.date, args.baseline_days)
    print(_as_json(diagnosis) if printed_json else format_report(diagnosis), end="")
    outputs = OutputSet()
    written = []
    if args.out is not None:
        as_json = Path(args.out).suffix.lower() == ".json"
        outputs.add_text(args.out, _as_json(diagnosis) if as_json else format_report(diagnosis))
        written.append(args.out)
    if json_path is not None:
        outputs.add_text(json_path, _as_json(diagnosis))
        written.append(json_path)
    if args.report is not None:
        outputs.add_text(args.report, report_html(diagnosis, str(args.history)))
        written.append(args.report)
    replaced = [path for path in written if Path(path).exists()]
    outputs.commit()
    report_written(written, replaced, printed_json)
    return 0
