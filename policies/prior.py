"""What a strategy knows before the campaign starts: its prior market.

Every strategy except the clairvoyant oracle starts from a prior, chosen by ``--prior``:

* ``fitted`` (the default): the market the nightly job's own :func:`bidder.recommend.fit_market`
  fits from :data:`HISTORY_DAYS` days of hourly logs, simulated on the same scenario
  (without its shocks) with the ``pid`` pacer on seeds disjoint from the episode's: what
  an advertiser with two weeks of history knows. It is built from logs alone, so it knows
  only what the logs show: prices, traffic and rates, which channels charge the bid
  (first price), reserve prices where bids fell below them, and each channel's order
  delay; not GSP slots, price families other than log-normal, nor reacting rivals.
* ``cold``: a new product: every arm gets its channel's average traffic, CTR, CVR and
  order value over the scenario's arms, on plain second-price log-normal auctions.
* ``true``: the scenario's shock-free, noise-free truth, mechanisms included; for
  research (what the bidder would do if it knew its market), labelled so in every output.

A prior is an :class:`~envs.market.EpisodeMarket` of the campaign's hours (row 0 = the
first hour); :func:`prior_market` builds it, :func:`market_from_fit` turns any fitted
24-hour market (one from real logs, say) into one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

import numpy as np

from envs.errors import InputError
from envs.market import EpisodeMarket, build_episode
from envs.mechanisms import attribution_of, auction_mechanism
from envs.scenario import Scenario

PRIOR_MODES: tuple[str, ...] = ("fitted", "cold", "true")
DEFAULT_PRIOR = "fitted"
#: Days of simulated history behind a fitted prior.
HISTORY_DAYS = 14
#: Root of the history seeds: a fitted prior's history is seeded from this and the
#: episode's seed, a stream no episode draws from.
HISTORY_ENTROPY = 71_000_353
#: The pacer whose logs make the history (it bids every arm, so every auction is seen).
HISTORY_STRATEGY = "pid"
#: Per-hour fields of a market.
_HOURLY = ("traffic", "price_median", "ctr", "cvr", "aov")


class PriorError(InputError):
    """An unknown prior mode."""


def check_prior(mode: str) -> str:
    if mode not in PRIOR_MODES:
        raise PriorError(f"prior {mode!r}: unknown; use one of {', '.join(PRIOR_MODES)}")
    return mode


def history_seed(seed: int) -> int:
    """The seed of the history behind the fitted prior of an episode seeded ``seed``."""
    return int(np.random.SeedSequence([HISTORY_ENTROPY, int(seed)]).generate_state(1)[0])


def true_prior(scenario: Scenario) -> EpisodeMarket:
    """The scenario's typical campaign: no shocks, no noise, every mechanism known."""
    return build_episode(scenario.replace(shocks=()))


def _plain(market: EpisodeMarket) -> EpisodeMarket:
    """The same market seen as plain second-price auctions with orders in their hour; the
    arms paid by commission stay so (how a channel is paid is the advertiser's own
    contract, not something to learn)."""
    mechanism = market.mechanism
    if mechanism is not None and mechanism.any_commission:
        mechanism = auction_mechanism(
            np.zeros(len(mechanism.commission), bool),
            market.price_sigma,
            mechanism.channel_of_arm,
            commission=mechanism.commission,
        )
    else:
        mechanism = None
    return dataclasses.replace(market, mechanism=mechanism, attribution=None, delay_q=None)


def cold_prior(scenario: Scenario) -> EpisodeMarket:
    """Channel-level averages over the scenario's arms: a product without history."""
    market = _plain(true_prior(scenario))
    channel = np.array([a.channel for a in scenario.arms])
    changes = {}
    for name in ("traffic", "ctr", "cvr", "aov"):
        values = getattr(market, name)
        averaged = np.empty_like(values)
        for c in np.unique(channel):
            arms = channel == c
            averaged[:, arms] = values[:, arms].mean(axis=1, keepdims=True)
        changes[name] = averaged
    return dataclasses.replace(market, **changes)


def market_from_fit(
    fitted_market: EpisodeMarket,
    fitted_arms: list[tuple[str, str]],
    scenario: Scenario,
    weekday_factors: np.ndarray | None = None,
    fitted_weekday: int | None = None,
) -> EpisodeMarket:
    """A fitted 24-hour market (hours 0-23) laid over a scenario's hours and arms (see
    :func:`lay_over`)."""
    return lay_over(
        fitted_market,
        fitted_arms,
        [(a.product, a.channel) for a in scenario.arms],
        start_hour=scenario.start_hour,
        horizon_hours=scenario.horizon_hours,
        start_weekday=scenario.start_weekday,
        attribution_window_hours=scenario.attribution_window_hours,
        weekday_factors=weekday_factors,
        fitted_weekday=fitted_weekday,
    )


def lay_over(
    fitted_market: EpisodeMarket,
    fitted_arms: list[tuple[str, str]],
    arms: list[tuple[str, str]],
    *,
    start_hour: int,
    horizon_hours: int,
    start_weekday: int,
    attribution_window_hours: int,
    weekday_factors: np.ndarray | None = None,
    fitted_weekday: int | None = None,
) -> EpisodeMarket:
    """A fitted 24-hour market (hours 0-23) laid over a campaign's hours and arms.

    Hour ``t`` of the campaign takes the fitted hour of day ``(start_hour + t) % 24``;
    with ``weekday_factors`` its traffic is moved from ``fitted_weekday`` to the
    campaign hour's weekday (``start_weekday``: the first hour's, Monday 0). Arms are
    matched by (product, channel); an arm the history never saw gets no traffic (it is
    not bid). A fitted order delay is kept, and the campaign's attribution of each hour's
    orders follows from it and the attribution window.
    """
    index = {arm: i for i, arm in enumerate(fitted_arms)}
    columns = [index.get(tuple(arm), -1) for arm in arms]
    known = np.array([c >= 0 for c in columns])
    cols = np.array([max(c, 0) for c in columns])
    clock = start_hour + np.arange(horizon_hours)
    hour = clock % 24
    per_hour = {name: getattr(fitted_market, name)[hour][:, cols] for name in _HOURLY}
    if weekday_factors is not None and fitted_weekday is not None:
        weekday = (start_weekday + clock // 24) % 7
        shift = weekday_factors[weekday] / weekday_factors[fitted_weekday]
        per_hour["traffic"] = per_hour["traffic"] * shift[:, None]
    per_hour["traffic"] = np.where(known[None, :], per_hour["traffic"], 0.0)
    per_arm = {
        name: getattr(fitted_market, name)[cols]
        for name in (
            "price_sigma",
            "aov_cv",
            "saturation",
            "fatigue_impressions",
            "fatigue_floor",
        )
    }
    delay_q = None
    if fitted_market.delay_q is not None:
        delay_q = np.where(known, fitted_market.delay_q[cols], 0.0)
    mechanism = None if fitted_market.mechanism is None else fitted_market.mechanism.select(cols)
    return EpisodeMarket(
        hour_of_day=hour,
        **per_hour,
        **per_arm,
        mechanism=mechanism,
        delay_q=delay_q,
        attribution=None
        if delay_q is None
        else attribution_of(delay_q, horizon_hours, attribution_window_hours),
    )


@functools.lru_cache(maxsize=256)
def fitted_prior(scenario: Scenario, seed: int) -> EpisodeMarket:
    """The market fitted from :data:`HISTORY_DAYS` days of simulated ``pid`` logs.

    The history is the scenario's typical day (no shocks; the daily share of the budget)
    over the two weeks before the campaign, seeded by :func:`history_seed`. Cached: the
    same scenario and seed give the same prior.
    """
    from bidder.recommend import fit_market
    from policies.simulate import default_start_date, simulate_logs

    campaign_start = default_start_date(scenario)
    history_start = campaign_start - dt.timedelta(days=HISTORY_DAYS)
    daily = scenario.replace(
        shocks=(),
        horizon_hours=24,
        start_hour=0,
        budget=scenario.budget * 24.0 / scenario.horizon_hours,
    )
    logs = simulate_logs(
        daily,
        HISTORY_STRATEGY,
        HISTORY_DAYS,
        history_seed(seed),
        start_date=history_start,
        prior="cold",
    )
    fit = fit_market(logs, campaign_start, source=f"history of {scenario.name}")
    return market_from_fit(
        fit.market, fit.arms, scenario, fit.weekday_factors, campaign_start.weekday()
    )


def prior_market(scenario: Scenario, mode: str, seed: int = 0) -> EpisodeMarket:
    """The prior a strategy starts an episode of ``scenario`` (seeded ``seed``) from."""
    check_prior(mode)
    if mode == "true":
        return true_prior(scenario)
    if mode == "cold":
        return cold_prior(scenario)
    return fitted_prior(scenario, int(seed))
