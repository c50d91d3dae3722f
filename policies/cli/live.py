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
    parser.add_argument("--out", required=True, help="the next hour's bids, .csv or .parquet")
    parser.add_argument(
        "--summary", default=None, help="the JSON summary (default: --out with .json)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bidder.logs import read_logs, table_format, table_writer
    from envs.io import OutputSet, check_output_path, check_outputs_distinct, new_run_id
    from policies.autopilot import CampaignError, read_campaign, resume

    out = Path(args.out)
    summary = out.with_suffix(".json") if args.summary is None else Path(args.summary)
    table_format(out, "bids file")
    check_output_path(out, "bids file")
    check_output_path(summary, "live summary")
    check_outputs_distinct([args.campaign, args.history, args.played], [out, summary])
    history = read_logs(args.history)
    arms = list(dict.fromkeys(zip(history["product"], history["channel"], strict=True)))
    campaign = read_campaign(args.campaign, default_arms=arms)
    played = read_logs(args.played) if args.played is not None else None
    pilot = resume(campaign, history, played)
    if pilot.done:
        raise CampaignError(
            f"the campaign's {campaign.horizon_hours} hours are all played; nothing to bid"
        )
    bids = pilot.next_bids()
    decision = pilot.decisions[-1] if pilot.remaining_budget > 0 else None
    run_id = new_run_id()
    report = {
        "run_id": run_id,
        "hour": str(bids["hour"].iloc[0]),
        "hour_index": pilot.hour,
        "hours_left": campaign.horizon_hours - pilot.hour,
        "budget": campaign.budget,
        "roi_target": campaign.roi_target,
        "spent": round(pilot.spent, 2),
        "gmv": round(pilot.gmv, 2),
        "roi": round(pilot.roi, 4),
        "remaining_budget": round(pilot.remaining_budget, 2),
        "planned_spend_this_hour": round(float(bids["planned_spend"].sum()), 2),
        "expected_gmv_this_hour": round(float(bids["expected_gmv"].sum()), 2),
        "explanation": decision.explain() if decision else "the budget is spent; every bid is 0",
        "best_reachable_roi": None if decision is None else round(decision.best_reachable_roi, 4),
        "solver": None if decision is None else decision.solver,
        "unseen_arms": [list(arm) for arm in pilot.unseen_arms],
    }
    outputs = OutputSet()
    outputs.add(out, table_writer(bids.assign(run_id=run_id), out, "bids file"))
    outputs.add_text(summary, json.dumps(report, indent=2) + "\n")
    outputs.commit()
    print(
        f"hour {pilot.hour + 1} of {campaign.horizon_hours} ({report['hour']}): bids for "
        f"{len(bids)} arms to {out}, summary to {summary}; spent {pilot.spent:,.0f} of "
        f"{campaign.budget:,.0f}, ROI so far {pilot.roi:.2f} (target {campaign.roi_target:g}); "
        f"this hour plans {report['planned_spend_this_hour']:,.0f}"
    )
    return 0
