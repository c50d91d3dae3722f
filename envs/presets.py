"""Built-in scenarios. Each is plain data; ``autopilot scenario show NAME`` prints its TOML.

The figures are orders of magnitude from PRODUCT.md: original creatives reach GPM around
100 and more in content channels, AI-generated ones 10-16; search traffic is small but
converts best; evening traffic peaks around 21:00.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from envs.scenario import Arm, Channel, Product, Scenario, ScenarioError, Shock

CHANNELS: dict[str, Channel] = {
    "feed": Channel(
        "feed", price_cpm=28.0, price_sigma=0.55, daypart_strength=1.0, competition_elasticity=0.4
    ),
    "live": Channel(
        "live", price_cpm=36.0, price_sigma=0.6, daypart_strength=1.3, competition_elasticity=0.5
    ),
    "search": Channel(
        "search", price_cpm=45.0, price_sigma=0.45, daypart_strength=0.7, competition_elasticity=0.3
    ),
    "mall": Channel(
        "mall", price_cpm=22.0, price_sigma=0.5, daypart_strength=0.8, competition_elasticity=0.3
    ),
    "affiliate": Channel(
        "affiliate",
        price_cpm=30.0,
        price_sigma=0.6,
        daypart_strength=1.1,
        competition_elasticity=0.4,
    ),
}

PRODUCTS: dict[str, Product] = {
    "serum": Product("serum", aov=159.0, aov_cv=0.35),
    "sneakers": Product("sneakers", aov=329.0, aov_cv=0.3),
    "snack-box": Product("snack-box", aov=59.0, aov_cv=0.5),
}

# Per channel: hourly opportunities per arm, CTR and CVR of an original creative for an
# average product; products scale CTR and CVR below.
_CHANNEL_RESPONSE: dict[str, tuple[float, float, float]] = {
    "feed": (60_000.0, 0.025, 0.025),
    "live": (25_000.0, 0.035, 0.030),
    "search": (4_000.0, 0.040, 0.050),
    "mall": (15_000.0, 0.020, 0.035),
    "affiliate": (20_000.0, 0.020, 0.020),
}
_PRODUCT_RESPONSE: dict[str, tuple[float, float]] = {
    "serum": (1.0, 1.0),
    "sneakers": (0.9, 0.55),
    "snack-box": (1.1, 1.7),
}
# AI-generated creatives: CTR and CVR multipliers that put GPM at 10-16 (PRODUCT.md).
_AIGC_CTR, _AIGC_CVR = 0.5, 0.45


def make_arm(product: str, channel: str, creative: str = "original", **overrides) -> Arm:
    traffic, ctr, cvr = _CHANNEL_RESPONSE[channel]
    ctr_mult, cvr_mult = _PRODUCT_RESPONSE.get(product, (1.0, 1.0))
    ctr, cvr = ctr * ctr_mult, cvr * cvr_mult
    if creative == "aigc":
        ctr, cvr = ctr * _AIGC_CTR, cvr * _AIGC_CVR
    fields = dict(
        product=product,
        channel=channel,
        traffic=traffic,
        ctr=round(ctr, 5),
        cvr=round(cvr, 5),
        creative=creative,
    )
    fields.update(overrides)
    return Arm(**fields)


def _market(products: list[str], channels: list[str], **scenario_fields) -> Scenario:
    return Scenario(
        products=tuple(PRODUCTS[p] for p in products),
        channels=tuple(CHANNELS[c] for c in channels),
        arms=tuple(make_arm(p, c) for p in products for c in channels),
        **scenario_fields,
    )


_SMALL = (["serum", "sneakers"], ["feed", "live", "search"])


def _default() -> Scenario:
    return _market(
        ["serum", "sneakers", "snack-box"],
        list(CHANNELS),
        name="default",
        budget=120_000.0,
        roi_target=4.0,
        description="3 products x 5 channels, one ordinary day, no shocks",
    )


def _steady() -> Scenario:
    sc = _market(
        *_SMALL,
        name="steady",
        budget=60_000.0,
        roi_target=5.0,
        description="2 products x 3 channels, flat day, no shocks",
    )
    flat = tuple(
        Channel(c.name, c.price_cpm, c.price_sigma, 0.3, c.competition_elasticity)
        for c in sc.channels
    )
    return sc.replace(channels=flat, traffic_noise=0.05)


def _evening_peak() -> Scenario:
    sc = _market(
        *_SMALL,
        name="evening-peak",
        budget=60_000.0,
        roi_target=5.0,
        description="sharp evening traffic peak with pricier evening auctions",
    )
    sharp = tuple(Channel(c.name, c.price_cpm, c.price_sigma, 1.6, 0.6) for c in sc.channels)
    return sc.replace(channels=sharp)


def _bid_war() -> Scenario:
    return _market(
        *_SMALL,
        name="bid-war",
        budget=60_000.0,
        roi_target=5.0,
        description="a competitor bid war doubles feed and live prices from 12:00",
        shocks=(
            Shock("bid_war", start_hour=12, factor=2.0, channel="feed"),
            Shock("bid_war", start_hour=12, factor=2.0, channel="live"),
        ),
    )


def _creative_fatigue() -> Scenario:
    sc = _market(
        *_SMALL,
        name="creative-fatigue",
        budget=60_000.0,
        roi_target=5.0,
        description="the serum's feed and live creatives wear out from 08:00",
        shocks=(
            Shock(
                "creative_fatigue",
                start_hour=8,
                factor=0.35,
                product="serum",
                channel="feed",
                ramp_hours=8,
            ),
            Shock(
                "creative_fatigue",
                start_hour=8,
                factor=0.35,
                product="serum",
                channel="live",
                ramp_hours=8,
            ),
        ),
    )
    worn = tuple(dataclasses.replace(a, fatigue_impressions=2_000_000.0) for a in sc.arms)
    return sc.replace(arms=worn)


def _traffic_shift() -> Scenario:
    return _market(
        *_SMALL,
        name="traffic-shift",
        budget=60_000.0,
        roi_target=5.0,
        description="60% of feed traffic moves to live rooms from 10:00",
        shocks=(
            Shock(
                "traffic_shift",
                start_hour=10,
                factor=0.6,
                channel="feed",
                to_channel="live",
                ramp_hours=3,
            ),
        ),
    )


def _promo_day() -> Scenario:
    return _market(
        *_SMALL,
        name="promo-day",
        budget=150_000.0,
        roi_target=6.0,
        start_weekday=5,
        description="a big promotion (11.11-style): traffic x2.5, CVR up, from 08:00",
        shocks=(Shock("promotion", start_hour=8, factor=2.5),),
    )


def _aigc_mix() -> Scenario:
    products = ["serum", "sneakers", "snack-box"]
    channels = ["feed", "live", "affiliate"]
    arms = tuple(
        make_arm(p, c, creative="aigc" if (c == "affiliate" or p == "snack-box") else "original")
        for p in products
        for c in channels
    )
    return Scenario(
        name="aigc-mix",
        budget=80_000.0,
        roi_target=3.2,
        products=tuple(PRODUCTS[p] for p in products),
        channels=tuple(CHANNELS[c] for c in channels),
        arms=arms,
        shocks=(Shock("aigc_throttle", start_hour=14, factor=0.3),),
        description="original and AI-generated creatives side by side; AIGC throttled at 14:00",
    )


def _with_channels(sc: Scenario, **per_channel: dict) -> Scenario:
    """``sc`` with some channels' fields changed: ``feed={"auction": "gsp"}``."""
    channels = tuple(dataclasses.replace(c, **per_channel.get(c.name, {})) for c in sc.channels)
    return sc.replace(channels=channels)


def _small_mechanism(name: str, description: str, **per_channel: dict) -> Scenario:
    """The classic 6-arm market (budget 60,000, ROI target 5) with some channels' market
    mechanisms changed."""
    sc = _market(*_SMALL, name=name, budget=60_000.0, roi_target=5.0, description=description)
    return _with_channels(sc, **per_channel)


def _gsp_feed() -> Scenario:
    slots = {"auction": "gsp", "slot_exposure": (1.0, 0.8, 0.6), "slot_price_ratio": 0.7}
    return _small_mechanism(
        "gsp-feed",
        "feed and live sell three ad slots by GSP; only exposed slots are paid",
        feed=slots,
        live=dict(slots, slot_exposure=(1.0, 0.7, 0.45)),
    )


def _first_price_search() -> Scenario:
    sc = _market(
        ["serum", "sneakers"],
        ["feed", "search", "mall"],
        name="first-price-search",
        budget=50_000.0,
        roi_target=5.0,
        description="search and mall run first-price auctions with reserve prices",
    )
    return _with_channels(
        sc,
        search={"auction": "first-price", "reserve_cpm": 20.0},
        mall={"auction": "first-price", "reserve_cpm": 10.0},
    )


def _heavy_tail() -> Scenario:
    brand = {"price_family": "mixture", "brand_share": 0.25, "brand_premium": 3.5}
    return _small_mechanism(
        "heavy-tail",
        "brand campaigns top a quarter of feed and live auctions; gamma search prices",
        feed=brand,
        live=dict(brand, brand_share=0.15, reserve_cpm=12.0),
        search={"price_family": "gamma", "price_sigma": 0.6},
    )


def _reactive_rivals() -> Scenario:
    return _small_mechanism(
        "reactive-rivals",
        "rivals pace against our share: feed and live prices rise as we win more",
        feed={"rival_elasticity": 0.8, "rival_memory_hours": 3.0},
        live={"rival_elasticity": 1.0, "rival_memory_hours": 2.0},
        search={"rival_elasticity": 0.5, "rival_memory_hours": 4.0},
    )


def _delayed_orders() -> Scenario:
    return _small_mechanism(
        "delayed-orders",
        "orders arrive hours after their clicks (mean 4 h feed, 6 h live, 2 h search)",
        feed={"order_delay_hours": 4.0},
        live={"order_delay_hours": 6.0},
        search={"order_delay_hours": 2.0},
    )


def _real_world() -> Scenario:
    sc = _market(
        ["serum", "sneakers", "snack-box"],
        list(CHANNELS),
        name="real-world",
        budget=120_000.0,
        roi_target=4.0,
        description="every mechanism at once: GSP slots, first price, heavy tails, rivals, "
        "delays, influencers paid by commission",
    )
    return _with_channels(
        sc,
        feed={
            "auction": "gsp",
            "price_family": "mixture",
            "brand_share": 0.2,
            "rival_elasticity": 0.6,
            "order_delay_hours": 3.0,
        },
        live={
            "auction": "gsp",
            "slot_exposure": (1.0, 0.7, 0.45),
            "rival_elasticity": 0.8,
            "rival_memory_hours": 2.0,
            "order_delay_hours": 5.0,
        },
        search={
            "auction": "first-price",
            "price_family": "gamma",
            "reserve_cpm": 20.0,
            "order_delay_hours": 2.0,
        },
        mall={"price_family": "gamma", "price_sigma": 0.45, "reserve_cpm": 8.0},
        affiliate={
            "payment": "commission",
            "going_rate": 0.2,
            "max_rate": 0.5,
            "supply_lag_hours": 18.0,
        },
    )


#: The influencer channel paid by commission: a share of the GMV it sells, no auction.
COMMISSION_AFFILIATE = Channel(
    "affiliate",
    payment="commission",
    going_rate=0.25,
    max_rate=0.5,
    supply_lag_hours=12.0,
    daypart_strength=1.1,
    competition_elasticity=0.2,
)


def _commission_affiliate() -> Scenario:
    sc = _market(
        ["serum", "sneakers", "snack-box"],
        ["feed", "live", "affiliate"],
        name="commission-affiliate",
        budget=90_000.0,
        roi_target=4.0,
        description="influencers paid a commission per sale beside feed and live auctions",
    )
    channels = tuple(COMMISSION_AFFILIATE if c.name == "affiliate" else c for c in sc.channels)
    # Influencers reach more people than one ad slot: twice the auction arm's traffic.
    arms = tuple(
        dataclasses.replace(a, traffic=2 * a.traffic) if a.channel == "affiliate" else a
        for a in sc.arms
    )
    return sc.replace(channels=channels, arms=arms)


PRESETS: dict[str, Callable[[], Scenario]] = {
    "default": _default,
    "steady": _steady,
    "evening-peak": _evening_peak,
    "bid-war": _bid_war,
    "creative-fatigue": _creative_fatigue,
    "traffic-shift": _traffic_shift,
    "promo-day": _promo_day,
    "aigc-mix": _aigc_mix,
    "gsp-feed": _gsp_feed,
    "first-price-search": _first_price_search,
    "heavy-tail": _heavy_tail,
    "reactive-rivals": _reactive_rivals,
    "delayed-orders": _delayed_orders,
    "real-world": _real_world,
    "commission-affiliate": _commission_affiliate,
}
#: The eight presets of the first market model (one second-price auction per arm, orders
#: in the click's hour). Their seeded episodes are pinned bit for bit.
CLASSIC_PRESETS: tuple[str, ...] = tuple(list(PRESETS)[:8])
#: Presets of the market mechanisms beyond it (docs/market.md, "Mechanisms").
MECHANISM_PRESETS: tuple[str, ...] = tuple(list(PRESETS)[8:])
#: Presets whose market changes during the day.
SHOCK_PRESETS: tuple[str, ...] = (
    "bid-war",
    "creative-fatigue",
    "traffic-shift",
    "promo-day",
    "aigc-mix",
)


def env_id(name: str) -> str:
    """Registered Gymnasium id of a preset: ``bid-war`` -> ``AdMarket-BidWar-v0``."""
    return "AdMarket-" + "".join(part.capitalize() for part in name.split("-")) + "-v0"


def get_scenario(name_or_path: str | Path) -> Scenario:
    """A preset by name, or a scenario TOML file by path."""
    key = str(name_or_path)
    if key in PRESETS:
        return PRESETS[key]()
    path = Path(key)
    if path.suffix == ".toml" or path.exists():
        return Scenario.load(path)
    raise ScenarioError(
        f"scenario {key!r}: neither a preset nor a file; use one of {', '.join(PRESETS)} "
        "or a path to a .toml file"
    )
