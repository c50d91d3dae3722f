"""Forecasts of every arm's market from the past only.

The forecaster starts from a prior market (a typical day: daypart shape, price levels,
rates) and learns one multiplicative correction per arm and quantity from what the
campaign has observed so far: traffic, clearing-price level, CTR, CVR and order value.
Each correction is a shrunk, exponentially weighted ratio of observed to prior-expected
figures,

    factor = (k + sum_a d^a w_a r_a) / (k + sum_a d^a w_a),

where ``r_a`` is the observed/expected ratio ``a`` hours ago, ``w_a`` its reliability
(more events, more weight), ``d`` the hourly decay and ``k`` the prior's weight. An arm
with little data keeps its prior; a shock moves the factor within a few hours. Nothing
here reads the future: the forecast for hour ``t`` uses observations of hours ``< t``.

A second, faster-decaying average of the same ratios gives each correction's recent
slope (:meth:`Forecaster.trend`): a fast average ahead of the slow one means the quantity
is still moving. ``forecast(t, trend_gain=g)`` extrapolates that slope into the coming
hours with a damped trend; ``g = 0`` (the default, what MPC alone uses) is the level
forecast above, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.market import EpisodeMarket, creative_wear
from envs.stats import normal_ppf

QUANTITIES = ("traffic", "price", "ctr", "cvr", "aov")
#: The market field each quantity's correction multiplies.
FIELDS = {"traffic": "traffic", "price": "price_median", "ctr": "ctr", "cvr": "cvr", "aov": "aov"}


@dataclass(frozen=True)
class ForecastConfig:
    """Settings of :class:`Forecaster`.

    Attributes:
        half_life_hours: half-life of an observation's weight.
        prior_weight: weight of the prior, in hours of well-measured observations.
        events_for_full_weight: an hour with this many events (clicks, orders...) counts
            as one well-measured hour; fewer events count proportionally less.
        fast_half_life_hours: half-life of the fast average that measures trends.
        max_slope: the largest trend, in log units per hour, that is extrapolated.
        trend_damping: each further hour ahead carries the trend this much less far.
    """

    half_life_hours: float = 3.0
    prior_weight: float = 1.0
    events_for_full_weight: float = 30.0
    fast_half_life_hours: float = 1.0
    max_slope: float = 0.3
    trend_damping: float = 0.8


class Forecaster:
    """Online per-arm corrections of a prior market, updated every hour."""

    def __init__(self, prior: EpisodeMarket, config: ForecastConfig | None = None):
        self.prior = prior
        self.config = config or ForecastConfig()
        self.decay = 0.5 ** (1.0 / self.config.half_life_hours)
        self.fast_decay = 0.5 ** (1.0 / self.config.fast_half_life_hours)
        k = prior.traffic.shape[1]
        self._num = {q: np.zeros(k) for q in QUANTITIES}
        self._den = {q: np.zeros(k) for q in QUANTITIES}
        self._fast_num = {q: np.zeros(k) for q in QUANTITIES}
        self._fast_den = {q: np.zeros(k) for q in QUANTITIES}
        self.hours_observed = 0

    def _add(self, quantity: str, ratio: np.ndarray, weight: np.ndarray) -> None:
        ok = np.isfinite(ratio) & (weight > 0)
        weighted, weight = np.where(ok, weight * ratio, 0.0), np.where(ok, weight, 0.0)
        self._num[quantity] = self.decay * self._num[quantity] + weighted
        self._den[quantity] = self.decay * self._den[quantity] + weight
        fast = self.fast_decay
        self._fast_num[quantity] = fast * self._fast_num[quantity] + weighted
        self._fast_den[quantity] = fast * self._fast_den[quantity] + weight

    def _weight(self, events: np.ndarray) -> np.ndarray:
        events = np.asarray(events, dtype=float)
        return events / (events + self.config.events_for_full_weight)

    def update(
        self,
        t: int,
        bids_cpm: np.ndarray,
        figures: dict[str, np.ndarray],
        exposure: np.ndarray | None = None,
    ) -> None:
        """Learn from hour ``t``'s observed per-arm figures.

        ``figures`` holds ``impressions``, ``clicks``, ``orders``, ``gmv`` and
        ``win_rate`` (as a step's ``info`` or an hourly log row does). ``exposure`` is
        the cumulative impressions before hour ``t`` (for creative wear).
        """
        prior = self.prior
        impressions = np.asarray(figures["impressions"], dtype=float)
        clicks = np.asarray(figures["clicks"], dtype=float)
        orders = np.asarray(figures["orders"], dtype=float)
        gmv = np.asarray(figures["gmv"], dtype=float)
        win_rate = np.asarray(figures["win_rate"], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            # Traffic: opportunities seen = impressions / win rate.
            informative = (win_rate > 0.01) & (impressions > 0)
            opportunities = np.where(
                informative, impressions / np.where(informative, win_rate, 1), 0
            )
            self._add(
                "traffic",
                opportunities / prior.traffic[t],
                np.where(informative, self._weight(impressions), 0.0),
            )
            # Price level: the win rate at a known bid pins the median clearing price.
            # With thousands of impressions even a 5% win rate pins the quantile well; only
            # the extremes (a bid far outside the price range) say little.
            q = np.clip(win_rate, 0.005, 0.995)
            median = bids_cpm * np.exp(-prior.price_sigma * normal_ppf(q))
            price_weight = np.where(informative & (win_rate < 0.99), self._weight(impressions), 0.0)
            self._add("price", median / prior.price_median[t], price_weight)
            # CTR against the prior's expected clicks for the impressions actually bought.
            audience = np.maximum(
                prior.saturation * prior.traffic[t] * self.factor("traffic"), 1e-9
            )
            reach = audience * -np.expm1(-impressions / audience)
            wear = 1.0 if exposure is None else creative_wear(prior, exposure)
            expected_clicks = prior.ctr[t] * wear * reach
            self._add("ctr", clicks / expected_clicks, self._weight(expected_clicks))
            expected_orders = clicks * prior.cvr[t]
            self._add("cvr", orders / expected_orders, self._weight(expected_orders))
            self._add("aov", gmv / (orders * prior.aov[t]), self._weight(orders))
        self.hours_observed += 1

    def factor(self, quantity: str) -> np.ndarray:
        """The current correction factor of ``quantity`` per arm (1 = the prior)."""
        k = self.config.prior_weight
        return (k + self._num[quantity]) / (k + self._den[quantity])

    def trend(self, quantity: str) -> np.ndarray:
        """The recent slope of ``quantity``'s correction per arm, in log units per hour.

        The fast and the slow average weigh the past by mean ages of ``d / (1 - d)``
        hours for their decays ``d``; on a steady log-linear trend their log difference
        is the slope times the difference of those ages. Both averages are taken without
        the prior (which would pull the fast one back more), and the slope is shrunk by
        the fast average's reliability ``w / (w + prior_weight)``. Clipped to
        ``+-max_slope``.
        """
        k = self.config.prior_weight
        fast_den, slow_den = self._fast_den[quantity], self._den[quantity]
        with np.errstate(divide="ignore", invalid="ignore"):
            fast = self._fast_num[quantity] / fast_den
            slow = self._num[quantity] / slow_den
            log_gap = np.log(fast) - np.log(slow)
        lag = self._lag(self.decay) - self._lag(self.fast_decay)
        slope = np.where(np.isfinite(log_gap), log_gap, 0.0) / lag * fast_den / (fast_den + k)
        return np.clip(slope, -self.config.max_slope, self.config.max_slope)

    @staticmethod
    def _lag(decay: float) -> float:
        return decay / (1.0 - decay)

    def forecast(self, t: int, trend_gain: float = 0.0) -> EpisodeMarket:
        """The forecast market for hours ``t`` to the end (hour ``t`` becomes row 0).

        With ``trend_gain`` ``g`` each correction follows its trend (:meth:`trend`) from
        the slow average's mean age onwards, damped by ``trend_damping`` per hour ahead,
        times ``g``: 1 extrapolates the measured trend, 0 holds the current level.
        """
        if trend_gain == 0.0:
            return self.prior.from_hour(t, **{FIELDS[q]: self.factor(q) for q in QUANTITIES})
        phi = self.config.trend_damping
        ahead = np.arange(self.prior.traffic.shape[0] - t, dtype=float)[:, None]
        # Hours the trend runs: from the slow average's centre to the last observed hour,
        # one more to reach hour t, then a damped sum over the hours beyond.
        reach = self._lag(self.decay) + 1.0 + phi * (1.0 - phi**ahead) / (1.0 - phi)
        factors = {
            FIELDS[q]: self.factor(q) * np.exp(np.clip(trend_gain * self.trend(q) * reach, -3, 3))
            for q in QUANTITIES
        }
        return self.prior.from_hour(t, **factors)
