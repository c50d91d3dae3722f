"""``autopilot``: the one command-line front door for every user task.

Each sub-command lives in its own module with an ``add_parser(subparsers)`` function that
registers it and sets ``func``; ``main`` dispatches. Only the module of the command being
run is imported (cvxpy, pandas and torch cost up to seconds to import; ``recommend`` has
an end-to-end time budget), the others appear in ``--help`` by their one-line summary.
Errors a user can trigger are :class:`~envs.errors.InputError` subclasses: printed on one
line, exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from envs.errors import InputError
from policies.cli.lazy import defer_unused_imports

#: Sub-commands in the order ``--help`` lists them: name -> (module, one-line summary).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("policies.cli.demo", "the autopilot on the default scenario against the baselines"),
    "evaluate": ("policies.cli.evaluate", "compare strategies on scenarios, with the oracle"),
    "scenario": ("policies.cli.scenario", "list the built-in scenarios or print one as TOML"),
    "simulate": ("policies.cli.simulate", "play a strategy for days and write hourly logs"),
    "diagnose": ("policies.cli.diagnose", "find ROI drops in logs and attribute their causes"),
    "recommend": ("policies.cli.recommend", "fit hourly logs and write tomorrow's bids"),
    "live": ("policies.cli.live", "the next hour's bids for a running campaign"),
    "report": ("policies.cli.report", "one HTML page: the last day diagnosed, the next planned"),
    "train": ("policies.cli.train", "train the PPO planner (ppo-mpc) on simulated markets"),
    "policy": ("policies.cli.policy", "show a policy file, or convert an old one safely"),
    "mcp": ("policies.cli.mcp", "serve the autopilot's tools to an assistant over MCP"),
}


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every option's default in ``--help``, unless its help already states it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.default is None
            or action.default is False
            or action.default is argparse.SUPPRESS
            or action.default == []
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """Usage errors on one line, like every other error (the usage is in ``--help``);
    ``--help`` shows every option's default."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def seed_arg(text: str) -> int:
    """An argparse type: a whole number between 0 and ``MAX_SEED``."""
    from envs.market_env import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..{MAX_SEED}")
    return value


_MULTIPLIERS = {"k": 1e3, "m": 1e6, "w": 1e4, "万": 1e4}
_CURRENCY = "¥￥$€£"


def amount_arg(text: str) -> float:
    """An argparse type for money as people write it: ``120000``, ``120,000``, ``120k``,
    ``1.2m``, ``12w`` or ``12万`` (ten thousands), with an optional currency sign."""
    cleaned = text.strip().replace(",", "").replace("_", "").replace(" ", "")
    cleaned = cleaned.lstrip(_CURRENCY).rstrip(_CURRENCY)
    scale = 1.0
    if cleaned and cleaned[-1].lower() in _MULTIPLIERS:
        scale = _MULTIPLIERS[cleaned[-1].lower()]
        cleaned = cleaned[:-1]
    try:
        value = float(cleaned) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an amount; write it as 120000, 120,000 or 120k"
        ) from None
    return value


def date_arg(text: str) -> str:
    """An argparse type for a date, written one way in every command: ``YYYY-MM-DD``
    (``07/01/2026`` is July 1 in one country and January 7 in another)."""
    import datetime as dt

    try:
        return dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date written YYYY-MM-DD; write it as e.g. 2026-01-14"
        ) from None


def ratio_arg(text: str) -> float:
    """An argparse type for a ratio such as an ROI target: ``4``, ``4.0`` or ``400%``."""
    cleaned = text.strip().replace(" ", "")
    percent = cleaned.endswith("%")
    try:
        value = float(cleaned.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a ratio; write GMV / spend as 4 (or 400%)"
        ) from None
    return value / 100.0 if percent else value


def number_or_text(value: object, parse, flag: str) -> float:
    """A number as given, or a string read by the argparse type ``parse`` (``amount_arg``,
    ``ratio_arg``): for the front ends that take values from JSON or TOML, not argv.

    Raises:
        InputError: a string ``parse`` cannot read, or a value that is not a number.
    """
    if isinstance(value, str):
        try:
            return parse(value)
        except argparse.ArgumentTypeError as err:
            raise InputError(f"{flag}: {err}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{flag} {value!r} is not a number")
    return float(value)


def add_prior_argument(parser: argparse.ArgumentParser) -> None:
    """``--prior fitted|cold|true``: what the strategies know before the campaign."""
    from policies.prior import DEFAULT_PRIOR, PRIOR_MODES

    parser.add_argument(
        "--prior",
        choices=PRIOR_MODES,
        default=DEFAULT_PRIOR,
        help="what every strategy but the oracle knows beforehand: fitted (from 14 days of "
        "simulated logs, the default), cold (channel averages: a new product) or true "
        "(the shock-free truth; research only)",
    )


def add_perturb_arguments(parser: argparse.ArgumentParser) -> None:
    """``--perturb F`` and ``--perturb-intervals REPORT.json``: markets drawn around the
    scenario (``envs.sampler.perturb_scenario``; docs/twin.md)."""
    parser.add_argument(
        "--perturb",
        type=float,
        default=None,
        metavar="F",
        help="draw each episode's market around the scenario: every fitted parameter "
        "(traffic, CTR, CVR, order value, prices, daypart) times a log-uniform factor in "
        "[1/F, F], e.g. 1.2",
    )
    parser.add_argument(
        "--perturb-intervals",
        type=Path,
        default=None,
        metavar="REPORT.json",
        help="draw the parameters with an interval in this fit report (scenario fit "
        "--report) inside their interval instead; the others by --perturb F",
    )


def perturbation_from(args: argparse.Namespace, scenario):
    """The :class:`envs.sampler.Perturbation` the arguments ask for, checked against
    ``scenario`` (a Scenario) with one draw; None when neither flag is given."""
    if args.perturb is None and args.perturb_intervals is None:
        return None
    import numpy as np

    from bidder.twin import load_intervals
    from envs.sampler import Perturbation

    factor = 1.0 if args.perturb is None else args.perturb
    intervals = () if args.perturb_intervals is None else load_intervals(args.perturb_intervals)
    perturbation = Perturbation(factor, intervals)
    perturbation.draw(scenario, np.random.default_rng(0))  # a bad factor or name fails here
    return perturbation


def first_given(args: argparse.Namespace, flags: Sequence[str]) -> str | None:
    """The first of ``flags`` (attribute names) that was given, as ``--the-flag``; None
    when none was (a flag is given when it is not None)."""
    for flag in flags:
        if getattr(args, flag) is not None:
            return "--" + flag.replace("_", "-")
    return None


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend local|ray`` and ``--address``: where many tasks run (docs/scale.md)."""
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool on this machine (the default); ray: Ray tasks, on a "
        "local Ray started for the run or on the cluster at --address (needs the "
        "budget-autopilot[ray] extra)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="with --backend ray: a running cluster, 'auto' or ray://HOST:10001 "
        "(default: start a local Ray for the run)",
    )


#: ``--json`` given without a path: print the JSON instead of the text.
PRINT_JSON = "-"


def add_json_argument(parser: argparse.ArgumentParser, what: str, instead_of: str) -> None:
    """``--json [PATH]``, one way in every command: the ``what`` as JSON, written to PATH
    or, with no PATH, printed instead of ``instead_of`` (the value is then
    :data:`PRINT_JSON`)."""
    parser.add_argument(
        "--json",
        nargs="?",
        const=PRINT_JSON,
        default=None,
        metavar="PATH",
        help=f"{what} as JSON: written to PATH, or printed instead of {instead_of} when no "
        "PATH is given",
    )


def json_default(value: object) -> object:
    """``json.dumps``'s ``default``: numpy scalars as Python numbers, anything else (a
    date) as text."""
    return value.item() if hasattr(value, "item") else str(value)


def report_written(paths: Sequence[object], replaced: Sequence[object], printed_json: bool) -> None:
    """One ``wrote PATH`` or ``replaced PATH`` line per output; on standard error when the
    command printed JSON, so that what it printed stays parseable."""
    for path in paths:
        note = f"{'replaced' if path in replaced else 'wrote'} {path}"
        print(note, file=sys.stderr if printed_json else sys.stdout)


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so that temporary files are removed and no output is
    # left half-written.
    raise KeyboardInterrupt


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (all of them when ``None`` is
    not enough to tell, e.g. for tests that want every sub-parser: pass ``"*"``)."""
    parser = OneLineParser(
        prog="autopilot",
        description=(
            "Ad-budget autopilot: simulate a multi-channel ad market, bid under a hard "
            "budget and an ROI target, compare strategies, recommend tomorrow's bids."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, summary) in COMMANDS.items():
        if command in (name, "*"):
            importlib.import_module(module).add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    defer_unused_imports()  # before a command's module imports cvxpy
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    previous = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"autopilot {args.command}: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:
        # A file the command could not read or write, outside the paths it checked.
        where = f"{err.filename}: " if err.filename else ""
        print(
            f"autopilot {args.command}: error: {where}{err.strerror or err}; check the path, "
            "its permissions and the free space",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("autopilot: interrupted", file=sys.stderr)
        return 130
    finally:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, previous)


def _one_line(message: str) -> str:
    return " ".join(message.split())


if __name__ == "__main__":
    sys.exit(main())
