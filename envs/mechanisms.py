"""Market mechanisms beyond one second-price auction per arm, in closed form.

A channel may run a GSP auction over several slots or a first-price auction, draw its
top competing price from a gamma or a two-component log-normal mixture instead of one
log-normal, hold a reserve price, have rivals that raise their bids as we take share, and
deliver orders hours after their clicks. ``docs/market.md`` writes each one down; this
module gives their exact expectations, which the simulator samples from and the
clairvoyant oracle plans with.

Everything here is a per-arm constant of the scenario (:class:`Mechanism`), plus two
small pieces of state the environment carries through an episode: :class:`Rivals` (the
rivals' memory of our share) and :class:`PendingOrders` (orders clicked but not yet
placed).

The auction's expectations all reduce to the *partial moments* of the top competing price
``P`` at a few thresholds ``x``: ``F(x) = P(P < x)``, ``M1(x) = E[P; P < x]`` and
``M2(x) = E[P^2; P < x]``. With a GSP ladder the competing price of slot ``j`` is
``a_j P`` (``a_j = slot_price_ratio ** (j - 1)``), so a bid ``b`` takes slot ``j`` when
``b / a_{j-1} <= P < b / a_j`` and then pays ``max(a_j P, reserve)`` if the impression is
exposed (probability ``e_j``). A second-price auction is the one-slot case; a first-price
winner pays ``b``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

import numpy as np

from envs.scenario import AUCTIONS, PRICE_FAMILIES, Channel, Scenario
from envs.stats import normal_cdf

SECOND_PRICE, GSP, FIRST_PRICE = (AUCTIONS.index(a) for a in ("second-price", "gsp", "first-price"))
LOGNORMAL, GAMMA, MIXTURE = (PRICE_FAMILIES.index(f) for f in ("lognormal", "gamma", "mixture"))

#: Points of the tabulated gamma partial moments (log-spaced); linear interpolation on
#: this grid is exact to about 1e-6 of the moments.
GAMMA_TABLE_POINTS = 4096


def has_mechanisms(channel: Channel) -> bool:
    """Whether a channel uses anything beyond today's plain second-price log-normal market."""
    return (
        channel.auction != "second-price"
        or channel.price_family != "lognormal"
        or channel.reserve_cpm > 0
        or channel.rival_elasticity > 0
        or channel.order_delay_hours > 0
        or channel.commission
    )


def delay_probability(mean_hours: float | np.ndarray) -> np.ndarray:
    """The hourly probability ``q`` that a pending order waits one more hour, for a
    geometric delay ``P(lag = l) = (1 - q) q^l`` (l = 0, 1, ...) with the given mean."""
    mean = np.asarray(mean_hours, dtype=float)
    return mean / (1.0 + mean)


@functools.lru_cache(maxsize=64)
def _gamma_table(cv: float) -> tuple[float, float, np.ndarray]:
    """Partial moments of ``X ~ Gamma(shape 1/cv^2, mean 1)`` on a grid of ``log x``.

    Returns ``(log_x0, step, table)`` where ``table`` (3, N) holds ``F``, ``M1`` and
    ``M2`` at ``log x0 + step * i``. Integrated in log space with the trapezoid rule (the
    density of ``log X`` is smooth), then scaled so that the totals are exact.
    """
    k = 1.0 / (cv * cv)
    # Wilson-Hilferty quantiles at +-9 standard deviations bound the grid.
    a = 1.0 / (9.0 * k)
    lo = max((1.0 - a - 9.0 * math.sqrt(a)), math.exp(-9.0)) ** 3
    hi = (1.0 - a + 9.0 * math.sqrt(a)) ** 3 + 2.0
    log_x = np.linspace(math.log(lo), math.log(hi), GAMMA_TABLE_POINTS)
    x = np.exp(log_x)
    density = np.exp(k * log_x + k * math.log(k) - k * x - math.lgamma(k))
    step = float(log_x[1] - log_x[0])
    table = np.empty((3, GAMMA_TABLE_POINTS))
    for i, totals in enumerate((1.0, 1.0, 1.0 + cv * cv)):
        integrand = density * x**i
        cumulative = np.concatenate(
            [[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * step)]
        )
        table[i] = cumulative * (totals / cumulative[-1])
    return float(log_x[0]), step, table


@dataclass(frozen=True)
class Mechanism:
    """Per-arm mechanism constants of one scenario (arrays of length K unless noted).

    Attributes:
        auction: auction code per arm (index into ``envs.scenario.AUCTIONS``).
        exposure: exposure probability per slot, (S, K); zero beyond an arm's slots.
        slot_price: competing-price multiplier of each slot, (S, K).
        family: price family code per arm (index into ``PRICE_FAMILIES``).
        brand_share, brand_premium, brand_sigma: the mixture's brand block.
        reserve: reserve price per arm (CPM).
        rival_elasticity: per arm; ``rival_decay`` per channel, ``channel_of_arm``.
        delay_q: hourly waiting probability of a pending order (0: no delay).
        commission: the arms paid by commission (the lever is a rate; "win rate" is the
            share of the arm's traffic the influencers bring, ``1 - exp(-r / scale)``,
            and spend is the rate times the GMV; ``None``: none).
        supply_keep: per arm, the weight of the previous effective rate in each hour's
            (``exp(-1 / supply_lag_hours)``; 0 answers a new rate at once).

    Derived on construction: ``pays_bid`` (the first-price arms) and ``any_pays_bid``,
    ``any_commission``.
    """

    auction: np.ndarray
    exposure: np.ndarray
    slot_price: np.ndarray
    family: np.ndarray
    brand_share: np.ndarray
    brand_premium: np.ndarray
    brand_sigma: np.ndarray
    reserve: np.ndarray
    price_sigma: np.ndarray
    rival_elasticity: np.ndarray
    rival_decay: np.ndarray
    channel_of_arm: np.ndarray
    delay_q: np.ndarray
    commission: np.ndarray | None = None
    supply_keep: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.delay_q)
        if self.commission is None:
            object.__setattr__(self, "commission", np.zeros(n, bool))
        if self.supply_keep is None:
            object.__setattr__(self, "supply_keep", np.zeros(n))
        object.__setattr__(self, "any_commission", bool(self.commission.any()))
        gamma_arms = np.flatnonzero(self.family == GAMMA)
        object.__setattr__(self, "_gamma_arms", gamma_arms)
        if len(gamma_arms):
            tables = [_gamma_table(float(self.price_sigma[k])) for k in gamma_arms]
            object.__setattr__(self, "_gamma_lo", np.array([t[0] for t in tables]))
            object.__setattr__(self, "_gamma_step", np.array([t[1] for t in tables]))
            # (3, Kg * N): one flat row per moment, arm-major.
            object.__setattr__(self, "_gamma_tab", np.concatenate([t[2] for t in tables], 1))
            object.__setattr__(
                self, "_gamma_offsets", np.arange(len(gamma_arms)) * GAMMA_TABLE_POINTS
            )
        mix = np.flatnonzero(self.family == MIXTURE)
        object.__setattr__(self, "_mixture_arms", mix)
        # Constants of the log-normal partial moments, hoisted out of every call.
        steps = np.arange(3.0)[:, None]
        sigma, bs = self.price_sigma, self.brand_sigma[mix]
        object.__setattr__(self, "_shifts", steps * sigma)
        s2 = sigma * sigma
        object.__setattr__(
            self, "_moment_consts", np.stack([np.ones_like(s2), np.exp(0.5 * s2), np.exp(2 * s2)])
        )
        premium = self.brand_premium[mix]
        object.__setattr__(self, "_log_premium", np.log(premium))
        object.__setattr__(self, "_brand_shifts", steps * bs)
        b2 = bs * bs
        object.__setattr__(
            self,
            "_brand_consts",
            np.stack([np.ones_like(b2), premium * np.exp(0.5 * b2), premium**2 * np.exp(2 * b2)]),
        )
        object.__setattr__(self, "pays_bid", self.auction == FIRST_PRICE)
        object.__setattr__(self, "any_pays_bid", bool(self.pays_bid.any()))
        object.__setattr__(self, "_has_reserve", bool((self.reserve > 0).any()))
        # Slots that matter for at least one arm, and each slot's weights in the sums
        # of the exposed win probability and the payment moments.
        used = np.flatnonzero(self.exposure.max(axis=1) > 0)
        n_slots = int(used.max()) + 1
        object.__setattr__(self, "_n_slots", n_slots)
        e, a = self.exposure[:n_slots], self.slot_price[:n_slots]
        object.__setattr__(self, "_slot_price", a)
        object.__setattr__(self, "_weights", np.stack([e, e * a, e * a * a]))
        r = self.reserve
        object.__setattr__(self, "_reserve_weights", np.stack([e, e * r, e * r * r]))

    def select(self, arms: np.ndarray) -> Mechanism:
        """The mechanism of the given arms (indices, in that order); arms are on the last
        axis of every field but ``rival_decay``, which is per channel."""
        arms = np.asarray(arms)
        per_arm = {
            f.name: getattr(self, f.name)[..., arms]
            for f in fields(self)
            if f.name != "rival_decay"
        }
        return Mechanism(rival_decay=self.rival_decay, **per_arm)

    @property
    def reacts(self) -> bool:
        return bool((self.rival_elasticity > 0).any())

    @property
    def delays(self) -> bool:
        return bool((self.delay_q > 0).any())

    @property
    def n_channels(self) -> int:
        return len(self.rival_decay)

    # -- price families -----------------------------------------------------------------
    def partial_moments(self, u: np.ndarray) -> np.ndarray:
        """``F``, ``M1``, ``M2`` of the *standardised* top competing price (scale 1) at
        thresholds ``u >= 0`` of shape (..., K), stacked on a new first axis (3, ..., K)."""
        log_u = np.log(np.maximum(u, 1e-300))
        n_arms = u.shape[-1]
        lead = (3,) + (1,) * (log_u.ndim - 1)
        # Every normal CDF in one call: the log-normal's three shifted arguments for every
        # arm, then the mixture's brand block for its arms.
        z = log_u[None] / self.price_sigma - self._shifts.reshape(lead + (n_arms,))
        mix = self._mixture_arms
        if len(mix):
            zb = (log_u[None, ..., mix] - self._log_premium) / self.brand_sigma[mix]
            z = np.concatenate([z, zb - self._brand_shifts.reshape(lead + (len(mix),))], -1)
        cdf = normal_cdf(z)
        moments = cdf[..., :n_arms] * self._moment_consts.reshape(lead + (n_arms,))
        if len(mix):
            w = self.brand_share[mix]
            brand = cdf[..., n_arms:] * self._brand_consts.reshape(lead + (len(mix),))
            moments[..., mix] = (1 - w) * moments[..., mix] + w * brand
        gam = self._gamma_arms
        if len(gam):
            n = GAMMA_TABLE_POINTS
            pos = (log_u[..., gam] - self._gamma_lo) / self._gamma_step
            pos = np.minimum(np.maximum(pos, 0.0), n - 1.0)
            i0 = np.minimum(pos.astype(np.int64), n - 2)
            flat = i0 + self._gamma_offsets
            lower = self._gamma_tab[:, flat]
            moments[..., gam] = lower + (self._gamma_tab[:, flat + 1] - lower) * (pos - i0)
        return moments

    # -- auctions -----------------------------------------------------------------------
    def auction_moments(
        self, bids: np.ndarray, scale: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per impression opportunity: the probability of an exposed win, the expected
        payment and the expected squared payment (payments only on exposure).

        ``bids`` and ``scale`` (the price level: median or mean of the family, CPM)
        broadcast to (..., K).
        """
        bids = np.maximum(np.asarray(bids, dtype=float), 1e-12)
        scale = np.asarray(scale, dtype=float)
        if bids.shape != scale.shape:
            bids, scale = np.broadcast_arrays(bids, scale)
        n_slots, n_arms = self._n_slots, bids.shape[-1]
        ones = (1,) * (bids.ndim - 1)
        a = self._slot_price.reshape((n_slots,) + ones + (n_arms,))
        hi = bids[None] / a  # slot j is taken for P in [hi_{j-1}, hi_j)
        if self._has_reserve:
            lo = np.concatenate([np.zeros((1,) + bids.shape), hi[:-1]], axis=0)
            mid = np.minimum(np.maximum(self.reserve / a, lo), hi)  # below mid: pay reserve
            thresholds = np.concatenate([hi, mid], axis=0)
        else:
            thresholds = hi
        powers = np.stack([np.ones_like(scale), scale, scale * scale])[:, None]
        moments = self.partial_moments(thresholds / scale[None]) * powers
        top = moments[:, :n_slots]
        below = np.concatenate([np.zeros((3, 1) + bids.shape), top[:, :-1]], axis=1)
        weights = self._weights.reshape((3, n_slots) + ones + (n_arms,))
        if self._has_reserve:
            mid = moments[:, n_slots:]
            reserve_weights = self._reserve_weights.reshape((3, n_slots) + ones + (n_arms,))
            out = (weights * (top - mid) + reserve_weights * (mid[0] - below[0])).sum(axis=1)
        else:
            out = (weights * (top - below)).sum(axis=1)
        win, pay1, pay2 = out[0], out[1], out[2]
        if self.any_pays_bid:
            first = self.pays_bid
            win_first = top[0, 0] * self.exposure[0]
            win = np.where(first, win_first, win)
            pay1 = np.where(first, bids * win_first, pay1)
            pay2 = np.where(first, bids * bids * win_first, pay2)
        if self._has_reserve:
            sold = bids >= self.reserve
            win, pay1, pay2 = (np.where(sold, v, 0.0) for v in (win, pay1, pay2))
        if self.any_commission:
            # Commission arms: the share of traffic influencers bring at this rate; the
            # payment is a share of the GMV, which expected_response adds.
            paid = self.commission
            win = np.where(paid, -np.expm1(-bids / scale), win)
            pay1 = np.where(paid, 0.0, pay1)
            pay2 = np.where(paid, 0.0, pay2)
        return win, np.maximum(pay1, 0.0), np.maximum(pay2, 0.0)

    def commission_spend(self, rates: np.ndarray, gmv: np.ndarray, spend: np.ndarray) -> np.ndarray:
        """``spend`` with the commission arms' replaced by rate x GMV."""
        if not self.any_commission:
            return spend
        return np.where(self.commission, np.asarray(rates, dtype=float) * gmv, spend)


def build_mechanism(scenario: Scenario) -> Mechanism | None:
    """The scenario's per-arm mechanism constants, or ``None`` when every channel is
    today's plain second-price log-normal market without rivals or delays."""
    if not any(has_mechanisms(c) for c in scenario.channels):
        return None
    channels = {c.name: c for c in scenario.channels}
    names = list(channels)
    arm_channels = [channels[a.channel] for a in scenario.arms]
    n_slots = max(len(c.slot_exposure) if c.auction == "gsp" else 1 for c in arm_channels)
    exposure = np.zeros((n_slots, len(arm_channels)))
    slot_price = np.ones((n_slots, len(arm_channels)))
    for k, c in enumerate(arm_channels):
        if c.auction == "gsp":
            exposure[: len(c.slot_exposure), k] = c.slot_exposure
            slot_price[:, k] = c.slot_price_ratio ** np.arange(n_slots)
        else:
            exposure[0, k] = 1.0

    def per_arm(attr: str) -> np.ndarray:
        return np.array([float(getattr(c, attr)) for c in arm_channels])

    return Mechanism(
        auction=np.array([AUCTIONS.index(c.auction) for c in arm_channels]),
        exposure=exposure,
        slot_price=slot_price,
        family=np.array([PRICE_FAMILIES.index(c.price_family) for c in arm_channels]),
        brand_share=per_arm("brand_share"),
        brand_premium=per_arm("brand_premium"),
        brand_sigma=per_arm("brand_sigma"),
        reserve=per_arm("reserve_cpm"),
        price_sigma=per_arm("price_sigma"),
        rival_elasticity=per_arm("rival_elasticity"),
        rival_decay=np.array([0.5 ** (1.0 / c.rival_memory_hours) for c in channels.values()]),
        channel_of_arm=np.array([names.index(c.name) for c in arm_channels]),
        delay_q=delay_probability(per_arm("order_delay_hours")),
        commission=np.array([c.commission for c in arm_channels]),
        supply_keep=np.array(
            [
                math.exp(-1.0 / c.supply_lag_hours)
                if c.commission and c.supply_lag_hours > 0
                else 0.0
                for c in arm_channels
            ]
        ),
    )


def auction_mechanism(
    first_price: np.ndarray,
    price_sigma: np.ndarray,
    channel_of_arm: np.ndarray,
    reserve: np.ndarray | None = None,
    commission: np.ndarray | None = None,
) -> Mechanism:
    """A mechanism of log-normal prices where the arms of ``first_price`` pay their bid and
    the others the second price, with optional reserve prices and arms paid by
    ``commission``: what a fit from logs can tell apart (no rivals, no delay, and no
    influencer lag, which answers rates at once)."""
    n_arms = len(first_price)
    return Mechanism(
        auction=np.where(first_price, FIRST_PRICE, SECOND_PRICE),
        exposure=np.ones((1, n_arms)),
        slot_price=np.ones((1, n_arms)),
        family=np.full(n_arms, LOGNORMAL),
        brand_share=np.zeros(n_arms),
        brand_premium=np.ones(n_arms),
        brand_sigma=np.full(n_arms, 0.25),
        reserve=np.zeros(n_arms) if reserve is None else np.asarray(reserve, dtype=float),
        price_sigma=np.asarray(price_sigma, dtype=float),
        rival_elasticity=np.zeros(n_arms),
        rival_decay=np.full(int(np.max(channel_of_arm)) + 1, 0.5),
        channel_of_arm=np.asarray(channel_of_arm),
        delay_q=np.zeros(n_arms),
        commission=None if commission is None else np.asarray(commission, dtype=bool),
    )


def attribution_of(delay_q: np.ndarray, horizon: int, window: int) -> np.ndarray:
    """Share of each hour's orders that arrive by the end of the attribution window,
    (T, K): ``1 - q^(T - t + window)`` for orders made in campaign hour ``t``, per-arm
    ``q``."""
    hours_to_close = (horizon - np.arange(horizon) + window)[:, None]
    return 1.0 - np.asarray(delay_q, dtype=float)[None, :] ** hours_to_close


class Rivals:
    """The rivals' memory of our share of each channel's impressions.

    After every hour, ``level_c <- d_c level_c + (1 - d_c) share_c`` per channel, where
    ``share_c`` is our impressions over the channel's opportunities in that hour; the
    clearing-price level of arm ``k`` in the next hour is multiplied by
    ``exp(rival_elasticity_k * level_{c(k)})``.
    """

    def __init__(self, mechanism: Mechanism):
        self.mechanism = mechanism
        self.level = np.zeros(mechanism.n_channels)

    def factor(self) -> np.ndarray:
        """The price-level multiplier of every arm for the next hour."""
        m = self.mechanism
        return np.exp(m.rival_elasticity * self.level[m.channel_of_arm])

    def update(self, impressions: np.ndarray, opportunities: np.ndarray) -> None:
        """Remember an hour's share of every channel's impressions."""
        m = self.mechanism
        won = np.bincount(m.channel_of_arm, impressions, minlength=m.n_channels)
        offered = np.bincount(m.channel_of_arm, opportunities, minlength=m.n_channels)
        share = np.minimum(won / np.maximum(offered, 1e-9), 1.0)
        self.level = m.rival_decay * self.level + (1.0 - m.rival_decay) * share


class CommissionSupply:
    """The commission rates influencers answer, per arm, after their lag.

    The first hour's rates are taken as the rates in force before the campaign (a
    merchant's rate does not start at nothing); after that, every hour
    ``effective <- keep * effective + (1 - keep) * rate`` with
    ``keep = exp(-1 / supply_lag_hours)``, so a new rate takes about
    ``supply_lag_hours`` hours to bring most of its traffic. Only commission arms are
    read; the others carry their bids through unchanged.
    """

    def __init__(self, mechanism: Mechanism):
        self.mechanism = mechanism
        self.rates: np.ndarray | None = None

    def answer(self, rates: np.ndarray) -> np.ndarray:
        """The effective rates of this hour, given the rates set for it."""
        rates = np.asarray(rates, dtype=float)
        keep = self.mechanism.supply_keep
        self.rates = rates.copy() if self.rates is None else keep * self.rates + (1 - keep) * rates
        return self.rates


class PendingOrders:
    """Orders clicked but not yet placed, per arm, the GMV they will bring and, on
    commission arms, the commission they will cost.

    Delays are geometric, so each pending order arrives in a given hour with the same
    probability ``1 - q`` whatever its age: the hour's arrivals are a binomial draw of the
    pending count, and bring the pending GMV and commission in proportion (their
    expectation given the count). A commission is owed at the rate set in its click's
    hour and paid when its sale arrives; what is still owed (:attr:`owed`) stays reserved
    from the budget until then, so paying it can never pass the budget.
    """

    def __init__(self, mechanism: Mechanism):
        self.q = mechanism.delay_q
        self.orders = np.zeros(len(self.q), dtype=np.int64)
        self.gmv = np.zeros(len(self.q))
        self.commission = np.zeros(len(self.q))

    @property
    def owed(self) -> float:
        """Commission on pending sales (reserved from the budget until they arrive)."""
        return float(self.commission.sum())

    def _take(self, share_arriving: np.ndarray, rng: np.random.Generator):
        arrived = rng.binomial(self.orders, share_arriving)
        fraction = np.divide(arrived, self.orders, out=np.zeros(len(self.q)), where=self.orders > 0)
        gmv = self.gmv * fraction
        paid = self.commission * fraction
        self.orders = self.orders - arrived
        left = self.orders > 0
        self.gmv = np.where(left, self.gmv - gmv, 0.0)
        self.commission = np.where(left, self.commission - paid, 0.0)
        return arrived, gmv, paid

    def hour(
        self,
        orders: np.ndarray,
        gmv: np.ndarray,
        rng: np.random.Generator,
        commission: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Add an hour's new orders (with the commission they will cost, if any) and
        return the orders, GMV and commission that arrive in it."""
        self.orders = self.orders + orders
        self.gmv = self.gmv + gmv
        if commission is not None:
            self.commission = self.commission + commission
        return self._take(1.0 - self.q, rng)

    def close(
        self, hours_left: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """At the campaign's end: the pending orders that still arrive within the
        attribution window, ``hours_left`` being the campaign hours not played plus the
        window, with their GMV and commission (sales that arrive later cost nothing)."""
        return self._take(1.0 - self.q**hours_left, rng)

    def expected_attributed_commission(self, hours_left: int) -> float:
        """The pending commission expected to be paid within ``hours_left`` more hours."""
        return float((self.commission * (1.0 - self.q**hours_left)).sum())

    def expected_attributed_gmv(self, hours_left: int) -> float:
        """The pending GMV expected to arrive within ``hours_left`` more hours."""
        return float((self.gmv * (1.0 - self.q**hours_left)).sum())
