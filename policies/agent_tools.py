"""The autopilot's tools for assistants: read a campaign, plan, explain, diagnose, apply.

:class:`AgentTools` is what ``autopilot mcp`` serves (``policies/mcp_server.py``,
``docs/mcp.md``), written as plain Python over one *workspace*, a folder that holds the
advertiser's files. Every tool calls the same public functions as the CLI
(:func:`bidder.recommend.recommend`, :func:`policies.simulate.simulate_logs`,
:func:`policies.evaluate.evaluate_many`, :func:`bidder.diagnose.diagnose`, ...) and
returns plain JSON data. Errors are :class:`~envs.errors.InputError` subclasses with the
CLI's one-line messages.

Safety (``docs/security.md``):

- every path a tool takes is resolved inside the workspace (links followed); a path
  outside it, or through a link that leaves it, is refused, and so are the folders the
  tools manage themselves (``.autopilot/``, ``recommendations/``, ``applied/``) as
  outputs of other tools;
- ``recommend_bids`` registers each plan under its id in ``.autopilot/plans/`` with the
  SHA-256 of its history and of its bid table; ``apply_bids`` takes only such an id, and
  refuses a plan whose files or history changed since, or whose total planned spend is
  above its budget;
- no tool loads a policy file: the planner is not offered here, and every file read goes
  through the same checked readers as the CLI (nothing loaded from a file runs code).

Workspace layout::

    WORKSPACE/
      logs.csv, my-market.toml, ...     the advertiser's files (any name, any folder)
      recommendations/<plan id>.csv     recommend_bids: tomorrow's bids, one row per arm-hour
      recommendations/<plan id>.json    ... and its summary (the CLI's two files)
      applied/<plan id>.csv             apply_bids: the bid sheet an ad account takes
      .autopilot/plans/<plan id>.json   the plan register (hashes, budget, settings)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from envs.errors import InputError

#: Folders the tools write themselves; no tool takes them as a user-chosen output.
MANAGED_FOLDERS: tuple[str, ...] = (".autopilot", "recommendations", "applied")
#: A plan id, as :func:`envs.io.new_run_id` makes them.
PLAN_ID = re.compile(r"^run-[0-9a-f]{12}$")
#: Budgets of the default budget-response curve, as multiples of the plan's budget.
WHAT_IF_BUDGET_FACTORS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
#: Most points one what_if call plans (each is one MPC solve, about 0.1 s at 25 arms).
MAX_WHAT_IF_POINTS = 60
#: Most episodes one evaluate_strategies call runs (per scenario and strategy).
MAX_EVALUATE_EPISODES = 200
#: Columns of the bid sheet apply_bids writes.
BID_SHEET_COLUMNS: tuple[str, ...] = ("date", "hour", "product", "channel", "bid")

Progress = Callable[[float, float, str], None]


class WorkspaceError(InputError):
    """A path outside the workspace, or a plan id this workspace did not produce."""


class Workspace:
    """One folder of advertiser files; every path a tool takes is resolved inside it."""

    def __init__(self, root: str | os.PathLike[str]):
        path = Path(root).expanduser()
        if not path.is_dir():
            raise WorkspaceError(
                f"workspace {str(root)!r} is not a folder; give an existing folder with "
                "--workspace (mkdir it first)"
            )
        self.root = path.resolve()

    # -- paths ------------------------------------------------------------------------
    def path(self, text: str, what: str) -> Path:
        """``text`` (relative to the workspace, or absolute inside it) as an absolute path.

        Links are followed, so a link inside the workspace that points out of it is
        refused like a path outside it.
        """
        if not isinstance(text, str) or not text.strip():
            raise WorkspaceError(f"{what}: give a path inside the workspace, e.g. logs.csv")
        if "\x00" in text:
            raise WorkspaceError(f"{what} {text!r}: a path may not hold a NUL character")
        candidate = Path(text).expanduser()
        if not candidate.is_absolute():
            candidate = self.root / candidate
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self.root):
            raise WorkspaceError(
                f"{what} {text!r} is outside the workspace {self.root} (links are followed); "
                "give a path inside it, e.g. logs.csv"
            )
        return resolved

    def output(self, text: str, what: str) -> Path:
        """A user-chosen output path: inside the workspace, not in a managed folder."""
        path = self.path(text, what)
        top = path.relative_to(self.root).parts[:1]
        if top and top[0] in MANAGED_FOLDERS:
            raise WorkspaceError(
                f"{what} {text!r} is inside {top[0]}/, which the tools manage; "
                "choose a path elsewhere in the workspace"
            )
        return path

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # -- the plan register --------------------------------------------------------------
    @property
    def plans_folder(self) -> Path:
        return self.root / ".autopilot" / "plans"

    def plan_record(self, plan_id: str) -> dict[str, Any]:
        """The register entry of a plan ``recommend_bids`` made in this workspace."""
        if not isinstance(plan_id, str) or not PLAN_ID.fullmatch(plan_id):
            raise WorkspaceError(
                f"plan id {plan_id!r} is not a plan id (they look like run-0123456789ab); "
                "use the plan_id that recommend_bids returned"
            )
        record_path = self.plans_folder / f"{plan_id}.json"
        if not record_path.is_file():
            known = self.plan_ids()
            hint = f"plans in this workspace: {', '.join(known[-5:])}" if known else "none yet"
            raise WorkspaceError(
                f"unknown plan id {plan_id!r}: recommend_bids did not make it in this "
                f"workspace ({hint}); call recommend_bids first"
            )
        record = read_json(record_path, "plan record")
        missing = [key for key in RECORD_KEYS if not isinstance(record.get(key), RECORD_KEYS[key])]
        if record.get("plan_id") != plan_id or missing:
            raise WorkspaceError(
                f"plan {plan_id}: its record {self.relative(record_path)} is damaged "
                f"({', '.join(missing) or 'plan_id'}); call recommend_bids again"
            )
        return record

    def plan_ids(self) -> list[str]:
        """Plan ids of this workspace, oldest first."""
        if not self.plans_folder.is_dir():
            return []
        records = [p for p in self.plans_folder.glob("run-*.json") if PLAN_ID.fullmatch(p.stem)]
        return [p.stem for p in sorted(records, key=lambda p: (p.stat().st_mtime_ns, p.name))]


#: Keys of a plan record and their types.
RECORD_KEYS: dict[str, type | tuple[type, ...]] = {
    "plan_id": str,
    "history": str,
    "history_sha256": str,
    "table": str,
    "table_sha256": str,
    "summary": str,
    "date": str,
    "budget": (int, float),
    "roi_target": (int, float),
}
#: Largest plan record, summary or bid table the tools read back (bytes).
MAX_PLAN_FILE_BYTES = 256 * 1024**2


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from a file the tools wrote, through the checked reader."""
    from envs.io import read_input_bytes

    data = read_input_bytes(path, what, MAX_PLAN_FILE_BYTES, WorkspaceError)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise WorkspaceError(f"{path}: the {what} is not a JSON object; call recommend_bids again")
    return value


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """JSON-safe data: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _amount(value: float | str, flag: str) -> float:
    """A budget given as a number or as people write it (``50000``, ``50,000``, ``50k``)."""
    from policies.cli import amount_arg, number_or_text

    return number_or_text(value, amount_arg, flag)


def _ratio(value: float | str, flag: str) -> float:
    """An ROI target given as a number or a percentage (``4``, ``400%``)."""
    from policies.cli import number_or_text, ratio_arg

    return number_or_text(value, ratio_arg, flag)


# Argument types, with the descriptions an assistant reads in each tool's JSON schema.
HistoryPath = Annotated[
    str, Field(description="hourly performance logs in the workspace, .csv or .parquet")
]
Budget = Annotated[
    float | str,
    Field(description="the day's total budget in currency: 50000, or '50,000', '50k', '5w'"),
]
RoiTarget = Annotated[
    float | str, Field(description="the ROI target, GMV / spend: 4 (or '400%'); 0 for none")
]
PlanId = Annotated[str, Field(description="a plan_id that recommend_bids returned")]
ScenarioName = Annotated[
    str, Field(description="a preset name (see list_scenarios) or a scenario TOML in the workspace")
]
Prior = Annotated[
    str,
    Field(
        description="what the strategies know beforehand: fitted (from 14 days of simulated "
        "logs), cold (channel averages) or true (research only)"
    ),
]


class AgentTools:
    """The tools over one workspace. Calls are serialised: one runs at a time."""

    #: Tool names, in the order they are listed; each is a method of this class.
    TOOLS: tuple[str, ...] = (
        "list_scenarios",
        "show_scenario",
        "simulate_logs",
        "evaluate_strategies",
        "recommend_bids",
        "explain_plan",
        "what_if",
        "diagnose_roi",
        "apply_bids",
        "live_bids",
    )
    #: Tools that write nothing.
    READ_ONLY: frozenset[str] = frozenset(
        {"list_scenarios", "show_scenario", "explain_plan", "what_if", "diagnose_roi"}
    )

    def __init__(self, workspace: Workspace | str | os.PathLike[str]):
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        self._lock = threading.Lock()

    def call(self, name: str, arguments: dict[str, Any], on_progress: Progress | None = None):
        """Run tool ``name`` (for front ends that dispatch by name)."""
        if name not in self.TOOLS:
            raise WorkspaceError(f"unknown tool {name!r}; use one of {', '.join(self.TOOLS)}")
        method = getattr(self, name)
        if "on_progress" in method.__code__.co_varnames:
            arguments = arguments | {"on_progress": on_progress}
        with self._lock:
            return _plain(method(**arguments))

    # -- scenarios ------------------------------------------------------------------------
    def list_scenarios(self) -> dict[str, Any]:
        """The built-in market scenarios (presets) and the scenario TOML files in the
        workspace: name, arms, channels, budget and ROI target of each preset."""
        from envs import PRESETS, env_id, get_scenario

        presets = []
        for name in PRESETS:
            sc = get_scenario(name)
            presets.append(
                {
                    "name": name,
                    "env_id": env_id(name),
                    "arms": sc.n_arms,
                    "channels": [ch.name for ch in sc.channels],
                    "products": [p.name for p in sc.products],
                    "budget": sc.budget,
                    "roi_target": sc.roi_target,
                    "horizon_hours": sc.horizon_hours,
                    "description": sc.description,
                }
            )
        files = sorted(
            self.workspace.relative(p)
            for p in self.workspace.root.rglob("*.toml")
            if not any(part.startswith(".") for part in p.relative_to(self.workspace.root).parts)
            and p.resolve().is_relative_to(self.workspace.root)
        )[:200]
        return {"presets": presets, "workspace_files": files}

    def _scenario(self, name: str, what: str = "scenario"):
        from envs import PRESETS
        from envs.market_env import resolve_scenario

        if name in PRESETS:
            return resolve_scenario(name)
        return resolve_scenario(str(self.workspace.path(name, what)))

    def show_scenario(self, name: ScenarioName) -> dict[str, Any]:
        """One scenario as data: its TOML text (what `autopilot scenario show` prints, and
        what --scenario accepts) and its main figures per channel."""
        sc = self._scenario(name)
        return {
            "name": sc.name,
            "description": sc.description,
            "budget": sc.budget,
            "roi_target": sc.roi_target,
            "horizon_hours": sc.horizon_hours,
            "arms": [{"product": a.product, "channel": a.channel} for a in sc.arms],
            "channels": [
                {
                    "name": ch.name,
                    "payment": "commission",
                    "auction": "none: influencers paid a share of GMV",
                    "going_rate": ch.going_rate,
                    "max_rate": ch.max_rate,
                    "supply_lag_hours": ch.supply_lag_hours,
                }
                if ch.commission
                else {
                    "name": ch.name,
                    "payment": "cpm",
                    "auction": ch.auction,
                    "price_cpm": ch.price_cpm,
                    "price_family": ch.price_family,
                    "order_delay_hours": ch.order_delay_hours,
                }
                for ch in sc.channels
            ],
            "shocks": len(sc.shocks),
            "toml": sc.to_toml(),
        }

    # -- simulation and evaluation -----------------------------------------------------------
    def simulate_logs(
        self,
        out: Annotated[
            str, Field(description="the log file to write in the workspace, .csv or .parquet")
        ],
        scenario: ScenarioName = "default",
        strategy: Annotated[
            str, Field(description="the strategy to play: even, pid, mpc, ...")
        ] = "even",
        days: Annotated[int, Field(description="days to simulate, 1 to 366")] = 14,
        seed: Annotated[int, Field(description="market seed")] = 0,
        start_date: Annotated[str | None, Field(description="first day, YYYY-MM-DD")] = None,
        prior: Prior = "fitted",
        shock_days: Annotated[
            list[str],
            Field(
                description="extra one-day shocks DAY:KIND:FACTOR[:CHANNEL[:PRODUCT]], e.g. "
                "13:creative_fatigue:0.4:feed (an ROI drop on the last of 14 days)"
            ),
        ] = (),  # type: ignore[assignment]
        on_progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Play a strategy in a scenario day after day and write the hourly performance
        logs a real platform would export (what `autopilot simulate` writes): a history to
        try recommend_bids and diagnose_roi on, where the truth is known."""
        from bidder.logs import log_format, write_logs
        from envs import PRESETS
        from envs.io import check_output_path, check_outputs_distinct
        from policies.cli.simulate import _parse_date, parse_shock_day
        from policies.simulate import simulate_logs

        path = self.workspace.output(out, "out")
        log_format(path)
        check_output_path(path, "log file")
        if scenario not in PRESETS:
            check_outputs_distinct([self.workspace.path(scenario, "scenario")], [path])
        day_shocks: dict[int, tuple] = {}
        for text in shock_days:
            day, shock = parse_shock_day(text)
            day_shocks[day] = day_shocks.get(day, ()) + (shock,)
        logs = simulate_logs(
            self._scenario(scenario),
            strategy,
            days,
            seed,
            start_date=_parse_date(start_date),
            prior=prior,
            day_shocks=day_shocks,
            on_day=None
            if on_progress is None
            else lambda done, total: on_progress(done, total, f"day {done} of {total}"),
        )
        replaced = path.exists()
        write_logs(logs, path)
        spend, gmv = float(logs["spend"].sum()), float(logs["gmv"].sum())
        return {
            "path": self.workspace.relative(path),
            "rows": len(logs),
            "days": days,
            "arms": logs.groupby(["product", "channel"]).ngroups,
            "first_date": str(logs["date"].min())[:10],
            "last_date": str(logs["date"].max())[:10],
            "spend": round(spend, 2),
            "gmv": round(gmv, 2),
            "roi": round(gmv / spend, 4) if spend else 0.0,
            "replaced": replaced,
        }

    def evaluate_strategies(
        self,
        scenarios: Annotated[
            list[str], Field(description="preset names or workspace TOML paths")
        ] = ("default",),  # type: ignore[assignment]
        strategies: Annotated[
            list[str],
            Field(description="strategy names: even, proportional, pid, online-lp, mpc, oracle"),
        ] = ("even", "pid", "online-lp", "mpc", "oracle"),  # type: ignore[assignment]
        episodes: Annotated[int, Field(description="episodes (seeds) per scenario, 1 to 200")] = 3,
        seed: Annotated[int, Field(description="seed of the first episode")] = 0,
        prior: Prior = "fitted",
        on_progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Compare strategies on scenarios over the same seeds (common random numbers),
        with the clairvoyant oracle as the yardstick: score, GMV, spend, ROI, budget and
        ROI violations and the % of the oracle's score (what `autopilot evaluate` prints)."""
        from policies.cli.evaluate import parse_strategies
        from policies.evaluate import evaluate_many, format_table

        if isinstance(episodes, bool) or not 1 <= episodes <= MAX_EVALUATE_EPISODES:
            raise InputError(
                f"--episodes {episodes}: give 1 to {MAX_EVALUATE_EPISODES} episodes per call"
            )
        names = parse_strategies(",".join(strategies))
        if not scenarios:
            raise InputError("scenarios is empty; give preset names such as default")
        objects = [self._scenario(s) for s in scenarios]
        report = evaluate_many(
            names,
            objects,
            episodes,
            seed,
            prior=prior,
            on_episode=None
            if on_progress is None
            else lambda done, total: on_progress(done, total, f"episode {done} of {total}"),
        )
        report.pop("_results")
        report["table"] = format_table(report)
        return report

    # -- the nightly plan -------------------------------------------------------------------
    def recommend_bids(
        self,
        history: HistoryPath,
        budget: Budget,
        roi_target: RoiTarget,
        date: Annotated[str, Field(description="the day to plan, YYYY-MM-DD, after the history")],
        budget_risk: Annotated[
            float | None,
            Field(
                description="plan so that spend without the platform's cap exceeds the budget "
                "with probability at most this (e.g. 0.05); default: expected spend up to the budget"
            ),
        ] = None,
        model: Annotated[
            Literal["parametric", "empirical"],
            Field(
                description="response curves to plan with: parametric (the closed form on the "
                "fitted parameters, the default) or empirical (each channel's auction curves "
                "learned from the logs)"
            ),
        ] = "parametric",
    ) -> dict[str, Any]:
        """Fit every arm's response from the hourly logs and plan the day with the MPC
        bidder under the budget (a hard limit) and the ROI target: per-hour bids per
        product and channel, written to recommendations/<plan_id>.csv and .json, the same
        files `autopilot recommend` writes. Returns the plan id (for explain_plan, what_if
        and apply_bids) and the summary."""
        from bidder.logs import read_logs
        from bidder.recommend import (
            NEUTRAL_PLAN_NOTE,
            check_budget_risk,
            check_settings,
            recommend,
        )
        from envs.io import new_run_id
        from policies.cli.recommend import _parse_date, write_recommendation

        source = self.workspace.path(history, "history")
        budget = _amount(budget, "--budget")
        roi_target = _ratio(roi_target, "--roi-target")
        day = _parse_date(date)
        check_settings(budget, roi_target)
        check_budget_risk(budget_risk)
        logs = read_logs(source)
        history_hash = file_sha256(source)
        recommendation = recommend(
            logs,
            budget,
            roi_target,
            day,
            source=history,
            plan_note=NEUTRAL_PLAN_NOTE,
            budget_risk=budget_risk,
            model=model,
        )
        plan_id = new_run_id()
        folder = self.workspace.root / "recommendations"
        table_path, summary_path = folder / f"{plan_id}.csv", folder / f"{plan_id}.json"
        write_recommendation(recommendation, table_path, summary_path, run_id=plan_id)
        record = {
            "plan_id": plan_id,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "history": self.workspace.relative(source),
            "history_sha256": history_hash,
            "table": self.workspace.relative(table_path),
            "table_sha256": file_sha256(table_path),
            "summary": self.workspace.relative(summary_path),
            "date": day.isoformat(),
            "budget": budget,
            "roi_target": roi_target,
            "budget_risk": budget_risk,
        }
        from envs.io import atomic_write_text

        self.workspace.plans_folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            self.workspace.plans_folder / f"{plan_id}.json", json.dumps(record, indent=2) + "\n"
        )
        return {
            "plan_id": plan_id,
            "table": record["table"],
            "summary_file": record["summary"],
            "rows": len(recommendation.table),
            "summary": recommendation.summary,
        }

    def _checked_plan(self, plan_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The register entry and summary of a plan whose files and history are unchanged."""
        record = self.workspace.plan_record(plan_id)
        for key, what in (("table", "bid table"), ("summary", "summary")):
            path = self.workspace.path(record[key], f"plan {what}")
            if not path.is_file():
                raise WorkspaceError(
                    f"plan {plan_id}: its {what} {record[key]} is gone; call recommend_bids again"
                )
        if file_sha256(self.workspace.path(record["table"], "bid table")) != record["table_sha256"]:
            raise WorkspaceError(
                f"plan {plan_id}: its bid table {record['table']} was edited since "
                "recommend_bids wrote it; call recommend_bids again"
            )
        history = self.workspace.path(record["history"], "history")
        if not history.is_file() or file_sha256(history) != record["history_sha256"]:
            raise WorkspaceError(
                f"plan {plan_id}: the history {record['history']} changed since the plan was "
                "made; call recommend_bids again on the current history"
            )
        summary = read_json(self.workspace.path(record["summary"], "summary"), "plan summary")
        if summary.get("run_id") != plan_id:
            raise WorkspaceError(
                f"plan {plan_id}: its summary {record['summary']} belongs to another plan; "
                "call recommend_bids again"
            )
        return record, summary

    def explain_plan(self, plan_id: PlanId) -> dict[str, Any]:
        """Why the plan is what it is: which constraints bind (budget, ROI target) and
        their shadow prices, the best reachable ROI, spend, GMV and ROI per channel and
        per arm with the bid change from the last day, thin arms and warnings."""
        record, s = self._checked_plan(plan_id)
        keys = (
            "date",
            "budget",
            "roi_target",
            "planned_spend",
            "expected_gmv",
            "expected_roi",
            "roi_target_met",
            "roi_shortfall",
            "budget_left",
            "budget_note",
            "best_reachable_roi",
            "constraints",
            "explanation",
            "by_channel",
            "by_arm",
            "notes",
            "thin_arms",
            "warnings",
            "spend_risk",
        )
        return {"plan_id": plan_id, "history": record["history"]} | {
            key: s[key] for key in keys if key in s
        }

    def what_if(
        self,
        plan_id: PlanId,
        budgets: Annotated[
            list[float | str] | None,
            Field(description="budgets to plan at; default 0.5x to 2x the plan's budget"),
        ] = None,
        roi_targets: Annotated[
            list[float | str] | None,
            Field(description="ROI targets to plan at; default the plan's own"),
        ] = None,
    ) -> dict[str, Any]:
        """The same history planned at other budgets and ROI targets, one row per pair:
        planned spend, expected GMV and ROI, whether the target is reachable, and the
        shadow prices (a budget-response curve: what one more unit of budget buys)."""
        from bidder.logs import read_logs
        from bidder.recommend import fit_market, what_if

        record, _ = self._checked_plan(plan_id)
        budget_values = (
            [record["budget"] * f for f in WHAT_IF_BUDGET_FACTORS]
            if budgets is None
            else [_amount(b, "budgets") for b in budgets]
        )
        roi_values = (
            [record["roi_target"]]
            if roi_targets is None
            else [_ratio(r, "roi_targets") for r in roi_targets]
        )
        points = [(b, r) for r in roi_values for b in budget_values]
        if not points or len(points) > MAX_WHAT_IF_POINTS:
            raise InputError(
                f"what_if: {len(points)} budget and ROI pairs; give 1 to {MAX_WHAT_IF_POINTS}"
            )
        history = self.workspace.path(record["history"], "history")
        fitted = fit_market(
            read_logs(history), dt.date.fromisoformat(record["date"]), record["history"]
        )
        return {
            "plan_id": plan_id,
            "date": record["date"],
            "points": what_if(fitted, points),
            "note": "planned without a budget risk, on the plan's own fit of the history",
        }

    def diagnose_roi(
        self,
        history: HistoryPath,
        date: Annotated[
            str | None, Field(description="the date, YYYY-MM-DD; default the last")
        ] = None,
        baseline_days: Annotated[int, Field(description="trailing days to compare with")] = 7,
    ) -> dict[str, Any]:
        """Find ROI drops on a date (per campaign, product and arm, against the trailing
        days' same hours) and split each into causes with their shares and a proposed
        action: creative decline, competitor pressure or price cut, order value change,
        traffic shift (what `autopilot diagnose --json` prints, with the text report)."""
        import argparse

        from bidder.diagnose import diagnose, format_report
        from bidder.logs import read_logs
        from policies.cli import date_arg

        if date is not None:
            try:
                date = date_arg(date)
            except argparse.ArgumentTypeError as err:
                raise WorkspaceError(f"--date: {err}") from None
        diagnosis = diagnose(
            read_logs(self.workspace.path(history, "history")), date, baseline_days
        )
        return diagnosis.to_dict() | {"report": format_report(diagnosis)}

    def live_bids(
        self,
        campaign: Annotated[
            str,
            Field(
                description="the running campaign, a TOML file in the workspace: budget, "
                "roi_target, start (the first hour), optional horizon_hours and arms"
            ),
        ],
        history: HistoryPath,
        out: Annotated[
            str,
            Field(description="where to write the next hour's bids in the workspace, .csv"),
        ],
        played: Annotated[
            str | None,
            Field(
                description="the campaign's hours so far in the log format, with the bids "
                "set (omit for the first hour)"
            ),
        ] = None,
    ) -> dict[str, Any]:
        """The next hour's bid per arm for a campaign that is running now (what `autopilot
        live` writes): the hours played so far are replayed, the MPC plans the rest of the
        campaign under what is left of the budget and the ROI target, and the bids go to
        `out` (with a .json summary beside it). Returns the summary (spent, ROI so far,
        what the hour plans, the explanation) and the bids."""
        from policies.cli.live import write_next_hour

        path = self.workspace.output(out, "out")
        played_path = None if played is None else self.workspace.path(played, "played")
        bids, summary = write_next_hour(
            self.workspace.path(campaign, "campaign"),
            self.workspace.path(history, "history"),
            played_path,
            None,  # no tool loads a policy file
            path,
            path.with_suffix(".json"),
        )
        rows = bids.assign(hour=bids["hour"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_dict("records")
        return summary | {"path": self.workspace.relative(path), "bids": rows}

    def apply_bids(self, plan_id: PlanId) -> dict[str, Any]:
        """Write an approved plan, by its id, to applied/<plan_id>.csv: the bid sheet an
        ad account takes (date, hour, product, channel, bid in CPM). Refused for an id
        recommend_bids did not make here, a plan whose history or files changed since, or
        a plan whose total planned spend exceeds its budget."""
        import pandas as pd

        from bidder.logs import write_table

        record, summary = self._checked_plan(plan_id)
        table = pd.read_csv(self.workspace.path(record["table"], "bid table"))
        total = float(table["planned_spend"].sum())
        budget = float(record["budget"])
        if not math.isfinite(total) or total > budget * (1 + 1e-9) or (table["bid"] < 0).any():
            raise WorkspaceError(
                f"plan {plan_id}: planned spend {total:,.2f} exceeds its budget {budget:,.2f}; "
                "it is not applied; call recommend_bids again"
            )
        out = self.workspace.root / "applied" / f"{plan_id}.csv"
        replaced = out.exists()
        write_table(table[list(BID_SHEET_COLUMNS)], out, "bid sheet")
        return {
            "plan_id": plan_id,
            "bid_sheet": self.workspace.relative(out),
            "rows": len(table),
            "date": record["date"],
            "planned_spend": round(total, 2),
            "budget": budget,
            "expected_roi": summary.get("expected_roi"),
            "replaced": replaced,
        }

    # -- resources --------------------------------------------------------------------------
    def latest_plan(self) -> tuple[str, Path, Path] | None:
        """(plan id, table, summary) of the newest plan of the workspace, if any."""
        ids = self.workspace.plan_ids()
        if not ids:
            return None
        record = self.workspace.plan_record(ids[-1])
        return (
            ids[-1],
            self.workspace.path(record["table"], "bid table"),
            self.workspace.path(record["summary"], "summary"),
        )


def log_format_text() -> str:
    """The hourly log format (``docs/logs.md`` in short), from the reader's own constants."""
    from bidder.logs import (
        AMOUNT_COLUMNS,
        COUNT_COLUMNS,
        KEY_COLUMNS,
        OPTIONAL_NUMERIC_COLUMNS,
        OPTIONAL_TEXT_COLUMNS,
    )
    from envs.scenario import KNOWN_CHANNELS

    return (
        "\n".join(
            [
                "# Hourly performance logs (CSV or Parquet), one row per date, hour, product and channel",
                "",
                f"- keys: {', '.join(KEY_COLUMNS)} (date YYYY-MM-DD and hour 0-23, or one "
                "'timestamp' column instead of both); at most one row per key",
                f"- counts, whole and non-negative: {', '.join(COUNT_COLUMNS)}; orders <= clicks "
                "<= impressions per arm",
                f"- amounts, non-negative: {', '.join(AMOUNT_COLUMNS)} (spend and gmv in currency, "
                "bid in CPM: currency per 1000 impressions)",
                f"- optional measured figures: {', '.join(OPTIONAL_NUMERIC_COLUMNS)} (share of "
                "auctions won 0-1, mean clearing price paid in CPM)",
                f"- optional labels: {', '.join(OPTIONAL_TEXT_COLUMNS)}",
                f"- channels: {', '.join(KNOWN_CHANNELS)}",
                "- at least 3 days of history (14 or more also fits weekday factors)",
            ]
        )
        + "\n"
    )


def tool_methods(tools: AgentTools) -> Sequence[tuple[str, Callable[..., Any]]]:
    """(name, bound method) of every tool, in listing order."""
    return [(name, getattr(tools, name)) for name in AgentTools.TOOLS]
