"""Scenarios: the data that defines one simulated campaign and its market.

A scenario is a frozen dataclass tree (products, channels, arms, shocks) validated on
construction, so an invalid scenario cannot exist. Scenarios round-trip through TOML:
``Scenario.from_toml(scenario.to_toml()) == scenario``. The equations that use these
fields are written down in ``docs/market.md``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomli_w

from envs.errors import InputError

#: Channels the market knows. Short-video feed, live-stream room, search (after videos),
#: mall / product card and affiliate (influencer) content, as in PRODUCT.md.
KNOWN_CHANNELS: tuple[str, ...] = ("feed", "live", "search", "mall", "affiliate")
CREATIVE_TYPES: tuple[str, ...] = ("original", "aigc")
SHOCK_KINDS: tuple[str, ...] = (
    "bid_war",
    "price_cut",
    "creative_fatigue",
    "traffic_shift",
    "promotion",
    "aigc_throttle",
)
#: Auction rules a channel may run (docs/market.md, "Auctions").
AUCTIONS: tuple[str, ...] = ("second-price", "gsp", "first-price")
#: Distributions of the highest competing bid (docs/market.md, "Clearing prices").
PRICE_FAMILIES: tuple[str, ...] = ("lognormal", "gamma", "mixture")
#: How a channel is paid (docs/market.md, "Commission channels"): ``cpm`` (an auction per
#: impression) or ``commission`` (a share of the GMV it sells, set per arm).
PAYMENTS: tuple[str, ...] = ("cpm", "commission")
#: The highest commission rate (share of GMV) any channel may allow.
MAX_COMMISSION_RATE = 0.9
#: Most ad slots a GSP auction may have.
MAX_SLOTS = 10
#: Default day-of-week traffic factors, Monday first: e-commerce traffic rises towards
#: the weekend.
DEFAULT_WEEKDAY_FACTORS: tuple[float, ...] = (0.95, 0.95, 0.97, 1.0, 1.03, 1.07, 1.03)
#: Upper bounds of the sizes a scenario may state (docs/market.md, "Bounds"): far beyond
#: any real campaign, and small enough that every random draw and sum stays finite.
MAX_BUDGET = 1e13
MAX_TRAFFIC = 1e9
MAX_PRICE_CPM = 1e6
MAX_AOV = 1e8
MAX_DESCRIPTION = 1000
#: The largest scenario file read (bytes).
MAX_SCENARIO_BYTES = 1024 * 1024


class ScenarioError(InputError):
    """A scenario (or scenario file) is invalid; the message names the field and the fix."""


def _fail(path: str, value: Any, problem: str, fix: str) -> None:
    raise ScenarioError(f"{path} = {value!r}: {problem}; {fix}")


def _check_number(
    path: str,
    value: Any,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    allow_inf: bool = False,
    fix: str,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(path, value, "expected a number", fix)
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not (allow_inf and value > 0)):
        _fail(path, value, "must be a finite number", fix)
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bound = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        _fail(path, value, f"must lie in {bound}", fix)
    return value


def _check_int(path: str, value: Any, *, low: int, high: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            _fail(path, value, "expected a whole number", fix)
    if not low <= value <= high:
        _fail(path, value, f"must lie in [{low}, {high}]", fix)
    return value


def _check_name(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(path, value, "expected a non-empty name", "give it a short text name")
    return value


@dataclass(frozen=True)
class Product:
    """A product being promoted.

    Attributes:
        name: unique product name.
        aov: mean order value in currency units (yuan).
        aov_cv: coefficient of variation of one order's value (order values are Gamma
            distributed with this mean and CV).
    """

    name: str
    aov: float
    aov_cv: float = 0.4

    def validate(self, path: str) -> None:
        _check_name(f"{path}.name", self.name)
        _check_number(
            f"{path}.aov",
            self.aov,
            low=0,
            low_open=True,
            high=MAX_AOV,
            fix="give the mean order value in currency units, e.g. 159.0",
        )
        _check_number(
            f"{path}.aov_cv",
            self.aov_cv,
            low=0,
            low_open=True,
            high=5,
            fix="use a coefficient of variation such as 0.4",
        )


@dataclass(frozen=True)
class Channel:
    """An ad channel with its own auction.

    Attributes:
        name: one of ``KNOWN_CHANNELS``.
        price_cpm: median clearing price per thousand impressions (CPM, yuan) at an
            average hour.
        price_sigma: log-scale spread of clearing prices; larger means more cheap and
            more expensive impressions around the median.
        daypart_strength: how strongly the channel's traffic follows the daypart shape
            (0 = flat, 1 = the default evening-peak shape, >1 sharper).
        competition_elasticity: how clearing prices follow traffic through the day;
            prices scale with ``daypart ** competition_elasticity``.
        auction: ``second-price`` (pay the highest competing bid), ``gsp`` (generalised
            second price over ``len(slot_exposure)`` slots: pay the next slot's price,
            only when the impression is exposed) or ``first-price`` (pay the own bid).
        slot_exposure: GSP only: the probability that an impression in slot 1, 2, ... is
            exposed (seen), non-increasing, each in (0, 1].
        slot_price_ratio: GSP only: the competing price of slot ``j`` is the top
            competing price times ``slot_price_ratio ** (j - 1)``.
        price_family: distribution of the top competing price: ``lognormal`` (median
            ``price_cpm``, log-spread ``price_sigma``), ``gamma`` (mean ``price_cpm``,
            coefficient of variation ``price_sigma``, at most 1) or ``mixture`` (the
            log-normal tail plus a block of brand campaigns, below).
        brand_share, brand_premium, brand_sigma: mixture only: the share of auctions a
            brand campaign tops, its median price as a multiple of ``price_cpm`` and its
            log-spread.
        reserve_cpm: the platform's reserve price (CPM): no impression sells below it,
            and a winner pays at least it; 0 for none.
        rival_elasticity: how rivals react to our share of the channel's impressions:
            clearing prices are multiplied by ``exp(rival_elasticity * share)``, where
            ``share`` is an exponential average of our hourly share; 0 for rivals that
            do not react.
        rival_memory_hours: the half-life, in hours, of that average.
        order_delay_hours: mean delay, in hours, between a click and its order (a
            geometric delay); 0 means orders arrive in the click's hour.
        payment: ``cpm`` (the auction above) or ``commission``: influencers promote the
            product for a share of the GMV they sell (docs/market.md, "Commission
            channels"). The lever is then a commission rate per arm, not a bid, and
            ``price_cpm``, the auction and price-family fields, the reserve and rivals
            do not apply (the last two must stay 0). An order delay does: the
            commission is paid when the sale arrives.
        going_rate: commission only: the rate at which influencers bring ``1 - 1/e``
            (63%) of an arm's traffic; at rate ``r`` they bring
            ``1 - exp(-r / going_rate)`` of it. The daypart's price elasticity and bid
            wars (rivals raising their rates) scale it as they scale a CPM.
        max_rate: commission only: the highest rate the platform lets a merchant set
            (at most ``MAX_COMMISSION_RATE``).
        supply_lag_hours: commission only: influencers answer a rate change with this
            mean lag (an exponential average of the rates set); 0 for at once.
    """

    name: str
    price_cpm: float = 0.0
    price_sigma: float = 0.5
    daypart_strength: float = 1.0
    competition_elasticity: float = 0.4
    auction: str = "second-price"
    slot_exposure: tuple[float, ...] = (1.0, 0.8, 0.6)
    slot_price_ratio: float = 0.7
    price_family: str = "lognormal"
    brand_share: float = 0.2
    brand_premium: float = 3.0
    brand_sigma: float = 0.25
    reserve_cpm: float = 0.0
    rival_elasticity: float = 0.0
    rival_memory_hours: float = 3.0
    order_delay_hours: float = 0.0
    payment: str = "cpm"
    going_rate: float = 0.1
    max_rate: float = 0.5
    supply_lag_hours: float = 12.0

    @property
    def commission(self) -> bool:
        return self.payment == "commission"

    @property
    def price_level(self) -> float:
        """What the lever is measured against: the median CPM, or the going rate."""
        return self.going_rate if self.commission else self.price_cpm

    @property
    def lever_cap(self) -> float:
        """The highest lever: eight times the price level, or the highest rate allowed."""
        return (
            min(8.0 * self.going_rate, self.max_rate) if self.commission else 8.0 * self.price_cpm
        )

    def __post_init__(self) -> None:
        if isinstance(self.slot_exposure, list):
            object.__setattr__(self, "slot_exposure", tuple(self.slot_exposure))
        if self.payment == "commission":
            # Auction settings have no effect on a commission channel: held at their
            # defaults, so that two such channels differ only where it matters (and a TOML
            # file leaves them out). Those that would mislead are refused in validate().
            for name in _AUCTION_ONLY:
                default = _CHANNEL_DEFAULTS[name]
                if getattr(self, name) != default:
                    object.__setattr__(self, name, default)

    def validate(self, path: str) -> None:
        if self.name not in KNOWN_CHANNELS:
            _fail(
                f"{path}.name",
                self.name,
                "unknown channel",
                f"use one of {', '.join(KNOWN_CHANNELS)}",
            )
        if self.payment not in PAYMENTS:
            _fail(
                f"{path}.payment",
                self.payment,
                "unknown payment",
                f"use one of {', '.join(PAYMENTS)}",
            )
        if self.commission:
            self._validate_commission(path)
        else:
            _check_number(
                f"{path}.price_cpm",
                self.price_cpm,
                low=0,
                low_open=True,
                high=MAX_PRICE_CPM,
                fix="give the median CPM in currency units, e.g. 30.0",
            )
        _check_number(
            f"{path}.price_sigma",
            self.price_sigma,
            low=0.05,
            high=2.0,
            fix="use a log-scale spread between 0.05 and 2, e.g. 0.5",
        )
        _check_number(
            f"{path}.daypart_strength",
            self.daypart_strength,
            low=0,
            high=1.8,
            fix="use 0 (flat) to 1.8 (sharp peaks); 1 is the default shape",
        )
        _check_number(
            f"{path}.competition_elasticity",
            self.competition_elasticity,
            low=0,
            high=2,
            fix="use a value between 0 and 2, e.g. 0.4",
        )
        self._validate_mechanisms(path)

    def _validate_commission(self, path: str) -> None:
        self._validate_delay(path)
        _check_number(
            f"{path}.max_rate",
            self.max_rate,
            low=0,
            low_open=True,
            high=MAX_COMMISSION_RATE,
            fix=f"give the highest commission rate as a share of GMV, at most {MAX_COMMISSION_RATE}, e.g. 0.5",
        )
        _check_number(
            f"{path}.going_rate",
            self.going_rate,
            low=0,
            low_open=True,
            high=self.max_rate,
            fix="give the rate (share of GMV) at which influencers bring 63% of the traffic, "
            "at most max_rate, e.g. 0.1",
        )
        _check_number(
            f"{path}.supply_lag_hours",
            self.supply_lag_hours,
            low=0,
            high=24 * 30,
            fix="give the influencers' mean lag in hours, e.g. 12, or 0 for at once",
        )
        for attr, default in (("auction", "second-price"), ("price_family", "lognormal"),
                              ("reserve_cpm", 0.0), ("rival_elasticity", 0.0)):  # fmt: skip
            if getattr(self, attr) != default:
                _fail(
                    f"{path}.{attr}",
                    getattr(self, attr),
                    "a commission channel has no auction, reserve or reacting rivals",
                    f"remove it (or set it to {default!r}), or make the channel payment = 'cpm'",
                )

    def _validate_mechanisms(self, path: str) -> None:
        for attr, known in (("auction", AUCTIONS), ("price_family", PRICE_FAMILIES)):
            value = getattr(self, attr)
            if not isinstance(value, str) or value not in known:
                _fail(f"{path}.{attr}", value, f"unknown {attr}", f"use one of {', '.join(known)}")
        slots = self.slot_exposure
        if not isinstance(slots, tuple) or not 1 <= len(slots) <= MAX_SLOTS:
            _fail(
                f"{path}.slot_exposure",
                slots,
                f"expected a list of 1 to {MAX_SLOTS} exposure probabilities",
                "write slot_exposure = [1.0, 0.8, 0.6], slot 1 first",
            )
        for i, value in enumerate(slots):
            _check_number(
                f"{path}.slot_exposure[{i}]",
                value,
                low=0,
                low_open=True,
                high=1,
                fix="an exposure probability lies in (0, 1]",
            )
            if i and value > slots[i - 1]:
                _fail(
                    f"{path}.slot_exposure",
                    list(slots),
                    "exposure must not increase from one slot to the next",
                    "order the slots from the most to the least exposed, e.g. [1.0, 0.8, 0.6]",
                )
        _check_number(
            f"{path}.slot_price_ratio",
            self.slot_price_ratio,
            low=0.05,
            high=0.99,
            fix="give the price ratio of one slot to the one above, e.g. 0.7",
        )
        if self.price_family == "gamma" and self.price_sigma > 1.0:
            _fail(
                f"{path}.price_sigma",
                self.price_sigma,
                "a gamma clearing price's coefficient of variation must be at most 1",
                "use price_sigma <= 1 with price_family = 'gamma', or a lognormal family",
            )
        _check_number(
            f"{path}.brand_share",
            self.brand_share,
            low=0,
            high=0.9,
            fix="give the share of auctions brand campaigns top, e.g. 0.2",
        )
        _check_number(
            f"{path}.brand_premium",
            self.brand_premium,
            low=1,
            high=100,
            fix="give the brand block's median price as a multiple of price_cpm, e.g. 3",
        )
        _check_number(
            f"{path}.brand_sigma",
            self.brand_sigma,
            low=0.05,
            high=2.0,
            fix="use a log-scale spread between 0.05 and 2, e.g. 0.25",
        )
        _check_number(
            f"{path}.reserve_cpm",
            self.reserve_cpm,
            low=0,
            high=MAX_PRICE_CPM,
            fix="give the reserve price in CPM, or 0 for none",
        )
        _check_number(
            f"{path}.rival_elasticity",
            self.rival_elasticity,
            low=0,
            high=5,
            fix="give a value between 0 (rivals do not react) and 5, e.g. 0.8",
        )
        _check_number(
            f"{path}.rival_memory_hours",
            self.rival_memory_hours,
            low=0.1,
            high=24 * 14,
            fix="give the half-life of the rivals' memory in hours, e.g. 3",
        )
        self._validate_delay(path)

    def _validate_delay(self, path: str) -> None:
        _check_number(
            f"{path}.order_delay_hours",
            self.order_delay_hours,
            low=0,
            high=24 * 7,
            fix="give the mean hours from click to order, e.g. 3, or 0 for no delay",
        )


#: Channel fields that only an auction reads: ignored on a commission channel.
_AUCTION_ONLY = (
    "price_cpm",
    "price_sigma",
    "slot_exposure",
    "slot_price_ratio",
    "brand_share",
    "brand_premium",
    "brand_sigma",
    "rival_memory_hours",
)
_CHANNEL_DEFAULTS = {
    f.name: f.default for f in fields(Channel) if f.default is not dataclasses.MISSING
}
#: Channel fields that only a commission channel reads.
_COMMISSION_ONLY = ("going_rate", "max_rate", "supply_lag_hours")


@dataclass(frozen=True)
class Arm:
    """One (product, channel) pair that gets its own bid.

    Attributes:
        product: name of a product in the scenario.
        channel: name of a channel in the scenario.
        traffic: mean impression opportunities per hour (before daypart and weekday).
        ctr: click-through rate of the arm's creative at first exposure.
        cvr: conversion rate, orders per click.
        creative: ``original`` or ``aigc`` (AI-generated).
        saturation: audience size relative to the hour's traffic; buying a large share of
            the traffic reaches the same people again, so effective impressions saturate.
        fatigue_impressions: cumulative impressions over which the creative's CTR decays
            towards ``fatigue_floor`` (creative wear-out); ``inf`` disables it.
        fatigue_floor: the CTR multiplier a fully worn-out creative keeps.
    """

    product: str
    channel: str
    traffic: float
    ctr: float
    cvr: float
    creative: str = "original"
    saturation: float = 3.0
    fatigue_impressions: float = math.inf
    fatigue_floor: float = 0.5

    @property
    def name(self) -> str:
        return f"{self.product}/{self.channel}"

    def validate(self, path: str) -> None:
        _check_name(f"{path}.product", self.product)
        if self.channel not in KNOWN_CHANNELS:
            _fail(
                f"{path}.channel",
                self.channel,
                "unknown channel",
                f"use one of {', '.join(KNOWN_CHANNELS)}",
            )
        _check_number(
            f"{path}.traffic",
            self.traffic,
            low=0,
            low_open=True,
            high=MAX_TRAFFIC,
            fix="give mean impression opportunities per hour, e.g. 20000",
        )
        _check_number(
            f"{path}.ctr",
            self.ctr,
            low=0,
            low_open=True,
            high=1,
            fix="a click-through rate is a fraction in (0, 1], e.g. 0.02 for 2%",
        )
        _check_number(
            f"{path}.cvr",
            self.cvr,
            low=0,
            low_open=True,
            high=1,
            fix="a conversion rate is a fraction in (0, 1], e.g. 0.03 for 3%",
        )
        if self.creative not in CREATIVE_TYPES:
            _fail(
                f"{path}.creative",
                self.creative,
                "unknown creative type",
                f"use one of {', '.join(CREATIVE_TYPES)}",
            )
        _check_number(
            f"{path}.saturation",
            self.saturation,
            low=0.05,
            high=1e6,
            fix="give the audience size relative to hourly traffic, e.g. 3.0",
        )
        _check_number(
            f"{path}.fatigue_impressions",
            self.fatigue_impressions,
            low=0,
            low_open=True,
            allow_inf=True,
            fix="give a positive impression count, or inf for none",
        )
        _check_number(
            f"{path}.fatigue_floor",
            self.fatigue_floor,
            low=0,
            high=1,
            fix="give the CTR multiplier of a worn-out creative, e.g. 0.5",
        )


@dataclass(frozen=True)
class Shock:
    """A scheduled market event.

    Attributes:
        kind: one of ``SHOCK_KINDS``:
            ``bid_war`` (clearing prices x factor), ``price_cut`` (a competitor cuts its
            price: CVR x factor), ``creative_fatigue`` (CTR x factor), ``traffic_shift``
            (a fraction ``factor`` of ``channel``'s traffic moves to ``to_channel``),
            ``promotion`` (traffic x factor, CVR x sqrt(factor), prices x factor**0.25),
            ``aigc_throttle`` (traffic of AI-generated creatives x factor).
        start_hour: first campaign hour (0-based, within the horizon) the shock acts.
        end_hour: first hour it no longer acts; ``None`` means until the end.
        factor: the multiplier (or the moved fraction for ``traffic_shift``).
        channel: restrict to this channel (``None``: every channel); the source channel
            of a traffic shift.
        product: restrict to this product (``None``: every product).
        to_channel: destination channel of a traffic shift.
        ramp_hours: hours over which the effect builds up linearly (0: at once).
    """

    kind: str
    start_hour: int
    factor: float
    end_hour: int | None = None
    channel: str | None = None
    product: str | None = None
    to_channel: str | None = None
    ramp_hours: int = 0

    def validate(self, path: str, horizon: int) -> None:
        if self.kind not in SHOCK_KINDS:
            _fail(
                f"{path}.kind",
                self.kind,
                "unknown shock kind",
                f"use one of {', '.join(SHOCK_KINDS)}",
            )
        _check_int(
            f"{path}.start_hour",
            self.start_hour,
            low=0,
            high=horizon - 1,
            fix=f"give a campaign hour between 0 and {horizon - 1} (the horizon)",
        )
        if self.end_hour is not None:
            _check_int(
                f"{path}.end_hour",
                self.end_hour,
                low=self.start_hour + 1,
                high=horizon,
                fix=f"give an hour after start_hour and at most {horizon}, or omit it",
            )
        high = 1.0 if self.kind == "traffic_shift" else 100.0
        _check_number(
            f"{path}.factor",
            self.factor,
            low=0,
            low_open=True,
            high=high,
            fix=(
                "the moved fraction of traffic must lie in (0, 1]"
                if self.kind == "traffic_shift"
                else "give a positive multiplier, e.g. 1.5"
            ),
        )
        for attr in ("channel", "to_channel", "product"):
            value = getattr(self, attr)
            if value is not None and not isinstance(value, str):
                _fail(
                    f"{path}.{attr}",
                    value,
                    "expected one name",
                    f'write {attr} = "name" (one shock per {attr}), or leave it out',
                )
        for attr in ("channel", "to_channel"):
            value = getattr(self, attr)
            if value is not None and value not in KNOWN_CHANNELS:
                _fail(
                    f"{path}.{attr}",
                    value,
                    "unknown channel",
                    f"use one of {', '.join(KNOWN_CHANNELS)}",
                )
        if self.kind == "traffic_shift":
            if self.channel is None or self.to_channel is None or self.channel == self.to_channel:
                _fail(
                    f"{path}.to_channel",
                    self.to_channel,
                    "a traffic shift needs two different channels",
                    "set channel (from) and to_channel (to)",
                )
        _check_int(
            f"{path}.ramp_hours",
            self.ramp_hours,
            low=0,
            high=24 * 366,
            fix="give a whole number of hours, 0 for an immediate effect",
        )


@dataclass(frozen=True)
class Scenario:
    """One campaign in one market.

    Attributes:
        name: scenario name (presets use kebab-case names).
        budget: total campaign budget in currency units; a hard limit.
        roi_target: the advertiser's target GMV / spend.
        products, channels, arms, shocks: the market's pieces (see their classes).
        horizon_hours: campaign length in hourly steps (24 = one day).
        start_hour: hour of day (0-23) of the first step.
        start_weekday: weekday of the first step (0 = Monday).
        traffic_noise: log-scale noise of hourly traffic per channel.
        weekday_factors: traffic multiplier per weekday, Monday first.
        description: one line for ``autopilot scenario list``.
        attribution_window_hours: how long after the campaign's last hour delayed
            orders still count for it (channels with ``order_delay_hours > 0``).
    """

    name: str
    budget: float
    roi_target: float
    products: tuple[Product, ...]
    channels: tuple[Channel, ...]
    arms: tuple[Arm, ...]
    shocks: tuple[Shock, ...] = ()
    horizon_hours: int = 24
    start_hour: int = 0
    start_weekday: int = 0
    traffic_noise: float = 0.1
    weekday_factors: tuple[float, ...] = DEFAULT_WEEKDAY_FACTORS
    description: str = ""
    attribution_window_hours: int = 24

    def __post_init__(self) -> None:
        # Normalise sequences so that equality and hashing do not depend on list vs tuple.
        for attr in ("products", "channels", "arms", "shocks", "weekday_factors"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        self._validate()

    # -- validation ---------------------------------------------------------------------
    def _validate(self) -> None:
        _check_name("name", self.name)
        if not isinstance(self.description, str) or len(self.description) > MAX_DESCRIPTION:
            _fail(
                "description",
                self.description,
                f"expected one line of text (at most {MAX_DESCRIPTION} characters)",
                'write description = "..."',
            )
        _check_number(
            "budget",
            self.budget,
            low=0,
            low_open=True,
            high=MAX_BUDGET,
            fix="give a positive total budget in currency units, e.g. 50000",
        )
        _check_number(
            "roi_target",
            self.roi_target,
            low=0,
            low_open=True,
            high=1000,
            fix="give the target GMV / spend ratio, e.g. 2.5",
        )
        _check_int(
            "horizon_hours",
            self.horizon_hours,
            low=1,
            high=24 * 366,
            fix="give the campaign length in hours, e.g. 24 for one day",
        )
        _check_int(
            "start_hour",
            self.start_hour,
            low=0,
            high=23,
            fix="give the hour of day of the first step, 0-23",
        )
        _check_int(
            "start_weekday",
            self.start_weekday,
            low=0,
            high=6,
            fix="give the weekday of the first step, 0 (Monday) to 6 (Sunday)",
        )
        _check_int(
            "attribution_window_hours",
            self.attribution_window_hours,
            low=0,
            high=24 * 30,
            fix="give the hours after the campaign's end that still count orders, e.g. 24",
        )
        _check_number(
            "traffic_noise",
            self.traffic_noise,
            low=0,
            high=2,
            fix="give a log-scale noise level such as 0.1",
        )
        if len(self.weekday_factors) != 7:
            _fail(
                "weekday_factors",
                list(self.weekday_factors),
                "needs 7 values",
                "give one positive factor per weekday, Monday first",
            )
        for i, value in enumerate(self.weekday_factors):
            _check_number(
                f"weekday_factors[{i}]",
                value,
                low=0,
                low_open=True,
                high=10,
                fix="give a positive traffic multiplier, e.g. 1.0",
            )
        if not self.products:
            _fail(
                "products", [], "a scenario needs at least one product", "add a [[products]] table"
            )
        if not self.arms:
            _fail("arms", [], "a scenario needs at least one arm", "add an [[arms]] table")
        for i, product in enumerate(self.products):
            product.validate(f"products[{i}]")
        for i, channel in enumerate(self.channels):
            channel.validate(f"channels[{i}]")
        self._check_unique("products", [p.name for p in self.products])
        self._check_unique("channels", [c.name for c in self.channels])
        product_names = {p.name for p in self.products}
        channel_names = {c.name for c in self.channels}
        for i, arm in enumerate(self.arms):
            arm.validate(f"arms[{i}]")
            if arm.product not in product_names:
                _fail(
                    f"arms[{i}].product",
                    arm.product,
                    "no such product in the scenario",
                    f"use one of {', '.join(sorted(product_names))} or add the product",
                )
            if arm.channel not in channel_names:
                _fail(
                    f"arms[{i}].channel",
                    arm.channel,
                    "no such channel in the scenario",
                    f"use one of {', '.join(sorted(channel_names))} or add a [[channels]] table",
                )
        self._check_unique("arms", [a.name for a in self.arms])
        for i, shock in enumerate(self.shocks):
            shock.validate(f"shocks[{i}]", self.horizon_hours)
            for attr in ("channel", "to_channel"):
                value = getattr(shock, attr)
                if value is not None and value not in channel_names:
                    _fail(
                        f"shocks[{i}].{attr}",
                        value,
                        "no such channel in the scenario",
                        f"use one of {', '.join(sorted(channel_names))}",
                    )
            if shock.product is not None and shock.product not in product_names:
                _fail(
                    f"shocks[{i}].product",
                    shock.product,
                    "no such product in the scenario",
                    f"use one of {', '.join(sorted(product_names))}",
                )
        self._check_effective_cvr()

    def _check_effective_cvr(self) -> None:
        """A conversion rate is a probability after the shocks too: price cuts and
        promotions multiply it. The market's own hourly CVR is checked (it knows which arms
        and hours each shock reaches), and only when such a shock raises CVR at all."""
        if not any(s.kind in ("price_cut", "promotion") and s.factor > 1 for s in self.shocks):
            return
        from envs.market import build_episode  # the market reads scenarios: import late

        cvr = build_episode(self).cvr
        worst = cvr.max(axis=0)
        for k, arm in enumerate(self.arms):
            if worst[k] > 1.0:
                hour = int(cvr[:, k].argmax())
                _fail(
                    f"arms[{k}].cvr",
                    arm.cvr,
                    f"the shocks (price_cut, promotion) lift it to {worst[k]:.3g} at campaign "
                    f"hour {hour}, and a conversion rate cannot exceed 1",
                    "lower those shocks' factors or the arm's cvr",
                )

    @staticmethod
    def _check_unique(path: str, names: list[str]) -> None:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                _fail(f"{path}[{i}]", name, "duplicate name", "give every entry a unique name")
            seen.add(name)

    # -- convenience --------------------------------------------------------------------
    @property
    def n_arms(self) -> int:
        return len(self.arms)

    @property
    def arm_names(self) -> list[str]:
        return [arm.name for arm in self.arms]

    def channel(self, name: str) -> Channel:
        return next(c for c in self.channels if c.name == name)

    def product(self, name: str) -> Product:
        return next(p for p in self.products if p.name == name)

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- TOML ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data for TOML; ``None`` fields are left out (TOML has no null)."""

        def plain(obj: Any) -> dict[str, Any]:
            out = {}
            skip: tuple[str, ...] = ()
            if isinstance(obj, Channel):
                # Each kind of channel writes only the settings it reads (and every other
                # the same as before commission channels existed).
                skip = (
                    (*_AUCTION_ONLY, "auction", "price_family", "reserve_cpm",
                     "rival_elasticity")
                    + (("order_delay_hours",) if obj.order_delay_hours == 0 else ())
                    if obj.commission
                    else ("payment", *_COMMISSION_ONLY)
                )  # fmt: skip
            for f in fields(obj):
                value = getattr(obj, f.name)
                if value is None or f.name in skip:
                    continue
                if isinstance(value, tuple):
                    value = [plain(v) if dataclasses.is_dataclass(v) else v for v in value]
                out[f.name] = value
            return out

        data = plain(self)
        # Scalars first, then the arrays of tables, so the file reads top to bottom.
        order = [f.name for f in fields(self) if f.name not in _TABLES] + list(_TABLES)
        return {key: data[key] for key in order if key in data and data[key] != []}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "scenario") -> Scenario:
        try:
            kwargs = _take_fields(cls, data, "")
            for key, item_cls in _TABLES.items():
                items = kwargs.get(key, [])
                if not isinstance(items, list):
                    _fail(key, items, "expected an array of tables", f"write [[{key}]] tables")
                kwargs[key] = tuple(
                    item_cls(**_take_fields(item_cls, item, f"{key}[{i}]"))
                    for i, item in enumerate(items)
                )
            if "weekday_factors" in kwargs:
                factors = kwargs["weekday_factors"]
                if not isinstance(factors, list):
                    _fail(
                        "weekday_factors",
                        factors,
                        "expected a list of 7 numbers",
                        "write weekday_factors = [1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.1], Monday first",
                    )
                kwargs["weekday_factors"] = tuple(factors)
            return cls(**kwargs)
        except ScenarioError as err:
            raise ScenarioError(f"{source}: {err}") from None

    @classmethod
    def from_toml(cls, text: str, source: str = "scenario") -> Scenario:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ScenarioError(f"{source}: not valid TOML ({err}); fix the syntax") from None
        except RecursionError:
            raise ScenarioError(
                f"{source}: the TOML nests too deeply to be a scenario; write flat tables as "
                "`autopilot scenario show default` prints them"
            ) from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Scenario:
        from envs.io import read_input_bytes

        path = Path(path)
        data = read_input_bytes(path, "scenario file", MAX_SCENARIO_BYTES, ScenarioError)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise ScenarioError(
                f"{path}: the scenario file is not UTF-8 text (byte {err.start}); save it as "
                "UTF-8 TOML"
            ) from None
        if "\x00" in text:
            raise ScenarioError(f"{path}: the scenario file holds NUL bytes; it is not TOML text")
        return cls.from_toml(text, source=str(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the scenario as TOML atomically (temporary file, then rename)."""
        from envs.io import atomic_write_text

        atomic_write_text(Path(path), self.to_toml())


_TABLES: dict[str, type] = {"products": Product, "channels": Channel, "arms": Arm, "shocks": Shock}


def _take_fields(cls: type, data: Any, path: str) -> dict[str, Any]:
    """Check a TOML table against a dataclass's fields: unknown and missing keys fail."""
    where = path or "the top level"
    if not isinstance(data, dict):
        _fail(path or "scenario", data, "expected a table", "write key = value pairs")
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            close = [k for k in known if k.startswith(key[:3])]
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            _fail(
                f"{path + '.' if path else ''}{key}",
                data[key],
                f"unknown key in {where}",
                f"remove it or fix the spelling ({hint})",
            )
    for name, f in known.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in data:
            _fail(
                f"{path + '.' if path else ''}{name}",
                None,
                "missing required key",
                f"add {name} = ... to {where}",
            )
    return dict(data)


__all__ = [
    "AUCTIONS",
    "Arm",
    "CREATIVE_TYPES",
    "Channel",
    "KNOWN_CHANNELS",
    "PRICE_FAMILIES",
    "Product",
    "SHOCK_KINDS",
    "Scenario",
    "ScenarioError",
    "Shock",
]
