"""Drive the autopilot hour by hour from any market: another simulator or a real ad account.

The autopilot needs no :class:`~envs.AdMarketEnv`. It is built from a :class:`Campaign`
(budget, ROI target, arms, first hour, horizon) and a prior: the campaign's hourly logs
(docs/logs.md) or a :class:`~bidder.recommend.FittedMarket` fitted from them. Each hour,
:meth:`Autopilot.next_bids` gives one bid per arm and :meth:`Autopilot.record` takes what
the market reported for that hour, in the columns of the log format::

    pilot = Autopilot(campaign, prior=logs)
    while not pilot.done:
        bids = pilot.next_bids()            # product, channel, bid (CPM), planned_spend, ...
        rows = my_market.play(bids)         # product, channel, impressions, clicks, orders,
        pilot.record(rows)                  # spend, gmv and, if known, win_rate

Behind it is the ``mpc`` strategy: forecasts start from the prior and correct themselves
from every recorded hour; the MPC bidder plans the rest of the campaign under the budget
and the ROI target each hour. The plan never spends more than what is left of the budget;
set the campaign's total budget on the platform too, so that the market itself stops there
(docs/integrate.md).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bidder.mpc import Decision, MPCConfig
from bidder.recommend import FittedMarket
from envs.errors import InputError
from envs.scenario import MAX_COMMISSION_RATE

#: Columns :meth:`Autopilot.record` needs, and the one it reads when given.
RECORD_COLUMNS = ("product", "channel", "impressions", "clicks", "orders", "spend", "gmv")
OPTIONAL_RECORD_COLUMNS = ("win_rate", "bid")
#: What the MPC strategies get for an environment's observation: they plan from their own
#: state (the planner from its features), so a campaign without an environment has none.
NO_OBSERVATION = np.zeros(0)
#: Columns of :meth:`Autopilot.next_bids`.
BID_COLUMNS = ("hour", "product", "channel", "bid", "planned_spend", "expected_gmv")
MAX_HORIZON_HOURS = 24 * 14


class CampaignError(InputError):
    """A campaign, a prior or an hour's results the autopilot cannot use."""


@dataclass(frozen=True)
class Campaign:
    """What the advertiser set: the budget and ROI target over the campaign's hours.

    Attributes:
        budget: the total budget of the campaign (currency).
        roi_target: GMV / spend the campaign must reach.
        arms: ``(product, channel)`` per arm, in the order of every output.
        start: the first hour (a datetime on the hour).
        horizon_hours: how many hours the campaign runs.
        attribution_window_hours: how long after the last hour delayed orders still count.
        max_bid_cpm: the highest bid for any arm (default: the caps fitted from the logs).
    """

    budget: float
    roi_target: float
    arms: tuple[tuple[str, str], ...]
    start: dt.datetime
    horizon_hours: int = 24
    attribution_window_hours: int = 24
    max_bid_cpm: float | None = None

    def __post_init__(self) -> None:
        from bidder.recommend import check_settings

        check_settings(self.budget, self.roi_target)
        arms = tuple(tuple(arm) for arm in self.arms)
        if not arms:
            raise CampaignError("the campaign has no arms; give (product, channel) pairs")
        for arm in arms:
            if len(arm) != 2 or not all(isinstance(x, str) and x.strip() for x in arm):
                raise CampaignError(f"arm {arm!r} must be a (product, channel) pair of names")
        if len(set(arms)) != len(arms):
            raise CampaignError("an arm is listed twice; list every (product, channel) once")
        object.__setattr__(self, "arms", arms)
        if not isinstance(self.start, dt.datetime) or self.start.minute or self.start.second:
            raise CampaignError(
                f"start {self.start!r} must be a datetime on the hour, e.g. 2026-01-19 00:00"
            )
        if (
            not isinstance(self.horizon_hours, int)
            or not 1 <= self.horizon_hours <= MAX_HORIZON_HOURS
        ):
            raise CampaignError(
                f"horizon_hours {self.horizon_hours!r} must be a whole number from 1 to "
                f"{MAX_HORIZON_HOURS}"
            )
        if not isinstance(self.attribution_window_hours, int) or self.attribution_window_hours < 0:
            raise CampaignError("attribution_window_hours must be a whole number, 0 or more")
        if self.max_bid_cpm is not None and not (
            math.isfinite(self.max_bid_cpm) and self.max_bid_cpm > 0
        ):
            raise CampaignError(f"max_bid_cpm {self.max_bid_cpm!r} must be a positive number")


class _CampaignView:
    """What the MPC strategies read from their environment, for a campaign without one."""

    def __init__(self, campaign: Campaign, price_cpm: np.ndarray):
        from types import SimpleNamespace

        self.n_arms = len(campaign.arms)
        self.horizon = campaign.horizon_hours
        self.budget = float(campaign.budget)
        self.roi_target = float(campaign.roi_target)
        self.price_cpm = price_cpm
        self.arm_channels = [channel for _, channel in campaign.arms]
        # The planner's features read the clock of the campaign's first hour.
        self.scenario = SimpleNamespace(start_hour=campaign.start.hour)


class Autopilot:
    """The hourly autopilot of one campaign (see the module's docstring).

    Args:
        campaign: the campaign's settings.
        prior: hourly logs of the campaign's arms on the days before its first (a frame in
            the format of docs/logs.md, checked as ``recommend`` checks it), or the
            :class:`~bidder.recommend.FittedMarket` of the campaign's first day.
        config: the MPC bidder's settings (MPC alone; a policy brings its own).
        policy: a ``ppo-mpc`` policy file (.safetensors): the PPO planner then sets the MPC
            bidder's plan every hour from the campaign's state, as the ``ppo-mpc`` strategy
            does; default: MPC alone (the neutral plan).

    Raises:
        CampaignError, LogError, RecommendError: the prior cannot be used (the message
            says why).
    """

    def __init__(
        self,
        campaign: Campaign,
        prior: FittedMarket | pd.DataFrame,
        config: MPCConfig | None = None,
        policy: str | Path | None = None,
    ):
        from bidder.logs import validate_logs
        from bidder.recommend import fit_market
        from policies.mpc_strategy import MPCStrategy
        from policies.prior import lay_over

        self.campaign = campaign
        first_day = campaign.start.date()
        if isinstance(prior, pd.DataFrame):
            # The campaign's own channel names (an ad account's) are names the logs may use.
            declared = [channel for _, channel in campaign.arms]
            prior = fit_market(
                validate_logs(prior, "prior logs", channels=declared), first_day, "prior logs"
            )
        if not isinstance(prior, FittedMarket):
            raise CampaignError(
                f"prior must be hourly logs (a DataFrame) or a FittedMarket, not "
                f"{type(prior).__name__}"
            )
        if prior.date != first_day:
            raise CampaignError(
                f"the prior describes {prior.date}, the campaign starts on {first_day}; fit "
                "it for the campaign's first day"
            )
        self.fitted = prior
        index = {arm: i for i, arm in enumerate(prior.arms)}
        columns = np.array([index.get(arm, -1) for arm in campaign.arms])
        #: Arms the logs never showed: they get no traffic in the prior and are not bid.
        self.unseen_arms = [arm for arm, c in zip(campaign.arms, columns, strict=True) if c < 0]
        tradeable = columns >= 0
        if prior.untradeable.size:
            tradeable &= ~prior.untradeable[np.maximum(columns, 0)]
        self._tradeable = tradeable
        market = lay_over(
            prior.market,
            prior.arms,
            list(campaign.arms),
            start_hour=campaign.start.hour,
            horizon_hours=campaign.horizon_hours,
            start_weekday=campaign.start.weekday(),
            attribution_window_hours=campaign.attribution_window_hours,
            weekday_factors=prior.weekday_factors,
            fitted_weekday=prior.date.weekday(),
        )
        caps = prior.bid_cap[np.maximum(columns, 0)]
        # An arm the logs never showed is never bid (next_bids sets it to 0), but the
        # bidder needs a positive cap for every arm: it takes the highest fitted one.
        caps = np.where(tradeable, caps, np.max(prior.bid_cap))
        if campaign.max_bid_cpm is not None:
            caps = np.minimum(caps, campaign.max_bid_cpm)
        price = np.median(market.price_median, axis=0)
        if policy is not None:
            from policies.ppo import load_ppo_strategy

            self._strategy = load_ppo_strategy(policy)
        else:
            self._strategy = MPCStrategy(config)
            self._strategy.name = "mpc"
        self._strategy.reset(_CampaignView(campaign, price), market)
        self._strategy.bid_cap = caps
        self._pending: np.ndarray | None = None
        #: Arms paid by commission (from the logs): their lever is a rate, not a bid.
        mechanism = market.mechanism
        self._commission = (
            mechanism.commission.copy()
            if mechanism is not None and mechanism.any_commission
            else np.zeros(len(campaign.arms), bool)
        )

    # -- where the campaign stands --------------------------------------------------------
    @property
    def hour(self) -> int:
        """Hours recorded so far (the next bids are for this hour of the campaign)."""
        return self._strategy.t

    @property
    def done(self) -> bool:
        return self.hour >= self.campaign.horizon_hours

    @property
    def spent(self) -> float:
        """Spend reported so far."""
        return self._strategy.spent

    @property
    def gmv(self) -> float:
        """GMV reported so far."""
        return self._strategy.gmv

    @property
    def remaining_budget(self) -> float:
        return max(0.0, self.campaign.budget - self.spent)

    @property
    def roi(self) -> float:
        """GMV / spend reported so far (0 before any spend)."""
        return self.gmv / self.spent if self.spent > 0 else 0.0

    @property
    def decisions(self) -> list[Decision]:
        """The MPC decision behind every hour's bids, with its explanation."""
        return self._strategy.decisions

    @property
    def strategy_name(self) -> str:
        """``mpc`` (MPC alone) or ``ppo-mpc`` (the PPO planner driving the MPC)."""
        return self._strategy.name

    # -- the hourly loop ------------------------------------------------------------------
    def next_bids(self) -> pd.DataFrame:
        """This hour's bid per arm, in the campaign's arm order.

        Columns :data:`BID_COLUMNS`: ``hour`` (the hour's start), ``product``, ``channel``,
        ``bid`` (CPM), and the plan's ``planned_spend`` and ``expected_gmv`` for the hour.
        Asking twice before :meth:`record` gives the same bids.

        Raises:
            CampaignError: the campaign is over.
        """
        if self.done:
            raise CampaignError(
                f"the campaign is over ({self.campaign.horizon_hours} hours recorded); start "
                "a new Autopilot for the next one"
            )
        if self._pending is None:
            n = len(self.campaign.arms)
            if self.remaining_budget <= 0.0:
                # Nothing left to spend: no plan is solved, every arm bids 0.
                bids, spend, gmv = np.zeros(n), np.zeros(n), np.zeros(n)
                self._strategy.previous_bids = bids
            else:
                bids = np.asarray(self._strategy.act(NO_OBSERVATION), dtype=float)
                decision = self._strategy.decisions[-1]
                spend, gmv = decision.planned_spend, decision.predicted_gmv
            bids = np.where(self._tradeable, bids, 0.0)
            self._pending = bids
            self._planned = (np.asarray(spend, dtype=float), np.asarray(gmv, dtype=float))
        products, channels = zip(*self.campaign.arms, strict=True)
        start = self.campaign.start + dt.timedelta(hours=self.hour)
        paid = self._commission
        frame = pd.DataFrame(
            {
                "hour": pd.Timestamp(start),
                "product": list(products),
                "channel": list(channels),
                "bid": np.round(np.where(paid, 0.0, self._pending), 4),
                "planned_spend": np.round(self._planned[0], 2),
                "expected_gmv": np.round(self._planned[1], 2),
            },
            columns=list(BID_COLUMNS),
        )
        if paid.any():
            # Arms paid by commission: the rate to set, beside the auction arms' bids.
            frame.insert(4, "commission_rate", np.where(paid, np.round(self._pending, 6), np.nan))
        return frame

    def _rates(self, frame: pd.DataFrame, order: np.ndarray) -> np.ndarray:
        """The commission rates that were set (``commission_rate``; else the planned ones)."""
        pending = np.zeros(len(order)) if self._pending is None else self._pending
        if "commission_rate" not in frame.columns:
            return pending
        rates = pd.to_numeric(frame["commission_rate"], errors="coerce").to_numpy(float)[order]
        given = self._commission & np.isfinite(rates)
        if np.any(rates[given] < 0) or np.any(rates[given] > MAX_COMMISSION_RATE):
            raise CampaignError(
                f"hour {self.hour}: column 'commission_rate' holds a rate outside 0 to "
                f"{MAX_COMMISSION_RATE}; give the share of GMV paid, e.g. 0.15"
            )
        return np.where(given, rates, pending)

    def record(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> None:
        """Take what the market reported for the hour just played, one row per arm.

        Columns :data:`RECORD_COLUMNS` and, when known, ``win_rate`` (it lets the price
        forecasts learn) and ``bid`` (the bid that was really set, when it was not the
        one :meth:`next_bids` gave).

        Raises:
            CampaignError: the campaign is over; a missing, unknown or repeated arm; a
                missing column; a value that is not a finite number of at least 0; or no
                bids known for the hour (no ``bid`` column and no :meth:`next_bids`).
        """
        if self.done:
            raise CampaignError("the campaign is over; no more hours can be recorded")
        frame = pd.DataFrame(rows)
        missing = [c for c in RECORD_COLUMNS if c not in frame.columns]
        if missing:
            raise CampaignError(
                f"hour {self.hour}: column {missing[0]!r} is missing; give "
                f"{', '.join(RECORD_COLUMNS)} (and win_rate when known)"
            )
        keys = list(zip(frame["product"].astype(str), frame["channel"].astype(str), strict=True))
        index = {arm: i for i, arm in enumerate(self.campaign.arms)}
        for key in keys:
            if key not in index:
                raise CampaignError(
                    f"hour {self.hour}: arm {key} is not in the campaign; report only its arms"
                )
        if len(set(keys)) != len(keys) or len(keys) != len(index):
            absent = [arm for arm in self.campaign.arms if arm not in keys]
            problem = f"arm {absent[0]} is missing" if absent else "an arm is reported twice"
            raise CampaignError(f"hour {self.hour}: {problem}; give one row per campaign arm")
        order = np.array([keys.index(arm) for arm in self.campaign.arms])
        figures: dict[str, np.ndarray] = {}
        names = list(RECORD_COLUMNS[2:]) + [c for c in OPTIONAL_RECORD_COLUMNS if c in frame]
        for name in names:
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)[order]
            if not np.all(np.isfinite(values)) or np.any(values < 0):
                raise CampaignError(
                    f"hour {self.hour}: column {name!r} holds a value that is not a finite "
                    "number of at least 0"
                )
            figures[name] = values
        if "bid" in figures:
            bids = figures.pop("bid")
        elif self._pending is not None:
            bids = self._pending
        else:
            raise CampaignError(
                f"hour {self.hour}: no bids known for this hour; call next_bids() first or "
                "give the bids that were set in a 'bid' column"
            )
        if self._commission.any():  # a commission arm's lever is its rate
            bids = np.where(self._commission, self._rates(frame, order), bids)
        figures.setdefault("win_rate", np.zeros(len(index)))  # unknown: prices not learned
        figures["win_rate"] = np.clip(figures["win_rate"], 0.0, 1.0)
        self._strategy.observe({"bid_cpm": bids} | figures)  # counts spend and GMV too
        self._strategy.previous_bids = bids
        self._pending = None


# -- a campaign file and the hourly job ---------------------------------------------------
CAMPAIGN_KEYS = (
    "budget",
    "roi_target",
    "start",
    "horizon_hours",
    "attribution_window_hours",
    "max_bid_cpm",
    "arms",
)
MAX_CAMPAIGN_BYTES = 1024**2


def read_campaign(path, default_arms: Sequence[tuple[str, str]] = ()) -> Campaign:
    """A :class:`Campaign` from a TOML file (docs/integrate.md)::

        budget = 5000              # or "5k"
        roi_target = 8             # or "800%"
        start = 2026-03-02T00:00:00
        horizon_hours = 24         # optional
        arms = [["tea", "feed"], ["tea", "search"]]   # optional: default_arms

    Raises:
        CampaignError: not TOML, an unknown or missing key, or a bad value.
    """
    from envs.io import check_keys, read_toml
    from policies.cli import amount_arg, number_or_text, ratio_arg

    path = Path(path)
    table = read_toml(path, "campaign file", MAX_CAMPAIGN_BYTES, CampaignError)
    check_keys(table, CAMPAIGN_KEYS, str(path), CampaignError)
    for key in ("budget", "roi_target", "start"):
        if key not in table:
            raise CampaignError(f"{path}: {key} is missing; give budget, roi_target and start")
    start = table["start"]
    if isinstance(start, str):
        try:
            start = dt.datetime.fromisoformat(start)
        except ValueError:
            start = None
    if not isinstance(start, dt.datetime) or start.tzinfo is not None:
        raise CampaignError(
            f"{path}: start must be the first hour as a local date and time, e.g. "
            "start = 2026-03-02T00:00:00"
        )
    arms = table.get("arms", list(default_arms))
    if not isinstance(arms, list) or not all(isinstance(a, list | tuple) for a in arms):
        raise CampaignError(
            f'{path}: arms must be a list of [product, channel] pairs, e.g. [["tea", "feed"]]'
        )
    try:
        return Campaign(
            budget=number_or_text(table["budget"], amount_arg, "budget"),
            roi_target=number_or_text(table["roi_target"], ratio_arg, "roi_target"),
            arms=tuple(tuple(a) for a in arms),
            start=start,
            horizon_hours=table.get("horizon_hours", 24),
            attribution_window_hours=table.get("attribution_window_hours", 24),
            max_bid_cpm=table.get("max_bid_cpm"),
        )
    except InputError as err:
        raise CampaignError(f"{path}: {err}") from None


def declared_channels(path) -> list[str]:
    """The channel names a campaign file's ``arms`` declare (none where it lists no arms):
    names the campaign's logs may use besides the simulator's.

    Raises:
        CampaignError: the file is not TOML (as :func:`read_campaign` would).
    """
    from envs.io import read_toml

    table = read_toml(Path(path), "campaign file", MAX_CAMPAIGN_BYTES, CampaignError)
    arms = table.get("arms", [])
    if not isinstance(arms, list):
        return []  # read_campaign says what is wrong with it
    return [str(a[1]) for a in arms if isinstance(a, list | tuple) and len(a) == 2]


def resume(
    campaign: Campaign,
    prior: FittedMarket | pd.DataFrame,
    played: pd.DataFrame | None = None,
    policy: str | Path | None = None,
) -> Autopilot:
    """The autopilot after the hours already played, replayed from their log rows.

    ``played`` holds the campaign's hours so far in the log format (clean, as
    :func:`bidder.logs.read_logs` returns it), every arm for every hour from the first, with
    the ``bid`` that was set. Each hour is decided again before it is recorded, so the
    result plans the next hour exactly as one autopilot running since the start would
    have (given the same bids). ``policy``: as :class:`Autopilot`'s.

    Raises:
        CampaignError: rows outside the campaign's hours or arms, a gap in the hours, or
            more hours than the campaign has.
    """
    pilot = Autopilot(campaign, prior, policy=policy)
    if played is None or len(played) == 0:
        return pilot
    start = pd.Timestamp(campaign.start)
    offset = (played["timestamp"] - start) / pd.Timedelta(hours=1)
    if (offset < 0).any():
        first = played.loc[offset < 0, "timestamp"].iloc[0]
        raise CampaignError(
            f"played hours: {first} is before the campaign's start {start}; give only the "
            "campaign's hours (the history before it is the prior)"
        )
    hours = sorted(set(offset.astype(int)))
    if hours != list(range(len(hours))):
        missing = next(k for k, hour in enumerate(hours) if hour != k)
        raise CampaignError(
            f"played hours: hour {start + pd.Timedelta(hours=missing)} is missing; record "
            "every hour from the start, in order"
        )
    if len(hours) > campaign.horizon_hours:
        raise CampaignError(
            f"played hours: {len(hours)} hours recorded, the campaign has "
            f"{campaign.horizon_hours}; check the campaign's start and horizon"
        )
    for hour in hours:
        rows = played[offset == hour]
        pilot.next_bids()
        try:
            pilot.record(rows)
        except CampaignError as err:
            when = start + pd.Timedelta(hours=hour)
            raise CampaignError(f"played hours, {when}: {err}") from None
    return pilot


def next_hour(
    campaign, history, played=None, policy: str | Path | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The next hour's bids of a running campaign and where it stands, from its files
    (what ``autopilot live`` writes).

    Args:
        campaign: the campaign TOML file (:func:`read_campaign`).
        history: hourly logs before the campaign (the prior); its arms are the default.
        played: the campaign's hours so far in the log format, with the bids set.
        policy: a ``ppo-mpc`` policy file; default MPC alone.

    Returns:
        The bids (:data:`BID_COLUMNS`) and the summary: ``hour``, ``hour_index``,
        ``hours_left``, ``budget``, ``roi_target``, ``spent``, ``gmv``, ``roi``,
        ``remaining_budget``, the hour's planned spend and expected GMV, the decision's
        ``explanation``, ``best_reachable_roi``, ``solver`` and ``unseen_arms``.

    Raises:
        CampaignError, LogError, RecommendError: a file that cannot be used, or a campaign
            whose hours are all played.
    """
    from bidder.logs import read_logs
    from bidder.recommend import fit_market

    declared = declared_channels(campaign)
    logs = read_logs(history, channels=declared)
    arms = list(dict.fromkeys(zip(logs["product"], logs["channel"], strict=True)))
    settings = read_campaign(campaign, default_arms=arms)
    # Fitted here from the clean frame, so that the logs are not checked a second time.
    fitted = fit_market(logs, settings.start.date(), str(history))
    names = declared + [channel for _, channel in arms]
    hours = read_logs(played, channels=names) if played is not None else None
    pilot = resume(settings, fitted, hours, policy)
    if pilot.done:
        raise CampaignError(
            f"the campaign's {settings.horizon_hours} hours are all played; nothing to bid"
        )
    bids = pilot.next_bids()
    decision = pilot.decisions[-1] if pilot.remaining_budget > 0 else None
    summary = {
        "hour": str(bids["hour"].iloc[0]),
        "hour_index": pilot.hour,
        "strategy": pilot.strategy_name,
        "hours_left": settings.horizon_hours - pilot.hour,
        "budget": settings.budget,
        "roi_target": settings.roi_target,
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
    return bids, summary
