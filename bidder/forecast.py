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
The price level is read from the win rate at the bid placed, through the prior's own
auction: one log-normal auction in closed form, or, for GSP slots and gamma or
brand-mixture prices, the prior mechanism's tabulated win curve.

A second, faster-decaying average of the same ratios gives each correction's recent
slope (:meth:`Forecaster.trend`): a fast average ahead of the slow one means the quantity
is still moving. ``forecast(t, trend_gain=g)`` extrapolates that slope into the coming
hours with a damped trend; ``g = 0`` (the default, what MPC alone uses) is the level
forecast above, unchanged.

The forecaster also keeps score of itself (:meth:`Forecaster.value_bias`): before it
learns from an hour, it compares the GMV each arm realised with the GMV its corrections
predicted for the impressions actually bought. A shrunk, exponentially weighted ratio of
the two is the arm's recent forecast bias. Corrections that lag a value still falling (a
creative wearing out all afternoon) show up there as a ratio below 1 hour after hour,
which a planner can hold back ROI margin for.

When the prior says orders follow their clicks with a delay (``prior.delay_q``, fitted from
the logs), an hour's orders are compared with the clicks expected to convert in it: with a
geometric delay, ``(1 - q) C_t`` where ``C_t = clicks_t + q C_{t-1}``. What is still
waiting, ``q C_t`` clicks' worth of orders, is GMV the campaign has earned but not yet
seen (:meth:`Forecaster.pending_gmv`); on commission arms, the commission those sales
will cost when they arrive is spend already committed (:meth:`Forecaster.pending_spend`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from bidder.response import interp_rows
from envs.market import EpisodeMarket, creative_wear
from envs.mechanisms import GSP, LOGNORMAL, Mechanism
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
        bias_half_life_hours: half-life of an hour's weight in the forecast-bias score.
        bias_prior_weight: weight of "no bias" in that score, in well-measured hours.
    """

    half_life_hours: float = 3.0
    prior_weight: float = 1.0
    events_for_full_weight: float = 30.0
    fast_half_life_hours: float = 1.0
    max_slope: float = 0.3
    trend_damping: float = 0.8
    bias_half_life_hours: float = 2.0
    bias_prior_weight: float = 3.0


#: ``log(bid / price level)`` points of the win curves of shaped arms.
_CURVE_Z = np.linspace(-8.0, 8.0, 641)


def _win_curves(
    mechanism: Mechanism | None, n_arms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(z, win, shaped)``: for the arms whose auction is not one log-normal auction
    (``shaped``: GSP slots, gamma or brand-mixture prices), a row each of their exposed
    win probability at ``z =`` :data:`_CURVE_Z` (reserve prices left out: they cut wins
    below them, not where the win rate meets the bid above them), made strictly
    increasing for inversion; ``None`` when every arm is plain (or paid by commission)."""
    if mechanism is None:
        return None
    shaped = ((mechanism.auction == GSP) | (mechanism.family != LOGNORMAL)) & ~mechanism.commission
    if not shaped.any():
        return None
    plain = dataclasses.replace(
        mechanism, reserve=np.zeros(n_arms), commission=np.zeros(n_arms, bool)
    )
    bids = np.broadcast_to(np.exp(_CURVE_Z)[:, None], (len(_CURVE_Z), n_arms))
    win, _, _ = plain.auction_moments(bids, np.ones_like(bids))
    # Strictly increasing (the flat tails by a hair), so that np.interp can invert it.
    win = np.maximum.accumulate(win, axis=0) + 1e-12 * np.arange(len(_CURVE_Z))[:, None]
    return _CURVE_Z, np.ascontiguousarray(win[:, shaped].T), shaped


class Forecaster:
    """Online per-arm corrections of a prior market, updated every hour."""

    def __init__(self, prior: EpisodeMarket, config: ForecastConfig | None = None):
        self.prior = prior
        self.config = config or ForecastConfig()
        self.decay = 0.5 ** (1.0 / self.config.half_life_hours)
        self.fast_decay = 0.5 ** (1.0 / self.config.fast_half_life_hours)
        self.bias_decay = 0.5 ** (1.0 / self.config.bias_half_life_hours)
        k = prior.traffic.shape[1]
        self._bias_num, self._bias_den = np.zeros(k), np.zeros(k)
        self._num = {q: np.zeros(k) for q in QUANTITIES}
        self._den = {q: np.zeros(k) for q in QUANTITIES}
        self._fast_num = {q: np.zeros(k) for q in QUANTITIES}
        self._fast_den = {q: np.zeros(k) for q in QUANTITIES}
        self.hours_observed = 0
        self.delay_q = np.zeros(k) if prior.delay_q is None else np.asarray(prior.delay_q)
        # Clicks whose orders are still to come, in clicks (observed and predicted).
        self._waiting = np.zeros(k)
        self._waiting_predicted = np.zeros(k)
        # On commission arms: those waiting clicks times the rate set in their hour.
        mechanism = prior.mechanism
        self.commission = (
            np.asarray(mechanism.commission, bool)
            if mechanism is not None and mechanism.any_commission
            else np.zeros(k, bool)
        )
        self._waiting_owed = np.zeros(k)
        self._win_curves = _win_curves(mechanism, k)

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
        wear = 1.0 if exposure is None else creative_wear(prior, exposure)
        with np.errstate(divide="ignore", invalid="ignore"):
            self._score_value(t, impressions, gmv, wear)
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
            if self._win_curves is not None:
                # Slots or a heavy tail: the win rate meets the bid elsewhere on the
                # price scale than a plain log-normal auction says.
                z, curves, shaped = self._win_curves
                at = interp_rows(q[shaped], curves, np.broadcast_to(z, curves.shape))
                median[shaped] = bids_cpm[shaped] * np.exp(-at)
            mechanism = prior.mechanism
            if mechanism is not None and mechanism.any_commission:
                # A commission arm's share 1 - exp(-rate / going rate) pins its going rate.
                median = np.where(mechanism.commission, bids_cpm / -np.log1p(-q), median)
            price_weight = np.where(informative & (win_rate < 0.99), self._weight(impressions), 0.0)
            self._add("price", median / prior.price_median[t], price_weight)
            # CTR against the prior's expected clicks for the impressions actually bought.
            expected_clicks = self._prior_clicks(t, impressions, wear)
            self._add("ctr", clicks / expected_clicks, self._weight(expected_clicks))
            carry = clicks + self._waiting
            self._waiting = self.delay_q * carry
            if self.commission.any():
                rates = np.where(self.commission, bids_cpm, 0.0)
                self._waiting_owed = self.delay_q * (clicks * rates + self._waiting_owed)
            expected_orders = (1.0 - self.delay_q) * carry * prior.cvr[t]
            self._add("cvr", orders / expected_orders, self._weight(expected_orders))
            self._add("aov", gmv / (orders * prior.aov[t]), self._weight(orders))
        self.hours_observed += 1

    def _prior_clicks(
        self, t: int, impressions: np.ndarray, wear: np.ndarray | float
    ) -> np.ndarray:
        """Clicks the prior's CTR gives ``impressions`` in hour ``t``: unique reach of an
        audience sized by the current traffic correction, and creative ``wear``."""
        prior = self.prior
        audience = np.maximum(prior.saturation * prior.traffic[t] * self.factor("traffic"), 1e-9)
        return prior.ctr[t] * wear * (audience * -np.expm1(-impressions / audience))

    def _score_value(
        self, t: int, impressions: np.ndarray, gmv: np.ndarray, wear: np.ndarray | float
    ) -> None:
        """Add hour ``t``'s realised against predicted GMV (before learning from it)."""
        prior = self.prior
        carry = self._prior_clicks(t, impressions, wear) * self.factor("ctr")
        carry = carry + self._waiting_predicted
        self._waiting_predicted = self.delay_q * carry
        orders = (1.0 - self.delay_q) * carry * prior.cvr[t] * self.factor("cvr")
        predicted = orders * prior.aov[t] * self.factor("aov")
        ok = predicted > 0
        ratio = np.where(ok, gmv / np.where(ok, predicted, 1.0), 0.0)
        weight = np.where(ok, self._weight(orders), 0.0)
        self._bias_num = self.bias_decay * self._bias_num + weight * ratio
        self._bias_den = self.bias_decay * self._bias_den + weight

    def value_bias(self) -> np.ndarray:
        """Recent realised/predicted GMV per arm for the impressions bought (1 = unbiased).

        Each hour's ratio is taken before the corrections learn from that hour, so it is
        the forecast's own one-hour-ahead error; hours count by their expected orders, as
        in the corrections, and ``bias_prior_weight`` hours of ratio 1 shrink the score.
        Prices are left out on purpose: a price rise shows in the win rate and the price
        correction catches it within the hour, while a falling value per impression is
        what the level corrections lag.
        """
        k = self.config.bias_prior_weight
        return (k + self._bias_num) / (k + self._bias_den)

    def pending_gmv(self, t: int) -> float:
        """Expected GMV of the orders clicked before hour ``t`` but not yet placed, counted
        as far as they arrive within the attribution window (the prior's attribution of
        hour ``t``); 0 without delays."""
        if not self.delay_q.any():
            return 0.0
        return float(self.pending_gmv_by_arm(t).sum())

    def pending_gmv_by_arm(self, t: int) -> np.ndarray:
        """:meth:`pending_gmv` per arm."""
        if not self.delay_q.any():
            return np.zeros(len(self.delay_q))
        prior = self.prior
        hour = min(t, prior.horizon - 1)
        attributed = 1.0 if prior.attribution is None else prior.attribution[hour]
        value = prior.cvr[hour] * self.factor("cvr") * prior.aov[hour] * self.factor("aov")
        return self._waiting * value * attributed

    def pending_spend(self, t: int) -> float:
        """Expected commission on the sales of :meth:`pending_gmv` (commission arms pay
        at the rate set in the click's hour, when the sale arrives); 0 without commission
        arms or delays. Already owed, so a plan counts it as spent."""
        if not (self.delay_q.any() and self.commission.any()):
            return 0.0
        prior = self.prior
        hour = min(t, prior.horizon - 1)
        attributed = 1.0 if prior.attribution is None else prior.attribution[hour]
        value = prior.cvr[hour] * self.factor("cvr") * prior.aov[hour] * self.factor("aov")
        return float((self._waiting_owed * value * attributed).sum())

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
