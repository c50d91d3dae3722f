"""``autopilot``: the one command-line front door for every user task.

Each sub-command lives in its own module with an ``add_parser(subparsers)`` function that
registers it and sets ``func``; ``main`` dispatches. Errors a user can trigger are
:class:`~envs.errors.InputError` subclasses: printed on one line, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from envs.errors import InputError
from policies.cli import demo, diagnose, evaluate, recommend, scenario, simulate, train

#: Sub-command modules, in the order ``--help`` lists them.
COMMANDS = [demo, evaluate, scenario, simulate, diagnose, recommend, train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopilot",
        description=(
            "Ad-budget autopilot: simulate a multi-channel ad market, bid under a hard "
            "budget and an ROI target, compare strategies, recommend tomorrow's bids."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"autopilot {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autopilot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
