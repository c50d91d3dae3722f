"""The market model: hourly second-price auctions per arm, in numpy.

``docs/market.md`` writes the model down; this module implements exactly that. It has two
halves that share one set of parameters:

* :func:`build_episode` turns a :class:`~envs.scenario.Scenario` into the *truth* of one
  episode: per hour and arm, the traffic, the clearing-price distribution, CTR, CVR and
  order value, with the scenario's daypart, weekday, shocks and traffic noise applied.
  The clairvoyant oracle reads this object; no real strategy may.
* :func:`sample_hour` draws one hour's random counts and amounts for given bids, and
  :func:`expected_hour` gives their closed-form expectations (the twin the bidder's
  response models are tested against).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from envs.mechanisms import Mechanism, attribution_of, build_mechanism
from envs.scenario import Scenario
from envs.stats import lognormal_auction, normal_cdf

#: Hour-of-day traffic shape of Chinese e-commerce content platforms (mean 1): a night
#: trough around 4:00, a lunch bump and the evening peak around 21:00.
DAYPART_SHAPE: np.ndarray = np.array(
    [
        0.75,
        0.50,
        0.32,
        0.22,
        0.18,
        0.20,
        0.33,
        0.55,
        0.75,
        0.88,
        0.95,
        1.00,
        1.15,
        1.10,
        0.98,
        0.95,
        0.98,
        1.05,
        1.20,
        1.45,
        1.75,
        1.90,
        1.70,
        1.25,
    ]
)
DAYPART_SHAPE = DAYPART_SHAPE / DAYPART_SHAPE.mean()

#: Bids are in CPM (currency per thousand impressions); spend is per impression.
CPM = 1000.0


def daypart(strength: float) -> np.ndarray:
    """A channel's 24-hour traffic multiplier for a given daypart strength (mean ~1)."""
    return np.maximum(0.05, 1.0 + strength * (DAYPART_SHAPE - 1.0))


@dataclass(frozen=True)
class EpisodeMarket:
    """The true market of one episode, per campaign hour ``t`` and arm ``k``.

    Attributes:
        traffic: mean impression opportunities, shape (T, K).
        price_median: median clearing price in CPM, shape (T, K).
        price_sigma: log-scale spread of clearing prices, shape (K,).
        ctr, cvr, aov: click-through rate, conversion rate and mean order value, (T, K).
        aov_cv: coefficient of variation of one order's value, (K,).
        saturation: audience size as a multiple of the hour's traffic, (K,).
        fatigue_impressions, fatigue_floor: creative wear-out parameters, (K,).
        hour_of_day: hour of day of each campaign hour, (T,).
        mechanism: the channels' auction rules, price families, reserve prices, rivals
            and order delays (:class:`~envs.mechanisms.Mechanism`); ``None`` for plain
            second-price log-normal auctions with orders in the click's hour.
        attribution: share of each hour's orders that arrive within the attribution
            window, (T, K); ``None`` when orders are not delayed.
        delay_q: per arm, the hourly probability that a pending order waits one more
            hour (geometric delay, ``envs.mechanisms.delay_probability``); ``None`` when
            orders arrive in their click's hour.
    """

    traffic: np.ndarray
    price_median: np.ndarray
    price_sigma: np.ndarray
    ctr: np.ndarray
    cvr: np.ndarray
    aov: np.ndarray
    aov_cv: np.ndarray
    saturation: np.ndarray
    fatigue_impressions: np.ndarray
    fatigue_floor: np.ndarray
    hour_of_day: np.ndarray
    mechanism: Mechanism | None = None
    attribution: np.ndarray | None = None
    delay_q: np.ndarray | None = None

    @property
    def horizon(self) -> int:
        return self.traffic.shape[0]

    def from_hour(self, t: int, **factors: np.ndarray) -> EpisodeMarket:
        """The market of hours ``t`` to the end (hour ``t`` becomes row 0), with per-hour
        fields (``traffic``, ``price_median``, ``ctr``, ``cvr``, ``aov``) optionally
        multiplied by per-arm factors: how a forecaster corrects a prior."""
        per_hour = {
            name: getattr(self, name)[t:] * factors.get(name, 1.0)
            for name in ("traffic", "price_median", "ctr", "cvr", "aov")
        }
        unknown = set(factors) - set(per_hour)
        if unknown:
            raise ValueError(f"not per-hour market fields: {sorted(unknown)}")
        if self.attribution is not None:
            per_hour["attribution"] = self.attribution[t:]
        return dataclasses.replace(self, hour_of_day=self.hour_of_day[t:], **per_hour)

    def __post_init__(self) -> None:
        # Derived constants the hourly step reads, computed once per episode.
        cv2 = self.aov_cv * self.aov_cv
        object.__setattr__(self, "cv2", cv2)
        object.__setattr__(self, "inv_cv2", 1.0 / cv2)
        object.__setattr__(self, "wears_out", bool(np.isfinite(self.fatigue_impressions).any()))
        # The sigma-only factors of lognormal_auction, hoisted out of the hourly step; the
        # products are formed in the same order, so results are bit-for-bit identical.
        s2 = self.price_sigma * self.price_sigma
        shifts = np.array([[0.0], [1.0], [2.0]])  # z, z - sigma, z - 2 sigma
        object.__setattr__(self, "_sigma_shifts", shifts * self.price_sigma)
        object.__setattr__(self, "_pay1_scale", self.price_median * np.exp(0.5 * s2))
        object.__setattr__(
            self, "_pay2_scale", self.price_median * self.price_median * np.exp(2.0 * s2)
        )


def _shock_profile(shock, horizon: int) -> np.ndarray:
    """Fraction of the shock's effect in force at each campaign hour (0 to 1)."""
    t = np.arange(horizon)
    end = horizon if shock.end_hour is None else shock.end_hour
    active = (t >= shock.start_hour) & (t < end)
    if shock.ramp_hours > 0:
        ramp = np.clip((t - shock.start_hour + 1) / shock.ramp_hours, 0.0, 1.0)
    else:
        ramp = np.ones(horizon)
    return np.where(active, ramp, 0.0)


def build_episode(scenario: Scenario, rng: np.random.Generator | None = None) -> EpisodeMarket:
    """The true market of one episode; ``rng=None`` gives the noise-free nominal market."""
    T, arms = scenario.horizon_hours, scenario.arms
    channels = {c.name: c for c in scenario.channels}
    products = {p.name: p for p in scenario.products}
    arm_channel = [a.channel for a in arms]
    arm_product = [a.product for a in arms]

    clock = scenario.start_hour + np.arange(T)
    hour_of_day = clock % 24
    weekday = (scenario.start_weekday + clock // 24) % 7
    week = np.asarray(scenario.weekday_factors)[weekday]

    dayparts = np.stack(
        [daypart(channels[c].daypart_strength)[hour_of_day] for c in arm_channel], 1
    )
    elasticity = np.array([channels[c].competition_elasticity for c in arm_channel])
    base_traffic = np.array([a.traffic for a in arms]) * dayparts * week[:, None]
    price_median = np.array([channels[c].price_level for c in arm_channel]) * dayparts**elasticity
    ctr = np.tile(np.array([a.ctr for a in arms]), (T, 1))
    cvr = np.tile(np.array([a.cvr for a in arms]), (T, 1))
    aov = np.tile(np.array([products[p].aov for p in arm_product]), (T, 1))
    traffic_mult = np.ones((T, len(arms)))
    moved = np.zeros((T, len(arms)))
    is_aigc = np.array([a.creative == "aigc" for a in arms])

    for shock in scenario.shocks:
        profile = _shock_profile(shock, T)[:, None]
        target = np.array(
            [
                (shock.channel is None or a.channel == shock.channel)
                and (shock.product is None or a.product == shock.product)
                for a in arms
            ]
        )
        mult = 1.0 + (shock.factor - 1.0) * profile * target
        if shock.kind == "bid_war":
            price_median = price_median * mult
        elif shock.kind == "price_cut":
            cvr = cvr * mult
        elif shock.kind == "creative_fatigue":
            ctr = ctr * mult
        elif shock.kind == "promotion":
            traffic_mult = traffic_mult * mult
            cvr = cvr * (1.0 + (np.sqrt(shock.factor) - 1.0) * profile * target)
            price_median = price_median * (1.0 + (shock.factor**0.25 - 1.0) * profile * target)
        elif shock.kind == "aigc_throttle":
            traffic_mult = traffic_mult * (
                1.0 + (shock.factor - 1.0) * profile * (target & is_aigc)
            )
        elif shock.kind == "traffic_shift":
            # A fraction of each product's opportunities on the source channel moves to the
            # same product's arm on the destination channel (lost if it has none there).
            for k, arm in enumerate(arms):
                if not target[k]:
                    continue
                amount = shock.factor * profile[:, 0] * base_traffic[:, k]
                moved[:, k] -= amount
                for j, other in enumerate(arms):
                    if other.product == arm.product and other.channel == shock.to_channel:
                        moved[:, j] += amount

    traffic = np.maximum(base_traffic * traffic_mult + moved, 0.0)
    if rng is not None and scenario.traffic_noise > 0:
        names = list(channels)
        s = scenario.traffic_noise
        noise = np.exp(s * rng.standard_normal((T, len(names))) - 0.5 * s * s)
        traffic = traffic * noise[:, [names.index(c) for c in arm_channel]]

    mechanism = build_mechanism(scenario)
    delay_q = mechanism.delay_q if mechanism is not None and mechanism.delays else None
    return EpisodeMarket(
        traffic=traffic,
        price_median=price_median,
        price_sigma=np.array([channels[c].price_sigma for c in arm_channel]),
        ctr=ctr,
        cvr=cvr,
        aov=aov,
        aov_cv=np.array([products[p].aov_cv for p in arm_product]),
        saturation=np.array([a.saturation for a in arms]),
        fatigue_impressions=np.array([a.fatigue_impressions for a in arms]),
        fatigue_floor=np.array([a.fatigue_floor for a in arms]),
        hour_of_day=hour_of_day,
        mechanism=mechanism,
        attribution=None
        if delay_q is None
        else attribution_of(delay_q, T, scenario.attribution_window_hours),
        delay_q=delay_q,
    )


def creative_wear(market: EpisodeMarket, exposure: np.ndarray) -> np.ndarray:
    """CTR multiplier after ``exposure`` cumulative impressions per arm."""
    floor = market.fatigue_floor
    return floor + (1.0 - floor) * np.exp(-exposure / market.fatigue_impressions)


@dataclass(frozen=True)
class HourExpectation:
    """Closed-form expected figures of one hour per arm (currency units)."""

    win_rate: np.ndarray
    impressions: np.ndarray
    spend: np.ndarray
    clicks: np.ndarray
    orders: np.ndarray
    gmv: np.ndarray


def expected_response(
    traffic: np.ndarray,
    price_median: np.ndarray,
    price_sigma: np.ndarray,
    ctr: np.ndarray,
    cvr: np.ndarray,
    aov: np.ndarray,
    saturation: np.ndarray,
    bids_cpm: np.ndarray,
    mechanism: Mechanism | None = None,
    attributed: np.ndarray | float = 1.0,
    supply_rates: np.ndarray | None = None,
) -> HourExpectation:
    """Expected hourly figures for any broadcastable arrays of market parameters and bids.

    The same closed form as :func:`expected_hour`, written on raw arrays so that a
    planner can evaluate many hours, arms and candidate bids in one call. ``ctr`` must
    already include creative wear. ``mechanism`` (arms on the last axis) gives other
    auctions and price families; without it the auction is second-price on log-normal
    prices. ``price_median`` is then the price level (rivals' reaction included), and
    ``attributed`` the share of orders that arrive within the attribution window.
    On commission arms (``mechanism.commission``) the bid is the commission rate and the
    spend is rate x GMV; ``supply_rates`` (the effective rates influencers answer, after
    their lag) sets their traffic share instead of the rate when given.
    """
    bids = np.maximum(bids_cpm, 1e-12)
    if mechanism is None:
        win, pay1, _ = lognormal_auction(bids, price_median, price_sigma)
    else:
        drivers = bids
        if supply_rates is not None and mechanism.any_commission:
            drivers = np.where(mechanism.commission, np.maximum(supply_rates, 1e-12), bids)
        win, pay1, _ = mechanism.auction_moments(drivers, price_median)
    out = response_from_auction(win, pay1, traffic, ctr, cvr, aov, saturation, attributed)
    if mechanism is not None and mechanism.any_commission:
        out = dataclasses.replace(out, spend=mechanism.commission_spend(bids, out.gmv, out.spend))
    return out


def response_from_auction(
    win: np.ndarray,
    pay1: np.ndarray,
    traffic: np.ndarray,
    ctr: np.ndarray,
    cvr: np.ndarray,
    aov: np.ndarray,
    saturation: np.ndarray,
    attributed: np.ndarray | float = 1.0,
) -> HourExpectation:
    """The expected hour once the auction's part is known: ``win`` (exposed wins per
    opportunity) and ``pay1`` (expected payment per opportunity, CPM) give impressions
    and spend; saturated reach, CTR, CVR and order value give clicks, orders and GMV.
    Shared by the closed form and by response models that learn the auction's part."""
    lam = traffic * win
    audience = np.maximum(saturation * traffic, 1e-9)
    # E[A (1 - exp(-n / A))] for n ~ Poisson(lam) is A (1 - exp(lam (exp(-1/A) - 1))).
    reach = audience * -np.expm1(lam * np.expm1(-1.0 / audience))
    clicks = ctr * reach
    orders = clicks * cvr * attributed
    return HourExpectation(
        win_rate=win,
        impressions=lam,
        spend=traffic * pay1 / CPM,
        clicks=clicks,
        orders=orders,
        gmv=orders * aov,
    )


def expected_hour(
    market: EpisodeMarket,
    t: int,
    bids_cpm: np.ndarray,
    exposure: np.ndarray | None = None,
    price_factor: np.ndarray | None = None,
    supply_rates: np.ndarray | None = None,
) -> HourExpectation:
    """Expected outcome of hour ``t`` for the given bids, before any budget cap.

    Exact for the sampling model of :func:`sample_hour` (Poisson impressions make the
    expected saturated reach closed-form). ``price_factor`` multiplies the hour's price
    level per arm (the rivals' reaction, :class:`~envs.mechanisms.Rivals`). With delayed
    orders, ``orders`` and ``gmv`` are what the hour's clicks bring within the
    attribution window, whenever it arrives. ``supply_rates``: the commission arms'
    effective rates (:class:`~envs.mechanisms.CommissionSupply`); without them the
    influencers answer the rates of ``bids_cpm`` in full (the steady state).
    """
    ctr = market.ctr[t] if exposure is None else market.ctr[t] * creative_wear(market, exposure)
    price = (
        market.price_median[t] if price_factor is None else market.price_median[t] * price_factor
    )
    return expected_response(
        market.traffic[t],
        price,
        market.price_sigma,
        ctr,
        market.cvr[t],
        market.aov[t],
        market.saturation,
        np.asarray(bids_cpm, dtype=float),
        market.mechanism,
        1.0 if market.attribution is None else market.attribution[t],
        supply_rates,
    )


class HourlyStreams:
    """Common random numbers: a fixed random stream for every (hour, draw) of an episode.

    numpy's Poisson, binomial and gamma samplers consume a varying number of raw random
    numbers depending on their parameters, so with one shared stream a different bid in
    one hour shifts every later draw of the episode: two strategies played on the same
    seed would see unrelated noise from their first difference on. Here each of an hour's
    draws (:data:`DRAWS`) starts at its own fixed position of one PCG64 stream (``2**64``
    numbers apart), so the same seed gives every strategy the same luck in every hour, and
    comparisons between strategies (and rewards measured against a baseline strategy) lose
    most of their noise.
    """

    #: The random draws of one hour, in the order :func:`sample_hour` makes them.
    DRAWS = ("opportunities", "impressions", "spend", "clicks", "orders", "gmv")
    #: Draws of the mechanisms added later (delayed orders arriving, and those that
    #: arrive after the campaign): streams of their own, far beyond the ones above, so
    #: that the draws above stay exactly where they were.
    EXTRA_DRAWS = ("arrivals", "late_arrivals")
    ARRIVALS, LATE_ARRIVALS = len(DRAWS), len(DRAWS) + 1
    _EXTRA_BASE = 1 << 48

    def __init__(self, seed: int):
        self._bitgen = np.random.PCG64(seed)
        self._start = self._bitgen.state
        self._generator = np.random.Generator(self._bitgen)

    def at(self, t: int, draw: int) -> np.random.Generator:
        """The generator positioned at the start of hour ``t``'s draw number ``draw``."""
        self._bitgen.state = self._start
        n = len(self.DRAWS)
        if draw < n:
            position = t * n + draw
        else:
            position = self._EXTRA_BASE + t * len(self.EXTRA_DRAWS) + draw - n
        self._bitgen.advance(position << 64)
        return self._generator


def sample_hour(
    market: EpisodeMarket,
    t: int,
    bids_cpm: np.ndarray,
    exposure: np.ndarray,
    remaining_budget: float,
    rng: np.random.Generator | HourlyStreams,
    price_factor: np.ndarray | None = None,
    supply_rates: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Draw one hour of auctions for every arm; spend never exceeds ``remaining_budget``.

    ``rng`` is either one generator used for every draw in turn, or
    :class:`HourlyStreams` (what the environment uses): a stream per hour and draw.
    ``price_factor`` multiplies the hour's price level per arm (reacting rivals).
    Orders are those the hour's clicks make, whenever they arrive (the environment
    delays them, :class:`~envs.mechanisms.PendingOrders`). On commission arms the bid is
    the rate, influencers bring traffic at ``supply_rates`` (their lagged rates; the
    rates themselves without it), and the spend is the rate times the GMV sold; when
    that commission would pass the budget left after the auctions, the promotion stops
    there (orders beyond it are not made).

    Returns per-arm arrays: ``opportunities``, ``impressions``, ``clicks``, ``orders``
    (integers), ``spend``, ``gmv`` (currency), ``win_rate`` and ``clearing_cpm`` (mean
    clearing price paid, CPM; 0 where nothing was won).
    """
    if isinstance(rng, HourlyStreams):
        streams = rng

        def draw(i: int) -> np.random.Generator:
            return streams.at(t, i)
    else:
        single = rng

        def draw(i: int) -> np.random.Generator:
            return single

    bids = np.maximum(bids_cpm, 1e-12)
    mechanism = market.mechanism
    if mechanism is None and price_factor is None:
        # lognormal_auction with the episode's precomputed constants: this is the hottest
        # line of an environment step. Bids are positive, so the log needs no guard.
        z = np.log(bids / market.price_median[t]) / market.price_sigma
        cdf = normal_cdf(z - market._sigma_shifts)
        win, pay1, pay2 = cdf[0], market._pay1_scale[t] * cdf[1], market._pay2_scale[t] * cdf[2]
    else:
        price = (
            market.price_median[t]
            if price_factor is None
            else market.price_median[t] * price_factor
        )
        if mechanism is None:
            win, pay1, pay2 = lognormal_auction(bids, price, market.price_sigma)
        else:
            drivers = bids
            if supply_rates is not None and mechanism.any_commission:
                drivers = np.where(mechanism.commission, np.maximum(supply_rates, 1e-12), bids)
            win, pay1, pay2 = mechanism.auction_moments(drivers, price)
    traffic = market.traffic[t]
    opportunities = draw(0).poisson(traffic)
    impressions = draw(1).binomial(opportunities, win)

    # Sum of the won clearing prices: a Gamma with the truncated log-normal's mean and
    # variance per impression (exact in the first two moments).
    # A bid far below the price range wins with a probability that underflows; such an
    # impression would cost about the bid, and any other choice risks 0 / 0 here.
    safe_win = np.maximum(win, 1e-12)
    mean_pay = np.maximum(np.where(win > 1e-12, pay1 / safe_win, bids), 1e-12)
    var_pay = np.maximum(pay2 / safe_win - mean_pay * mean_pay, 1e-6 * mean_pay * mean_pay)
    # ``standard_gamma(k) * scale`` is numpy's ``gamma(k, scale)`` bit for bit (its C code
    # multiplies the same way) without checking a second array argument: half the call.
    shape = impressions * (mean_pay * mean_pay / var_pay)
    spend = draw(2).standard_gamma(shape) * (var_pay / mean_pay) / CPM
    first_price = None if mechanism is None or not mechanism.any_pays_bid else mechanism.pays_bid
    if first_price is not None:
        # A first-price winner pays exactly its bid.
        spend = np.where(first_price, impressions * bids / CPM, spend)

    # The platform stops delivering when the budget runs out within the hour: every arm
    # delivers until the same moment, so all are cut by the same fraction.
    total = spend.sum()
    if total > remaining_budget:
        fraction = max(remaining_budget, 0.0) / total * (1.0 - 1e-9)
        spend = spend * fraction
        impressions = np.floor(impressions * fraction).astype(np.int64)
        if first_price is not None:
            spend = np.where(first_price, impressions * bids / CPM, spend)

    # Unique reach saturates: A * (1 - exp(-n / A)) effective impressions out of n.
    audience = market.saturation * np.maximum(traffic, 1e-9)
    served = np.maximum(impressions, 1)
    reach_share = -np.expm1(-served / audience) * audience / served
    click_prob = market.ctr[t] * reach_share
    if market.wears_out:
        click_prob = click_prob * creative_wear(market, exposure)
    clicks = draw(3).binomial(impressions, np.minimum(click_prob, 1.0))
    orders = draw(4).binomial(clicks, market.cvr[t])
    gmv = draw(5).standard_gamma(orders * market.inv_cv2) * (market.aov[t] * market.cv2)
    if mechanism is not None and mechanism.any_commission:
        paid = mechanism.commission
        auction_spend = np.where(paid, 0.0, spend)
        owed = np.where(paid, bids * gmv, 0.0)
        room = max(remaining_budget - float(auction_spend.sum()), 0.0)
        if owed.sum() > room:
            # The budget runs out on the commission arms' sales: the promotion stops
            # there, so each keeps the same share of its orders (whole orders, their
            # mean value) and the commission fits in what is left.
            share = room / float(owed.sum()) * (1.0 - 1e-9)
            kept = np.where(paid, np.floor(orders * share), orders).astype(np.int64)
            gmv = np.where(paid, gmv * kept / np.maximum(orders, 1), gmv)
            clicks = np.where(paid, np.minimum(clicks, np.ceil(clicks * share)), clicks).astype(
                np.int64
            )
            impressions = np.where(
                paid, np.minimum(impressions, np.ceil(impressions * share)), impressions
            ).astype(np.int64)
            orders = kept
            owed = np.where(paid, bids * gmv, 0.0)
        spend = auction_spend + owed

    win_rate = impressions / np.maximum(opportunities, 1)
    clearing_cpm = spend * CPM / served
    if mechanism is not None and mechanism.any_commission:
        clearing_cpm = np.where(mechanism.commission, 0.0, clearing_cpm)  # no auction price
    return {
        "opportunities": opportunities,
        "impressions": impressions,
        "clicks": clicks,
        "orders": orders,
        "spend": spend,
        "gmv": gmv,
        "win_rate": win_rate,
        "clearing_cpm": clearing_cpm,
    }
