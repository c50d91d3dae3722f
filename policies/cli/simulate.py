"""``autopilot simulate``: hourly performance logs from the simulator, where the truth is known."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from bidder.logs import log_format, write_logs
from envs.io import check_output_path, check_outputs_distinct
from envs.presets import PRESETS
from envs.scenario import SHOCK_KINDS, ScenarioError, Shock
from policies.cli import add_prior_argument, seed_arg
from policies.simulate import SimulationError, simulate_logs


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="play a strategy for several days and write hourly logs (docs/logs.md)",
        description="Play a strategy in a scenario day after day and write the hourly "
        "performance logs a real ad platform would export. The scenario's budget is the "
        "daily budget; a scenario of 24*D hours places its shocks on campaign hours.",
    )
    parser.add_argument("--scenario", default="default", help="preset name or TOML path")
    parser.add_argument(
        "--strategy",
        "--strategies",
        default="even",
        help="registered strategy to play (one; --strategies is the same flag)",
    )
    parser.add_argument("--days", type=int, default=14, help="number of days (default 14)")
    parser.add_argument("--seed", type=seed_arg, default=0, help="market seed")
    parser.add_argument(
        "--start-date",
        default=None,
        help="date of the first day, YYYY-MM-DD (its weekday drives traffic)",
    )
    parser.add_argument("--out", required=True, help="output file, .csv or .parquet")
    parser.add_argument(
        "--shock-day",
        action="append",
        default=[],
        metavar="DAY:KIND:FACTOR[:CHANNEL[:PRODUCT]]",
        help="an extra shock on one day (0-based), all day long, e.g. "
        "13:creative_fatigue:0.4:feed so that the history ends with an ROI drop to "
        "diagnose; repeat for several",
    )
    add_prior_argument(parser)
    parser.set_defaults(func=run)


def parse_shock_day(text: str) -> tuple[int, Shock]:
    """``DAY:KIND:FACTOR[:CHANNEL[:PRODUCT]]`` -> (day, a shock over that whole day)."""
    parts = text.split(":")
    usage = "write DAY:KIND:FACTOR[:CHANNEL[:PRODUCT]], e.g. 13:creative_fatigue:0.4:feed"
    if not 3 <= len(parts) <= 5:
        raise SimulationError(f"--shock-day {text!r}: {usage}")
    day_text, kind, factor_text, *where = parts
    if kind not in SHOCK_KINDS or kind == "traffic_shift":
        kinds = ", ".join(k for k in SHOCK_KINDS if k != "traffic_shift")
        raise SimulationError(
            f"--shock-day {text!r}: kind {kind!r} is not one of {kinds} (a traffic shift "
            "needs two channels: write it in a scenario file)"
        )
    try:
        day, factor = int(day_text), float(factor_text)
    except ValueError:
        raise SimulationError(f"--shock-day {text!r}: {usage}") from None
    channel = where[0] if where and where[0] else None
    product = where[1] if len(where) > 1 and where[1] else None
    try:
        shock = Shock(kind, start_hour=0, factor=factor, channel=channel, product=product)
        shock.validate("--shock-day", 24)
    except ScenarioError as err:
        raise SimulationError(f"--shock-day {text!r}: {err}") from None
    return day, shock


def _parse_date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SimulationError(
            f"--start-date {text!r} is not a date; write it as YYYY-MM-DD"
        ) from None


def run(args: argparse.Namespace) -> int:
    # Check the output's type before playing days that could not be written.
    log_format(args.out)
    check_output_path(args.out, "log file")
    if args.scenario not in PRESETS:
        check_outputs_distinct([args.scenario], [args.out])
    day_shocks: dict[int, tuple[Shock, ...]] = {}
    for text in args.shock_day:
        day, shock = parse_shock_day(text)
        day_shocks[day] = day_shocks.get(day, ()) + (shock,)
    logs = simulate_logs(
        args.scenario,
        args.strategy,
        args.days,
        args.seed,
        start_date=_parse_date(args.start_date),
        prior=args.prior,
        day_shocks=day_shocks,
    )
    replaced = Path(args.out).exists()
    write_logs(logs, args.out)
    spend, gmv = logs["spend"].sum(), logs["gmv"].sum()
    print(
        f"wrote {len(logs):,} rows ({args.days} days, "
        f"{logs.groupby(['product', 'channel']).ngroups} arms) to {args.out}: "
        f"spend {spend:,.0f}, GMV {gmv:,.0f}, ROI {gmv / spend if spend else 0.0:.2f}"
    )
    if replaced:
        print(f"replaced {args.out}")
    return 0
