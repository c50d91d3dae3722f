"""``autopilot live``: the next hour's bids for a running campaign, from its logs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "live",
        help="the next hour's bids for a running campaign (docs/integrate.md)",
        description="Fit the history before the campaign, replay the hours already played "
        "(the autopilot decides each again and records what the market reported), and "
        "write the next hour's bid per arm plus a JSON summary of where the campaign "
        "stands. Run it every hour with the hours played so far.",
    )
    parser.add_argument("--campaign", required=True, help="the campaign, a TOML file")
    parser.add_argument(
        "--history", required=True, help="hourly logs before the campaign, .csv or .parquet"
    )
    parser.add_argument(
        "--played",
        default=None,
        help="the campaign's hours so far in the same log format, with the bids set "
        "(default: none, the first hour)",
    )
    parser.add_argument(
        "--policy",
        default=None,
        help="a ppo-mpc policy .safetensors: the PPO planner sets the MPC's plan each hour "
        "(default: MPC alone)",
    )
    parser.add_argument("--out", required=True, help="the next hour's bids, .csv or .parquet")
    parser.add_argument(
        "--summary", default=None, help="the JSON summary (default: --out with .json)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from policies.cli.recommend import summary_path

    out = Path(args.out)
    summary_file = summary_path(out) if args.summary is None else Path(args.summary)
    bids, summary = write_next_hour(
        args.campaign, args.history, args.played, args.policy, out, summary_file
    )
    print(
        f"hour {summary['hour_index'] + 1} of {summary['hour_index'] + summary['hours_left']} "
        f"({summary['hour']}): bids for {len(bids)} arms to {out}, summary to {summary_file}; "
        f"spent {summary['spent']:,.0f} of {summary['budget']:,.0f}, ROI so far "
        f"{summary['roi']:.2f} (target {summary['roi_target']:g}); this hour plans "
        f"{summary['planned_spend_this_hour']:,.0f}"
    )
    return 0


def write_next_hour(campaign, history, played, policy, out: Path, summary_file: Path):
    """Check the outputs, plan the next hour (:func:`policies.autopilot.next_hour`) and
    write the bids and the summary as one pair with one run id. ``autopilot live`` and
    the ``live_bids`` agent tool both call it.

    Returns:
        The bids and the summary with its ``run_id``.
    """
    from bidder.logs import table_format, table_writer
    from envs.io import OutputSet, check_output_path, check_outputs_distinct, new_run_id
    from policies.autopilot import next_hour

    table_format(out, "bids file")
    check_output_path(out, "bids file")
    check_output_path(summary_file, "live summary")
    check_outputs_distinct([campaign, history, played, policy], [out, summary_file])
    bids, summary = next_hour(campaign, history, played, policy)
    run_id = new_run_id()
    summary = {"run_id": run_id} | summary
    outputs = OutputSet()
    outputs.add(out, table_writer(bids.assign(run_id=run_id), out, "bids file"))
    outputs.add_text(summary_file, json.dumps(summary, indent=2) + "\n")
    outputs.commit()
    return bids, summary
