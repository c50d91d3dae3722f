"""A market twin: a :class:`~envs.scenario.Scenario` fitted from an advertiser's hourly logs.

The nightly fit (:func:`bidder.recommend.fit_market`) already estimates every arm's
traffic per hour, clearing prices, CTR, CVR and order value from the logs, with
shrinkage where data is thin. :func:`fit_scenario` turns that fit into the scenario's own
parameters, so that the twin can be simulated, evaluated and trained on like a preset:

- traffic: per channel, the daypart strength whose curve (``envs.market.daypart``) best
  matches the fitted hourly shape in logs (least squares over a fine grid), and per arm
  the base traffic that curve implies; weekday factors and traffic noise as fitted;
- prices: per channel the median CPM at the daypart's mean level and the competition
  elasticity (how prices follow traffic over the day), from a regression of the fitted
  log price on the log daypart with one intercept per arm; the price spread, auction
  rule (first-price where winners paid their bid), reserve price and order delay as the
  nightly fit reads them;
- CTR, CVR per arm and order value per product, shrunk towards the channel and product
  averages where data is thin (``bidder.recommend.ArmFit``);
- rivals' reaction per channel: prices following our share of the channel in the day's
  earlier hours (``rival_elasticity``, ``rival_memory_hours``; :func:`_fit_rivals`);
- the CTR's fall within the day per arm: creative wear-out with the impressions the arm
  has won so far that day (``fatigue_impressions``, ``fatigue_floor``) and scheduled
  drops at fixed hours (``creative_fatigue`` shocks), where the fall is clear of the
  noise (:func:`_fit_ctr_patterns`); otherwise none;
- the auction's shape per channel: a GSP slot ladder, or gamma or brand-mixture prices,
  where the price paid against the win rate shows one
  (:func:`bidder.auction_shape.fit_auction_shape`); the channel's prices and rivals are
  then read through it;
- scheduled shocks that recur in the same hours of every day, fitted as shocks rather
  than baked into the typical day: a price step (``bid_war``, :func:`_price_step`), a
  promotion lifting every channel's traffic (:func:`_traffic_step`), traffic moving
  from one channel to another (``traffic_shift``, :func:`_traffic_shift`) and the
  traffic of AI-generated creatives throttled (``aigc_throttle``, :func:`_aigc_throttle`).

What hourly aggregate logs cannot identify is set to the simulator's defaults and the
report says so: an order's value spread (``aov_cv``), audience saturation and the
influencers' lag behind a commission rate.

Days the diagnosis flags (a significant ROI drop on the campaign, a product or an arm)
are left out of the fit, so a shock is not baked into the typical day; the report names
them. :func:`holdout_errors` predicts held-out days with the twin at the bids that were
actually placed, and compares with what the logs recorded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bidder.auction_shape import AuctionShape, fit_auction_shape, fit_first_price_family
from bidder.diagnose import DEFAULT_BASELINE_DAYS, diagnose
from bidder.errors import BidderInputError
from bidder.recommend import (
    MIN_HISTORY_DAYS,
    MIN_ROW_IMPRESSIONS,
    FittedMarket,
    budget_cut_rows,
    fit_market,
    price_paid_ratio,
    saturated_reach,
)
from envs.market import build_episode, daypart, expected_hour
from envs.mechanisms import Rivals
from envs.scenario import (
    DEFAULT_WEEKDAY_FACTORS,
    MAX_COMMISSION_RATE,
    Arm,
    Channel,
    Product,
    Scenario,
    Shock,
)
from envs.stats import normal_ppf

#: Daypart strengths searched (the scenario bounds allow 0 to 1.8).
_STRENGTHS = np.linspace(0.0, 1.8, 361)
#: What the simulator has that aggregate hourly logs do not identify.
NOT_IDENTIFIED = {
    "aov_cv": "an order's value spread: hourly logs give GMV sums, not single orders",
    "saturation": "audience saturation: needs a product's reach, which logs do not give",
    "supply_lag_hours": "influencers' lag behind a commission rate: needs rate changes",
}
#: What the twin fits only where the logs show it clear of the noise (else none).
FITTED_WHERE_SEEN = {
    "fatigue_impressions": (
        "creative wear-out: fitted only where an arm's CTR falls with the day's impressions "
        "by more than noise explains (a CTR drop at fixed hours every day looks the same)"
    ),
    "rival_elasticity": (
        "rivals' reaction to our share: fitted only where prices follow the day's earlier "
        "share by more than noise explains (from the days' differences at each hour)"
    ),
    "slot_exposure": (
        "GSP slots: logs give no position; fitted only where the price paid follows the win "
        "rate as a ladder's does and the prices it implies agree across days (a heavy "
        "price tail bends the curve too); the spread and the lower slots' exposure trade "
        "off, so read the ladder as a response curve, not as the platform's settings"
    ),
    "price_family": (
        "gamma or brand-mixture prices instead of log-normal ones: fitted only where the "
        "price paid against the win rate shows them as for slots; not with slots at once"
    ),
}


class TwinError(BidderInputError):
    """Logs that cannot make a twin (the message says why and what to do)."""


@dataclass
class Twin:
    """A fitted scenario, the evidence behind each parameter, and what was left out.

    Attributes:
        scenario: the twin, valid wherever ``--scenario`` takes a file.
        parameters: per fitted parameter, its estimate, a 95% interval where the data
            gives one, and the data it came from (:meth:`report`).
        excluded_days: dates left out of the fit (the diagnosis flagged a drop there).
        fitted: the nightly fit the twin was built from.
    """

    scenario: Scenario
    parameters: list[dict[str, Any]]
    excluded_days: list[str]
    fitted: FittedMarket
    notes: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """The fit report: JSON-ready."""
        return {
            "scenario": self.scenario.name,
            "history": {
                "days": self.fitted.history_days,
                "first_date": self.fitted.first_date.isoformat(),
                "last_date": self.fitted.last_date.isoformat(),
                "excluded_days": self.excluded_days,
            },
            "parameters": self.parameters,
            "not_identified": NOT_IDENTIFIED,
            "fitted_where_seen": FITTED_WHERE_SEEN,
            "notes": self.notes,
        }


def _report_value(value: Any) -> Any:
    """A parameter's estimate as the report writes it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


def _interval(estimate: float, se: float) -> list[float] | None:
    if not math.isfinite(se) or se <= 0:
        return None
    return [round(max(estimate - 1.96 * se, 0.0), 6), round(estimate + 1.96 * se, 6)]


def _fit_daypart(shape: np.ndarray) -> float:
    """The strength whose daypart curve is closest to ``shape`` (hourly, mean 1) in logs."""
    curves = _daypart_table()[0]
    curves = curves / curves.mean(axis=1, keepdims=True)
    valid = shape > 0
    errors = ((np.log(curves[:, valid]) - np.log(shape[valid])) ** 2).sum(axis=1)
    return float(_STRENGTHS[int(np.argmin(errors))])


def _fit_prices(
    logp: np.ndarray, log_curve: np.ndarray, hours: np.ndarray, weight: np.ndarray | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """``log price[h, k] = level[k] + elasticity * log daypart[h]`` by least squares over
    ``hours``, each hour weighted by how well its price is measured (``weight``, 0 to 1;
    equal weights where it is not given or where the hours hold almost none); returns
    the elasticity (0 to 3), the per-arm levels and the per-hour mean residual over arms
    (every hour)."""
    w = np.ones(len(log_curve)) if weight is None else np.asarray(weight, dtype=float)
    w = np.where(hours, w, 0.0)
    if w.sum() < 1.0:
        w = hours.astype(float)
    w = w / w.sum()
    x = log_curve - (w * log_curve).sum()
    y = logp - (w[:, None] * logp).sum(axis=0)
    var = float((w * x**2).sum()) * logp.shape[1]
    elasticity = float((w[:, None] * y * x[:, None]).sum() / var) if var > 1e-12 else 0.0
    elasticity = float(np.clip(elasticity, 0.0, 3.0))
    level = (w[:, None] * (logp - elasticity * log_curve[:, None])).sum(axis=0)
    residual = (logp - level - elasticity * log_curve[:, None]).mean(axis=1)
    return elasticity, level, residual


#: A price step is fitted as a shock when it moves prices by this factor or more ...
_STEP_FACTOR = 1.2
#: ... and leaves at most this share of the curve's squared residual unexplained.
_STEP_SHARE = 0.4


#: Hours a bid war may take to reach its full height (the simulator's ``ramp_hours``).
_STEP_RAMPS = range(6)


@dataclasses.dataclass(frozen=True)
class PriceStep:
    """A run of hours in which prices stand above the daypart curve: a ``bid_war``."""

    start: int
    end: int  # exclusive; 24 when the war lasts the day out
    ramp: int  # hours to full height (0: at once)
    factor: float
    elasticity: float  # the channel's competition elasticity fitted with it
    level: np.ndarray  # per-arm log price levels, without it

    def shock(self, channel: str | None) -> Shock:
        """The war as a scenario's shock on ``channel`` (``None``: every channel)."""
        return Shock(
            "bid_war",
            start_hour=self.start,
            end_hour=None if self.end == 24 else self.end,
            factor=round(self.factor, 4),
            channel=channel,
            ramp_hours=self.ramp,
        )

    def describe(self) -> str:
        """Where and how high the prices stand, for the fit's notes."""
        return (
            f"prices from hour {self.start} to {self.end} of every day stand at {self.factor:.2f}x"
        )

    @property
    def ramp_note(self) -> str:
        return f", reached over {self.ramp} hours" if self.ramp else ""


def _step_profile(start: int, end: int, ramp: int) -> np.ndarray:
    """Share of a step's height in force at each hour of day (the simulator's shock
    profile: ``(h - start + 1) / ramp`` over the ramp, then 1)."""
    h = np.arange(24)
    rising = np.clip((h - start + 1) / ramp, 0.0, 1.0) if ramp > 0 else np.ones(24)
    return np.where((h >= start) & (h < end), rising, 0.0)


@functools.cache
def _step_candidates() -> tuple[list[tuple[int, int, int]], np.ndarray, np.ndarray]:
    """Every run ``[start, end)`` of 2 to 22 hours and ramp shorter than it: the runs,
    their profiles (runs x 24) and whether each hour is in them."""
    runs = [
        (start, end, ramp)
        for start in range(24)
        for end in range(start + 2, 25)
        if end - start <= 22
        for ramp in _STEP_RAMPS
        if ramp < end - start
    ]
    profile = np.array([_step_profile(*run) for run in runs])
    inside = np.array([(np.arange(24) >= a) & (np.arange(24) < b) for a, b, _ in runs])
    return runs, profile, inside


@dataclasses.dataclass
class _StepStats:
    """One channel's weighted moments against every candidate run, for
    ``log price = level + elasticity * log curve + step * profile`` (mean over arms)."""

    logp: np.ndarray
    log_curve: np.ndarray
    w: np.ndarray

    def __post_init__(self):
        _, profile, inside = _step_candidates()
        self.total_weight = float(self.w.sum())
        wn = self.w / self.total_weight
        y = self.logp.mean(axis=1)
        self.yc = y - (wn * y).sum()
        self.xc = self.log_curve - (wn * self.log_curve).sum()
        self.sxx = float((wn * self.xc**2).sum())
        self.sxy = float((wn * self.xc * self.yc).sum())
        self.syy = float((wn * self.yc**2).sum())
        zc = profile - (profile @ wn)[:, None]
        self.szz = (zc**2) @ wn
        self.sxz = zc @ (wn * self.xc)
        self.szy = zc @ (wn * self.yc)
        self.weight_in = inside.astype(float) @ self.w
        self.wn = wn

    def elasticity(self, step: np.ndarray) -> np.ndarray:
        sxx = max(self.sxx, 1e-12)
        return np.clip((self.sxy - step * self.sxz) / sxx, 0.0, 3.0)

    def sse(self, elasticity: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Weighted squared residual per candidate (hours weighted by ``w``)."""
        e, s = elasticity, step
        inner = (
            self.syy - 2 * e * self.sxy - 2 * s * self.szy
            + e * e * self.sxx + 2 * e * s * self.sxz + s * s * self.szz
        )  # fmt: skip
        return self.total_weight * np.maximum(inner, 0.0)

    def plain_sse(self) -> float:
        e = float(np.clip(self.sxy / max(self.sxx, 1e-12), 0.0, 3.0))
        return self.total_weight * max(self.syy - 2 * e * self.sxy + e * e * self.sxx, 0.0)

    def own_step(self) -> np.ndarray:
        """Per candidate, the step that fits this channel best (with its elasticity)."""
        det = self.sxx * self.szz - self.sxz**2
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(det > 1e-12, (self.szz * self.sxy - self.sxz * self.szy) / det, 0.0)
            e = np.clip(e, 0.0, 3.0)
            return np.where(self.szz > 1e-12, (self.szy - e * self.sxz) / self.szz, 0.0)

    def war(self, index: int, step: float) -> PriceStep:
        runs, profile, _ = _step_candidates()
        start, end, ramp = runs[index]
        e = float(np.clip((self.sxy - step * self.sxz[index]) / max(self.sxx, 1e-12), 0.0, 3.0))
        z = profile[index]
        level = (
            self.wn[:, None] * (self.logp - e * self.log_curve[:, None] - step * z[:, None])
        ).sum(axis=0)
        return PriceStep(start, end, ramp, float(math.exp(step)), e, level)


def _step_stats(logp: np.ndarray, log_curve: np.ndarray, weight: np.ndarray | None) -> _StepStats:
    w = np.ones(24) if weight is None else np.asarray(weight, dtype=float)
    return _StepStats(logp, log_curve, w if w.sum() >= 1.0 else np.ones(24))


def _price_step(
    logp: np.ndarray, log_curve: np.ndarray, weight: np.ndarray | None = None
) -> PriceStep | None:
    """The run of hours ``[start, end)`` (2 to 22 hours) where one channel's prices step up
    from its daypart's curve, reaching their height over ``ramp`` hours, or none.

    Every run and ramp is tried: ``log price[h, k] = level[k] + elasticity * log
    curve[h] + step * profile[h]`` by weighted least squares, and the run with the
    smallest squared residual is kept when its step raises prices by at least
    :data:`_STEP_FACTOR` and it leaves at most :data:`_STEP_SHARE` of what the curve alone
    leaves. A war raises prices: a cheaper run before a war that lasts the day out is the
    rest of the day's war, not a truce. ``weight`` (per hour, 0 to 1) says how well each
    hour's price is measured: hours the campaign barely bought in count little, and each
    side of the run needs two well-measured hours' worth."""
    stats = _step_stats(logp, log_curve, weight)
    step = stats.own_step()
    sse = stats.sse(stats.elasticity(step), step)
    ok = (
        (step >= math.log(_STEP_FACTOR))
        & (stats.weight_in >= 2.0)
        & (stats.total_weight - stats.weight_in >= 2.0)
        & (stats.szz > 1e-12)
    )
    if not ok.any():
        return None
    best = int(np.argmin(np.where(ok, sse, np.inf)))
    if sse[best] > _STEP_SHARE * stats.plain_sse():
        return None
    return stats.war(best, float(step[best]))


def _common_price_step(series: dict[str, _StepStats]) -> dict[str, PriceStep] | None:
    """One bid war on every channel at once (the same run, ramp and factor), or none: the
    step is shared, each channel keeps its own elasticity and levels. Kept when its step
    is at least :data:`_STEP_FACTOR`, the channels' pooled hours hold two well-measured
    hours' worth on each side, it leaves at most :data:`_STEP_SHARE` of what the curves
    alone leave, and it fits every channel better than its curve alone does (so that a
    war on one channel does not pass for one on all). A war on all channels shows on a
    channel whose night hours were barely bought in through the others; searched alone,
    such a channel bakes the war into its price level."""
    if len(series) < 2:
        return None
    num = sum(s.total_weight * (s.szy - s.sxz * s.sxy / max(s.sxx, 1e-12)) for s in series.values())
    den = sum(s.total_weight * (s.szz - s.sxz**2 / max(s.sxx, 1e-12)) for s in series.values())
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(den > 1e-12, num / den, 0.0)
    per_channel = {c: s.sse(s.elasticity(step), step) for c, s in series.items()}
    total = sum(per_channel.values())
    weight_in = sum(s.weight_in for s in series.values())
    weight_all = sum(s.total_weight for s in series.values())
    ok = (step >= math.log(_STEP_FACTOR)) & (weight_in >= 2.0) & (weight_all - weight_in >= 2.0)
    for c, s in series.items():
        ok &= per_channel[c] < s.plain_sse()
    if not ok.any():
        return None
    best = int(np.argmin(np.where(ok, total, np.inf)))
    if total[best] > _STEP_SHARE * sum(s.plain_sse() for s in series.values()):
        return None
    return {c: s.war(best, float(step[best])) for c, s in series.items()}


#: Rows a channel-hour's price counts its daypart line as (``fit_market``'s
#: ``price_prior_rows``). Tomorrow's plan smooths each hour towards the line; the twin
#: takes the hours as measured, so that a price step within the day (a bid war from
#: noon) keeps its height instead of being pulled part of the way back to the curve.
PRICE_PRIOR_ROWS = 0.0

#: Impressions per day at which an hour's price counts half in the step search.
_MEASURED_IMPRESSIONS = 2_000.0
#: A traffic step is fitted as a promotion when traffic stands this much above the curve.
_PROMOTION_FACTOR = 1.2


def _traffic_step(
    shapes: dict[str, np.ndarray],
) -> tuple[int, int, float, dict[str, float]] | None:
    """A run of hours ``[start, end)`` (at least 2, not the whole day) in which every
    channel's traffic stands above its daypart curve by one common factor: a scheduled
    promotion. Each run is tried: each channel's daypart strength is fitted on the hours
    outside it, the run gets the channels' mean log step, and the run with the smallest
    total squared residual is kept when its factor is at least :data:`_PROMOTION_FACTOR`
    and it leaves at most :data:`_STEP_SHARE` of what the curves alone leave. Returns
    ``(start, end, factor, strengths)`` or none."""
    log_curves = _daypart_table()[1]  # (S, 24)
    logs = {c: np.log(np.maximum(shape, 1e-12)) for c, shape in shapes.items()}

    def fit(outside: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        strengths, residuals = {}, {}
        for c, y in logs.items():
            gap = y[None, outside] - log_curves[:, outside]
            level = gap.mean(axis=1, keepdims=True)
            best = int(np.argmin(((gap - level) ** 2).sum(axis=1)))
            strengths[c] = float(_STRENGTHS[best])
            residuals[c] = y - log_curves[best] - level[best, 0]
        return strengths, residuals

    _, plain = fit(np.ones(24, bool))
    total = sum(float((r**2).sum()) for r in plain.values())
    best, best_sse = None, math.inf
    for start in range(24):
        for end in range(start + 2, 25):
            if end - start >= 22:
                continue
            outside = np.ones(24, bool)
            outside[start:end] = False
            strengths, residuals = fit(outside)
            step = float(np.mean([r[start:end].mean() for r in residuals.values()]))
            if step < math.log(_PROMOTION_FACTOR):
                continue
            sse = sum(
                float((r[outside] ** 2).sum()) + float(((r[start:end] - step) ** 2).sum())
                for r in residuals.values()
            )
            if sse < best_sse:
                best, best_sse = (start, end, math.exp(step), strengths), sse
    if best is None or best_sse > _STEP_SHARE * total:
        return None
    return best


@functools.cache
def _daypart_table() -> tuple[np.ndarray, np.ndarray]:
    """The daypart curves of every strength of :data:`_STRENGTHS` (S, 24) and their logs
    (read-only)."""
    curves = np.stack([daypart(s) for s in _STRENGTHS])
    log_curves = np.log(curves)
    curves.flags.writeable = log_curves.flags.writeable = False
    return curves, log_curves


def _best_daypart(y: np.ndarray, hours: np.ndarray) -> tuple[float, int]:
    """The strength whose daypart curve, times a free level, is closest in logs to the
    hourly traffic ``y`` over ``hours``: (squared log error, index into
    :data:`_STRENGTHS`); an infinite error where ``y`` is not positive there."""
    if (y[hours] <= 0).any():
        return math.inf, 0
    gap = np.log(y[hours])[None, :] - _daypart_table()[1][:, hours]
    sse = ((gap - gap.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    best = int(np.argmin(sse))
    return float(sse[best]), best


#: A traffic shift is fitted when the source channel loses at least this share.
_SHIFT_FACTOR = 0.1
#: Ramps (hours) a traffic shift is tried with.
_SHIFT_RAMPS = (0, 1, 2, 3, 4, 6)


@functools.cache
def _shift_profile(start: int, ramp: int) -> np.ndarray:
    """The share of a shift in force in each hour of the day (the simulator's shock
    profile: from ``start`` on, reaching all of it after ``ramp`` hours). Cached: the
    searches ask for the same few hundred profiles again and again (read-only)."""
    t = np.arange(24)
    rising = np.clip((t - start + 1) / ramp, 0.0, 1.0) if ramp > 0 else np.ones(24)
    profile = np.where(t >= start, rising, 0.0)
    profile.flags.writeable = False
    return profile


@dataclass(frozen=True)
class _TrafficShock:
    """A shock to traffic found in the same hours of every day: ``traffic_shift`` (from
    ``source`` to ``destination``) or ``aigc_throttle`` (on ``source`` alone, or on every
    channel where it is ``None``)."""

    kind: str
    start: int
    ramp: int
    factor: float
    #: The arms' traffic (24, K) without the shock.
    base: np.ndarray
    source: str | None = None
    destination: str | None = None

    def shock(self) -> Shock:
        return Shock(
            self.kind,
            start_hour=self.start,
            factor=round(self.factor, 4),
            channel=self.source,
            to_channel=self.destination,
            ramp_hours=self.ramp,
        )

    def note(self) -> str:
        when = f"from hour {self.start} of every day ({self.ramp} h ramp)"
        if self.kind == "traffic_shift":
            what = (
                f"{self.factor:.0%} of channel {self.source}'s traffic moves to the same "
                f"products on {self.destination}"
            )
        else:
            where = "" if self.source is None else f" on channel {self.source}"
            what = (
                f"the arms with AI-generated creatives{where} keep {self.factor:.0%} of "
                "their traffic"
            )
        return f"{when} {what}; fitted as a scheduled {self.kind} shock"


def _traffic_shift(
    traffic: np.ndarray, arms: list[tuple[str, str]], tradeable: np.ndarray
) -> _TrafficShock | None:
    """Traffic that leaves one channel for another from some hour of every day: the
    source channel's arms fall below their daypart curve by a share ``f`` (rising over
    a ramp), and the same products' arms on the destination channel gain what they lost.

    Every (source, destination, start hour, ramp) is tried: the source's daypart
    strength and its arms' levels are fitted on the hours before the start, ``f`` by
    least squares on its hours after; the destination's daypart on its traffic less
    what it gained, which must fit its daypart no worse than its traffic as logged (a
    channel that only falls, as AI creatives' arms under a throttle do, gains nowhere).
    The candidate with the smallest squared log error over both channels is kept when
    ``f`` is at least :data:`_SHIFT_FACTOR` and it leaves at most :data:`_STEP_SHARE` of
    what the two channels' dayparts alone leave."""
    curves = _daypart_table()[0]
    channel_names = list(dict.fromkeys(c for _, c in arms))
    cols = {
        c: [k for k, (_, ch) in enumerate(arms) if ch == c and tradeable[k]] for c in channel_names
    }
    everywhere = np.ones(24, bool)
    plain = {
        c: _best_daypart(traffic[:, cols[c]].sum(axis=1), everywhere)[0] for c in cols if cols[c]
    }
    best, best_sse = None, math.inf
    for source in plain:
        for destination in plain:
            if destination == source:
                continue
            products = {arms[j][0]: j for j in cols[destination]}
            moved_from = [k for k in cols[source] if arms[k][0] in products]
            if not moved_from:
                continue
            y_source = traffic[:, cols[source]].sum(axis=1)
            for start in range(2, 23):
                before = np.arange(24) < start
                sse_before, s_best = _best_daypart(y_source, before)
                if not math.isfinite(sse_before):
                    continue
                curve = curves[s_best]
                # Each source arm's level from the hours before the shift.
                level = (traffic[before][:, cols[source]] / curve[before, None]).mean(axis=0)
                expected = level[None, :] * curve[:, None]  # (24, source arms)
                ratio = traffic[:, cols[source]].sum(axis=1) / expected.sum(axis=1)
                moved = expected[:, [cols[source].index(k) for k in moved_from]].sum(axis=1)
                y_destination = traffic[:, cols[destination]].sum(axis=1)
                for ramp in _SHIFT_RAMPS:
                    p = _shift_profile(start, ramp)
                    factor = float((p * (1.0 - ratio)).sum() / (p * p).sum())
                    if not _SHIFT_FACTOR <= factor < 0.95:
                        continue
                    kept_share = 1.0 - factor * p
                    sse_source = float(
                        ((np.log(y_source) - np.log(expected.sum(axis=1) * kept_share)) ** 2).sum()
                    )
                    sse_destination, _ = _best_daypart(
                        y_destination - factor * p * moved, everywhere
                    )
                    if sse_destination > plain[destination]:
                        continue  # the destination shows no gain: a fall, not a shift
                    sse = sse_source + sse_destination
                    if sse < best_sse:
                        best_sse = sse
                        best = (source, destination, start, ramp, factor, expected, moved_from)
    if best is None:
        return None
    source, destination, start, ramp, factor, expected, moved_from = best
    if best_sse > _STEP_SHARE * (plain[source] + plain[destination]):
        return None
    p = _shift_profile(start, ramp)
    base = traffic.copy()
    base[:, cols[source]] = traffic[:, cols[source]] / (1.0 - factor * p)[:, None]
    products = {arms[j][0]: j for j in cols[destination]}
    for k in moved_from:
        j = products[arms[k][0]]
        base[:, j] = traffic[:, j] - factor * p * expected[:, cols[source].index(k)]
    return _TrafficShock("traffic_shift", start, ramp, factor, base, source, destination)


#: An AIGC throttle is fitted when AI-generated creatives keep at most this share of
#: their traffic once it is in force.
_THROTTLE_FACTOR = 0.9


def _aigc_arms(kept: pd.DataFrame, arms: list[tuple[str, str]]) -> np.ndarray:
    """Per arm, whether the logs call most of its rows' creatives AI-generated."""
    if "creative_type" not in kept.columns:
        return np.zeros(len(arms), bool)
    share = (
        kept.assign(aigc=kept["creative_type"].astype(str).str.strip().str.lower() == "aigc")
        .groupby(["product", "channel"])["aigc"]
        .mean()
    )
    return np.array([float(share.get(arm, 0.0)) > 0.5 for arm in arms])


def _aigc_throttle(
    traffic: np.ndarray,
    arms: list[tuple[str, str]],
    tradeable: np.ndarray,
    aigc: np.ndarray,
) -> _TrafficShock | None:
    """The traffic of AI-generated creatives' arms falling from some hour of every day to
    a common share ``f`` of their daypart's (rising to it over a ramp), as a platform's
    throttle does, while the other arms' traffic goes on.

    Every (start hour, ramp) is tried. Per channel, the daypart strength comes from its
    other arms' traffic where it has some, else from its AI arms' hours before the start;
    the AI arms' level from their hours before the start; ``f`` by least squares over
    the hours after it of every channel at once, or of one channel alone (a throttle on
    one channel, the others keeping their dayparts). The candidate with the smallest
    squared log error is kept when ``f`` is at most :data:`_THROTTLE_FACTOR` and it
    leaves at most :data:`_STEP_SHARE` of what the AI arms' dayparts alone leave."""
    throttled = aigc & tradeable
    if not throttled.any():
        return None
    curves = _daypart_table()[0]
    everywhere = np.ones(24, bool)
    # Per channel with AI arms: its name, those arms' columns and total, the squared log
    # error its daypart alone leaves, and the strength its other arms show (or None).
    groups = []
    for c in dict.fromkeys(ch for _, ch in arms):
        cols = [k for k, (_, ch) in enumerate(arms) if ch == c and throttled[k]]
        if not cols:
            continue
        y = traffic[:, cols].sum(axis=1)
        sse, _ = _best_daypart(y, everywhere)
        if not math.isfinite(sse):
            return None
        others = [k for k, (_, ch) in enumerate(arms) if ch == c and tradeable[k] and not aigc[k]]
        fixed = _best_daypart(traffic[:, others].sum(axis=1), everywhere)[1] if others else None
        groups.append((c, cols, y, sse, fixed))
    plain = sum(g[3] for g in groups)
    # Every channel at once, or one channel alone (the others keep their dayparts).
    scopes = [None] + ([g[0] for g in groups] if len(groups) > 1 else [])
    best, best_sse = None, math.inf
    for start in range(2, 23):
        before = np.arange(24) < start
        expected = {}
        for c, _, y, _, fixed in groups:
            index = fixed if fixed is not None else _best_daypart(y, before)[1]
            curve = curves[index]
            expected[c] = curve * float((y[before] / curve[before]).mean())
        for ramp in _SHIFT_RAMPS:
            p = _shift_profile(start, ramp)
            for scope in scopes:
                inside = [g for g in groups if scope is None or g[0] == scope]
                drop = sum(float((p * (1.0 - y / expected[c])).sum()) for c, _, y, _, _ in inside)
                drop /= len(inside) * float((p * p).sum())
                factor = 1.0 - drop
                if not 0.02 <= factor <= _THROTTLE_FACTOR:
                    continue
                kept_share = 1.0 - drop * p
                sse = sum(
                    float(((np.log(y) - np.log(expected[c] * kept_share)) ** 2).sum())
                    for c, _, y, _, _ in inside
                ) + sum(g[3] for g in groups if scope is not None and g[0] != scope)
                if sse < best_sse:
                    best, best_sse = (start, ramp, factor, scope), sse
    if best is None or best_sse > _STEP_SHARE * plain:
        return None
    start, ramp, factor, scope = best
    kept_share = 1.0 - (1.0 - factor) * _shift_profile(start, ramp)
    base = traffic.copy()
    for c, cols, _, _, _ in groups:
        if scope is None or c == scope:
            base[:, cols] = traffic[:, cols] / kept_share[:, None]
    return _TrafficShock("aigc_throttle", start, ramp, factor, base, source=scope)


#: Wear-out scales searched, as multiples of the arm's mean daily impressions.
_WEAR_SCALES = np.geomspace(0.02, 50.0, 49)
#: Wear-out floors searched (the CTR share a fully worn creative keeps).
_WEAR_FLOORS = np.linspace(0.05, 0.95, 19)
#: Scheduled CTR drops searched: first hour, hours to full effect, and the CTR factor.
_DROP_STARTS = np.arange(1, 24)
_DROP_RAMPS = np.array([0, 2, 4, 6, 8, 12])
_DROP_FACTORS = np.geomspace(0.2, 0.95, 24)
#: Deviance a CTR pattern (wear-out, a scheduled drop, or the second of the two) must gain
#: to be kept. Without one the gain is about a chi-square with two or three degrees of
#: freedom (above 25 less than once in 50,000); on 18 days of PID logs of the presets
#: without either it stays under 6.
CTR_EVIDENCE = 25.0
#: And the least CTR loss it must imply by the end of a typical day.
CTR_MIN_EFFECT = 0.03


@dataclass(frozen=True)
class CtrFit:
    """How one arm's CTR moves within a day, from its logs.

    ``wear``: creative wear-out, CTR x ``floor + (1 - floor) exp(-E / scale)`` after ``E``
    impressions that day, as ``(scale, floor)``, or None. ``drop``: a CTR drop at fixed
    hours every day (a scheduled ``creative_fatigue`` shock) as ``(start_hour,
    ramp_hours, factor)``, or None. ``ctr_factor`` turns the CTR fitted over the whole day
    into the fresh creative's at the start of the day; ``gain`` is the deviance gained over
    a constant CTR and ``day_end`` the CTR share left by the end of a typical day.
    """

    wear: tuple[float, float] | None
    drop: tuple[int, int, float] | None
    gain: float
    ctr_factor: float
    day_end: float


def _drop_profile(start: np.ndarray, ramp: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """The share of a scheduled shock in force per hour (``envs.market``'s ramp)."""
    ramp_share = np.clip((hours - start + 1) / np.maximum(ramp, 1), 0.0, 1.0)
    return np.where(hours >= start, np.where(ramp > 0, ramp_share, 1.0), 0.0)


def _logged_opportunities(frame: pd.DataFrame) -> np.ndarray:
    """Each row's auction opportunities, impressions / win rate, where the logs give a
    positive win rate; NaN elsewhere."""
    impressions = frame["impressions"].to_numpy(dtype=float)
    if "win_rate" not in frame.columns:
        return np.full(len(frame), np.nan)
    win = frame["win_rate"].to_numpy(dtype=float)
    measured = np.isfinite(win) & (win > 0)
    return np.where(measured, impressions / np.where(measured, win, 1.0), np.nan)


def _fit_ctr_patterns(kept: pd.DataFrame, arms: list[tuple[str, str]]) -> dict[int, CtrFit]:
    """Creative wear-out and scheduled CTR drops per arm, by maximum likelihood on grids.

    Clicks are Poisson with mean ``c * reach * m(hour) * w(E)``: ``reach`` the saturated
    reach of the row's impressions (as the nightly fit computes it, from the logged win
    rate where given), ``m`` a scheduled drop and ``w`` the wear-out after the ``E``
    impressions the arm won earlier that day. With ``c`` profiled out the log-likelihood is
    ``sum(clicks log(m w)) - clicks_total log(sum(reach m w))``. The drop and the wear are
    fitted in turn (each on a grid, given the other), and a pattern is kept only where it
    gains :data:`CTR_EVIDENCE` (the second one: over the first alone) and costs at least
    :data:`CTR_MIN_EFFECT` of the CTR by the end of a typical day. Logs whose impressions
    follow the same hourly path every day tell the two apart only by their shapes (a drop
    levels off at fixed hours, wear-out follows the impressions): the report says which
    was fitted.
    """
    frame = kept.assign(_date=_dates(kept)).sort_values(["product", "channel", "_date", "hour"])
    impressions = frame["impressions"].to_numpy(dtype=float)
    earlier = (
        frame.groupby(["product", "channel", "_date"])["impressions"].cumsum().to_numpy(float)
        - impressions
    )
    reach = saturated_reach(impressions, _logged_opportunities(frame))
    clicks = frame["clicks"].to_numpy(dtype=float)
    hours = frame["hour"].to_numpy(dtype=int)
    index = {arm: k for k, arm in enumerate(arms)}
    keys = list(zip(frame["product"], frame["channel"], strict=True))
    arm_of_row = np.array([index.get(key, -1) for key in keys])
    fits = {}
    for k in range(len(arms)):
        rows = arm_of_row == k
        n_days = frame.loc[rows, "_date"].nunique()
        if clicks[rows].sum() <= 0 or n_days == 0:
            continue
        daily = impressions[rows].sum() / n_days
        found = _fit_arm_ctr(earlier[rows], reach[rows], clicks[rows], hours[rows], daily)
        if found is not None:
            fits[k] = found
    return fits


def _fit_arm_ctr(
    e: np.ndarray, r: np.ndarray, c: np.ndarray, h: np.ndarray, daily: float
) -> CtrFit | None:
    """One arm's CTR pattern (:func:`_fit_ctr_patterns`) from its rows: impressions earlier
    that day ``e``, reach ``r``, clicks ``c``, hour ``h``; ``daily`` impressions a day."""
    starts, ramps, factors = (
        g.ravel() for g in np.meshgrid(_DROP_STARTS, _DROP_RAMPS, _DROP_FACTORS, indexing="ij")
    )
    total = c.sum()
    scales = daily * _WEAR_SCALES
    # Candidate multipliers, one row per grid point.
    wears = (
        _WEAR_FLOORS[:, None, None]
        + (1.0 - _WEAR_FLOORS[:, None, None]) * np.exp(-e / scales[:, None])[None]
    ).reshape(-1, len(e))
    # A drop depends on the hour only: its fits need the hourly sums alone.
    drops = 1.0 + (factors[:, None] - 1.0) * _drop_profile(
        starts[:, None], ramps[:, None], np.arange(24)[None, :]
    )  # (grid, 24)
    hourly_clicks = np.bincount(h, c, minlength=24)

    def wear_loglik(drop: np.ndarray) -> np.ndarray:
        """Each wear-out grid point's log-likelihood, given a drop's hourly factors."""
        scaled = r * drop[h]
        return (c * np.log(wears)).sum(-1) - total * np.log((scaled * wears).sum(-1))

    def drop_loglik(wear: np.ndarray) -> np.ndarray:
        """Each drop grid point's log-likelihood, given a wear-out's factor per row."""
        hourly_reach = np.bincount(h, r * wear, minlength=24)
        return (hourly_clicks * np.log(drops)).sum(-1) - total * np.log(
            (hourly_reach * drops).sum(-1)
        )

    base = float(-total * np.log(r.sum()))
    best = {}
    for name, values in (
        ("wear", wear_loglik(np.ones(24))),
        ("drop", drop_loglik(np.ones(len(e)))),
    ):
        best[name] = (2.0 * (float(values.max()) - base), int(values.argmax()))
    # The two together: each refitted given the other, twice.
    i_wear, i_drop = best["wear"][1], best["drop"][1]
    for _ in range(2):
        i_drop = int(drop_loglik(wears[i_wear]).argmax())
        values = wear_loglik(drops[i_drop])
        i_wear = int(values.argmax())
    both = 2.0 * (float(values[i_wear]) + float(hourly_clicks @ np.log(drops[i_drop])) - base)
    single = max(best, key=lambda n: best[n][0])
    if best[single][0] < CTR_EVIDENCE:
        return None
    if both - best[single][0] >= CTR_EVIDENCE:
        use_wear, use_drop, gain = i_wear, i_drop, both
    elif single == "wear":
        use_wear, use_drop, gain = best["wear"][1], None, best["wear"][0]
    else:
        use_wear, use_drop, gain = None, best["drop"][1], best["drop"][0]
    m = np.ones(len(e))
    wear = drop = None
    day_end = 1.0
    if use_wear is not None:
        floor_i, scale_i = np.unravel_index(use_wear, (len(_WEAR_FLOORS), len(scales)))
        floor, scale = float(_WEAR_FLOORS[floor_i]), float(scales[scale_i])
        wear = (scale, floor)
        m = m * wears[use_wear]
        day_end *= floor + (1.0 - floor) * math.exp(-daily / scale)
    if use_drop is not None:
        drop = (int(starts[use_drop]), int(ramps[use_drop]), float(factors[use_drop]))
        m = m * drops[use_drop][h]
        day_end *= float(drops[use_drop][23])
    if day_end > 1.0 - CTR_MIN_EFFECT:
        return None
    return CtrFit(wear, drop, float(gain), float(r.sum() / (r * m).sum()), day_end)


#: Rivals' memory half-lives searched (hours).
_RIVAL_MEMORIES = np.array([1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0])
#: A reaction is kept when its t-statistic reaches this (PID logs of the presets without
#: reacting rivals give |t| < 2 once budget-cut hours are left out) ...
RIVAL_EVIDENCE = 6.0
#: ... and it moves the price by at least this share at the logs' mean share.
RIVAL_MIN_EFFECT = 0.02
#: Win rates that pin down the median price (the rest are too flat in the price).
_RIVAL_WIN_RANGE = (0.02, 0.98)


@dataclass(frozen=True)
class RivalFit:
    """Rivals' reaction on one channel: prices x ``exp(elasticity * level)``, ``level`` the
    average of our share of the channel's impressions with half-life ``memory_hours``;
    ``mean_level`` per hour of day is that average in the logs (for taking it out of the
    typical day's prices)."""

    elasticity: float
    memory_hours: float
    t_stat: float
    rows: int
    mean_level: np.ndarray


def _within(cell: np.ndarray, counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` less their mean in each cell (one intercept per cell)."""
    return values - (np.bincount(cell, values) / counts)[cell]


def _budget_cut(frame: pd.DataFrame) -> np.ndarray:
    """:func:`bidder.recommend.budget_cut_rows` of ``frame`` (with a ``_date`` column):
    the rows whose logged win rate the budget cut."""
    return budget_cut_rows(
        frame["_date"].to_numpy(),
        frame["hour"].to_numpy(dtype=int),
        frame["spend"].to_numpy(dtype=float),
    )


def _auction_rows(kept: pd.DataFrame, first_price: bool = False) -> pd.DataFrame:
    """The rows that show where a bid stood in its auction: enough impressions, a win rate
    inside (0.02, 0.98), a second-price payment below the bid (``first_price``: any
    payment, the winners paying their bids), and not cut by the budget; with their
    ``paid_ratio`` (price paid per won impression over the bid)."""
    frame = kept.assign(_date=_dates(kept))
    impressions = frame["impressions"].to_numpy(dtype=float)
    paid = price_paid_ratio(
        frame["spend"].to_numpy(dtype=float), impressions, frame["bid"].to_numpy(dtype=float)
    )
    win = frame["win_rate"].to_numpy(dtype=float)
    usable = (
        ~_budget_cut(frame)
        & (impressions >= MIN_ROW_IMPRESSIONS)
        & (win > _RIVAL_WIN_RANGE[0])
        & (win < _RIVAL_WIN_RANGE[1])
        & (paid > 0)
        & (first_price | (paid < 1))
    )
    return frame.assign(paid_ratio=paid)[usable]


def _fit_channel_shapes(
    kept: pd.DataFrame, fitted: FittedMarket
) -> dict[str, tuple[AuctionShape, np.ndarray]]:
    """Per second-price channel without a reserve, the auction shape its rows show clearly
    (a GSP ladder, gamma or brand-mixture prices: :func:`fit_auction_shape`), and per
    first-price one its price family (:func:`fit_first_price_family`), with per
    hour of day how much higher (in log) it puts the channel's price level than the plain
    auction the nightly fit read (``log bid - sigma Phi^-1(q)``: the mean over the hour's
    rows, else over the channel's). Channels that look like one log-normal auction are
    absent."""
    if "win_rate" not in kept.columns:
        return {}
    fits = {}
    second = _auction_rows(kept)
    first = _auction_rows(kept, first_price=True)
    for channel in dict.fromkeys(kept["channel"]):
        auction = fitted.auction_by_channel.get(channel, "second-price")
        if auction not in ("second-price", "first-price"):
            continue
        if fitted.reserve_cpm_by_channel.get(channel, 0.0) > 0:
            continue  # a reserve bends the curve too; the two are not told apart
        rows = first if auction == "first-price" else second
        part = rows[rows["channel"] == channel]
        win = part["win_rate"].to_numpy(dtype=float)
        bid = part["bid"].to_numpy(dtype=float)
        hours = part["hour"].to_numpy(dtype=int)
        cell = pd.factorize(part["product"])[0] * 24 + hours
        if auction == "first-price":
            # The winners pay their bids: only the win rate's response tells the family.
            shape = fit_first_price_family(win, bid, cell)
        else:
            shape = fit_auction_shape(
                win,
                part["paid_ratio"].to_numpy(dtype=float),
                part["impressions"].to_numpy(dtype=float),
                bid,
                cell,
            )
        if shape is None:
            continue
        sigma = float(fitted.price_sigma_by_channel.get(channel, 0.5))
        shift = shape.log_scale(bid, win) - (np.log(bid) - sigma * normal_ppf(win))
        counts = np.bincount(hours, minlength=24)
        by_hour = np.bincount(hours, weights=shift, minlength=24) / np.maximum(counts, 1)
        fits[str(channel)] = (shape, np.where(counts > 0, by_hour, float(shift.mean())))
    return fits


def _fit_rivals(
    kept: pd.DataFrame,
    fitted: FittedMarket,
    shapes: dict[str, tuple[AuctionShape, np.ndarray]] | None = None,
) -> dict[str, RivalFit]:
    """Per auction channel, the rivals' reaction to our share, by least squares.

    Each row's implied median price is ``log bid - sigma * Phi^-1(win rate)`` (the
    channel's fitted spread ``sigma``), or read through the channel's fitted auction
    shape where it has one (:meth:`bidder.auction_shape.AuctionShape.log_scale`). It is
    regressed on the rivals' memory of our share in the earlier hours of its day, ``level_t = d level_{t-1} + (1 - d) share_{t-1}``
    with ``d = 0.5 ** (1 / memory)``, with one intercept per arm and hour, so that only
    day-to-day differences of the share at the same hour count and the daypart's own
    price curve cannot pass for a reaction. The memory is the grid point with the least
    squared error. Hours cut short by the budget are left out: their logged win rate is
    the cut delivery's, and pacing makes them follow high-share hours, which alone gives
    a reaction of 0.2-0.3 on a market without one.
    """
    if "win_rate" not in kept.columns or not fitted.arms:
        return {}
    frame = kept.assign(_date=_dates(kept))
    cut_rows = _budget_cut(frame)
    impressions = frame["impressions"].to_numpy(dtype=float)
    win = frame["win_rate"].to_numpy(dtype=float)
    bid = frame["bid"].to_numpy(dtype=float)
    index = {arm: k for k, arm in enumerate(fitted.arms)}
    arm_of_row = np.array(
        [index.get(key, -1) for key in zip(frame["product"], frame["channel"], strict=True)]
    )
    hours = frame["hour"].to_numpy(dtype=int)
    # Opportunities per row: measured, else the fitted typical hour's.
    opportunities = _logged_opportunities(frame)
    opportunities = np.where(
        np.isfinite(opportunities),
        opportunities,
        fitted.market.traffic[hours, np.maximum(arm_of_row, 0)],
    )
    days = sorted(frame["_date"].unique())
    day_of_row = frame["_date"].map({d: i for i, d in enumerate(days)}).to_numpy()
    fits = {}
    for channel in dict.fromkeys(frame["channel"]):
        if fitted.auction_by_channel.get(channel) == "commission":
            continue
        on = (frame["channel"] == channel).to_numpy() & (arm_of_row >= 0)
        won = np.zeros((len(days), 24))
        offered = np.zeros((len(days), 24))
        np.add.at(won, (day_of_row[on], hours[on]), impressions[on])
        np.add.at(offered, (day_of_row[on], hours[on]), opportunities[on])
        share = np.minimum(won / np.maximum(offered, 1e-9), 1.0)
        usable = (
            on
            & ~cut_rows
            & (impressions >= MIN_ROW_IMPRESSIONS)
            & (win > _RIVAL_WIN_RANGE[0])
            & (win < _RIVAL_WIN_RANGE[1])
            & (bid > 0)
        )
        if usable.sum() < 50:
            continue
        if channel in (shapes or {}):
            y = shapes[channel][0].log_scale(bid[usable], win[usable])
        else:
            sigma = float(fitted.price_sigma_by_channel.get(channel, 0.5))
            y = np.log(bid[usable]) - sigma * normal_ppf(win[usable])
        cell = pd.factorize(arm_of_row[usable] * 24 + hours[usable])[0]
        counts = np.bincount(cell)

        y_within = _within(cell, counts, y)
        # The row's own log bid as a second regressor: where the price model behind ``y``
        # is not the market's (a GSP ladder read as one auction), ``y`` keeps some of the
        # bid, and pacing makes the bid follow the day's earlier share.
        b_within = _within(cell, counts, np.log(bid[usable]))
        dof = max(len(y) - len(counts) - 2, 1)  # two regressors and an intercept per cell
        best = None
        for memory in _RIVAL_MEMORIES:
            keep = 0.5 ** (1.0 / memory)
            level = np.zeros_like(share)
            for t in range(1, 24):
                level[:, t] = keep * level[:, t - 1] + (1.0 - keep) * share[:, t - 1]
            x = np.column_stack(
                [_within(cell, counts, level[day_of_row[usable], hours[usable]]), b_within]
            )
            gram = x.T @ x
            if np.linalg.cond(gram) > 1e12:
                continue
            inverse = np.linalg.inv(gram)
            coef = inverse @ (x.T @ y_within)
            beta = float(coef[0])
            residual = y_within - x @ coef
            sse = float(residual @ residual)
            se = math.sqrt(sse / dof * float(inverse[0, 0]))
            if best is None or sse < best[0]:
                best = (sse, beta, se, memory, level)
        if best is None:
            continue
        _, beta, se, memory, level = best
        t_stat = beta / se if se > 0 else 0.0
        mean_level = level.mean(axis=0)
        if t_stat < RIVAL_EVIDENCE or beta * float(mean_level.mean()) < RIVAL_MIN_EFFECT:
            continue
        fits[channel] = RivalFit(
            float(min(beta, 5.0)), float(memory), float(t_stat), int(usable.sum()), mean_level
        )
    return fits


def flagged_days(logs: pd.DataFrame, baseline_days: int = DEFAULT_BASELINE_DAYS) -> list[dt.date]:
    """Dates on which the diagnosis finds a significant ROI drop (campaign, product or
    arm), judged against the days before them (the first three days cannot be judged)."""
    day_of_row = _dates(logs)
    flagged = []
    for i, day in enumerate(sorted(day_of_row.unique())):
        if i < 3:
            continue
        window = logs[day_of_row <= day]
        if diagnose(window, pd.Timestamp(day), min(baseline_days, i)).drops:
            flagged.append(day)
    return flagged


def fit_scenario(
    logs: pd.DataFrame,
    name: str = "twin",
    budget: float | None = None,
    roi_target: float | None = None,
    exclude_flagged: bool = True,
    source: str = "history",
    start_weekday: int | None = None,
) -> Twin:
    """Fit a scenario to clean hourly logs (:func:`bidder.logs.read_logs`).

    Args:
        logs: the history; at least ``MIN_HISTORY_DAYS`` days once flagged days are out.
        name: the scenario's name.
        budget: the twin's daily budget (default: the history's mean daily spend).
        roi_target: its ROI target (default: the history's ROI, to two decimals).
        exclude_flagged: leave out the days the diagnosis flags (:func:`flagged_days`).
        source: what to call the history in messages.
        start_weekday: the twin's first weekday (Monday 0; default: the weekday of the
            day after the history).

    Raises:
        TwinError: too few days left to fit, or no arm with impressions.
    """
    dates = _dates(logs)
    excluded = flagged_days(logs) if exclude_flagged else []
    kept = logs[~dates.isin(excluded)] if excluded else logs
    if kept["date"].nunique() < MIN_HISTORY_DAYS:
        raise TwinError(
            f"{source}: {kept['date'].nunique()} days are left once the days with ROI drops "
            f"({', '.join(map(str, excluded)) or 'none'}) are out; a twin needs at least "
            f"{MIN_HISTORY_DAYS}: give a longer history"
        )
    twin = _twin_from(kept, excluded, name, budget, roi_target, source, start_weekday)
    _add_intervals(twin, kept, source)
    return twin


#: Parameters chosen on a grid (wear-out, scheduled CTR drops, rivals, auction shapes): the jackknife's
#: replicates land on the same few grid points, so they get no interval (and
#: ``--perturb-intervals`` leaves them as fitted).
GRID_FITTED = frozenset(
    {"fatigue_impressions", "fatigue_floor", "ctr_drop_factor", "rival_elasticity",
     "rival_memory_hours", "slot_exposure", "slot_price_ratio", "price_family", "brand_share",
     "brand_premium", "brand_sigma"}
)  # fmt: skip
#: Day groups of the jackknife (fewer where the history is shorter).
JACKKNIFE_GROUPS = 6


def _add_intervals(twin: Twin, kept: pd.DataFrame, source: str) -> None:
    """Give every numeric parameter a 95% interval from a grouped jackknife over days.

    The kept days are dealt into ``G`` groups (day ``i`` to group ``i mod G``); the twin is
    fitted ``G`` times, each time without one group, and a parameter's standard error is
    ``sqrt((G - 1) / G * sum((theta_g - mean theta)^2))``. This captures what the
    day-to-day variation of the logs leaves uncertain, for every parameter alike, without
    a model of its own for each. Where fewer than ``MIN_HISTORY_DAYS + 1`` days are kept,
    no jackknife is possible and only the analytic intervals (binomial for CTR and CVR,
    the order-value spread for AOV) remain; the notes say so."""
    days = sorted(_dates(kept).unique())
    groups = min(JACKKNIFE_GROUPS, len(days))
    if len(days) - math.ceil(len(days) / groups) < MIN_HISTORY_DAYS:
        twin.notes.append(
            f"{len(days)} days are too few for a jackknife: intervals are analytic where "
            "given, else none"
        )
        return
    scenario = twin.scenario
    replicates: dict[str, list[float]] = {}
    for g in range(groups):
        left_out = set(days[g::groups])
        part = kept[~_dates(kept).isin(left_out)]
        refit = _twin_from(
            part, [], scenario.name, scenario.budget, scenario.roi_target, source,
            scenario.start_weekday,
        )  # fmt: skip
        for entry in refit.parameters:
            if entry["parameter"].rsplit(".", 1)[-1] in GRID_FITTED:
                continue
            replicates.setdefault(entry["parameter"], []).append(float(entry["estimate"]))
    for entry in twin.parameters:
        if entry["parameter"].rsplit(".", 1)[-1] in GRID_FITTED:
            continue  # a grid point: replicates land on the same few points, no interval
        values = np.asarray(replicates.get(entry["parameter"], []))
        if len(values) < groups:
            continue  # not fitted in every replicate (a shock found in some only)
        se = math.sqrt((groups - 1) / groups * float(((values - values.mean()) ** 2).sum()))
        if se > 0:
            entry["interval"] = _interval(float(entry["estimate"]), se)
            entry["interval_method"] = f"jackknife over days ({groups} groups)"


def _ctr_pattern_parameters(
    product: str, channel: str, pattern: CtrFit, clicks: int
) -> list[dict[str, Any]]:
    data = f"{clicks:,} clicks, hour by hour"
    arm = f"arm.{product}/{channel}"
    rows = []
    if pattern.wear is not None:
        rows += [
            {"parameter": f"{arm}.fatigue_impressions", "estimate": round(pattern.wear[0], 1),
             "interval": None, "data": data},
            {"parameter": f"{arm}.fatigue_floor", "estimate": round(pattern.wear[1], 4),
             "interval": None, "data": data},
        ]  # fmt: skip
    if pattern.drop is not None:
        rows.append(
            {"parameter": f"{arm}.ctr_drop_factor", "estimate": round(pattern.drop[2], 4),
             "interval": None, "data": data}
        )  # fmt: skip
    return rows


def _ctr_pattern_note(product: str, channel: str, pattern: CtrFit) -> str:
    found = []
    if pattern.wear is not None:
        found.append("creative wear-out with the day's impressions")
    if pattern.drop is not None:
        start, ramp, factor = pattern.drop
        found.append(
            f"a scheduled creative_fatigue shock (CTR x {factor:.2f} from hour {start}"
            + (f", reached over {ramp} hours)" if ramp else ")")
        )
    return (
        f"arm {product}/{channel}: its CTR falls within the day by "
        f"{1.0 - pattern.day_end:.0%} (deviance gain {pattern.gain:.0f} over a constant CTR); "
        f"fitted as {' and '.join(found)}"
    )


def _twin_from(
    kept: pd.DataFrame,
    excluded: list[dt.date],
    name: str,
    budget: float | None,
    roi_target: float | None,
    source: str,
    start_weekday: int | None,
) -> Twin:
    """The twin of the days in ``kept`` (no intervals; :func:`fit_scenario` adds them)."""
    dates = _dates(kept)
    last = max(dates)
    target_day = last + dt.timedelta(days=1)
    fitted = fit_market(kept, target_day, source, price_prior_rows=PRICE_PRIOR_ROWS)
    market = fitted.market
    week = (
        np.asarray(DEFAULT_WEEKDAY_FACTORS)
        if fitted.weekday_factors is None
        else np.asarray(fitted.weekday_factors)
    )
    traffic = market.traffic / week[target_day.weekday()]  # (24, K), a mean weekday
    arms = fitted.arms
    channel_names = list(dict.fromkeys(c for _, c in arms))
    product_names = list(dict.fromkeys(p for p, _ in arms))
    fits = {(a.product, a.channel): a for a in fitted.arm_fits}
    tradeable = ~fitted.untradeable if fitted.untradeable.size else np.ones(len(arms), bool)
    if not tradeable.any():
        raise TwinError(f"{source}: no arm has impressions; a twin needs some delivery")
    params: list[dict[str, Any]] = []
    notes: list[str] = []
    days = fitted.history_days

    channels, strength_of, shocks = [], {}, []
    # Traffic that leaves one channel for another from some hour of every day (a
    # platform pushing its live rooms in the evening), and the traffic of AI-generated
    # creatives falling from some hour while the other arms' goes on (a platform's
    # throttle), are scheduled shocks: fitted as such, and the dayparts and arms'
    # traffic fitted without them.
    aigc = _aigc_arms(kept, list(arms))
    for search in (
        lambda t: _traffic_shift(t, list(arms), tradeable),
        lambda t: _aigc_throttle(t, list(arms), tradeable, aigc),
    ):
        found = search(traffic)
        if found is not None:
            traffic = found.base
            shocks.append(found.shock())
            notes.append(found.note())
    # Traffic that stands above the daypart in the same hours of every day, on every
    # channel at once, is a scheduled promotion: fitted as one rather than baked into the
    # dayparts (the simulator's promotion lifts traffic x f, CVR x sqrt f, prices x f^1/4).
    shapes = {}
    for c in channel_names:
        cols = [k for k, (_, ch) in enumerate(arms) if ch == c and tradeable[k]]
        if cols:
            shape = traffic[:, cols].sum(axis=1)
            shapes[c] = shape / shape.mean()
    promotion = _traffic_step(shapes) if shapes else None
    lift = np.ones(24)  # the promotion's traffic factor per hour (1: none)
    if promotion is not None:
        start, end, factor, promoted_strengths = promotion
        lift[start:end] = factor
        shocks.append(
            Shock(
                "promotion",
                start_hour=start,
                end_hour=None if end == 24 else end,
                factor=round(factor, 4),
            )
        )
        notes.append(
            f"traffic from hour {start} to {end} of every day stands at {factor:.2f}x the "
            "dayparts' curves on every channel; fitted as a scheduled promotion shock (its "
            "CVR and price lifts taken out of the typical day)"
        )
    # How well each channel-hour's price is measured: impressions bought per day there
    # (an hour the campaign paused in holds few, and its fitted price is a guess).
    bought = kept.groupby(["channel", "hour"])["impressions"].sum() / days
    hour_weight = {}
    for c in channel_names:
        per_hour = bought.get(c, pd.Series(dtype=float)).reindex(range(24), fill_value=0.0)
        n = per_hour.to_numpy(dtype=float)
        hour_weight[c] = n / (n + _MEASURED_IMPRESSIONS)
    auction_shapes = _fit_channel_shapes(kept, fitted)
    rivals = _fit_rivals(kept, fitted, auction_shapes)
    prepared = {}  # per channel with delivery: its columns, curve and log prices
    for c in channel_names:
        cols = [k for k, (_, ch) in enumerate(arms) if ch == c and tradeable[k]]
        if not cols:
            continue
        strength = promoted_strengths[c] if promotion is not None else _fit_daypart(shapes[c])
        logp = np.log(np.maximum(market.price_median[:, cols], 1e-9))
        # The nightly fit read every channel as one log-normal auction.
        logp = logp + auction_shapes.get(c, (None, np.zeros(24)))[1][:, None]
        logp = logp - 0.25 * np.log(lift)[:, None]  # prices without the promotion's lift
        rival = rivals.get(c)
        if rival is not None:  # and without the rivals' reaction to the logged share
            logp = logp - rival.elasticity * rival.mean_level[:, None]
        prepared[c] = (cols, strength, logp)
    # Prices that step up from the daypart's curve in some hours of every day are a
    # scheduled bid war, fitted as a shock rather than averaged in: one on every auction
    # channel at once where it fits them all, else one per channel where it shows.
    auction_channels = [c for c in prepared if fitted.auction_by_channel.get(c) != "commission"]
    common = _common_price_step(
        {
            c: _step_stats(prepared[c][2], np.log(daypart(prepared[c][1])), hour_weight[c])
            for c in auction_channels
        }
    )
    if common is not None:
        war = next(iter(common.values()))
        everywhere = len(auction_channels) == len(channel_names)
        shocks += [war.shock(c) for c in ([None] if everywhere else auction_channels)]
        notes.append(
            f"channels {', '.join(auction_channels)}: {war.describe()} the daypart "
            f"curves' level{war.ramp_note} on all of them; fitted as a scheduled bid_war shock"
        )
    for c in channel_names:
        if c not in prepared:
            notes.append(f"channel {c}: no impressions in the logs; its arms get no traffic")
            strength_of[c] = 1.0
            channels.append(Channel(c, price_cpm=float(np.median(market.price_median))))
            continue
        cols, strength, logp = prepared[c]
        strength_of[c] = strength
        curve = daypart(strength)
        auction_shape = auction_shapes.get(c, (None, None))[0]
        rival = rivals.get(c)
        elasticity, level, _ = _fit_prices(logp, np.log(curve), np.ones(24, bool), hour_weight[c])
        if common is not None:
            war = common.get(c)
        else:
            war = _price_step(logp, np.log(curve), hour_weight[c])
            if war is not None:
                shocks.append(war.shock(c))
                notes.append(
                    f"channel {c}: {war.describe()} the daypart curve's level"
                    f"{war.ramp_note}; fitted as a scheduled bid_war shock"
                )
        if war is not None:
            elasticity, level = war.elasticity, war.level
        price_cpm = float(np.exp(level.mean()))
        if fitted.auction_by_channel.get(c) == "commission":
            # Influencers paid by commission: the fitted "price" is the going rate.
            caps = fitted.bid_cap[cols]
            max_rate = float(np.clip(max(caps.max(), price_cpm), 1e-6, MAX_COMMISSION_RATE))
            going = min(price_cpm, max_rate)
            channels.append(
                Channel(
                    c,
                    payment="commission",
                    going_rate=going,
                    max_rate=max_rate,
                    daypart_strength=strength,
                    competition_elasticity=elasticity,
                    order_delay_hours=float(fitted.order_delay_hours_by_channel.get(c, 0.0)),
                )
            )
            notes.append(
                f"channel {c}: paid by commission; its highest rate is set to {max_rate:.3g} "
                "(twice the highest rate in the logs) and the influencers' lag to the "
                f"default {channels[-1].supply_lag_hours:g} hours: logs that hold one rate "
                "cannot show either"
            )
            params += [
                {"parameter": f"channel.{c}.going_rate", "estimate": round(going, 6),
                 "interval": None, "data": f"{days} days x 24 hours x {len(cols)} arms"},
                {"parameter": f"channel.{c}.daypart_strength", "estimate": round(strength, 4),
                 "interval": None, "data": f"{days} days x 24 hours"},
                {"parameter": f"channel.{c}.competition_elasticity",
                 "estimate": round(elasticity, 4), "interval": None,
                 "data": f"{days} days x 24 hours"},
            ]  # fmt: skip
            continue
        first_price = fitted.auction_by_channel.get(c) == "first-price"
        if auction_shape is not None:
            auction = auction_shape.channel_fields()
            if first_price:  # a family read from the win rates: the rule stays
                auction["auction"] = "first-price"
        else:
            auction = {
                "auction": (
                    "first-price"
                    if fitted.auction_by_channel.get(c) == "first-price"
                    else "second-price"
                ),
                "price_sigma": float(fitted.price_sigma_by_channel.get(c, 0.5)),
            }
        channels.append(
            Channel(
                c,
                price_cpm=price_cpm,
                daypart_strength=strength,
                competition_elasticity=elasticity,
                **auction,
                reserve_cpm=float(fitted.reserve_cpm_by_channel.get(c, 0.0)),
                order_delay_hours=float(fitted.order_delay_hours_by_channel.get(c, 0.0)),
                rival_elasticity=rival.elasticity if rival else 0.0,
                rival_memory_hours=rival.memory_hours if rival else 3.0,
            )
        )
        if auction_shape is not None:
            read = "win rate against bid" if first_price else "price paid against win rate"
            data = (
                f"{auction_shape.rows:,} rows, {read} (evidence "
                f"{auction_shape.evidence:.0f} over one log-normal auction)"
            )
            params += [
                {"parameter": f"channel.{c}.{name}", "estimate": _report_value(value),
                 "interval": None, "data": data}
                for name, value in auction_shape.channel_fields().items()
                if name not in ("auction", "price_sigma")
            ]  # fmt: skip
            notes.append(
                f"channel {c}: the win rate follows the bid, across the days of each arm "
                f"and hour, as {auction_shape.describe()} make it, not as log-normal prices "
                "do; the twin's first-price channel has that family"
                if first_price
                else f"channel {c}: the price paid follows the win rate as "
                f"{auction_shape.describe()} "
                "does, not as one log-normal auction; the twin's channel has that shape"
            )
        if rival is not None:
            params += [
                {"parameter": f"channel.{c}.rival_elasticity",
                 "estimate": round(rival.elasticity, 4), "interval": None,
                 "data": f"{rival.rows:,} rows, prices against the day's earlier share"},
                {"parameter": f"channel.{c}.rival_memory_hours",
                 "estimate": rival.memory_hours, "interval": None,
                 "data": f"{rival.rows:,} rows, prices against the day's earlier share"},
            ]  # fmt: skip
            notes.append(
                f"channel {c}: prices rise with our share of its impressions in the hours "
                f"before (t = {rival.t_stat:.0f}); fitted as reacting rivals, elasticity "
                f"{rival.elasticity:.2f} with a {rival.memory_hours:g}-hour memory"
            )
        params += [
            {"parameter": f"channel.{c}.price_cpm", "estimate": round(price_cpm, 4),
             "interval": None, "data": f"{days} days x 24 hours x {len(cols)} arms"},
            {"parameter": f"channel.{c}.daypart_strength", "estimate": round(strength, 4),
             "interval": None, "data": f"{days} days x 24 hours"},
            {"parameter": f"channel.{c}.competition_elasticity",
             "estimate": round(elasticity, 4), "interval": None,
             "data": f"{days} days x 24 hours"},
            {"parameter": f"channel.{c}.price_sigma",
             "estimate": round(channels[-1].price_sigma, 4), "interval": None,
             "data": "win rate against bid"},
        ]  # fmt: skip

    products = []
    for p in product_names:
        cols = [k for k, (pr, _) in enumerate(arms) if pr == p]
        orders = np.array([fits[arms[k]].orders for k in cols], dtype=float)
        aovs = np.array([fits[arms[k]].aov for k in cols])
        aov = (
            float((aovs * orders).sum() / orders.sum()) if orders.sum() > 0 else float(aovs.mean())
        )
        cv = float(np.mean(market.aov_cv[cols]))
        products.append(Product(p, aov=aov, aov_cv=cv))
        params.append(
            {"parameter": f"product.{p}.aov", "estimate": round(aov, 4),
             "interval": _interval(aov, aov * cv / math.sqrt(max(orders.sum(), 1))),
             "data": f"{int(orders.sum()):,} orders"}
        )  # fmt: skip

    patterns = _fit_ctr_patterns(kept, arms)
    # Clicks per arm and hour of day: the hours an arm's fitted CVR was measured in.
    clicks_by_hour = kept.groupby(["product", "channel", "hour"])["clicks"].sum().astype(float)
    arm_objects = []
    for k, (p, c) in enumerate(arms):
        fit = fits[(p, c)]
        pattern = patterns.get(k)
        wear = pattern.wear if pattern else None
        curve = daypart(strength_of[c])
        base = float((traffic[:, k] / lift).sum() / curve.sum()) if tradeable[k] else 0.0
        # The fitted CVR averages promoted and ordinary hours, weighted by the clicks
        # it was measured on (where the campaign bought, not where the traffic was).
        weights = (
            clicks_by_hour.get((p, c), pd.Series(dtype=float))
            .reindex(range(24), fill_value=0.0)
            .to_numpy()
        )
        if weights.sum() <= 0:
            weights = traffic[:, k] if traffic[:, k].sum() > 0 else np.ones(24)
        cvr_lift = float((weights * np.sqrt(lift)).sum() / weights.sum())
        arm_objects.append(
            Arm(
                p,
                c,
                creative="aigc" if aigc[k] else "original",
                traffic=max(base, 1e-6),
                # With wear-out, the fresh creative's CTR (the fit's is the day's mean).
                ctr=float(np.clip(fit.ctr * (pattern.ctr_factor if pattern else 1.0), 1e-6, 1.0)),
                cvr=float(np.clip(fit.cvr / cvr_lift, 1e-6, 1.0)),
                saturation=float(market.saturation[k]),
                fatigue_impressions=wear[0] if wear else math.inf,
                fatigue_floor=wear[1] if wear else 0.5,
            )
        )
        if pattern is not None:
            params += _ctr_pattern_parameters(p, c, pattern, fit.clicks)
            notes.append(_ctr_pattern_note(p, c, pattern))
            if pattern.drop is not None:
                start_hour, ramp, factor = pattern.drop
                shocks.append(
                    Shock(
                        "creative_fatigue",
                        start_hour=start_hour,
                        factor=round(factor, 4),
                        product=p,
                        channel=c,
                        ramp_hours=ramp,
                    )
                )
        ctr_se = (
            math.sqrt(fit.ctr * (1 - fit.ctr) / fit.impressions) if fit.impressions else math.inf
        )
        cvr_se = math.sqrt(fit.cvr * (1 - fit.cvr) / fit.clicks) if fit.clicks else math.inf
        data = f"{fit.impressions:,} impressions, {fit.clicks:,} clicks, {fit.orders:,} orders"
        thin = "" if fit.enough_data else f"; thin: {fit.action or 'shrunk towards the channel'}"
        params += [
            {"parameter": f"arm.{p}/{c}.traffic", "estimate": round(base, 2),
             "interval": None, "data": f"{days} days x 24 hours" + thin},
            {"parameter": f"arm.{p}/{c}.ctr", "estimate": round(fit.ctr, 6),
             "interval": _interval(fit.ctr, ctr_se), "data": data + thin},
            {"parameter": f"arm.{p}/{c}.cvr", "estimate": round(fit.cvr, 6),
             "interval": _interval(fit.cvr, cvr_se), "data": data + thin},
        ]  # fmt: skip

    noise = list(fitted.traffic_noise_by_channel.values())
    spend = float(kept["spend"].sum())
    gmv = float(kept["gmv"].sum())
    daily_budget = spend / days if budget is None else float(budget)
    target = round(gmv / spend, 2) if roi_target is None and spend > 0 else float(roi_target or 0)
    weekday = tuple(float(round(w, 4)) for w in week)
    scenario = Scenario(
        name=name,
        budget=max(daily_budget, 1.0),
        roi_target=target,
        products=tuple(products),
        channels=tuple(channels),
        arms=tuple(arm_objects),
        shocks=tuple(shocks),
        start_weekday=target_day.weekday() if start_weekday is None else int(start_weekday),
        traffic_noise=float(np.clip(np.mean(noise), 0.0, 1.0)) if noise else 0.1,
        weekday_factors=weekday,
        description=(
            f"twin fitted from {days} days of logs ({fitted.first_date} to "
            f"{fitted.last_date}"
            + (f"; {len(excluded)} flagged days left out" if excluded else "")
            + ")"
        ),
    )
    if fitted.weekday_factors is None:
        notes.append("the history is too short for weekday factors: the defaults are used")
    if any(fitted.order_delay_hours_by_channel.values()):
        notes.append(
            "order delays: read from the orders within each day"
            + (
                " and the previous evening's orders the logs place in the next morning's hours"
                if fitted.orders_carry_over
                else " only (the logs' days hold no orders carried over midnight)"
            )
        )
    return Twin(scenario, params, [d.isoformat() for d in excluded], fitted, notes)


def holdout_errors(
    scenario: Scenario,
    logs: pd.DataFrame,
    budget: float | None = None,
    orders_carry_over: bool = True,
) -> pd.DataFrame:
    """The twin's expected spend and GMV for each logged day, at the bids that were placed,
    against what the logs recorded: one row per day and arm (``product``, ``channel``)
    and one per day for the whole campaign (``product`` and ``channel`` ``*``), with the
    relative errors ``spend_error`` and ``gmv_error``. As the platform does, delivery
    stops once the day's ``budget`` (default: the twin's) is spent. Where the twin's
    orders are delayed, the predicted GMV is what the logs hold: the orders that arrive
    by the end of their day and, with ``orders_carry_over`` (the logs of a campaign that
    runs every day, :attr:`bidder.recommend.FittedMarket.orders_carry_over`), those of
    the previous day's clicks that arrive in it (for a day whose previous day is not in
    ``logs``, as many as it passes on itself)."""
    budget = scenario.budget if budget is None else float(budget)
    arm_index = {(a.product, a.channel): k for k, a in enumerate(scenario.arms)}
    rows = []
    passed_on: dict[dt.date, np.ndarray] = {}  # per day, its GMV arriving the next day
    for day, frame in logs.groupby(_dates(logs)):
        nominal = build_episode(
            _on_weekday(scenario, day.weekday()), None
        )  # the noise-free typical day
        predicted = np.zeros((2, len(arm_index)))
        actual = np.zeros((2, len(arm_index)))
        exposure = np.zeros(len(arm_index))  # impressions so far (creative wear-out)
        tail = np.zeros(len(arm_index))  # GMV clicked today, placed after midnight
        if nominal.delay_q is not None:  # of which this share is within the window
            window = 1.0 - nominal.delay_q ** min(scenario.attribution_window_hours, 24)
        mechanism = nominal.mechanism
        rivals = Rivals(mechanism) if mechanism is not None and mechanism.reacts else None
        for hour, rows_h in frame.groupby("hour"):
            bids = np.zeros(len(arm_index))
            keys = list(zip(rows_h["product"], rows_h["channel"], strict=True))
            cols = [arm_index[key] for key in keys]
            levers = rows_h["bid"].to_numpy(dtype=float)
            if "commission_rate" in rows_h.columns:  # a commission arm's lever is its rate
                rate = rows_h["commission_rate"].to_numpy(dtype=float)
                levers = np.where(np.isfinite(rate), rate, levers)
            bids[cols] = levers
            factor = None if rivals is None else rivals.factor()
            expected = expected_hour(nominal, int(hour), bids, exposure, factor)
            left = max(budget - predicted[0].sum(), 0.0)
            hour_spend = float(expected.spend.sum())
            cut = 1.0 if hour_spend <= left else left / hour_spend
            exposure = exposure + expected.impressions * cut
            if rivals is not None:  # the rivals remember the share the twin predicts
                rivals.update(expected.impressions * cut, nominal.traffic[int(hour)])
            predicted[0] += expected.spend * cut
            # The day's rows hold the orders that arrived by its end (docs/logs.md); the
            # rest arrive the next day, within the attribution window.
            arrived = 1.0 if nominal.delay_q is None else 1.0 - nominal.delay_q ** (24 - hour)
            predicted[1] += expected.gmv * cut * arrived
            if nominal.delay_q is not None:
                tail += expected.gmv * cut * (1.0 - arrived) * window
            np.add.at(actual[0], cols, rows_h["spend"].to_numpy(dtype=float))
            np.add.at(actual[1], cols, rows_h["gmv"].to_numpy(dtype=float))
        passed_on[day] = tail
        if orders_carry_over:
            predicted[1] += passed_on.get(day - dt.timedelta(days=1), tail)
        for (product, channel), k in [*arm_index.items(), (("*", "*"), None)]:
            pred = predicted[:, k] if k is not None else predicted.sum(axis=1)
            real = actual[:, k] if k is not None else actual.sum(axis=1)
            rows.append(
                {
                    "date": day.isoformat(),
                    "product": product,
                    "channel": channel,
                    "spend": real[0],
                    "predicted_spend": pred[0],
                    "spend_error": (pred[0] - real[0]) / real[0] if real[0] > 0 else np.nan,
                    "gmv": real[1],
                    "predicted_gmv": pred[1],
                    "gmv_error": (pred[1] - real[1]) / real[1] if real[1] > 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _dates(logs: pd.DataFrame) -> pd.Series:
    """Each row's calendar date."""
    return pd.to_datetime(logs["date"]).dt.date


def _on_weekday(scenario: Scenario, weekday: int) -> Scenario:
    return dataclasses.replace(scenario, start_weekday=weekday)


#: The largest fit report :func:`load_intervals` reads.
MAX_REPORT_BYTES = 50_000_000


def load_intervals(path: str | Path) -> tuple[tuple[str, tuple[float, float]], ...]:
    """The parameter intervals of a fit report (``scenario fit --report``), for
    :class:`envs.sampler.Perturbation`: JSON data only, checked entry by entry.

    Raises:
        TwinError: the file is missing, too large, not JSON, or not a fit report.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise TwinError(f"{path}: larger than {MAX_REPORT_BYTES:,} bytes; not a fit report")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TwinError(
            f"{path}: no such fit report; write one with autopilot scenario fit --report"
        ) from None
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as err:
        raise TwinError(
            f"{path}: not a JSON fit report ({err}); give the file scenario fit --report wrote"
        ) from None
    entries = data.get("parameters") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise TwinError(f"{path}: no 'parameters' list; give the file scenario fit --report wrote")
    out = []
    for i, entry in enumerate(entries):
        name = entry.get("parameter") if isinstance(entry, dict) else None
        interval = entry.get("interval") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise TwinError(
                f"{path}: parameters[{i}] has no 'parameter' name; fix or rewrite the report"
            )
        if interval is None:
            continue
        if (
            not isinstance(interval, list)
            or len(interval) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in interval)
            or not all(math.isfinite(v) for v in interval)
            or interval[0] > interval[1]
        ):
            raise TwinError(
                f"{path}: parameters[{i}] ({name}) interval {interval!r} is not [low, high] "
                "with finite low <= high; fix or rewrite the report"
            )
        out.append((name, (float(interval[0]), float(interval[1]))))
    return tuple(out)
