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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.market import EpisodeMarket, creative_wear
from envs.stats import normal_ppf

QUANTITIES = ("traffic", "price", "ctr", "cvr", "aov")


@dataclass(frozen=True)
class ForecastConfig:
    """Settings of :class:`Forecaster`.

    Attributes:
        half_life_hours: half-life of an observation's weight.
        prior_weight: weight of the prior, in hours of well-measured observations.
        events_for_full_weight: an hour with this many events (clicks, orders...) counts
            as one well-measured hour; fewer events count proportionally less.
    """

    half_life_hours: float = 3.0
    prior_weight: float = 1.0
    events_for_full_weight: float = 30.0


class Forecaster:
    """Online per-arm corrections of a prior market, updated every hour."""

    def __init__(self, prior: EpisodeMarket, config: ForecastConfig | None = None):
        self.prior = prior
        self.config = config or ForecastConfig()
        self.decay = 0.5 ** (1.0 / self.config.half_life_hours)
        k = prior.traffic.shape[1]
        self._num = {q: np.zeros(k) for q in QUANTITIES}
        self._den = {q: np.zeros(k) for q in QUANTITIES}
        self.hours_observed = 0

    def _add(self, quantity: str, ratio: np.ndarray, weight: np.ndarray) -> None:
        ok = np.isfinite(ratio) & (weight > 0)
        self._num[quantity] = self.decay * self._num[quantity] + np.where(ok, weight * ratio, 0.0)
        self._den[quantity] = self.decay * self._den[quantity] + np.where(ok, weight, 0.0)

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

    def forecast(self, t: int) -> EpisodeMarket:
        """The forecast market for hours ``t`` to the end (hour ``t`` becomes row 0)."""
        return self.prior.from_hour(
            t,
            traffic=self.factor("traffic"),
            price_median=self.factor("price"),
            ctr=self.factor("ctr"),
            cvr=self.factor("cvr"),
            aov=self.factor("aov"),
        )
