"""``autopilot scenario list | show NAME``: the built-in scenarios as data."""

from __future__ import annotations

import argparse

from envs import PRESETS, env_id, get_scenario
from policies.cli import amount_arg, json_default, ratio_arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scenario",
        help="list the built-in scenarios or print one as TOML",
        description="Scenarios are data. Every command that takes --scenario accepts a "
        "preset name or a path to a TOML file such as the one `show` prints.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="list the presets").set_defaults(func=_list)
    show = actions.add_parser("show", help="print a scenario (preset or file) as TOML")
    show.add_argument("name", help="a preset name or a path to a scenario TOML file")
    show.set_defaults(func=_show)
    fit = actions.add_parser(
        "fit",
        help="fit a scenario (a market twin) to hourly logs (docs/twin.md)",
        description="Fit a scenario to hourly performance logs: products, channels and "
        "arms; traffic with its daypart and weekday factors; each channel's prices, "
        "auction rule, reserve and order delay; CTR, CVR and order value with shrinkage. "
        "Days the diagnosis flags are left out. Writes the TOML (which --scenario takes "
        "unchanged) and a JSON fit report beside it.",
    )
    fit.add_argument("--history", required=True, help="hourly logs, .csv or .parquet")
    fit.add_argument("--out", required=True, metavar="PATH.toml", help="the scenario file")
    fit.add_argument(
        "--report",
        default=None,
        metavar="PATH.json",
        help="the fit report (default: --out with the suffix .json)",
    )
    fit.add_argument("--name", default=None, help="the scenario's name (default: --out's stem)")
    fit.add_argument(
        "--budget",
        type=amount_arg,
        default=None,
        help="the twin's daily budget (default: the history's mean daily spend)",
    )
    fit.add_argument(
        "--roi-target",
        type=ratio_arg,
        default=None,
        help="the twin's ROI target (default: the history's ROI)",
    )
    fit.add_argument(
        "--holdout-days",
        type=int,
        default=0,
        help="fit without the last N days and report the twin's error on them",
    )
    fit.add_argument(
        "--keep-flagged-days",
        action="store_true",
        help="fit on every day, also those the diagnosis flags",
    )
    fit.set_defaults(func=_fit)


def _list(args: argparse.Namespace) -> int:
    width = max(len(name) for name in PRESETS)
    for name in PRESETS:
        sc = get_scenario(name)
        print(
            f"{name:<{width}}  {env_id(name):<26} {sc.n_arms:>3} arms  "
            f"budget {sc.budget:>9,.0f}  ROI target {sc.roi_target:<4g} {sc.description}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    print(get_scenario(args.name).to_toml(), end="")
    return 0


def _fit(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import pandas as pd

    from bidder.logs import read_logs
    from bidder.twin import TwinError, fit_scenario, holdout_errors
    from envs.io import OutputSet, check_output_path, check_outputs_distinct

    out = Path(args.out)
    if out.suffix.lower() != ".toml":
        raise TwinError(f"{out}: a scenario is a TOML file; end the file name in .toml")
    report_path = out.with_suffix(".json") if args.report is None else Path(args.report)
    check_output_path(out, "scenario file")
    check_output_path(report_path, "fit report")
    check_outputs_distinct([args.history], [out, report_path])
    if args.holdout_days < 0:
        raise TwinError(f"--holdout-days {args.holdout_days}: give 0 or more days")
    logs = read_logs(args.history)
    day_of_row = pd.to_datetime(logs["date"]).dt.date
    dates = sorted(day_of_row.unique())
    held = dates[len(dates) - args.holdout_days :] if args.holdout_days else []
    is_held = day_of_row.isin(held)
    fit_logs = logs[~is_held] if held else logs
    twin = fit_scenario(
        fit_logs,
        name=args.name or out.stem,
        budget=args.budget,
        roi_target=args.roi_target,
        exclude_flagged=not args.keep_flagged_days,
        source=str(args.history),
    )
    report = twin.report()
    lines = []
    if held:
        errors = holdout_errors(
            twin.scenario, logs[is_held], orders_carry_over=twin.fitted.orders_carry_over
        )
        campaign = errors[errors["product"] == "*"]
        report["holdout"] = {
            "days": [d.isoformat() for d in held],
            "per_day": campaign.drop(columns=["product", "channel"]).to_dict("records"),
            "per_arm_day": errors[errors["product"] != "*"].to_dict("records"),
            "median_abs_error": {
                "campaign_spend": float(campaign["spend_error"].abs().median()),
                "campaign_gmv": float(campaign["gmv_error"].abs().median()),
                "arm_spend": float(
                    errors.loc[errors["product"] != "*", "spend_error"].abs().median()
                ),
                "arm_gmv": float(errors.loc[errors["product"] != "*", "gmv_error"].abs().median()),
            },
        }
        for row in campaign.itertuples():
            lines.append(
                f"held out {row.date}: spend {row.spend:,.0f} predicted {row.predicted_spend:,.0f} "
                f"({100 * row.spend_error:+.1f}%), GMV {row.gmv:,.0f} predicted "
                f"{row.predicted_gmv:,.0f} ({100 * row.gmv_error:+.1f}%)"
            )
    header = "\n".join(
        f"# {line}"
        for line in [
            f"A market twin fitted by `autopilot scenario fit` from {args.history}:",
            twin.scenario.description + ".",
            "Fitted: traffic, dayparts, weekday factors, prices, auction rules, reserves,",
            "order delays, CTR, CVR and order values (the fit report has each estimate,",
            "its interval and its data). Not identified from hourly logs, so the",
            "simulator's defaults: " + ", ".join(report["not_identified"]) + ".",
            "Fitted only where the logs show them (the notes say where): "
            + ", ".join(report["fitted_where_seen"])
            + ".",
            *[f"Note: {note}" for note in twin.notes],
        ]
    )
    outputs = OutputSet()
    outputs.add_text(out, header + "\n" + twin.scenario.to_toml())
    outputs.add_text(report_path, json.dumps(report, indent=2, default=json_default) + "\n")
    written = [out, report_path]
    replaced = [p for p in written if p.exists()]
    outputs.commit()
    sc = twin.scenario
    print(
        f"fitted {sc.name}: {len(sc.products)} products, {len(sc.channels)} channels, "
        f"{sc.n_arms} arms from {twin.fitted.history_days} days"
        + (
            f" ({len(twin.excluded_days)} flagged days left out: {', '.join(twin.excluded_days)})"
            if twin.excluded_days
            else ""
        )
        + f"; budget {sc.budget:,.0f}, ROI target {sc.roi_target:g}"
    )
    for line in lines + [f"note: {n}" for n in twin.notes]:
        print(line)
    for path in written:
        print(f"{'replaced' if path in replaced else 'wrote'} {path}")
    return 0
