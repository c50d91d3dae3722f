"""``autopilot scenario list | show NAME``: the built-in scenarios as data."""

from __future__ import annotations

import argparse

from envs import PRESETS, env_id, get_scenario


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
