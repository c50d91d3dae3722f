"""Tomorrow's bids from hourly performance logs: fit every arm's response, plan with the MPC.

This is the nightly job (``autopilot recommend``, ``docs/recommend.md``). It reads the
clean log frame of :func:`bidder.logs.read_logs` and

1. fits, per arm (product, channel), the market model of ``docs/market.md`` for the
   24 hours of the target date: hourly auction opportunities (daypart and weekday), the
   log-normal clearing-price distribution (hourly median and log-spread), CTR, CVR and
   order value, shrinking thin arms towards their channel's and product's averages;
2. plans the day with :class:`bidder.mpc.MPCBidder`, one planning period per hour, under
   the budget (a hard limit) and the ROI target;
3. returns one row per product, channel and hour (bid, planned spend, expected GMV and
   ROI) and a summary (binding constraints, shadow prices, thin arms and what was done).

How the auction is identified. A bid ``b`` against log-normal clearing prices
``LogNormal(ln m, sigma)`` wins with probability ``q = Phi(z)``, ``z = ln(b / m) / sigma``,
and the mean price paid per won impression is
``b * exp(-sigma z + sigma^2 / 2) * Phi(z - sigma) / Phi(z)``. A log row gives ``q``
(``win_rate``) and the mean price paid (``1000 spend / impressions``): two equations
per row, so every row with a mid-range win rate yields its own ``sigma``; the channel's
``sigma`` is their weighted median. Then ``ln m = ln b - sigma z`` per row, and the hourly
medians are averaged per channel and hour, shrunk towards a line in the log of the
channel's traffic daypart (competition follows traffic). Without ``win_rate`` the
spread cannot be separated from the median by one row, so ``DEFAULT_PRICE_SIGMA`` is
used and ``z`` is solved from the price paid alone.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bidder.mpc import CampaignState, Decision, MPCBidder, MPCConfig, reusable_bidder
from bidder.plan import Plan
from bidder.response import PARAMETRIC, build_curves
from envs.errors import InputError
from envs.market import EpisodeMarket
from envs.mechanisms import auction_mechanism, delay_probability
from envs.scenario import MAX_COMMISSION_RATE
from envs.stats import lognormal_auction, normal_cdf, normal_ppf

HOURS_PER_DAY = 24
#: Fewest distinct dates a history needs: every hour of the day is then seen at least
#: three times, enough to average out one unusual day.
MIN_HISTORY_DAYS = 3
#: Every weekday must be seen this often before weekday traffic factors are fitted
#: (two weeks of history); with less, tomorrow's traffic is the weekday-blind average.
MIN_DAYS_PER_WEEKDAY = 2
#: Log-spread of clearing prices assumed when the log has no ``win_rate`` column.
DEFAULT_PRICE_SIGMA = 0.5
#: Audience size as a multiple of the hour's opportunities (the market model's default):
#: the share of impressions that reach new viewers falls as more of the hour is won, so
#: the base CTR is clicks over saturated reach, not over raw impressions.
DEFAULT_SATURATION = 3.0
#: Coefficient of variation of one order's value; the expected plan does not depend on it.
DEFAULT_AOV_CV = 0.4
#: Bids are capped at this multiple of the arm's typical median clearing price (the
#: simulator's action range), so a thin arm's noisy fit cannot produce an absurd bid.
BID_CAP_FACTOR = 8.0
#: Rows with fewer impressions or a win rate outside these bounds say too little about
#: the auction (a near-zero or near-one win rate hardly moves with the price).
MIN_ROW_IMPRESSIONS = 20
WIN_RATE_RANGE = (0.02, 0.98)
#: Shrinkage strengths: the channel-and-product prior counts as this many clicks (CTR)
#: or orders (CVR, order value).
PRIOR_CLICKS = 50.0
PRIOR_ORDERS = 20.0
#: An arm has enough data for trustworthy rates with at least this many orders and
#: clicks over the history (counting noise of CVR below ~7%).
ENOUGH_ORDERS = 200
ENOUGH_CLICKS = 2_000
#: Rows (weighted) a channel-hour's price mean counts against the daypart line.
PRICE_PRIOR_ROWS = 3.0
#: Recency: a day's rows weigh half as much as those of the day ``HALF_LIFE_DAYS`` later,
#: so creative wear or price drift show up without discarding older days.
HALF_LIFE_DAYS = 14.0


class RecommendError(InputError):
    """A recommendation request that cannot be answered; the message names the fix."""


@dataclass
class ArmFit:
    """What the history says about one arm, and how much of it was trusted.

    Attributes:
        product, channel: the arm.
        impressions, clicks, orders: totals over the history.
        ctr, cvr, aov: the fitted base rates (after shrinkage).
        data_weight: share of the fitted CVR that comes from the arm's own data (0-1);
            the rest is the channel and product prior.
        enough_data: whether the arm has at least ``ENOUGH_ORDERS`` orders and
            ``ENOUGH_CLICKS`` clicks.
        action: what was done about thin data, in words (empty when nothing was needed).
    """

    product: str
    channel: str
    impressions: int
    clicks: int
    orders: int
    ctr: float
    cvr: float
    aov: float
    data_weight: float
    enough_data: bool
    action: str = ""


@dataclass
class FittedMarket:
    """The fitted market of the target date.

    Attributes:
        date: the day the market describes.
        arms: ``(product, channel)`` per arm, in the market's column order.
        market: the fitted :class:`~envs.market.EpisodeMarket`, 24 hours from 00:00.
        bid_cap: the highest bid allowed per arm (CPM).
        price_sigma_by_channel: fitted log-spread of clearing prices per channel.
        weekday_factors: fitted traffic factor per weekday (Monday first), or ``None``
            when the history is too short to fit them.
        arm_fits: per-arm rates and data sufficiency.
        history_days, first_date, last_date: the history that was used.
        untradeable: arms with no impressions in the history (never bid).
        order_delay_hours_by_channel: fitted mean click-to-order delay per channel.
        auction_by_channel: ``first-price`` where winners paid their bid,
            ``commission`` where the logs give a commission rate, else ``second-price``.
        commission: per arm, whether it is paid by commission (its "bid" is a rate).
        model: the response model plans are made with (``ResponseModel``): the closed
            form by default, or :func:`bidder.empirical.fit_empirical`'s.
        reserve_cpm_by_channel: reserve price read from the logs per channel (0: none).
        orders_carry_over: whether the logs place delayed orders from one day's clicks
            in the next day's hours (read with the delays, :func:`_fit_order_delay`).
    """

    date: dt.date
    arms: list[tuple[str, str]]
    market: EpisodeMarket
    bid_cap: np.ndarray
    price_sigma_by_channel: dict[str, float]
    weekday_factors: np.ndarray | None
    arm_fits: list[ArmFit]
    history_days: int
    first_date: dt.date
    last_date: dt.date
    untradeable: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    warnings: list[str] = field(default_factory=list)
    traffic_noise_by_channel: dict[str, float] = field(default_factory=dict)
    order_delay_hours_by_channel: dict[str, float] = field(default_factory=dict)
    auction_by_channel: dict[str, str] = field(default_factory=dict)
    reserve_cpm_by_channel: dict[str, float] = field(default_factory=dict)
    commission: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    model: Any = PARAMETRIC
    orders_carry_over: bool = False


@dataclass
class Recommendation:
    """Tomorrow's plan: the per-hour rows, the summary and the objects behind them."""

    table: pd.DataFrame
    summary: dict[str, Any]
    fitted: FittedMarket
    decision: Decision


#: Columns of the recommendation file, in order.
RECOMMENDATION_COLUMNS: tuple[str, ...] = (
    "date",
    "hour",
    "product",
    "channel",
    "bid",
    "planned_spend",
    "expected_gmv",
    "expected_roi",
)
#: Response models the nightly job plans with (docs/recommend.md, "Response models").
RESPONSE_MODELS = ("parametric", "empirical")
#: The default: the better on ``bench/models.py`` (docs/recommend.md).
DEFAULT_MODEL = "parametric"


#: The column a recommendation adds where the logs have arms paid by commission: the
#: rate to set (a share of GMV; blank on auction arms, whose ``bid`` it stands beside).
COMMISSION_COLUMN = "commission_rate"


# -- checks of the request ----------------------------------------------------------------
def check_settings(budget: float, roi_target: float) -> None:
    """Refuse a budget or ROI target that no plan can honour.

    Raises:
        RecommendError: a negative, zero, NaN or infinite budget, or a negative, NaN or
            infinite ROI target.
    """
    if not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
        raise RecommendError(
            f"--budget {budget!r} is not a positive amount; give the day's total budget in "
            "currency, e.g. --budget 120000"
        )
    if not isinstance(roi_target, (int, float)) or not math.isfinite(roi_target) or roi_target < 0:
        raise RecommendError(
            f"--roi-target {roi_target!r} is not a non-negative number; give GMV / spend, "
            "e.g. --roi-target 4 (0 for no ROI target)"
        )


def check_history(logs: pd.DataFrame, date: dt.date, source: str = "history") -> None:
    """Refuse a history that is too short or a date that is not after it.

    Raises:
        RecommendError: fewer than ``MIN_HISTORY_DAYS`` dates, or ``date`` on or before
            the history's last date.
    """
    dates = pd.to_datetime(logs["date"]).dt.date
    first, last = dates.min(), dates.max()
    n_days = dates.nunique()
    if n_days < MIN_HISTORY_DAYS:
        raise RecommendError(
            f"{source}: column 'date' covers {n_days} day{'s' if n_days != 1 else ''} "
            f"({first} to {last}); fitting dayparts needs at least {MIN_HISTORY_DAYS} days "
            f"of hourly rows (14 or more also fits weekday factors); export a longer history"
        )
    if date <= last:
        raise RecommendError(
            f"date {date.isoformat()} is not after the history's last date {last.isoformat()} "
            f"(column 'date' of {source}); recommend for a later day, e.g. "
            f"{(last + dt.timedelta(days=1)).isoformat()}"
        )


# -- fitting ------------------------------------------------------------------------------
def _price_paid_ratio(z: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Mean clearing price paid per won impression, as a share of the bid."""
    win = np.maximum(normal_cdf(z), 1e-300)
    return np.exp(-sigma * z + 0.5 * sigma * sigma) * normal_cdf(z - sigma) / win


def _bisect_decreasing(
    func, target: np.ndarray, low: float, high: float, iterations: int = 50
) -> np.ndarray:
    """Solve ``func(x) = target`` for a function decreasing in ``x``, clipped to the range."""
    lo = np.full(target.shape, low)
    hi = np.full(target.shape, high)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = func(mid) > target
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return 0.5 * (lo + hi)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _group_mean(
    index: np.ndarray, values: np.ndarray, weights: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of ``values`` per group (NaN for empty groups) and the weight sums."""
    total = np.bincount(index, weights * values, minlength=size)
    weight = np.bincount(index, weights, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / weight, np.nan), weight


def _fill_daypart(
    cells: np.ndarray, arm_channel: np.ndarray, n_channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Complete an (arm, hour) table of mean opportunities with missing cells.

    Fits ``cells[k, h] ~ level[k] * shape[channel(k), h]`` by alternating means over the
    known cells, then fills the unknown ones from the fit: an arm paused at night still
    gets its channel's night traffic in proportion to its own daytime level. Hours no
    arm of any channel was measured in get a shape interpolated between their neighbours.

    Returns:
        The completed table and the channel daypart shapes (n_channels, 24), mean 1.
    """
    known = np.isfinite(cells) & (cells > 0)
    log_cells = np.log(np.where(known, cells, 1.0))
    log_shape = np.zeros((n_channels, HOURS_PER_DAY))
    log_level = np.zeros(len(cells))
    for _ in range(8):
        resid = np.where(known, log_cells - log_shape[arm_channel], 0.0)
        count = known.sum(axis=1)
        log_level = np.where(count > 0, resid.sum(axis=1) / np.maximum(count, 1), np.nan)
        for c in range(n_channels):
            rows = (arm_channel == c) & np.isfinite(log_level)
            if not rows.any():
                continue
            part = np.where(known[rows], log_cells[rows] - log_level[rows, None], 0.0)
            hours = known[rows].sum(axis=0)
            shape = np.where(hours > 0, part.sum(axis=0) / np.maximum(hours, 1), np.nan)
            log_shape[c] = shape
        # Hours a channel never saw take the other channels' shape at that hour, and
        # hours no channel saw (every arm bid too low to buy there) the line between
        # the nearest hours seen on either side, round the clock: not the day's mean,
        # which would put an evening peak the campaign priced itself out of at the mean.
        finite = np.isfinite(log_shape)
        seen_by = finite.sum(axis=0)
        overall = np.where(
            seen_by > 0,
            np.where(finite, log_shape, 0.0).sum(axis=0) / np.maximum(seen_by, 1),
            0.0,
        )
        if 0 < (seen_by > 0).sum() < HOURS_PER_DAY:
            seen_hours = np.flatnonzero(seen_by > 0)
            overall = np.interp(
                np.arange(HOURS_PER_DAY), seen_hours, overall[seen_hours], period=HOURS_PER_DAY
            )
        log_shape = np.where(np.isfinite(log_shape), log_shape, overall[None, :])
        log_shape -= np.log(np.exp(log_shape).mean(axis=1, keepdims=True))
    level = np.exp(np.where(np.isfinite(log_level), log_level, -np.inf))
    fitted = level[:, None] * np.exp(log_shape[arm_channel])
    return np.where(known, cells, fitted), np.exp(log_shape)


#: A day whose spend reached this share of its total before its last hour ran out of
#: budget in the hour it did.
BUDGET_CUT_SHARE = 0.98


def budget_cut_rows(dates: np.ndarray, hours: np.ndarray, spend: np.ndarray) -> np.ndarray:
    """The rows of hours in which, or after which, their day's budget ran out: from the
    hour by whose end the day had spent :data:`BUDGET_CUT_SHARE` of its spend on, where
    that hour is not the day's last. A day that spent until its last hour ran out in it
    when it spent as much as the history's biggest day (to 1%): a pacer that spends its
    budget by the day's end does, and its last hour's win rate is cut on most days."""
    days, day = np.unique(dates, return_inverse=True)
    day = day.reshape(-1)
    by_hour = np.zeros((len(days), HOURS_PER_DAY))
    np.add.at(by_hour, (day, hours), spend)
    through = np.cumsum(by_hour, axis=1)
    total = through[:, -1]
    reached = (through >= BUDGET_CUT_SHARE * total[:, None]) & (total[:, None] > 0)
    first = np.argmax(reached, axis=1)  # the hour the share is reached in
    at_cap = total >= 0.99 * total.max()
    cut_day = reached.any(axis=1) & ((first < HOURS_PER_DAY - 1) | at_cap)
    return cut_day[day] & (hours >= first[day])


def price_paid_ratio(spend: np.ndarray, impressions: np.ndarray, bid: np.ndarray) -> np.ndarray:
    """Each row's mean price paid per won impression as a share of its bid (CPM bids;
    below 1 in a second-price auction, 1 in a first-price one); NaN without impressions
    or bid."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((impressions > 0) & (bid > 0), 1000.0 * spend / impressions / bid, np.nan)


def saturated_reach(impressions: np.ndarray, opportunities: np.ndarray) -> np.ndarray:
    """The unique reach of each row's impressions out of its opportunities, with the
    market model's audience of :data:`DEFAULT_SATURATION` x the opportunities; the
    impressions themselves where the opportunities are not known (NaN)."""
    known = np.isfinite(opportunities) & (opportunities > 0) & (impressions > 0)
    audience = DEFAULT_SATURATION * np.where(known, opportunities, 1.0)
    return np.where(known, audience * -np.expm1(-impressions / audience), impressions)


def fit_market(
    logs: pd.DataFrame,
    date: dt.date,
    source: str = "history",
    *,
    price_prior_rows: float = PRICE_PRIOR_ROWS,
) -> FittedMarket:
    """Fit every arm's hourly response for ``date`` from a clean log frame.

    Args:
        logs: the frame of :func:`bidder.logs.read_logs` (or ``validate_logs``).
        date: the day to plan; after the history's last date.
        source: what to call the history in messages.
        price_prior_rows: how many (recency-weighted) rows a channel-hour's mean price
            counts the channel's daypart line as: tomorrow's plan smooths an hour's price
            towards the line (:data:`PRICE_PRIOR_ROWS`); the market twin, which must keep
            a price step within the day (a bid war from noon), takes the hours as measured.

    Returns:
        The fitted market and the per-arm diagnostics.

    Raises:
        RecommendError: history too short, or ``date`` not after it.
    """
    check_history(logs, date, source)
    arm_keys = (
        logs[["product", "channel"]]
        .drop_duplicates()
        .sort_values(["product", "channel"])
        .itertuples(index=False, name=None)
    )
    arms = [tuple(key) for key in arm_keys]
    arm_index = {arm: k for k, arm in enumerate(arms)}
    channels = sorted({channel for _, channel in arms})
    products = sorted({product for product, _ in arms})
    channel_of_arm = np.array([channels.index(c) for _, c in arms])
    product_of_arm = np.array([products.index(p) for p, _ in arms])
    n_arms, n_channels = len(arms), len(channels)

    k = np.array([arm_index[key] for key in zip(logs["product"], logs["channel"], strict=True)])
    c = channel_of_arm[k]
    hour = logs["hour"].to_numpy(np.int64)
    row_dates = pd.to_datetime(logs["date"]).dt.date.to_numpy()
    last = max(row_dates)
    age = np.array([(last - d).days for d in row_dates], dtype=float)
    recency = 0.5 ** (age / HALF_LIFE_DAYS)
    impressions = logs["impressions"].to_numpy(float)
    clicks = logs["clicks"].to_numpy(float)
    orders = logs["orders"].to_numpy(float)
    spend = logs["spend"].to_numpy(float)
    gmv = logs["gmv"].to_numpy(float)
    bid = logs["bid"].to_numpy(float)
    has_win_rate = "win_rate" in logs.columns
    win_rate = logs["win_rate"].to_numpy(float) if has_win_rate else np.full(len(logs), np.nan)
    # Rows of arms paid by commission: no auction; their lever is the rate.
    rate = (
        logs["commission_rate"].to_numpy(float)
        if "commission_rate" in logs.columns
        else np.full(len(logs), np.nan)
    )
    commission_row = np.isfinite(rate)
    commission_arm = np.bincount(k, commission_row, minlength=n_arms) > 0
    commission_row = commission_arm[k]
    _check_commission_rows(commission_row, rate, win_rate, impressions, source)

    paid_ratio = price_paid_ratio(spend, impressions, bid)
    # A channel whose winners pay their own bid runs a first-price auction: the price
    # paid then says nothing of where the bid stood, only the win rate does.
    active = (impressions >= MIN_ROW_IMPRESSIONS) & np.isfinite(paid_ratio) & (bid > 0)
    first_price = np.zeros(len(channels), bool)
    for ci in range(len(channels)):
        rows = active & (c == ci)
        typical = float(np.median(paid_ratio[rows])) if rows.sum() >= 10 else 0.0
        first_price[ci] = FIRST_PRICE_PAID[0] <= typical <= FIRST_PRICE_PAID[1]
    first_row = first_price[c]
    reserve = _fit_reserve(bid, impressions, c, len(channels), win_rate)
    # Where a day's budget ran out within an hour, delivery was cut and the logged win
    # rate with it: such a row's win rate says nothing of where its bid stood.
    in_range = (
        has_win_rate
        & (win_rate >= WIN_RATE_RANGE[0])
        & (win_rate <= WIN_RATE_RANGE[1])
        & ~budget_cut_rows(row_dates, hour, spend)
    )
    priced = (impressions >= MIN_ROW_IMPRESSIONS) & np.where(
        first_row, in_range & (paid_ratio > 0), (paid_ratio > 0) & (paid_ratio < 1)
    )
    mid_win = priced & in_range
    auction_row = ~commission_row
    warnings = (
        _check_teachable(
            impressions[auction_row], bid[auction_row], paid_ratio[auction_row],
            priced[auction_row], source,
        )
        if auction_row.any()
        else []
    )  # fmt: skip

    # 1. The log-spread of clearing prices per channel, from rows that give both equations.
    z_observed = normal_ppf(np.where(mid_win, win_rate, 0.5))
    row_sigma = _bisect_decreasing(
        lambda s: _price_paid_ratio(z_observed, s), np.where(mid_win, paid_ratio, 0.5), 0.02, 3.0
    )
    sigma_by_channel: dict[str, float] = {}
    for ci, name in enumerate(channels):
        rows = mid_win & (c == ci)
        if first_price[ci]:
            sigma_by_channel[name] = _first_price_sigma(z_observed, bid, hour, rows)
        else:
            sigma_by_channel[name] = (
                _weighted_median(row_sigma[rows], (impressions * recency)[rows])
                if rows.sum() >= 10
                else DEFAULT_PRICE_SIGMA
            )
    sigma_row = np.array([sigma_by_channel[name] for name in channels])[c]

    # 2. Where the bid stood against the median in every priced row: from the win rate
    # when it is informative, else from the price paid alone at the channel's spread.
    z_from_paid = _bisect_decreasing(
        lambda z: _price_paid_ratio(z, sigma_row), np.where(priced, paid_ratio, 0.5), -6.0, 6.0
    )
    z_row = np.where(mid_win, z_observed, z_from_paid)
    log_median = np.where(priced, np.log(np.maximum(bid, 1e-12)) - sigma_row * z_row, np.nan)

    # 2b. Commission rows: influencers bring 1 - exp(-rate / going_rate) of the traffic,
    # so each row's share (its win_rate) and rate give the going rate, which takes the
    # place of the median price in the fit below.
    supplied = (
        commission_row
        & (impressions >= MIN_ROW_IMPRESSIONS)
        & (rate > 0)
        & (win_rate >= WIN_RATE_RANGE[0])
        & (win_rate <= WIN_RATE_RANGE[1])
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        log_going = np.log(rate) - np.log(-np.log1p(-win_rate))
    log_median = np.where(supplied, log_going, log_median)
    priced_or_supplied = priced | supplied

    # 3. Opportunities per row: impressions / win rate, measured wherever the logs give
    # it (even a low measured rate is exact, while the model's rate far out in the price
    # tail is not: a few such rows would otherwise dominate the traffic and weekday fits).
    win_used = np.where(
        has_win_rate & (win_rate > 0),
        win_rate,
        np.where(priced, normal_cdf(z_row), np.nan),
    )
    counted = (impressions >= MIN_ROW_IMPRESSIONS) & np.isfinite(win_used) & (win_used > 0)
    opportunities = np.where(counted, impressions / np.where(counted, win_used, 1.0), np.nan)

    cell = k * HOURS_PER_DAY + hour
    weekday = np.array([d.weekday() for d in row_dates])
    weekday_factors = _fit_weekday_factors(
        opportunities, counted, cell, recency, weekday, row_dates, n_arms
    )
    day_factor = np.ones(len(logs)) if weekday_factors is None else weekday_factors[weekday]
    traffic_cells, _ = _group_mean(
        cell[counted],
        (opportunities / day_factor)[counted],
        recency[counted],
        n_arms * HOURS_PER_DAY,
    )
    traffic_cells = traffic_cells.reshape(n_arms, HOURS_PER_DAY)
    traffic_noise = _fit_traffic_noise(
        opportunities,
        counted,
        traffic_cells.ravel()[cell] * day_factor,
        c,
        hour,
        row_dates,
        channels,
    )
    untradeable = ~np.isfinite(traffic_cells).any(axis=1)
    traffic_by_hour, shape = _fill_daypart(traffic_cells, channel_of_arm, n_channels)
    traffic_by_hour = np.where(np.isfinite(traffic_by_hour), traffic_by_hour, 0.0)
    if weekday_factors is not None:
        traffic_by_hour = traffic_by_hour * weekday_factors[date.weekday()]

    # 4. Hourly median clearing prices: channel-hour means shrunk towards a line in the
    # channel's log daypart, plus a shrunk per-arm offset.
    price_median = _fit_price_medians(
        log_median,
        priced_or_supplied,
        recency,
        c,
        k,
        hour,
        shape,
        channel_of_arm,
        n_channels,
        n_arms,
        price_prior_rows,
    )

    # 5. CTR over saturated reach, CVR and order value, shrunk towards priors.
    reach = saturated_reach(impressions, np.where(counted, opportunities, np.nan))
    delay_by_channel, converting_clicks, orders_carry_over = _fit_order_delay(
        k, row_dates, hour, clicks, orders, channel_of_arm, n_arms, n_channels
    )
    arm_fits, ctr, cvr, aov = _fit_rates(
        arms,
        k,
        reach,
        impressions,
        clicks,
        converting_clicks,
        orders,
        gmv,
        recency,
        channel_of_arm,
        product_of_arm,
        n_arms,
    )
    for fit, no_auction in zip(arm_fits, untradeable, strict=True):
        if no_auction:
            fit.action = (
                "no impressions in the history: not bid tomorrow; give it a test "
                "budget and bid to learn its auction"
            )

    typical_median = np.exp(np.log(price_median).mean(axis=0))
    bid_cap = BID_CAP_FACTOR * typical_median
    if commission_arm.any():
        # No rate far beyond what the logs tried: at most twice the highest logged rate.
        highest = np.zeros(n_arms)
        np.maximum.at(highest, k[commission_row], np.nan_to_num(rate[commission_row]))
        cap = np.minimum(np.minimum(bid_cap, 2.0 * highest), MAX_COMMISSION_RATE)
        bid_cap = np.where(commission_arm, np.maximum(cap, 1e-6), bid_cap)
        reserve = np.where(
            np.bincount(channel_of_arm, commission_arm, n_channels) > 0, 0.0, reserve
        )
    sigma_by_arm = np.array([sigma_by_channel[channels[ci]] for ci in channel_of_arm])
    market = EpisodeMarket(
        traffic=np.where(untradeable[None, :], 0.0, traffic_by_hour.T),
        price_median=price_median,
        price_sigma=sigma_by_arm,
        ctr=np.tile(ctr, (HOURS_PER_DAY, 1)),
        cvr=np.tile(cvr, (HOURS_PER_DAY, 1)),
        aov=np.tile(aov, (HOURS_PER_DAY, 1)),
        aov_cv=np.full(n_arms, DEFAULT_AOV_CV),
        saturation=np.full(n_arms, DEFAULT_SATURATION),
        fatigue_impressions=np.full(n_arms, np.inf),
        fatigue_floor=np.full(n_arms, 0.5),
        hour_of_day=np.arange(HOURS_PER_DAY),
        delay_q=(
            delay_probability(delay_by_channel[channel_of_arm]) if delay_by_channel.any() else None
        ),
        mechanism=(
            auction_mechanism(
                first_price[channel_of_arm],
                sigma_by_arm,
                channel_of_arm,
                reserve[channel_of_arm],
                commission=commission_arm if commission_arm.any() else None,
            )
            if first_price.any() or reserve.any() or commission_arm.any()
            else None
        ),
    )
    commission_channel = np.bincount(channel_of_arm, commission_arm, n_channels) > 0
    return FittedMarket(
        date=date,
        arms=arms,
        market=market,
        bid_cap=bid_cap,
        price_sigma_by_channel=sigma_by_channel,
        weekday_factors=weekday_factors,
        arm_fits=arm_fits,
        history_days=len(set(row_dates)),
        first_date=min(row_dates),
        last_date=last,
        untradeable=untradeable,
        warnings=warnings,
        traffic_noise_by_channel=traffic_noise,
        order_delay_hours_by_channel={
            name: float(delay_by_channel[ci]) for ci, name in enumerate(channels)
        },
        auction_by_channel={
            name: "commission"
            if commission_channel[ci]
            else ("first-price" if first_price[ci] else "second-price")
            for ci, name in enumerate(channels)
        },
        reserve_cpm_by_channel={name: float(reserve[ci]) for ci, name in enumerate(channels)},
        commission=commission_arm,
        orders_carry_over=orders_carry_over,
    )


def _check_commission_rows(
    commission_row: np.ndarray,
    rate: np.ndarray,
    win_rate: np.ndarray,
    impressions: np.ndarray,
    source: str,
) -> None:
    """Refuse commission rows that cannot teach the influencers' supply curve."""
    if not commission_row.any():
        return
    if not np.isfinite(rate[commission_row]).all():
        raise RecommendError(
            f"{source}: an arm has a commission_rate in some rows and none in others; give "
            "every row of a commission arm its rate (and leave it blank on auction arms)"
        )
    active = commission_row & (impressions > 0)
    if active.any() and not np.isfinite(win_rate[active]).all():
        raise RecommendError(
            f"{source}: commission rows need win_rate, the share of the arm's potential "
            "influencer traffic that was delivered; export it, or the going rate cannot be "
            "told apart from the traffic"
        )


#: A channel whose median price paid per impression is within this range of the bid is
#: read as a first-price auction (second-price winners pay less than their bid; a price
#: paid far above the bid means the bid column is not in CPM, which is refused).
FIRST_PRICE_PAID = (0.985, 1.015)
#: Within-hour variance of the log bid below which a first-price channel's spread is not
#: fitted (bids that moved by under about 2%).
MIN_LOG_BID_VARIANCE = 5e-4


#: Rows bid below every winning bid of their channel, yet with no impression at all, that
#: it takes to read a reserve price from the logs.
MIN_ROWS_FOR_RESERVE = 3
#: The winning bids within this factor of the lowest one ...
RESERVE_EDGE = 1.25
#: ... must win this share of their auctions on average for a reserve to be read: PID
#: logs of sampled markets without reserves had empty hours below winning bids that won
#: 0.007-0.05% of their auctions (prices 6-8x the bids), and read reserves there.
RESERVE_EDGE_WIN_RATE = 0.01


def _fit_reserve(
    bid: np.ndarray,
    impressions: np.ndarray,
    c: np.ndarray,
    n_channels: int,
    win_rate: np.ndarray | None = None,
) -> np.ndarray:
    """Reserve price per channel (CPM; 0 for none seen). A platform's reserve shows as
    hours that bid below every bid that ever won and won nothing at all; the reserve lies
    between the highest such bid and the lowest winning one (their geometric mean is
    taken). Where the logs give win rates, the lowest winning bids must also win a share
    (:data:`RESERVE_EDGE_WIN_RATE`): bids deep in the price distribution's tail win
    almost nothing and then nothing, with no reserve between them."""
    reserve = np.zeros(n_channels)
    for ci in range(n_channels):
        won = (c == ci) & (impressions > 0) & (bid > 0)
        if not won.any():
            continue
        lowest_win = float(bid[won].min())
        empty = (c == ci) & (impressions == 0) & (bid > 0) & (bid < lowest_win)
        if empty.sum() < MIN_ROWS_FOR_RESERVE:
            continue
        if win_rate is not None:
            edge = won & (bid <= RESERVE_EDGE * lowest_win) & np.isfinite(win_rate)
            if edge.any() and float(np.mean(win_rate[edge])) < RESERVE_EDGE_WIN_RATE:
                continue  # a tail, not a floor
        reserve[ci] = math.sqrt(float(bid[empty].max()) * lowest_win)
    return reserve


def _first_price_sigma(z: np.ndarray, bid: np.ndarray, hour: np.ndarray, rows: np.ndarray) -> float:
    """Log-spread of clearing prices in a first-price channel, from how the win rate moves
    with the bid: within an hour of day, ``z = Phi^-1(win rate)`` rises by ``1 / sigma``
    per unit of log bid. The channel default when the bids hardly varied."""
    n = int(rows.sum())
    if n < 10:
        return DEFAULT_PRICE_SIGMA
    log_bid, zs, h = np.log(bid[rows]), z[rows], hour[rows]
    ones = np.ones(n)
    dz = zs - _group_mean(h, zs, ones, HOURS_PER_DAY)[0][h]
    db = log_bid - _group_mean(h, log_bid, ones, HOURS_PER_DAY)[0][h]
    spread = float((db * db).sum())
    slope = float((dz * db).sum()) / spread if spread > 0 else 0.0
    # Bids that hardly moved (log-bid variance under MIN_LOG_BID_VARIANCE), or a win rate
    # that hardly follows them (a spread of 3 or more), teach nothing: the default then.
    if spread < MIN_LOG_BID_VARIANCE * n or slope <= 1.0 / 3.0:
        return DEFAULT_PRICE_SIGMA
    return float(np.clip(1.0 / slope, 0.05, 2.0))


#: Mean order delays (hours) tried per channel; 0 means orders in their click's hour.
DELAY_GRID_HOURS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0)
#: A channel needs this many orders in the history before its delay is measured.
MIN_ORDERS_FOR_DELAY = 100
#: ... and a delay must raise the orders' Poisson log-likelihood by this much over
#: none (a likelihood ratio of about 20): a market without delays once read 0.5 h on
#: one channel from a few nights' orders.
DELAY_EVIDENCE = 3.0


def _fit_order_delay(
    k: np.ndarray,
    row_dates: np.ndarray,
    hour: np.ndarray,
    clicks: np.ndarray,
    orders: np.ndarray,
    channel_of_arm: np.ndarray,
    n_arms: int,
    n_channels: int,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Mean click-to-order delay per channel, per row the clicks whose orders are
    expected to be placed in that row's hour, and whether the logs carry orders over
    midnight.

    Orders placed in an hour come from the clicks of that hour and the hours before it:
    with a geometric delay of mean ``mu`` (``q = mu / (1 + mu)``), the clicks "converting"
    in hour ``h`` of a day are ``(1 - q) * sum_{l <= h} q^l clicks_{h - l}``, plus, where
    the logs place the previous evening's orders in the hour they arrive (a campaign that
    runs every day, as ``autopilot simulate`` writes it), ``(1 - q) q^(h + 1) C`` for the
    previous day's clicks still pending at its end ``C`` (on the first day of the history
    and after a gap, the mean over days). For every candidate ``mu`` of
    :data:`DELAY_GRID_HOURS`, each arm's CVR is fitted on those, and the ``mu`` with the
    smallest Poisson deviance of the orders over the channel's arms wins (where it beats no
    delay by :data:`DELAY_EVIDENCE`); whether the logs carry orders over is the reading
    (days apart or carried) with the smaller total deviance at each channel's best
    ``mu``. The evening's orders after midnight are what tell a long delay from a CVR
    that falls through the day.
    """
    days = {d: i for i, d in enumerate(sorted(set(row_dates)))}
    day = np.array([days[d] for d in row_dates])
    ordinals = np.array([d.toordinal() for d in sorted(days)])
    follows = np.concatenate([[False], np.diff(ordinals) == 1])  # the day before is logged
    shape = (n_arms, len(days), HOURS_PER_DAY)
    grid_clicks, grid_orders = np.zeros(shape), np.zeros(shape)
    np.add.at(grid_clicks, (k, day, hour), clicks)
    np.add.at(grid_orders, (k, day, hour), orders)
    orders_by_channel = np.bincount(channel_of_arm, grid_orders.sum(axis=(1, 2)), n_channels)
    measured = orders_by_channel >= MIN_ORDERS_FOR_DELAY
    hours = np.arange(HOURS_PER_DAY)
    fits = {}  # (carried, mu) -> (deviance per channel, converting clicks)
    for mu in DELAY_GRID_HOURS:
        q = mu / (1.0 + mu)
        carry = np.zeros(shape[:2])
        within = np.empty(shape)
        for h in range(HOURS_PER_DAY):
            carry = grid_clicks[:, :, h] + q * carry
            within[:, :, h] = carry
        # The day's clicks still pending at its end, carried into the next day.
        end = within[:, :, -1]
        start = np.where(follows[None, :], np.roll(end, 1, axis=1), end.mean(axis=1)[:, None])
        for carried in (False, True):
            if carried and mu == 0.0:
                fits[True, mu] = fits[False, mu]
                continue
            pending = within + (start[:, :, None] * q ** (hours + 1.0) if carried else 0.0)
            expected = (1.0 - q) * pending
            cvr = grid_orders.sum(axis=(1, 2)) / np.maximum(expected.sum(axis=(1, 2)), 1e-12)
            mean = cvr[:, None, None] * expected
            with np.errstate(divide="ignore", invalid="ignore"):
                term = np.where(grid_orders > 0, grid_orders * np.log(grid_orders / mean), 0.0)
            deviance = np.where(np.isfinite(term), term, 0.0) - (grid_orders - mean)
            fits[carried, mu] = (
                np.bincount(channel_of_arm, deviance.sum(axis=(1, 2)), n_channels),
                expected,
            )
    best = {}
    for carried in (False, True):
        table = np.array([fits[carried, mu][0] for mu in DELAY_GRID_HOURS])  # (mu, channel)
        pick = np.argmin(table, axis=0)  # the shortest delay among equals
        # A delay must show: the orders' log-likelihood gains DELAY_EVIDENCE over none.
        pick = np.where(table[pick, np.arange(n_channels)] < table[0] - DELAY_EVIDENCE, pick, 0)
        mu_by_channel = np.where(measured, np.asarray(DELAY_GRID_HOURS)[pick], 0.0)
        total = float(table[pick, np.arange(n_channels)][measured].sum())
        best[carried] = (total, mu_by_channel)
    carried = bool(best[True][0] < best[False][0] - 1e-9)
    best_mu = best[carried][1]
    arm_mu = best_mu[channel_of_arm]
    row_converting = np.empty(len(k))
    for mu in np.unique(arm_mu):
        rows = arm_mu[k] == mu
        row_converting[rows] = fits[carried, float(mu)][1][k[rows], day[rows], hour[rows]]
    return best_mu, row_converting, carried


def _fit_traffic_noise(
    opportunities: np.ndarray,
    counted: np.ndarray,
    expected: np.ndarray,
    c: np.ndarray,
    hour: np.ndarray,
    row_dates: np.ndarray,
    channels: Sequence[str],
) -> dict[str, float]:
    """Day-to-day log-spread of each channel's hourly traffic around the fitted mean.

    A channel's arms share its hour's traffic swings, so the spread is measured on the
    opportunity-weighted mean log ratio per (date, channel, hour), less the part that
    Poisson counting alone explains.
    """
    usable = counted & np.isfinite(expected) & (expected > 0)
    noise = {name: 0.0 for name in channels}
    if not usable.any():
        return noise
    dates = np.unique(row_dates, return_inverse=True)[1]
    group = (dates * len(channels) + c) * HOURS_PER_DAY + hour
    ratio = np.log(opportunities[usable] / expected[usable])
    keys, index = np.unique(group[usable], return_inverse=True)
    weight = np.bincount(index, opportunities[usable])
    mean_log = np.bincount(index, opportunities[usable] * ratio) / weight
    channel_of_group = (keys // HOURS_PER_DAY) % len(channels)
    for ci, name in enumerate(channels):
        in_channel = channel_of_group == ci
        if in_channel.sum() >= 10:
            spread = float(np.var(mean_log[in_channel])) - float(np.mean(1.0 / weight[in_channel]))
            noise[name] = float(np.sqrt(np.clip(spread, 0.0, 1.0)))
    return noise


#: Below this share of usable rows (a bid above the price paid) the fitted auction is
#: flagged in the summary as resting on few rows.
MIN_PRICED_SHARE = 0.5


def _check_teachable(
    impressions: np.ndarray,
    bid: np.ndarray,
    paid_ratio: np.ndarray,
    priced: np.ndarray,
    source: str,
) -> list[str]:
    """Refuse a history from which no auction can be learned; warn about a thin one.

    In a second-price auction a won impression costs at most the bid, so a row whose price
    paid per impression is above its bid (or whose bid is 0) says nothing about where the
    bid stood: usually the bid column is not in CPM, or holds a budget instead of a bid.
    """
    active = impressions >= MIN_ROW_IMPRESSIONS
    n_active = int(active.sum())
    zero_bid = int((active & (bid <= 0)).sum())
    above_bid = int((active & (bid > 0) & (paid_ratio >= 1)).sum())
    cause = (
        f"column 'bid' is 0 in {zero_bid:,} of the {n_active:,} rows with impressions and "
        f"below the price paid per impression in {above_bid:,}"
    )
    fix = (
        "export each hour's bid as CPM (currency per 1000 impressions), the price paid per "
        "impression being 1000 * spend / impressions"
    )
    if n_active and not priced.any():
        raise RecommendError(
            f"{source}: no row shows where its bid stood in the auction ({cause}), so no "
            f"price curve can be learned; {fix}"
        )
    if n_active and priced.sum() < MIN_PRICED_SHARE * n_active:
        return [
            f"only {int(priced.sum()):,} of {n_active:,} rows with impressions are usable to "
            f"learn the auction ({cause}); the bids rest on few rows: {fix}"
        ]
    return []


def _fit_weekday_factors(
    opportunities: np.ndarray,
    counted: np.ndarray,
    cell: np.ndarray,
    recency: np.ndarray,
    weekday: np.ndarray,
    row_dates: np.ndarray,
    n_arms: int,
) -> np.ndarray | None:
    """Traffic factor per weekday (mean 1 over the weekdays), or ``None`` without two
    full weeks of history."""
    days_per_weekday = np.bincount([d.weekday() for d in set(row_dates)], minlength=7)
    if days_per_weekday.min() < MIN_DAYS_PER_WEEKDAY or not counted.any():
        return None
    cell_mean, _ = _group_mean(
        cell[counted], opportunities[counted], recency[counted], n_arms * HOURS_PER_DAY
    )
    ratio = opportunities[counted] / cell_mean[cell[counted]]
    # Opportunity-weighted so that busy hours, whose counts are precise, dominate.
    factors, _ = _group_mean(weekday[counted], ratio, opportunities[counted], 7)
    factors = np.where(np.isfinite(factors), factors, 1.0)
    return factors / factors.mean()


def _fit_price_medians(
    log_median: np.ndarray,
    priced: np.ndarray,
    recency: np.ndarray,
    c: np.ndarray,
    k: np.ndarray,
    hour: np.ndarray,
    shape: np.ndarray,
    channel_of_arm: np.ndarray,
    n_channels: int,
    n_arms: int,
    prior_rows: float,
) -> np.ndarray:
    """Median clearing price per hour and arm (24, K) in CPM: each channel-hour's mean,
    counting a line in the channel's log daypart as ``prior_rows`` more rows (the line
    alone in hours without a priced row)."""
    cells, weight = _group_mean(
        (c * HOURS_PER_DAY + hour)[priced],
        log_median[priced],
        recency[priced],
        n_channels * HOURS_PER_DAY,
    )
    cells = cells.reshape(n_channels, HOURS_PER_DAY)
    weight = weight.reshape(n_channels, HOURS_PER_DAY)
    log_channel = np.zeros((n_channels, HOURS_PER_DAY))
    for ci in range(n_channels):
        seen = weight[ci] > 0
        if not seen.any():
            # No priced row at all in this channel: its arms are not tradeable anyway.
            log_channel[ci] = 0.0
            continue
        x, y, w = np.log(shape[ci][seen]), cells[ci][seen], weight[ci][seen]
        mean_y = np.average(y, weights=w)
        slope = 0.0
        if seen.sum() >= 4 and np.ptp(x) > 1e-6:
            mean_x = np.average(x, weights=w)
            slope = np.average((x - mean_x) * (y - mean_y), weights=w) / np.average(
                (x - mean_x) ** 2, weights=w
            )
            slope = float(np.clip(slope, 0.0, 1.5))
            line = mean_y + slope * (np.log(shape[ci]) - mean_x)
        else:
            line = np.full(HOURS_PER_DAY, mean_y)
        observed = np.where(seen, cells[ci], 0.0)
        total = weight[ci] + prior_rows
        log_channel[ci] = np.where(
            seen, (weight[ci] * observed + prior_rows * line) / np.where(seen, total, 1.0), line
        )
    # An arm's own price level can differ from its channel's (targeting, creative
    # quality score): a per-arm offset, shrunk towards 0 when the arm has few rows.
    resid = log_median[priced] - log_channel[c[priced], hour[priced]]
    offset, arm_weight = _group_mean(k[priced], resid, recency[priced], n_arms)
    offset = np.where(np.isfinite(offset), offset * arm_weight / (arm_weight + 10.0), 0.0)
    return np.exp(log_channel[channel_of_arm].T + offset[None, :])


def _fit_rates(
    arms: Sequence[tuple[str, str]],
    k: np.ndarray,
    reach: np.ndarray,
    impressions: np.ndarray,
    clicks: np.ndarray,
    converting_clicks: np.ndarray,
    orders: np.ndarray,
    gmv: np.ndarray,
    recency: np.ndarray,
    channel_of_arm: np.ndarray,
    product_of_arm: np.ndarray,
    n_arms: int,
):
    """CTR, CVR and order value per arm, shrunk towards channel x product priors.

    CVR is orders over ``converting_clicks``: the clicks whose orders the fitted delay
    places within the history (all of them when orders come in their click's hour)."""

    def arm_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(k, values * recency, minlength=n_arms)

    s_reach, s_clicks, s_orders, s_gmv = (arm_sum(v) for v in (reach, clicks, orders, gmv))
    s_converting = arm_sum(converting_clicks)

    def prior(
        numerator: np.ndarray, denominator: np.ndarray, by_product: bool = True
    ) -> np.ndarray:
        overall = numerator.sum() / max(denominator.sum(), 1e-12)
        channel = np.bincount(channel_of_arm, numerator) / np.maximum(
            np.bincount(channel_of_arm, denominator), 1e-12
        )
        product = np.bincount(product_of_arm, numerator) / np.maximum(
            np.bincount(product_of_arm, denominator), 1e-12
        )
        if not by_product:
            return product[product_of_arm]
        if overall <= 0:
            return np.zeros(n_arms)
        # Channel and product effects multiply, as CTR and CVR do in the market.
        return channel[channel_of_arm] * product[product_of_arm] / overall

    ctr_prior = prior(s_clicks, s_reach)
    cvr_prior = prior(s_orders, s_converting)
    aov_prior = prior(s_gmv, s_orders, by_product=False)
    ctr_strength = PRIOR_CLICKS / np.maximum(ctr_prior, 1e-9)
    cvr_strength = PRIOR_ORDERS / np.maximum(cvr_prior, 1e-9)
    ctr = (s_clicks + ctr_strength * ctr_prior) / (s_reach + ctr_strength)
    cvr = (s_orders + cvr_strength * cvr_prior) / (s_converting + cvr_strength)
    aov = (s_gmv + PRIOR_ORDERS * aov_prior) / (s_orders + PRIOR_ORDERS)
    cvr_weight = s_converting / (s_converting + cvr_strength)

    totals = {
        name: np.bincount(k, values, minlength=n_arms)
        for name, values in (("impressions", impressions), ("clicks", clicks), ("orders", orders))
    }
    fits = []
    for a, (product, channel) in enumerate(arms):
        enough = totals["orders"][a] >= ENOUGH_ORDERS and totals["clicks"][a] >= ENOUGH_CLICKS
        action = (
            ""
            if enough
            else (
                f"rates shrunk towards the {channel} channel and {product} product averages "
                f"({100 * cvr_weight[a]:.0f}% own data in CVR)"
            )
        )
        fits.append(
            ArmFit(
                product=product,
                channel=channel,
                impressions=int(totals["impressions"][a]),
                clicks=int(totals["clicks"][a]),
                orders=int(totals["orders"][a]),
                ctr=float(ctr[a]),
                cvr=float(cvr[a]),
                aov=float(aov[a]),
                data_weight=float(cvr_weight[a]),
                enough_data=bool(enough),
                action=action,
            )
        )
    return fits, ctr, cvr, aov


# -- planning -----------------------------------------------------------------------------
#: One planning period per hour and no hour-to-hour bid limit: a day-ahead plan sets
#: every hour's bid at once.
DAY_AHEAD_CONFIG = MPCConfig(blocks=False, max_periods=None, max_bid_change=1e9)


#: How a day planned with the MPC alone (no planner) is described in its summary.
NEUTRAL_PLAN_NOTE = "neutral plan (MPC alone)"
#: Pieces per arm-hour of the broad grid the best reachable ROI is read from.
REACH_PIECES = 48
#: A plan that leaves more than this share of the budget says why in its summary.
UNSPENT_NOTE_SHARE = 0.05


def best_reachable_roi(fitted: FittedMarket, budget: float) -> float:
    """The best ROI any spending of ``budget`` reaches on the fitted day, read from one
    broad bid grid (the same for every ROI target): the ROI of the most profitable
    impressions, at the smallest spend the grid resolves."""
    curves = build_curves(
        fitted.market, fitted.bid_cap, REACH_PIECES, HOURS_PER_DAY, blocks=False, model=fitted.model
    )
    state = CampaignState(budget=budget, roi_target=0.0, spent=0.0, gmv=0.0, bid_cap=fitted.bid_cap)
    return MPCBidder.best_reachable_roi(curves, state)


class _Outcome(NamedTuple):
    spend: np.ndarray
    gmv: np.ndarray


def _expected(market: EpisodeMarket, bids: np.ndarray, model: Any = PARAMETRIC) -> _Outcome:
    """Expected spend and GMV of per-hour bids (24, K) on the fitted day."""
    return _Outcome(*model.response(market, bids))


def plan_day(
    fitted: FittedMarket, budget: float, roi_target: float, plan: Plan | None = None
) -> tuple[np.ndarray, Decision]:
    """Per-hour bids (24, K) for the fitted day, and the MPC decision behind them.

    The expected spend of the bids never exceeds ``budget``: the hourly bids are read off
    the plan's spend, and if interpolation on the bid grid overshoots, all bids are
    lowered by one common factor until the expected spend fits.
    """
    market = fitted.market
    bidder = reusable_bidder(len(fitted.arms), HOURS_PER_DAY, DAY_AHEAD_CONFIG)
    bidder.model = fitted.model  # the curves come from the fit's response model
    state = CampaignState(
        budget=budget, roi_target=roi_target, spent=0.0, gmv=0.0, bid_cap=fitted.bid_cap
    )
    # A fresh bidder solves twice: on a broad bid grid, then on a grid refined around
    # that solution (a third solve moved the score by less than 0.5% in tests).
    decision = bidder.decide(market, state, plan)
    bids = np.asarray(decision.bids_by_period, dtype=float).T.copy()
    bids[:, fitted.untradeable] = 0.0
    model = fitted.model
    if _expected(market, bids, model).spend.sum() > budget:
        bids = _scaled_down(
            bids, lambda scaled: _expected(market, scaled, model).spend.sum() > budget
        )
    return bids, decision


def _scaled_down(bids: np.ndarray, too_much) -> np.ndarray:
    """``bids`` times the largest common factor in [0, 1] for which ``too_much(bids)`` is
    false (bisection; ``too_much`` must grow with the bids)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if too_much(bids * mid):
            high = mid
        else:
            low = mid
    return bids * low


@dataclass(frozen=True)
class SpendRisk:
    """How far the day's spend can run past its expectation without the platform's cap.

    The platform stops delivering at the budget, so the real spend never exceeds it; but a
    plan whose *uncapped* spend often would is a plan cut short on busy days. Spend is a
    sum of Poisson auctions (variance ``traffic * E[price^2; win]`` per arm and hour) times
    each channel's day-to-day traffic swing (log-spread from the history, shared by the
    channel's arms in an hour); the total is taken as normal (hundreds of arm-hours).
    """

    expected: float
    sd: float

    def quantile(self, probability: float) -> float:
        return self.expected + float(normal_ppf(np.array(probability))) * self.sd

    def probability_over(self, amount: float) -> float:
        if self.sd <= 0:
            return float(self.expected > amount)
        return float(1.0 - normal_cdf(np.array((amount - self.expected) / self.sd)))


def spend_risk(fitted: FittedMarket, bids: np.ndarray) -> SpendRisk:
    """The uncapped spend distribution of per-hour ``bids`` (24, K) on the fitted day."""
    market = fitted.market
    if market.mechanism is None:
        _, _, pay2 = lognormal_auction(
            np.maximum(bids, 1e-12), market.price_median, market.price_sigma
        )
    else:
        _, _, pay2 = market.mechanism.auction_moments(bids, market.price_median)
    spend = _expected(market, bids, fitted.model).spend
    counting = float((market.traffic * pay2).sum()) / 1e6  # CPM: prices per 1000 impressions
    channels = sorted(fitted.traffic_noise_by_channel)
    of_channel = np.array([[ch == name for name in channels] for _, ch in fitted.arms], float)
    by_channel_hour = spend @ of_channel  # (24, channels): the arms of a channel swing together
    sigma = np.array([fitted.traffic_noise_by_channel[name] for name in channels])
    swing = float((np.expm1(sigma * sigma) * by_channel_hour**2).sum())
    return SpendRisk(expected=float(spend.sum()), sd=math.sqrt(counting + swing))


def plan_within_risk(
    fitted: FittedMarket,
    budget: float,
    roi_target: float,
    plan: Plan | None,
    budget_risk: float,
) -> tuple[np.ndarray, Decision, float]:
    """Bids whose uncapped spend exceeds ``budget`` with probability at most ``budget_risk``.

    The day is re-planned with a smaller planning budget (the budget less the spend's
    margin at that risk) until the margin fits, at most four times; if it still does not,
    every bid is lowered by one common factor until it does.

    Returns:
        The bids, the last decision and the planning budget used.
    """
    planning = budget
    for _ in range(4):
        bids, decision = plan_day(fitted, planning, roi_target, plan)
        over = spend_risk(fitted, bids).quantile(1.0 - budget_risk) - budget
        if over <= 0:
            return bids, decision, planning
        planning = max(planning - over, 1e-6 * budget)
    bids = _scaled_down(
        bids, lambda scaled: spend_risk(fitted, scaled).quantile(1.0 - budget_risk) > budget
    )
    return bids, decision, planning


def recommend(
    logs: pd.DataFrame,
    budget: float,
    roi_target: float,
    date: dt.date,
    plan: Plan | None = None,
    source: str = "history",
    plan_note: str = NEUTRAL_PLAN_NOTE,
    budget_risk: float | None = None,
    model: str = DEFAULT_MODEL,
) -> Recommendation:
    """Fit the history and plan ``date``: per-hour bids, spend and GMV per arm.

    Args:
        logs: the clean log frame of :func:`bidder.logs.read_logs`.
        budget: the day's total budget (currency); a hard limit on planned spend.
        roi_target: the day's ROI target (GMV / spend).
        date: the day to plan; after the history's last date.
        plan: the MPC plan (default: neutral).
        source: what to call the history in messages.
        plan_note: how the plan was chosen, for the summary.
        budget_risk: if given (0 < P < 0.5), plan so that the spend without the
            platform's delivery cap exceeds the budget with probability at most P
            (:class:`SpendRisk`); otherwise plan the expected spend up to the budget.
        model: the response curves: ``parametric`` (the closed form on the fitted
            parameters) or ``empirical`` (each channel's auction curves learned from
            the logs, :mod:`bidder.empirical`).

    Returns:
        The recommendation rows (``RECOMMENDATION_COLUMNS``), the summary and the fit.

    Raises:
        RecommendError: bad budget or ROI target, history too short, date not after the
            history, or an ROI target that no allocation of the budget reaches.
    """
    check_settings(budget, roi_target)
    check_budget_risk(budget_risk)
    check_model(model)
    fitted = fit_market(logs, date, source)
    if model == "empirical":
        from bidder.empirical import fit_empirical

        fitted.model = fit_empirical(logs, fitted)
    planning_budget = float(budget)
    if budget_risk is None:
        bids, decision = plan_day(fitted, float(budget), float(roi_target), plan)
    else:
        bids, decision, planning_budget = plan_within_risk(
            fitted, float(budget), float(roi_target), plan, budget_risk
        )
    # One best reachable ROI per history and budget, whatever the target: the planner's
    # own figure depends on where its bid grid was centred.
    best = best_reachable_roi(fitted, float(budget))
    decision.best_reachable_roi = best
    decision.roi_target_reachable = best >= roi_target * (1.0 - 1e-9)
    if not decision.roi_target_reachable:
        raise RecommendError(
            f"ROI target {roi_target:g} cannot be reached tomorrow: the best reachable ROI at "
            f"budget {budget:,.0f} is {best:.2f} on this history; "
            f"lower --roi-target to at most {math.floor(best * 100) / 100:.2f}"
        )
    outcome = _expected(fitted.market, bids, fitted.model)
    n_arms = len(fitted.arms)
    with np.errstate(invalid="ignore", divide="ignore"):
        roi = np.where(outcome.spend > 0, outcome.gmv / outcome.spend, 0.0)
    table = pd.DataFrame(
        {
            "date": date.isoformat(),
            "hour": np.repeat(np.arange(HOURS_PER_DAY), n_arms),
            "product": [p for p, _ in fitted.arms] * HOURS_PER_DAY,
            "channel": [ch for _, ch in fitted.arms] * HOURS_PER_DAY,
            "bid": np.round(bids.ravel(), 4),
            "planned_spend": np.round(outcome.spend.ravel(), 2),
            "expected_gmv": np.round(outcome.gmv.ravel(), 2),
            "expected_roi": np.round(roi.ravel(), 4),
        }
    )
    if fitted.commission.any():
        paid = np.tile(fitted.commission, HOURS_PER_DAY)
        table.insert(
            table.columns.get_loc("bid") + 1,
            COMMISSION_COLUMN,
            np.where(paid, np.round(bids.ravel(), 6), np.nan),
        )
        table.loc[paid, "bid"] = 0.0  # a commission arm bids in no auction
    table = table.sort_values(["product", "channel", "hour"], kind="stable").reset_index(drop=True)
    # Rounding to cents must not lift the total above the budget.
    while table["planned_spend"].sum() > budget:
        worst = table["planned_spend"].idxmax()
        table.loc[worst, "planned_spend"] = round(table.loc[worst, "planned_spend"] - 0.01, 2)
    summary = _summary(fitted, decision, table, float(budget), float(roi_target), plan_note)
    summary.update(_reading_aids(table, logs, float(roi_target), summary["roi_target_met"]))
    risk = spend_risk(fitted, bids)
    summary["spend_risk"] = {
        "meaning": "the day's spend without the platform's delivery cap (which stops at the "
        "budget): its expectation, standard deviation, the amounts it stays below with 95% "
        "and 99% probability, and the probability it exceeds the budget",
        "expected": round(risk.expected, 2),
        "sd": round(risk.sd, 2),
        "p95": round(risk.quantile(0.95), 2),
        "p99": round(risk.quantile(0.99), 2),
        "probability_over_budget": round(risk.probability_over(float(budget)), 4),
        "budget_risk": budget_risk,
        "planning_budget": round(planning_budget, 2),
        "traffic_noise_by_channel": {
            name: round(value, 4) for name, value in fitted.traffic_noise_by_channel.items()
        },
    }
    return Recommendation(table=table, summary=summary, fitted=fitted, decision=decision)


def what_if(fitted: FittedMarket, points: Sequence[tuple[float, float]]) -> list[dict[str, Any]]:
    """The fitted day planned at other budgets and ROI targets: a budget-response curve.

    Each point ``(budget, roi_target)`` is planned as :func:`recommend` plans it (without
    a budget risk), on the same fit, so the figures differ only by the settings.

    Returns:
        One row per point: ``budget``, ``roi_target``, ``reachable`` (whether any spending
        of the budget meets the target), ``best_reachable_roi``, and for reachable points
        ``planned_spend``, ``expected_gmv``, ``expected_roi``, ``budget_binds`` and the
        shadow prices ``budget_shadow_price`` (GMV of one more unit of budget) and
        ``roi_shadow_price``.

    Raises:
        RecommendError: a bad budget or ROI target (:func:`check_settings`).
    """
    for budget, roi_target in points:
        check_settings(budget, roi_target)
    rows = []
    for budget, roi_target in points:
        best = best_reachable_roi(fitted, float(budget))
        row: dict[str, Any] = {
            "budget": float(budget),
            "roi_target": float(roi_target),
            "reachable": bool(best >= roi_target * (1.0 - 1e-9)),
            "best_reachable_roi": round(float(best), 4),
        }
        if row["reachable"]:
            bids, decision = plan_day(fitted, float(budget), float(roi_target))
            outcome = _expected(fitted.market, bids, fitted.model)
            spend, gmv = float(outcome.spend.sum()), float(outcome.gmv.sum())
            row |= {
                "planned_spend": round(spend, 2),
                "expected_gmv": round(gmv, 2),
                "expected_roi": round(gmv / spend, 4) if spend > 0 else 0.0,
                "budget_binds": bool(spend >= budget * 0.995),
                "budget_shadow_price": round(float(decision.budget_dual), 4),
                "roi_shadow_price": round(float(decision.roi_dual), 4),
            }
        rows.append(row)
    return rows


def check_model(model: str) -> None:
    """Refuse an unknown response model in one line."""
    if model not in RESPONSE_MODELS:
        raise RecommendError(
            f"model {model!r}: unknown response model; use {' or '.join(RESPONSE_MODELS)}"
        )


def check_budget_risk(budget_risk: float | None) -> None:
    """Refuse a budget risk that is not a probability in (0, 0.5).

    Raises:
        RecommendError: names the value and the range.
    """
    if budget_risk is None:
        return
    if (
        isinstance(budget_risk, bool)
        or not isinstance(budget_risk, (int, float))
        or not 0.0 < budget_risk < 0.5
    ):
        raise RecommendError(
            f"--budget-risk {budget_risk!r} is not a probability between 0 and 0.5; give "
            "e.g. --budget-risk 0.05 for at most a 5% chance that uncapped spend exceeds the budget"
        )


def _reading_aids(
    table: pd.DataFrame, logs: pd.DataFrame, roi_target: float, target_met: bool
) -> dict[str, Any]:
    """Per-channel and per-arm daily totals of the plan, each arm's mean bid against the
    history's last day, and a note on arms below the target when the whole day meets it."""

    def totals(keys: list[str]) -> pd.DataFrame:
        grouped = table.groupby(keys, sort=True).agg(
            planned_spend=("planned_spend", "sum"),
            expected_gmv=("expected_gmv", "sum"),
            mean_bid=("bid", "mean"),
        )
        spend = grouped["planned_spend"]
        grouped["expected_roi"] = np.where(spend > 0, grouped["expected_gmv"] / spend, 0.0)
        return grouped

    last_day = logs[pd.to_datetime(logs["date"]) == pd.to_datetime(logs["date"]).max()]
    last_bid = last_day.groupby(["product", "channel"])["bid"].mean()
    rates, last_rates = {}, {}
    if COMMISSION_COLUMN in table.columns:
        rates = table.groupby(["product", "channel"])[COMMISSION_COLUMN].mean().dropna().to_dict()
        if COMMISSION_COLUMN in last_day.columns:
            last_rates = (
                last_day.groupby(["product", "channel"])[COMMISSION_COLUMN].mean().to_dict()
            )
    arms = []
    for (product, channel), row in totals(["product", "channel"]).iterrows():
        previous = last_bid.get((product, channel))
        change = (
            None
            if previous is None or not previous > 0
            else round(float(row["mean_bid"] / previous - 1.0), 4)
        )
        arms.append(
            {
                "product": product,
                "channel": channel,
                "planned_spend": round(float(row["planned_spend"]), 2),
                "expected_gmv": round(float(row["expected_gmv"]), 2),
                "expected_roi": round(float(row["expected_roi"]), 4),
                "mean_bid": round(float(row["mean_bid"]), 4),
                "last_day_mean_bid": None if previous is None else round(float(previous), 4),
                "bid_change": change,
            }
        )
        rate = rates.get((product, channel))
        if rate is not None:
            last_rate = last_rates.get((product, channel))
            arms[-1]["bid_change"] = None
            arms[-1]["commission_rate"] = round(float(rate), 6)
            arms[-1]["last_day_commission_rate"] = (
                None
                if last_rate is None or not np.isfinite(last_rate)
                else round(float(last_rate), 6)
            )
    channels = {
        channel: {
            "planned_spend": round(float(row["planned_spend"]), 2),
            "expected_gmv": round(float(row["expected_gmv"]), 2),
            "expected_roi": round(float(row["expected_roi"]), 4),
        }
        for channel, row in totals(["channel"]).iterrows()
    }
    below = [a for a in arms if a["planned_spend"] > 0 and a["expected_roi"] < roi_target]
    notes = []
    if below and target_met:
        notes.append(
            f"{len(below)} of {len(arms)} arms are planned below the ROI target {roi_target:g} "
            "on their own; that is intended: the target holds for the whole day, and the "
            "plan buys every arm's impressions up to the same marginal ROI"
        )
    return {"by_channel": channels, "by_arm": arms, "notes": notes}


def _summary(
    fitted: FittedMarket,
    decision: Decision,
    table: pd.DataFrame,
    budget: float,
    roi_target: float,
    plan_note: str,
) -> dict[str, Any]:
    total_spend = float(table["planned_spend"].sum())
    total_gmv = float(table["expected_gmv"].sum())
    budget_binds = total_spend >= budget * 0.995
    thin = [fit for fit in fitted.arm_fits if fit.action]
    expected_roi = total_gmv / total_spend if total_spend > 0 else 0.0
    met = total_spend <= 0 or expected_roi >= roi_target * (1.0 - 1e-9)
    left = max(budget - total_spend, 0.0)
    if not met:
        budget_note = (
            f"the plan misses the ROI target {roi_target:g}: expected ROI {expected_roi:.2f} "
            f"(the best reachable is {decision.best_reachable_roi:.2f}, on the most profitable "
            "impressions only)"
        )
    elif left > UNSPENT_NOTE_SHARE * budget:
        budget_note = (
            f"{left:,.0f} of the budget ({100 * left / budget:.0f}%) is left: spending it "
            f"would bring the expected ROI below the target {roi_target:g}"
            if decision.roi_binding or decision.roi_dual > 0 or expected_roi < 1.1 * roi_target
            else f"{left:,.0f} of the budget ({100 * left / budget:.0f}%) is left: the bid "
            "caps buy no more"
        )
    else:
        budget_note = ""
    return {
        "date": fitted.date.isoformat(),
        "budget": budget,
        "roi_target": roi_target,
        "planned_spend": round(total_spend, 2),
        "expected_gmv": round(total_gmv, 2),
        "expected_roi": round(expected_roi, 4),
        "roi_target_met": bool(met),
        "roi_shortfall": 0.0 if met else round(roi_target - expected_roi, 4),
        "budget_left": round(left, 2),
        "budget_note": budget_note,
        "best_reachable_roi": round(float(decision.best_reachable_roi), 4),
        "constraints": {
            "budget": {
                "binds": bool(budget_binds),
                "shadow_price": round(float(decision.budget_dual), 4),
                "meaning": "expected GMV of one more unit of budget",
            },
            "roi_target": {
                "binds": bool(decision.roi_binding),
                "shadow_price": round(float(decision.roi_dual), 4),
                "shortfall_gmv": round(float(decision.roi_slack), 2),
                "meaning": "GMV given up per unit of ROI-constraint tightening",
            },
        },
        "plan": plan_note,
        "solver": decision.solver,
        "response_model": getattr(fitted.model, "name", "custom"),
        "explanation": decision.explain(total_spend, total_gmv, expected_roi),
        "history": {
            "days": fitted.history_days,
            "first_date": fitted.first_date.isoformat(),
            "last_date": fitted.last_date.isoformat(),
            "weekday_factors": None
            if fitted.weekday_factors is None
            else [round(float(f), 4) for f in fitted.weekday_factors],
            "price_sigma_by_channel": {
                name: round(value, 4) for name, value in fitted.price_sigma_by_channel.items()
            },
            "order_delay_hours_by_channel": dict(fitted.order_delay_hours_by_channel),
            "orders_carry_over": fitted.orders_carry_over,
            "auction_by_channel": dict(fitted.auction_by_channel),
            "reserve_cpm_by_channel": {
                name: round(value, 2) for name, value in fitted.reserve_cpm_by_channel.items()
            },
        },
        "arms": len(fitted.arms),
        "warnings": list(fitted.warnings),
        "thin_arms": [
            {
                "product": fit.product,
                "channel": fit.channel,
                "clicks": fit.clicks,
                "orders": fit.orders,
                "own_data_share": round(fit.data_weight, 3),
                "action": fit.action,
            }
            for fit in thin
        ],
    }
