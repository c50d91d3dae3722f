"""A response model learned from the logs: the auction's part of each channel's response,
read off what the bids bought, shape-constrained and shrunk towards the closed form.

The closed form (:class:`~bidder.response.ParametricResponse`) says what a bid buys in a
second-price auction on log-normal prices, or in the rules the fit recognises (first
price, reserves). A channel that runs something else (GSP slots whose winners pay the
next slot's price only when seen, a heavy-tailed price mixture, a gamma family) follows
another curve, and the closed form plans on the wrong one. :class:`EmpiricalResponse`
learns that curve per channel from the logged hours:

- each hour with impressions and a win rate gives a point
  ``z = ln(bid / m)``, where ``m`` is the fitted median price of that arm and hour of day
  (so prices' daypart and each arm's level stay the fit's), with its win rate ``w`` and
  its payment per opportunity in units of the median, ``p = 1000 spend / opportunities / m``;
- points are pooled per channel on a grid of ``z`` (:data:`GRID`), averaged per knot
  weighted by opportunities, and shrunk towards the closed form's own ``w`` and ``p`` at
  that knot with the weight of :data:`PRIOR_HOURS` hours, so that a knot the logs never
  reached is the closed form's;
- both curves are then made non-decreasing in the bid (weighted pool-adjacent-violators),
  as any auction's are.

Planning reads a bid's ``z`` in the forecast (its corrected median), interpolates ``w`` and
``p``, and takes clicks, orders and GMV from the forecast's rates as the closed form does
(``envs.market.response_from_auction``). Commission arms keep the closed form: their
curve is the supply share, already exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bidder.recommend import FittedMarket
from bidder.response import PARAMETRIC
from envs.market import EpisodeMarket, response_from_auction
from envs.stats import lognormal_auction

#: Knots of ``z = ln(bid / median price)``: 33 from -4 to 4 (a quarter of a log unit apart).
GRID = np.linspace(-4.0, 4.0, 33)
#: Weight of the closed form at every knot, in logged hours of typical size.
PRIOR_HOURS = 5.0
#: Rows with fewer impressions say little of where the bid stood.
MIN_IMPRESSIONS = 20


def _isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to ``values`` in weighted least squares
    (pool-adjacent-violators)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, w in zip(values, weights, strict=True):
        blocks.append([float(v), float(w), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            total = w1 + w2
            blocks.append([(m1 * w1 + m2 * w2) / total, total, n1 + n2])
    return np.concatenate([np.full(n, m) for m, _, n in blocks])


@dataclass(frozen=True)
class EmpiricalResponse:
    """Per-arm auction curves on :data:`GRID`: ``win`` and ``pay`` (K, G), and how many
    logged hours stand behind each knot (``hours``, K x G; 0 where the logs never bid
    there)."""

    win: np.ndarray
    pay: np.ndarray
    hours: np.ndarray
    commission: np.ndarray
    name = "empirical"

    def auction(self, forecast: EpisodeMarket, bids: np.ndarray, per_hour) -> tuple:
        median = per_hour(forecast.price_median)
        z = np.log(np.maximum(bids, 1e-12) / median)
        position = np.clip((z - GRID[0]) / (GRID[1] - GRID[0]), 0.0, len(GRID) - 1.0)
        low = np.minimum(position.astype(np.int64), len(GRID) - 2)
        frac = position - low
        arm = np.arange(self.win.shape[0])
        flat_low = arm * len(GRID) + low  # arms on the last axis
        win = self.win.ravel()[flat_low] * (1 - frac) + self.win.ravel()[flat_low + 1] * frac
        pay = self.pay.ravel()[flat_low] * (1 - frac) + self.pay.ravel()[flat_low + 1] * frac
        return win, pay * median

    def response(
        self, forecast: EpisodeMarket, bids: np.ndarray, ctr_wear: np.ndarray | float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        if not self.hours.any():  # nothing learned: exactly the closed form
            return PARAMETRIC.response(forecast, bids, ctr_wear)
        bids = np.asarray(bids, dtype=float)
        hours = bids.shape[0]
        extra = (1,) * (bids.ndim - 2)

        def per_hour(values: np.ndarray) -> np.ndarray:
            return values[:hours].reshape((hours,) + extra + (values.shape[-1],))

        win, pay1 = self.auction(forecast, bids, per_hour)
        attributed = 1.0 if forecast.attribution is None else per_hour(forecast.attribution)
        out = response_from_auction(
            win,
            pay1,
            per_hour(forecast.traffic),
            per_hour(forecast.ctr) * ctr_wear,
            per_hour(forecast.cvr),
            per_hour(forecast.aov),
            forecast.saturation,
            attributed,
        )
        spend, gmv = out.spend, out.gmv
        if self.commission.any():
            exact_spend, exact_gmv = PARAMETRIC.response(forecast, bids, ctr_wear)
            spend = np.where(self.commission, exact_spend, spend)
            gmv = np.where(self.commission, exact_gmv, gmv)
        return spend, gmv


#: Per knot away from the data, the learned log-ratio to the closed form keeps this much.
RATIO_DECAY = 0.7


def _corrected(prior: np.ndarray, observed: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The closed form times a learned ratio: at knots with data, the log-ratio of the
    observed mean (shrunk towards the closed form by :data:`PRIOR_HOURS`) to the closed
    form; beyond them, the nearest such ratio fading by :data:`RATIO_DECAY` per knot, so
    the curve stays continuous where the logs stop."""
    seen = (count > 0) & (prior > 1e-9)
    if not seen.any():
        return prior
    shrink = count / (count + PRIOR_HOURS)
    target = shrink * observed + (1 - shrink) * prior
    log_ratio = np.where(seen, np.log(np.maximum(target, 1e-12) / np.maximum(prior, 1e-12)), 0.0)
    knots = np.flatnonzero(seen)
    nearest = knots[np.abs(np.arange(len(prior))[:, None] - knots[None, :]).argmin(axis=1)]
    distance = np.abs(np.arange(len(prior)) - nearest)
    return prior * np.exp(log_ratio[nearest] * RATIO_DECAY**distance)


def _prior_curves(fitted: FittedMarket) -> tuple[np.ndarray, np.ndarray]:
    """The closed form's win and payment per opportunity (in medians) at every knot, per
    arm: a unit median, the arm's fitted spread and auction rules."""
    market = fitted.market
    n_arms = len(fitted.arms)
    bids = np.broadcast_to(np.exp(GRID)[:, None], (len(GRID), n_arms))
    scale = np.ones_like(bids)
    if market.mechanism is None:
        win, pay, _ = lognormal_auction(bids, scale, market.price_sigma)
    else:
        win, pay, _ = market.mechanism.auction_moments(np.array(bids), scale)
    return win.T, pay.T  # (K, G)


def fit_empirical(logs: pd.DataFrame, fitted: FittedMarket) -> EmpiricalResponse:
    """Learn every channel's auction curves from ``logs`` (the history ``fitted`` came
    from; rows need ``win_rate``). Without win rates the closed form is returned as it is
    (every knot the prior's), which plans as the parametric model does."""
    prior_win, prior_pay = _prior_curves(fitted)
    n_arms = len(fitted.arms)
    hours = np.zeros((n_arms, len(GRID)))
    win, pay = prior_win.copy(), prior_pay.copy()
    commission = (fitted.commission if fitted.commission.size else np.zeros(n_arms, bool)).astype(
        bool
    )
    if "win_rate" not in logs.columns:
        return EmpiricalResponse(win, pay, hours, commission)
    index = {arm: k for k, arm in enumerate(fitted.arms)}
    k = np.array([index.get(key, -1) for key in zip(logs["product"], logs["channel"], strict=True)])
    hour = logs["hour"].to_numpy(np.int64)
    impressions = logs["impressions"].to_numpy(float)
    win_rate = logs["win_rate"].to_numpy(float)
    bid = logs["bid"].to_numpy(float)
    spend = logs["spend"].to_numpy(float)
    known = k >= 0
    median = np.where(known, fitted.market.price_median[hour, np.maximum(k, 0)], np.nan)
    usable = (
        known
        & (impressions >= MIN_IMPRESSIONS)
        & (win_rate > 0)
        & (win_rate <= 1)
        & (bid > 0)
        & np.isfinite(median)
        & ~commission[np.maximum(k, 0)]
    )
    if not usable.any():
        return EmpiricalResponse(win, pay, hours, commission)
    opportunities = impressions[usable] / win_rate[usable]
    z = np.log(bid[usable] / median[usable])
    knot = np.clip(np.rint((z - GRID[0]) / (GRID[1] - GRID[0])), 0, len(GRID) - 1).astype(int)
    observed_win = win_rate[usable]
    observed_pay = 1000.0 * spend[usable] / opportunities / median[usable]
    arm = k[usable]
    channel_of_arm = [c for _, c in fitted.arms]
    weight = opportunities / opportunities.mean()
    for channel in sorted(set(channel_of_arm)):
        members = [j for j, c in enumerate(channel_of_arm) if c == channel]
        rows = np.isin(arm, members)
        if not rows.any() or commission[members[0]]:
            continue
        count = np.bincount(knot[rows], minlength=len(GRID)).astype(float)
        total = np.bincount(knot[rows], weight[rows], minlength=len(GRID))
        mean_win = np.bincount(knot[rows], weight[rows] * observed_win[rows], len(GRID))
        mean_pay = np.bincount(knot[rows], weight[rows] * observed_pay[rows], len(GRID))
        safe = np.where(total > 0, total, 1.0)
        mean_win, mean_pay = mean_win / safe, mean_pay / safe
        for j in members:
            weights = count + PRIOR_HOURS
            win[j] = np.clip(_isotonic(_corrected(prior_win[j], mean_win, count), weights), 0, 1)
            pay[j] = np.maximum(_isotonic(_corrected(prior_pay[j], mean_pay, count), weights), 0)
            hours[j] = count
    return EmpiricalResponse(win, pay, hours, commission)
