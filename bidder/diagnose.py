"""ROI-drop diagnosis from hourly performance logs.

For one date (by default the last in the history) every unit (the whole campaign, each
product, each arm = product x channel) is compared with a trailing baseline: the previous
``baseline_days`` dates of the history, restricted to the hours the date itself has, so a
day cut short is compared like with like.

**Decomposition.** For one arm ``ROI = CTR x CVR x AOV x 1000 / CPM`` exactly, so

    dln ROI = dln CTR + dln CVR + dln AOV - dln CPM.

For a group of arms ``ROI = sum_k s_k ROI_k`` with ``s_k`` the arms' spend shares. Its
log-change splits exactly into a *within* part (every arm's ROI change at the baseline
spend shares; split over arms with log-mean Divisia weights, then over the four factors)
and a *mix* part (the shares moving). The mix part is split in two, in sequence: the shares
the arms would have had if only their auction opportunities had changed (impressions /
win rate; impressions where no win rate is logged) give the **traffic shift**; what is
left (bids, win rates, budget pacing) is **spend mix**.

**Causes.** Each factor maps to a cause: CTR -> creative decline, CVR -> competitor price
cut, AOV -> order value change, CPM -> competitor pressure (the part matched by our own bid
rising is own bid increase), mix -> traffic shift and spend mix. A cause's share is its
part of the sum of the negative contributions.

**Commission arms** (a ``commission_rate`` in the logs; docs/market.md, section 3c) return
exactly ``1 / rate``, so their own ROI moves only with the rate: **commission rate
increase**. Their volume moves the mix: before the traffic shift of the other arms, the
shares they would have had if only their influencer traffic had moved give **influencer
supply** (an influencer left), and after it, the shares if only their share of that
traffic had moved beyond what their own rate explains (at ``1 - exp(-r / g)``, the
baseline's going rate ``g`` at the date's rate) give **rival commission** (rival merchants
raised their rates).

**Significance.** A unit's drop is reported only when it has volume (at least
``MIN_BASELINE_ORDERS`` orders per baseline day) and its log-change of ROI falls below
``-max(MIN_LOG_DROP, Z_SCORE * sigma)``, where ``sigma`` is the larger of the baseline's
day-to-day spread of log ROI and the counting noise of its orders, both scaled for
comparing one day with a mean of ``n`` days. Noise alone then rarely raises an alarm.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from envs.errors import InputError

#: Trailing days the date is compared with.
DEFAULT_BASELINE_DAYS = 7
#: Fewer baseline days than this cannot estimate day-to-day variability.
MIN_BASELINE_DAYS = 3
#: A unit needs this many orders per baseline day to be judged (count noise below ~22%).
MIN_BASELINE_ORDERS = 20.0
#: Drops smaller than 10% are not worth a marketer's morning, however significant.
MIN_LOG_DROP = -math.log(0.9)
#: A drop must exceed this many standard deviations of the baseline's noise.
Z_SCORE = 3.5
#: Variance of log GMV per order: 1 + CV^2 of the order value, with CV ~ 0.45.
ORDER_VALUE_NOISE = 1.2
#: A unit that spent less than this share of its baseline spend on the date is not judged.
MIN_SPEND_SHARE = 0.1

#: Causes behind a smaller part of a drop are left out of the ranking (still in the JSON).
MIN_CAUSE_SHARE = 0.05

#: Cause -> (what it means, the action proposed).
CAUSES: dict[str, tuple[str, str]] = {
    "creative_decline": (
        "click-through rate fell at steady prices: the creative is wearing out",
        "refresh the creative: rotate in a new original video and pause the worn-out one",
    ),
    "competitor_pressure": (
        "clearing prices (CPM) rose and win rate fell: competitors bid up the auction",
        "do not chase the bid war: cap bids at the ROI target's break-even CPM and move "
        "budget to channels whose prices held",
    ),
    "own_bid_increase": (
        "our own bids rose and the price paid followed",
        "lower the bids back towards the ROI target's break-even CPM",
    ),
    "competitor_price_cut": (
        "conversion rate fell at steady click-through: shoppers buy elsewhere, likely after "
        "a competitor's price cut",
        "check competitors' prices; answer with a coupon or price match, or move budget to "
        "products whose conversion held",
    ),
    "order_value_change": (
        "average order value fell",
        "check discounts, coupon stacking and the product mix; promote bundles and "
        "higher-value items",
    ),
    "traffic_shift": (
        "auction opportunities moved between channels, towards lower-ROI arms",
        "follow the traffic: move budget and bids to the channels that gained it and cut "
        "them where it left",
    ),
    "spend_mix": (
        "spend moved towards lower-ROI arms for reasons other than traffic (bids, win "
        "rates, budget pacing)",
        "rebalance the budget towards the arms with the higher ROI (autopilot recommend)",
    ),
    "commission_rate_increase": (
        "our commission rate rose: an arm paid by commission returns exactly 1 / rate",
        "bring the rate back towards 1 / ROI target or below; autopilot recommend plans it",
    ),
    "influencer_supply": (
        "influencers brought less traffic to a commission arm that paid well (an "
        "influencer left or paused the product)",
        "re-engage or recruit influencers for the product (samples, a higher rate while "
        "the campaign's ROI allows it), or move budget to the auctions that held",
    ),
    "rival_commission": (
        "a commission arm took a smaller share of its influencers' traffic at its rate: "
        "rival merchants raised their commission rates",
        "match the going rate only as far as the ROI target allows (at most 1 / target on "
        "the arm), or move budget to the auctions",
    ),
}
#: Causes that only arms paid by commission have (docs/market.md, section 3c).
COMMISSION_CAUSES = ("commission_rate_increase", "influencer_supply", "rival_commission")

_FIGURES = ("impressions", "clicks", "orders", "spend", "gmv")


class DiagnosisError(InputError):
    """A diagnosis that cannot be made from the given history and date."""


@dataclass
class CauseShare:
    """One cause of a drop.

    Attributes:
        cause: a key of ``CAUSES``.
        contribution: its part of the log-change of ROI (negative: it lowered ROI).
        share: its part of the drop, 0-1, among the causes that lowered ROI.
        explanation: what the cause means.
        evidence: the figures behind it, one readable line.
        action: the proposed fix.
    """

    cause: str
    contribution: float
    share: float
    explanation: str
    evidence: str
    action: str


@dataclass
class UnitResult:
    """One unit (campaign, product or arm) on the diagnosed date.

    Attributes:
        scope: ``campaign``, ``product`` or ``arm``.
        product, channel: the unit's product and channel (``None``: all).
        roi, baseline_roi: ROI on the date and over the baseline (same hours).
        change: relative change of ROI (``-0.3`` = 30% lower).
        log_change: ``ln(roi / baseline_roi)``.
        threshold: the log-drop it had to exceed to be reported.
        dropped: whether the drop is significant.
        judged: whether the unit had enough volume to be judged; ``note`` says why not.
        contributions: every cause's contribution to ``log_change`` (they sum to it).
        causes: the causes that lowered ROI, largest first (only for drops).
    """

    scope: str
    product: str | None
    channel: str | None
    roi: float
    baseline_roi: float
    change: float
    log_change: float
    threshold: float
    dropped: bool
    judged: bool
    note: str = ""
    contributions: dict[str, float] = field(default_factory=dict)
    causes: list[CauseShare] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.scope == "campaign":
            return "campaign"
        if self.scope == "product":
            return f"product {self.product}"
        return f"{self.product} in {self.channel}"


@dataclass
class Diagnosis:
    """The diagnosis of one date.

    Attributes:
        date: the diagnosed date (YYYY-MM-DD).
        baseline_dates: the dates it was compared with.
        hours: hours of day compared.
        units: every unit examined, campaign first.
    """

    date: str
    baseline_dates: list[str]
    hours: list[int]
    units: list[UnitResult]

    @property
    def drops(self) -> list[UnitResult]:
        """Significant drops: campaign first, then products, then arms, worst first."""
        order = {"campaign": 0, "product": 1, "arm": 2}
        found = [unit for unit in self.units if unit.dropped]
        return sorted(found, key=lambda unit: (order[unit.scope], unit.log_change))

    @property
    def top_cause(self) -> str | None:
        """The first-ranked cause of the first drop, or ``None`` when nothing dropped."""
        drops = self.drops
        return drops[0].causes[0].cause if drops and drops[0].causes else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "date": self.date,
            "baseline_dates": self.baseline_dates,
            "hours": self.hours,
            "drop_found": bool(self.drops),
            "top_cause": self.top_cause,
            "drops": [_unit_dict(unit) for unit in self.drops],
            "units": [_unit_dict(unit) for unit in self.units],
        }


def _unit_dict(unit: UnitResult) -> dict[str, Any]:
    data = _finite(asdict(unit))
    data["name"] = unit.name
    return data


def _finite(value: Any) -> Any:
    """JSON has no infinity or NaN: they become ``None`` (e.g. an unjudged unit's threshold)."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# -- entry point --------------------------------------------------------------------------
def diagnose(
    logs: pd.DataFrame,
    date: str | pd.Timestamp | None = None,
    baseline_days: int = DEFAULT_BASELINE_DAYS,
) -> Diagnosis:
    """Find ROI drops on ``date`` and attribute them to causes.

    Args:
        logs: a clean log frame (``bidder.logs.read_logs`` or ``validate_logs``).
        date: the date to diagnose; default the last date in ``logs``.
        baseline_days: how many earlier dates of the history form the baseline (the
            latest ones before ``date``).

    Returns:
        The diagnosis; ``Diagnosis.drops`` lists the significant drops.

    Raises:
        DiagnosisError: the date is not in the history, or fewer than
            ``MIN_BASELINE_DAYS`` dates precede it.
    """
    dates = pd.DatetimeIndex(sorted(logs["date"].unique()))
    if date is None:
        day = dates[-1]
    else:
        try:
            day = pd.Timestamp(date).normalize()
        except (ValueError, TypeError):
            raise DiagnosisError(f"date {date!r} is not a date; write it as YYYY-MM-DD") from None
        if day not in dates:
            raise DiagnosisError(
                f"date {day:%Y-%m-%d} has no rows in the history, which covers "
                f"{dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}; pick a date with logs"
            )
    if isinstance(baseline_days, bool) or not isinstance(baseline_days, int) or baseline_days < 1:
        raise DiagnosisError(
            f"baseline days = {baseline_days!r}: give a whole number of days, e.g. 7"
        )
    earlier = dates[dates < day][-baseline_days:]
    if len(earlier) < MIN_BASELINE_DAYS:
        raise DiagnosisError(
            f"history too short: {len(earlier)} day(s) before {day:%Y-%m-%d}, at least "
            f"{MIN_BASELINE_DAYS} are needed to tell a drop from day-to-day noise; "
            "give a longer history or a later date"
        )

    on_day = logs[logs["date"] == day]
    hours = sorted(int(h) for h in on_day["hour"].unique())
    baseline = logs[logs["date"].isin(earlier) & logs["hour"].isin(hours)]
    has_win_rate = "win_rate" in logs.columns

    day_arms = _arm_table(on_day, has_win_rate)
    base_arms = _arm_table(baseline, has_win_rate) / len(earlier)
    per_day = baseline.groupby(["date", "product", "channel"])[["orders", "spend", "gmv"]].sum()
    arms = day_arms.index.union(base_arms.index)
    day_arms = day_arms.reindex(arms, fill_value=0.0)
    base_arms = base_arms.reindex(arms, fill_value=0.0)

    units = [_judge("campaign", None, None, base_arms, day_arms, per_day, len(earlier))]
    products = sorted(arms.get_level_values("product").unique())
    for product in products:
        members = arms[arms.get_level_values("product") == product]
        if len(members) > 1:
            units.append(
                _judge(
                    "product",
                    product,
                    None,
                    base_arms.loc[members],
                    day_arms.loc[members],
                    per_day,
                    len(earlier),
                )
            )
    for product, channel in arms:
        members = arms[
            (arms.get_level_values("product") == product)
            & (arms.get_level_values("channel") == channel)
        ]
        units.append(
            _judge(
                "arm",
                product,
                channel,
                base_arms.loc[members],
                day_arms.loc[members],
                per_day,
                len(earlier),
            )
        )
    return Diagnosis(
        date=f"{day:%Y-%m-%d}",
        baseline_dates=[f"{d:%Y-%m-%d}" for d in earlier],
        hours=hours,
        units=units,
    )


def _arm_table(rows: pd.DataFrame, has_win_rate: bool) -> pd.DataFrame:
    """Per arm sums of the figures, the auction opportunities and the mean bid in force."""
    table = rows.assign(
        # Impression-weighted bid: the bid that bought the day's impressions.
        bid_x_impressions=rows["bid"] * rows["impressions"],
        opportunities=(
            np.where(
                rows["win_rate"] > 0,
                rows["impressions"] / rows["win_rate"].where(rows["win_rate"] > 0, 1.0),
                0.0,
            )
            if has_win_rate
            else rows["impressions"].astype(float)
        ),
        win_rate_known=float(has_win_rate),
    )
    columns = [*_FIGURES, "bid_x_impressions", "opportunities"]
    if "commission_rate" in rows.columns:
        rate = rows["commission_rate"]
        table = table.assign(
            rate_x_impressions=rate.fillna(0.0) * rows["impressions"],
            commission_rows=rate.notna().astype(float),
        )
        columns += ["rate_x_impressions", "commission_rows"]
    return table.groupby(["product", "channel"])[columns].sum().astype(float)


# -- one unit -----------------------------------------------------------------------------
def _judge(
    scope: str,
    product: str | None,
    channel: str | None,
    base: pd.DataFrame,
    day: pd.DataFrame,
    per_day: pd.DataFrame,
    n_days: int,
) -> UnitResult:
    base_spend, day_spend = base["spend"].sum(), day["spend"].sum()
    base_orders, day_orders = base["orders"].sum(), day["orders"].sum()
    base_roi = base["gmv"].sum() / base_spend if base_spend > 0 else 0.0
    roi = day["gmv"].sum() / day_spend if day_spend > 0 else 0.0
    result = UnitResult(
        scope=scope,
        product=product,
        channel=channel,
        roi=roi,
        baseline_roi=base_roi,
        change=0.0,
        log_change=0.0,
        threshold=math.inf,
        dropped=False,
        judged=False,
    )
    if base_orders < MIN_BASELINE_ORDERS:
        result.note = (
            f"too little volume to judge: {base_orders:.0f} orders per baseline "
            f"day, fewer than {MIN_BASELINE_ORDERS:.0f}"
        )
        return result
    if day_spend < MIN_SPEND_SHARE * base_spend:
        result.note = (
            f"spent {day_spend:,.0f} against {base_spend:,.0f} per baseline day: "
            "too little to judge its ROI"
        )
        return result

    contributions = _decompose(base, day)
    log_change = float(sum(contributions.values()))
    result.judged = True
    result.log_change = log_change
    result.change = math.expm1(log_change)
    result.contributions = contributions

    # Day-to-day spread of the unit's log ROI over the baseline, same hours.
    mask = np.ones(len(per_day), dtype=bool)
    if product is not None:
        mask &= per_day.index.get_level_values("product") == product
    if channel is not None:
        mask &= per_day.index.get_level_values("channel") == channel
    daily = per_day[mask].groupby(level="date")[["spend", "gmv"]].sum()
    daily = daily[(daily["spend"] > 0) & (daily["gmv"] > 0)]
    spread = float(np.log(daily["gmv"] / daily["spend"]).std(ddof=1)) if len(daily) > 1 else 0.0
    spread_sigma = spread * math.sqrt(1.0 + 1.0 / n_days)
    count_sigma = math.sqrt(
        ORDER_VALUE_NOISE * (1.0 / max(day_orders, 1.0) + 1.0 / (n_days * base_orders))
    )
    result.threshold = max(MIN_LOG_DROP, Z_SCORE * max(spread_sigma, count_sigma))
    result.dropped = log_change < -result.threshold
    if result.dropped:
        result.causes = _rank_causes(contributions, base, day)
    return result


def _log_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Logarithmic mean ``(a - b) / ln(a / b)`` (``a`` where ``a == b``), elementwise."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (a - b) / np.log(a / b)
    return np.where(np.isclose(a, b, rtol=1e-12, atol=0.0), a, mean)


def _factors(fig: pd.DataFrame, aov_fallback: float) -> dict[str, np.ndarray]:
    """CTR, CVR, AOV and CPM per arm; a zero count is replaced by half an event so that
    logs stay finite (one missing order is then a large but finite drop)."""
    impressions = fig["impressions"].to_numpy()
    clicks = np.maximum(fig["clicks"].to_numpy(), 0.5)
    orders = np.maximum(fig["orders"].to_numpy(), 0.5)
    gmv = np.where(fig["gmv"].to_numpy() > 0, fig["gmv"].to_numpy(), 0.5 * aov_fallback)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "ctr": clicks / impressions,
            "cvr": orders / clicks,
            "aov": gmv / orders,
            "cpm": 1000.0 * fig["spend"].to_numpy() / impressions,
        }


def _decompose(base: pd.DataFrame, day: pd.DataFrame) -> dict[str, float]:
    """Contributions of every cause to the unit's log-change of ROI (they sum to it)."""
    total_orders = base["orders"].sum() + day["orders"].sum()
    aov_fallback = (base["gmv"].sum() + day["gmv"].sum()) / max(total_orders, 1.0)
    f0, f1 = _factors(base, aov_fallback), _factors(day, aov_fallback)
    spend0, spend1 = base["spend"].to_numpy(), day["spend"].to_numpy()
    active = (
        (spend0 > 0)
        & (spend1 > 0)
        & (base["impressions"].to_numpy() > 0)
        & (day["impressions"].to_numpy() > 0)
    )
    roi0 = np.where(spend0 > 0, f0["ctr"] * f0["cvr"] * f0["aov"] * 1000.0 / f0["cpm"], 0.0)
    roi0 = np.nan_to_num(roi0)
    roi1 = np.where(active, f1["ctr"] * f1["cvr"] * f1["aov"] * 1000.0 / f1["cpm"], roi0)
    roi1 = np.nan_to_num(roi1)
    # An arm that only spent on the date has no baseline ROI; its own ROI stands in.
    roi1 = np.where(
        (spend0 <= 0) & (spend1 > 0),
        day["gmv"].to_numpy() / np.where(spend1 > 0, spend1, 1.0),
        roi1,
    )
    share0, share1 = spend0 / spend0.sum(), spend1 / spend1.sum()

    level0 = float(share0 @ roi0)  # baseline ROI
    within_level = float(share0 @ roi1)  # the date's arm ROIs at the baseline spend shares
    level1 = float(share1 @ roi1)  # the date's ROI
    weights = _log_mean(share0 * roi1, share0 * roi0) / _log_mean(within_level, level0)

    contributions = dict.fromkeys(CAUSES, 0.0)
    changes = {name: np.where(active, np.log(f1[name] / f0[name]), 0.0) for name in f0}
    paid = _commission_arms(base, day)
    if paid.any():
        # A commission arm's ROI is 1 / rate whatever it sells: its change is the rate's
        # alone (its CTR, CVR and order value move its commission with its GMV).
        own_roi = np.where(
            active & paid, np.log(np.where(paid, roi1 / np.where(roi0 > 0, roi0, 1.0), 1.0)), 0.0
        )
        contributions["commission_rate_increase"] = float(weights @ own_roi)
        for name in changes:
            changes[name] = np.where(paid, 0.0, changes[name])
    bid0 = _mean_bid(base)
    bid1 = _mean_bid(day)
    bid_change = np.where(
        active & (bid0 > 0) & (bid1 > 0),
        np.log(np.where(bid1 > 0, bid1, 1.0) / np.where(bid0 > 0, bid0, 1.0)),
        0.0,
    )
    price_rise = np.maximum(changes["cpm"], 0.0)
    # The part of a price rise matched by our own bid rising is self-inflicted.
    own = np.minimum(price_rise, np.maximum(bid_change, 0.0))
    contributions["creative_decline"] = float(weights @ changes["ctr"])
    contributions["competitor_price_cut"] = float(weights @ changes["cvr"])
    contributions["order_value_change"] = float(weights @ changes["aov"])
    contributions["own_bid_increase"] = float(weights @ -own)
    contributions["competitor_pressure"] = float(weights @ -(changes["cpm"] - own))

    # Mix: the shares the arms would have had if only their opportunities had moved
    # (first the commission arms' influencer traffic, then every other arm's), then, on
    # commission arms, if only their share of that traffic had moved beyond what their
    # own rate explains (rivals' rates); the rest is spend mix. Telescoping logs of
    # successive ROI levels, so the parts sum to the mix exactly.
    opp0, opp1 = base["opportunities"].to_numpy(), day["opportunities"].to_numpy()
    growth = np.where(opp0 > 0, opp1 / np.where(opp0 > 0, opp0, 1.0), 0.0)
    if not (level1 > 0 and within_level > 0):
        return contributions
    steps = []
    if paid.any():
        steps.append(("influencer_supply", np.where(paid, growth, 1.0)))
    steps.append(("traffic_shift", growth))
    if paid.any():
        steps.append(("rival_commission", growth * _rival_share_growth(base, day, paid)))
    level = within_level
    for cause, factor in steps:
        moved = share0 * factor
        if moved.sum() <= 0:
            continue
        next_level = float((moved / moved.sum()) @ roi1)
        if next_level > 0:
            contributions[cause] = math.log(next_level / level)
            level = next_level
    contributions["spend_mix"] = math.log(level1 / level)
    return contributions


def _commission_arms(base: pd.DataFrame, day: pd.DataFrame) -> np.ndarray:
    """Per arm, whether it is paid by commission (a rate in any of its rows)."""
    if "commission_rows" not in base.columns:
        return np.zeros(len(base), bool)
    return (base["commission_rows"].to_numpy() > 0) | (day["commission_rows"].to_numpy() > 0)


def _mean_rate(fig: pd.DataFrame) -> np.ndarray:
    impressions = fig["impressions"].to_numpy()
    return np.where(
        impressions > 0,
        fig["rate_x_impressions"].to_numpy() / np.where(impressions > 0, impressions, 1.0),
        0.0,
    )


def _rival_share_growth(base: pd.DataFrame, day: pd.DataFrame, paid: np.ndarray) -> np.ndarray:
    """Per commission arm, how its share of the influencers' traffic moved beyond what its
    own rate explains: influencers bring ``1 - exp(-r / g)`` at rate ``r`` and going rate
    ``g``; the baseline's ``g`` at the date's rate gives the share the arm would have had,
    and the date's share over it is the rivals' doing (1 elsewhere)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        w0 = np.clip(
            base["impressions"].to_numpy() / base["opportunities"].to_numpy(), 1e-6, 1 - 1e-6
        )
        w1 = np.clip(
            day["impressions"].to_numpy() / day["opportunities"].to_numpy(), 1e-6, 1 - 1e-6
        )
        r0, r1 = _mean_rate(base), _mean_rate(day)
        going0 = -r0 / np.log1p(-w0)
        expected = -np.expm1(-r1 / going0)
        ratio = w1 / expected
    ok = paid & np.isfinite(ratio) & (ratio > 0) & (r0 > 0) & (r1 > 0)
    return np.where(ok, ratio, 1.0)


def _mean_bid(fig: pd.DataFrame) -> np.ndarray:
    impressions = fig["impressions"].to_numpy()
    return np.where(
        impressions > 0,
        fig["bid_x_impressions"].to_numpy() / np.where(impressions > 0, impressions, 1.0),
        0.0,
    )


def _rank_causes(
    contributions: dict[str, float], base: pd.DataFrame, day: pd.DataFrame
) -> list[CauseShare]:
    harmful = {cause: value for cause, value in contributions.items() if value < 0}
    total = sum(-value for value in harmful.values())
    # Causes behind less than MIN_CAUSE_SHARE of the drop are noise; the first is kept.
    ranked = sorted(harmful.items(), key=lambda item: item[1])
    ranked = ranked[:1] + [item for item in ranked[1:] if -item[1] >= MIN_CAUSE_SHARE * total]
    return [
        CauseShare(
            cause=cause,
            contribution=value,
            share=-value / total,
            explanation=CAUSES[cause][0],
            evidence=_evidence(cause, base, day),
            action=CAUSES[cause][1],
        )
        for cause, value in ranked
    ]


def _ratio(numerator: str, denominator: str, fig: pd.DataFrame, scale: float = 1.0) -> float:
    bottom = fig[denominator].sum()
    return scale * fig[numerator].sum() / bottom if bottom > 0 else float("nan")


def _pct(before: float, after: float) -> str:
    if not (before > 0 and np.isfinite(after)):
        return "n/a"
    return f"{after / before - 1.0:+.0%}"


def _evidence(cause: str, base: pd.DataFrame, day: pd.DataFrame) -> str:
    """One line of the figures behind a cause: baseline -> date (change)."""
    if cause == "creative_decline":
        a, b = _ratio("clicks", "impressions", base), _ratio("clicks", "impressions", day)
        return f"CTR {a:.2%} -> {b:.2%} ({_pct(a, b)})"
    if cause == "competitor_price_cut":
        a, b = _ratio("orders", "clicks", base), _ratio("orders", "clicks", day)
        return f"CVR {a:.2%} -> {b:.2%} ({_pct(a, b)})"
    if cause == "order_value_change":
        a, b = _ratio("gmv", "orders", base), _ratio("gmv", "orders", day)
        return f"AOV {a:,.1f} -> {b:,.1f} ({_pct(a, b)})"
    if cause in ("competitor_pressure", "own_bid_increase"):
        a = _ratio("spend", "impressions", base, 1000.0)
        b = _ratio("spend", "impressions", day, 1000.0)
        text = f"CPM {a:,.2f} -> {b:,.2f} ({_pct(a, b)})"
        w0, w1 = (
            _ratio("impressions", "opportunities", base),
            _ratio("impressions", "opportunities", day),
        )
        if base["opportunities"].sum() != base["impressions"].sum():
            text += f", win rate {w0:.0%} -> {w1:.0%}"
        bid0, bid1 = (
            _ratio("bid_x_impressions", "impressions", base),
            _ratio("bid_x_impressions", "impressions", day),
        )
        return text + f", bid {bid0:,.2f} -> {bid1:,.2f} ({_pct(bid0, bid1)})"
    if cause in COMMISSION_CAUSES:
        paid = _commission_arms(base, day)
        b, d = base[paid], day[paid]
        r0 = _ratio("rate_x_impressions", "impressions", b)
        r1 = _ratio("rate_x_impressions", "impressions", d)
        text = f"commission rate {r0:.1%} -> {r1:.1%}"
        if cause == "influencer_supply":
            o0, o1 = b["opportunities"].sum(), d["opportunities"].sum()
            return f"influencer traffic {o0:,.0f} -> {o1:,.0f} ({_pct(o0, o1)}), " + text
        if cause == "rival_commission":
            w0, w1 = (
                _ratio("impressions", "opportunities", b),
                _ratio("impressions", "opportunities", d),
            )
            return f"share of influencer traffic {w0:.0%} -> {w1:.0%} ({_pct(w0, w1)}), " + text
        return text
    # Mix causes: where the traffic (or the spend) went, by channel.
    column = "opportunities" if cause == "traffic_shift" else "spend"
    label = "opportunity share" if cause == "traffic_shift" else "spend share"
    shares0 = base.groupby(level="channel")[column].sum()
    shares1 = day.groupby(level="channel")[column].sum()
    shares0, shares1 = shares0 / shares0.sum(), shares1 / shares1.sum()
    moves = (shares1 - shares0).sort_values()
    parts = [
        f"{channel} {shares0[channel]:.0%} -> {shares1[channel]:.0%}"
        for channel in moves.index
        if abs(moves[channel]) >= 0.01
    ]
    return f"{label}: " + (", ".join(parts) if parts else "little change")


# -- report -------------------------------------------------------------------------------
def format_report(diagnosis: Diagnosis) -> str:
    """A readable report of a diagnosis, for a marketer's morning."""
    lines = [
        f"ROI diagnosis for {diagnosis.date}, against {len(diagnosis.baseline_dates)} "
        f"baseline days ({diagnosis.baseline_dates[0]} to {diagnosis.baseline_dates[-1]}), "
        f"hours {diagnosis.hours[0]}-{diagnosis.hours[-1]}",
    ]
    campaign = diagnosis.units[0]
    lines.append(
        f"campaign ROI {campaign.roi:.2f} vs baseline {campaign.baseline_roi:.2f} "
        f"({campaign.change:+.0%})"
    )
    drops = diagnosis.drops
    if not drops:
        lines.append(
            "no significant ROI drop: every change is within the baseline's day-to-day variability"
        )
    for unit in drops:
        lines.append("")
        lines.append(
            f"DROP {unit.name}: ROI {unit.roi:.2f} vs {unit.baseline_roi:.2f} "
            f"({unit.change:+.0%}; alarm below {math.expm1(-unit.threshold):+.0%})"
        )
        for rank, cause in enumerate(unit.causes, start=1):
            lines.append(f"  {rank}. {cause.cause} {cause.share:.0%}: {cause.explanation}")
            lines.append(f"     evidence: {cause.evidence}")
            lines.append(f"     action: {cause.action}")
    skipped = [unit for unit in diagnosis.units if not unit.judged]
    if skipped:
        lines.append("")
        lines.append("not judged:")
        lines.extend(f"  {unit.name}: {unit.note}" for unit in skipped)
    return "\n".join(lines) + "\n"


__all__ = [
    "CAUSES",
    "CauseShare",
    "Diagnosis",
    "DiagnosisError",
    "UnitResult",
    "diagnose",
    "format_report",
]
