"""Randomised scenarios for training policies that must generalise to unseen markets.

Every field of a scenario is drawn from a documented range (:class:`SamplerRanges`),
including the number of products and channels and zero to two shocks. The budget and
ROI target are set relative to what the drawn market can deliver, so that both
constraints matter: the budget buys roughly ``budget_share`` of the spend available at
median bids, and the ROI target is ``roi_share`` of the ROI at median bids.

Each channel also runs other market mechanisms with probability
``mechanism_probability`` (docs/market.md, "Mechanisms"): a GSP or first-price auction, a
gamma or mixture price family, a reserve price, reacting rivals, delayed orders, each
drawn from its own range. They are drawn after every other field, so a generator state
gives the same products, channels and arms as before they existed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from envs.market import build_episode, expected_hour
from envs.scenario import (
    KNOWN_CHANNELS,
    MAX_PRICE_CPM,
    MAX_TRAFFIC,
    SHOCK_KINDS,
    Arm,
    Channel,
    Product,
    Scenario,
    ScenarioError,
    Shock,
)


@dataclass(frozen=True)
class SamplerRanges:
    """Ranges, ``(low, high)``, that :func:`sample_scenario` draws from uniformly.

    Multiplicative quantities (prices, traffic, rates) are drawn log-uniformly.
    """

    n_products: tuple[int, int] = (1, 3)
    n_channels: tuple[int, int] = (2, 5)
    aov: tuple[float, float] = (40.0, 400.0)
    price_cpm: tuple[float, float] = (15.0, 60.0)
    price_sigma: tuple[float, float] = (0.35, 0.7)
    daypart_strength: tuple[float, float] = (0.3, 1.6)
    traffic: tuple[float, float] = (3_000.0, 80_000.0)
    ctr: tuple[float, float] = (0.01, 0.05)
    cvr: tuple[float, float] = (0.008, 0.06)
    aigc_probability: float = 0.2
    n_shocks: tuple[int, int] = (0, 2)
    shock_factor: tuple[float, float] = (1.4, 2.5)
    budget_share: tuple[float, float] = (0.3, 1.0)
    roi_share: tuple[float, float] = (0.6, 1.0)
    mechanism_probability: float = 0.5
    """Chance that a channel departs from the plain second-price market at all."""
    auction_weights: tuple[float, float, float] = (0.4, 0.4, 0.2)
    """Second-price, GSP, first-price (given a departure)."""
    family_weights: tuple[float, float, float] = (0.5, 0.25, 0.25)
    """Log-normal, gamma, mixture (given a departure)."""
    feature_probability: float = 0.35
    """Chance of each of a reserve price, reacting rivals and delayed orders."""
    reserve_share: tuple[float, float] = (0.2, 0.6)
    """Reserve price as a share of the channel's price level."""
    rival_elasticity: tuple[float, float] = (0.3, 1.2)
    rival_memory_hours: tuple[float, float] = (1.0, 6.0)
    order_delay_hours: tuple[float, float] = (1.0, 6.0)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _sample_shock(
    rng: np.random.Generator,
    horizon: int,
    products: list[str],
    channels: list[str],
    ranges: SamplerRanges,
) -> Shock:
    kinds = [k for k in SHOCK_KINDS if k != "traffic_shift" or len(channels) > 1]
    kind = str(rng.choice(kinds))
    # Clamped so that a one-hour campaign still gets a shock inside its horizon.
    start = min(int(rng.integers(1, max(2, horizon - 2))), horizon - 1)
    strength = float(rng.uniform(*ranges.shock_factor))
    channel = str(rng.choice(channels)) if rng.random() < 0.6 else None
    product = str(rng.choice(products)) if rng.random() < 0.4 else None
    if kind == "traffic_shift":
        source, dest = rng.choice(channels, size=2, replace=False)
        return Shock(
            kind,
            start_hour=start,
            factor=round(float(rng.uniform(0.3, 0.7)), 3),
            channel=str(source),
            to_channel=str(dest),
            ramp_hours=int(rng.integers(0, 4)),
        )
    # Shocks that hurt the advertiser act downwards; bid wars and promotions upwards.
    factor = strength if kind in ("bid_war", "promotion") else 1.0 / strength
    return Shock(
        kind,
        start_hour=start,
        factor=round(factor, 3),
        channel=channel,
        product=product,
        ramp_hours=int(rng.integers(0, 6)),
    )


def _sample_mechanisms(rng: np.random.Generator, channel: Channel, r: SamplerRanges) -> Channel:
    """``channel`` with randomly drawn market mechanisms (or unchanged)."""
    if rng.random() >= r.mechanism_probability:
        return channel
    auction = ("second-price", "gsp", "first-price")[
        int(rng.choice(3, p=np.array(r.auction_weights) / sum(r.auction_weights)))
    ]
    family = ("lognormal", "gamma", "mixture")[
        int(rng.choice(3, p=np.array(r.family_weights) / sum(r.family_weights)))
    ]
    changes: dict = {"auction": auction, "price_family": family}
    if auction == "gsp":
        n_slots = int(rng.integers(2, 5))
        decay = float(rng.uniform(0.6, 0.9))
        changes["slot_exposure"] = tuple(round(decay**j, 3) for j in range(n_slots))
        changes["slot_price_ratio"] = round(float(rng.uniform(0.5, 0.85)), 3)
    if family == "gamma":
        changes["price_sigma"] = min(channel.price_sigma, 1.0)
    if family == "mixture":
        changes["brand_share"] = round(float(rng.uniform(0.1, 0.35)), 3)
        changes["brand_premium"] = round(float(rng.uniform(1.8, 4.0)), 3)
    if rng.random() < r.feature_probability:
        changes["reserve_cpm"] = round(channel.price_cpm * float(rng.uniform(*r.reserve_share)), 2)
    if rng.random() < r.feature_probability:
        changes["rival_elasticity"] = round(float(rng.uniform(*r.rival_elasticity)), 3)
        changes["rival_memory_hours"] = round(float(rng.uniform(*r.rival_memory_hours)), 2)
    if rng.random() < r.feature_probability:
        changes["order_delay_hours"] = round(float(rng.uniform(*r.order_delay_hours)), 2)
    return dataclasses.replace(channel, **changes)


def sample_scenario(
    rng: np.random.Generator,
    ranges: SamplerRanges | None = None,
    horizon_hours: int = 24,
    name: str = "sampled",
) -> Scenario:
    """Draw one random scenario; the same generator state gives the same scenario."""
    r = ranges or SamplerRanges()
    n_products = int(rng.integers(r.n_products[0], r.n_products[1] + 1))
    n_channels = int(rng.integers(r.n_channels[0], r.n_channels[1] + 1))
    channel_names = [str(c) for c in rng.choice(KNOWN_CHANNELS, size=n_channels, replace=False)]
    products = tuple(
        Product(
            f"product-{i}",
            aov=round(_log_uniform(rng, r.aov), 2),
            aov_cv=round(float(rng.uniform(0.2, 0.6)), 3),
        )
        for i in range(n_products)
    )
    channels = tuple(
        Channel(
            c,
            price_cpm=round(_log_uniform(rng, r.price_cpm), 2),
            price_sigma=round(float(rng.uniform(*r.price_sigma)), 3),
            daypart_strength=round(float(rng.uniform(*r.daypart_strength)), 3),
            competition_elasticity=round(float(rng.uniform(0.1, 0.7)), 3),
        )
        for c in channel_names
    )
    arms = []
    for p in products:
        for c in channel_names:
            aigc = rng.random() < r.aigc_probability
            arms.append(
                Arm(
                    product=p.name,
                    channel=c,
                    traffic=round(_log_uniform(rng, r.traffic), 1),
                    ctr=round(_log_uniform(rng, r.ctr) * (0.5 if aigc else 1.0), 5),
                    cvr=round(_log_uniform(rng, r.cvr) * (0.45 if aigc else 1.0), 5),
                    creative="aigc" if aigc else "original",
                    saturation=round(float(rng.uniform(1.5, 5.0)), 3),
                )
            )
    n_shocks = int(rng.integers(r.n_shocks[0], r.n_shocks[1] + 1))
    shocks = tuple(
        _sample_shock(rng, horizon_hours, [p.name for p in products], channel_names, r)
        for _ in range(n_shocks)
    )
    draft = Scenario(
        name=name,
        budget=1.0,
        roi_target=1.0,
        products=products,
        channels=channels,
        arms=tuple(arms),
        shocks=shocks,
        horizon_hours=horizon_hours,
        start_hour=0,
        start_weekday=int(rng.integers(0, 7)),
        description="randomised scenario",
    )
    budget_share = float(rng.uniform(*r.budget_share))
    roi_share = float(rng.uniform(*r.roi_share))
    draft = draft.replace(channels=tuple(_sample_mechanisms(rng, c, r) for c in channels))
    # Size the budget and ROI target against the market at median bids.
    market = build_episode(draft)
    spend = gmv = 0.0
    for t in range(horizon_hours):
        outcome = expected_hour(market, t, market.price_median[t])
        spend += float(outcome.spend.sum())
        gmv += float(outcome.gmv.sum())
    budget = round(spend * budget_share, 2)
    roi_target = round(gmv / spend * roi_share, 3)
    return draft.replace(budget=max(budget, 1.0), roi_target=max(roi_target, 0.1))


#: What :func:`perturb_scenario` moves, per part, with the bounds a scenario allows.
PERTURBED = {
    "product": {"aov": (1e-6, math.inf)},
    "channel": {
        "price_cpm": (1e-6, MAX_PRICE_CPM),
        "price_sigma": (0.05, 2.0),
        "daypart_strength": (0.0, 1.8),
        "competition_elasticity": (0.0, 2.0),
    },
    "arm": {"traffic": (1e-6, MAX_TRAFFIC), "ctr": (1e-9, 1.0), "cvr": (1e-9, 1.0)},
}


def parameter_names(scenario: Scenario) -> list[str]:
    """The names :func:`perturb_scenario` knows, as the twin's fit report writes them:
    ``product.P.aov``, ``channel.C.price_cpm`` and ``arm.P/C.ctr``."""
    names = [f"product.{p.name}.{k}" for p in scenario.products for k in PERTURBED["product"]]
    names += [f"channel.{c.name}.{k}" for c in scenario.channels for k in _channel_fields(c)]
    names += [f"arm.{a.product}/{a.channel}.{k}" for a in scenario.arms for k in PERTURBED["arm"]]
    return names


def perturb_scenario(
    scenario: Scenario,
    rng: np.random.Generator,
    factor: float = 1.0,
    intervals: dict[str, tuple[float, float]] | None = None,
) -> Scenario:
    """A market around ``scenario``: each parameter of :data:`PERTURBED` drawn again.

    A parameter with an interval in ``intervals`` (keyed as :func:`parameter_names`) is
    drawn uniformly in it; every other one is multiplied by a log-uniform factor in
    ``[1 / factor, factor]`` (``factor`` 1 leaves it as it is). Draws are clipped to the
    bounds a scenario allows, and a conversion rate stays a probability under the
    scenario's price cuts and promotions. The budget, ROI target, shocks, mechanisms and
    horizon are the scenario's: the advertiser's campaign in a market that may differ
    from the fitted one. The same generator state gives the same market.

    Raises:
        ScenarioError: ``factor`` below 1, or an interval that is not ``low <= high``
            or names a parameter the scenario does not have.
    """
    if not (isinstance(factor, int | float) and math.isfinite(factor) and factor >= 1.0):
        raise ScenarioError(
            f"perturbation factor {factor!r}: give a number >= 1 (1.2 moves each parameter "
            "by up to 20% either way; 1 moves none)"
        )
    intervals = dict(intervals or {})
    unknown = sorted(set(intervals) - set(parameter_names(scenario)))
    if unknown:
        raise ScenarioError(
            f"perturbation intervals name {len(unknown)} parameters scenario "
            f"{scenario.name!r} does not have (first: {unknown[0]!r}); give the fit report "
            "written beside this scenario"
        )
    for name, (low, high) in intervals.items():
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ScenarioError(
                f"perturbation interval for {name}: [{low}, {high}] is not low <= high; "
                "fix the fit report"
            )
    log_f = math.log(factor)

    def draw(name: str, value: float, bounds: tuple[float, float]) -> float:
        if name in intervals:
            low, high = intervals[name]
            new = float(rng.uniform(low, high)) if high > low else float(low)
        else:
            new = value * math.exp(float(rng.uniform(-log_f, log_f))) if log_f else value
        return float(np.clip(new, *bounds))

    def moved(obj, prefix: str, part: str):
        changes = {
            k: draw(f"{prefix}.{k}", getattr(obj, k), bounds)
            for k, bounds in PERTURBED[part].items()
        }
        return dataclasses.replace(obj, **changes)

    products = tuple(moved(p, f"product.{p.name}", "product") for p in scenario.products)
    channels = tuple(
        dataclasses.replace(
            c,
            **{
                k: draw(f"channel.{c.name}.{k}", getattr(c, k), bounds)
                for k, bounds in _channel_fields(c).items()
            },
        )
        for c in scenario.channels
    )
    arms = [moved(a, f"arm.{a.product}/{a.channel}", "arm") for a in scenario.arms]
    lift = _cvr_lift(scenario)
    arms = [
        dataclasses.replace(a, cvr=min(a.cvr, max(orig.cvr, 1.0 / lift[k])))
        for k, (a, orig) in enumerate(zip(arms, scenario.arms, strict=True))
    ]
    return scenario.replace(products=products, channels=channels, arms=tuple(arms))


#: Spawn key of the perturbation's random stream, apart from the market's own.
_PERTURB_STREAM = 0x7E57


@dataclass(frozen=True)
class Perturbation:
    """How :func:`perturb_scenario` moves a scenario: a factor and, optionally, intervals
    (from the twin's fit report, :func:`bidder.twin.load_intervals`)."""

    factor: float = 1.0
    intervals: tuple[tuple[str, tuple[float, float]], ...] = ()

    def draw(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        return perturb_scenario(scenario, rng, self.factor, dict(self.intervals))

    def for_seed(self, scenario: Scenario, seed: int) -> Scenario:
        """The market of episode ``seed``: the same for every strategy of that episode,
        drawn from a stream apart from the market's own noise."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, _PERTURB_STREAM]))
        return self.draw(scenario, rng)

    def describe(self) -> dict:
        return {"factor": self.factor, "intervals": len(self.intervals)}


def _channel_fields(channel: Channel) -> dict[str, tuple[float, float]]:
    """The fields of ``channel`` that :func:`perturb_scenario` moves, with their bounds:
    a commission channel's going rate instead of an auction's price level and spread, and
    a gamma channel's spread (its coefficient of variation) at most 1."""
    if channel.price_family == "gamma" and not channel.commission:
        return {
            **PERTURBED["channel"],
            "price_sigma": (PERTURBED["channel"]["price_sigma"][0], 1.0),
        }
    if not channel.commission:
        return PERTURBED["channel"]
    fields = {
        k: v for k, v in PERTURBED["channel"].items() if k not in ("price_cpm", "price_sigma")
    }
    return {"going_rate": (1e-6, channel.max_rate), **fields}


def _cvr_lift(scenario: Scenario) -> np.ndarray:
    """Per arm, the most its conversion rate is multiplied by in any hour (shocks)."""
    if not any(s.kind in ("price_cut", "promotion") and s.factor > 1 for s in scenario.shocks):
        return np.ones(len(scenario.arms))
    market = build_episode(scenario)
    base = np.array([a.cvr for a in scenario.arms])
    return np.maximum(market.cvr.max(axis=0) / base, 1.0)
