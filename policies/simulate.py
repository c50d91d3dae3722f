"""Hourly performance logs from the simulator, where the true market is known.

This is how the nightly job (``recommend``, ``diagnose``) is tested, and how a user tries
it before feeding real data: play a strategy in a scenario for several days and write the
hourly rows a real ad platform would export (``docs/logs.md``).

Multi-day rule (also in ``docs/logs.md``):

* The scenario's ``budget`` is the **daily** budget. Every day is one episode of
  :class:`~envs.AdMarketEnv` from 00:00 to 23:00, so a strategy starts each day with the
  full daily budget.
* Day ``d`` (0-based) covers campaign hours ``24 d`` to ``24 d + 23`` and falls on weekday
  ``(start_weekday + d) % 7``; the weekday factors of the scenario apply.
* A one-day scenario (``horizon_hours = 24``) is a typical day: it is replayed every day,
  its shocks included.
* A scenario with ``horizon_hours = 24 D`` is a D-day campaign whose shocks sit on
  campaign hours: each day receives the part of every shock that falls within it, so a
  shock on day 13 only (hours 312 to 335) is expressible. A shock that runs past midnight
  continues the next day; a ramp that crosses midnight starts again with the ramp hours
  it has left (an approximation, because one day's scenario cannot start a ramp midway).
* Day ``d`` is seeded from ``(seed, d)``: a seed fixes the whole history.
* Delayed orders (docs/market.md, section 3b) placed after a day's last hour appear in
  the next day's rows, in the hour they arrive, as on a platform's dashboard of a
  campaign that runs every day; those of the history's last day are in no row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from bidder.logs import MAX_LOG_DATE, MIN_LOG_DATE, LogError, episode_to_logs, validate_logs
from envs.errors import InputError
from envs.market_env import MAX_SEED, resolve_scenario
from envs.mechanisms import delay_probability
from envs.scenario import Scenario, Shock
from policies.evaluate import run_episode
from policies.strategy import make_strategy

HOURS_PER_DAY = 24
#: Longest simulated history: a year of hourly rows is already ~9,000 rows per arm.
MAX_DAYS = 366
#: Default first date when none is given: the first day of 2026 that falls on the
#: scenario's start weekday (2026-01-05 is a Monday).
DEFAULT_FIRST_MONDAY = dt.date(2026, 1, 5)
#: Third entry of the seed of the draw that deals a day's late orders over the next
#: day's hours (days themselves are seeded from ``(seed, day)``).
LATE_ARRIVAL_STREAM = 1


class SimulationError(InputError):
    """A simulation request that cannot be played (days, dates, scenario shape)."""


def campaign_days(scenario: Scenario) -> int:
    """Number of days a scenario's own horizon covers (1 for a one-day scenario).

    Raises:
        SimulationError: the horizon is not a whole number of days, or the scenario does
            not start at midnight.
    """
    if scenario.horizon_hours % HOURS_PER_DAY:
        raise SimulationError(
            f"scenario {scenario.name!r}: horizon_hours = {scenario.horizon_hours} is not a "
            "whole number of days; simulate plays whole days, set it to 24 or a multiple of 24"
        )
    if scenario.start_hour != 0:
        raise SimulationError(
            f"scenario {scenario.name!r}: start_hour = {scenario.start_hour}; simulated days "
            "run from 00:00, set start_hour = 0 and place shocks on campaign hours"
        )
    return scenario.horizon_hours // HOURS_PER_DAY


def _slice_shock(shock: Shock, day: int) -> Shock | None:
    """The part of a campaign-hour shock that falls on ``day``, in that day's hours."""
    day_start = day * HOURS_PER_DAY
    day_end = day_start + HOURS_PER_DAY
    shock_end = day_end if shock.end_hour is None else shock.end_hour
    if shock.start_hour >= day_end or shock_end <= day_start:
        return None
    start = max(shock.start_hour, day_start) - day_start
    end = min(shock_end, day_end) - day_start
    # Hours of ramp already behind us at midnight are not replayed.
    ramp_done = max(0, day_start - shock.start_hour)
    return dataclasses.replace(
        shock,
        start_hour=start,
        end_hour=None if end == HOURS_PER_DAY else end,
        ramp_hours=max(0, shock.ramp_hours - ramp_done),
    )


def day_scenario(scenario: Scenario, day: int) -> Scenario:
    """The one-day scenario of campaign day ``day`` (0-based), following the module's rule."""
    n_days = campaign_days(scenario)
    if n_days == 1:
        shocks = scenario.shocks
    else:
        sliced = (_slice_shock(shock, day) for shock in scenario.shocks)
        shocks = tuple(shock for shock in sliced if shock is not None)
    return scenario.replace(
        horizon_hours=HOURS_PER_DAY,
        shocks=shocks,
        start_weekday=(scenario.start_weekday + day) % 7,
    )


def _day_seed(seed: int, day: int) -> int:
    # Independent streams per day, yet one seed fixes the whole history.
    return int(np.random.SeedSequence([seed, day]).generate_state(1)[0])


def _play_day(strategy, one_day: Scenario, day_seed: int, prior: str, seed: int):
    """One simulated day. A fitted prior comes from one history, before the first day:
    fitted on the typical day (the scenario without its shocks), it is the same for every
    day, so it is fitted once per simulation."""
    if prior != "fitted":
        return run_episode(strategy, one_day, day_seed, prior)
    from policies.prior import fitted_prior

    knowledge = fitted_prior(one_day.replace(shocks=()), seed)
    return run_episode(strategy, one_day, day_seed, prior, prior_market=knowledge)


def _orders_after_midnight(
    result, one_day: Scenario, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """The day's delayed orders that arrived after its last hour (and their GMV), per
    hour of the next day and arm, (24, arms); ``None`` where there are none.

    The episode counts them as one lump per arm (those arriving within its attribution
    window); being geometric, each arrives ``l`` hours after the last played hour with
    probability proportional to ``q^l`` within that window, so they are dealt over the
    hours by a multinomial draw, each bringing its arm's mean late order value. Orders
    arriving in hours of the same day that were not played (the budget ran out) or after
    the next day are in no row."""
    if result.late_orders is None or not result.late_orders.any():
        return None
    q = delay_probability(
        np.array([one_day.channel(a.channel).order_delay_hours for a in one_day.arms])
    )
    window = max(int(result.late_window_hours), 1)
    first = int(result.hour_of_day[-1]) + 1  # hour of day of the first hour after the end
    lag = np.arange(window)
    next_day = first + lag - HOURS_PER_DAY  # hour of the next day each lag falls on
    lands = (next_day >= 0) & (next_day < HOURS_PER_DAY)
    orders = np.zeros((HOURS_PER_DAY, len(q)))
    gmv = np.zeros((HOURS_PER_DAY, len(q)))
    for k in np.flatnonzero(result.late_orders > 0):
        weight = q[k] ** lag
        counts = rng.multinomial(int(result.late_orders[k]), weight / weight.sum())
        orders[next_day[lands], k] = counts[lands]
        gmv[next_day[lands], k] = counts[lands] * (result.late_gmv[k] / result.late_orders[k])
    return orders, gmv


def _add_carried(frame: pd.DataFrame, carried: tuple[np.ndarray, np.ndarray], n_arms: int):
    """The previous day's orders placed in this day's hours, added to its rows (rows are
    hour-major, one per arm, as :func:`~bidder.logs.episode_to_logs` writes them)."""
    orders, gmv = carried
    hours = frame["hour"].to_numpy()
    arm = np.arange(len(frame)) % n_arms
    frame = frame.copy()
    frame["orders"] = frame["orders"] + orders[hours, arm].astype(np.int64)
    frame["gmv"] = np.round(frame["gmv"] + gmv[hours, arm], 2)
    return frame


def default_start_date(scenario: Scenario) -> dt.date:
    """The first date on or after 2026-01-05 that falls on the scenario's start weekday."""
    return DEFAULT_FIRST_MONDAY + dt.timedelta(days=scenario.start_weekday)


def simulate_logs(
    scenario: Scenario | str,
    strategy_name: str,
    days: int,
    seed: int,
    start_date: dt.date | None = None,
    strategy_options: Mapping[str, Any] | None = None,
    prior: str = "fitted",
    day_shocks: Mapping[int, tuple[Shock, ...]] | None = None,
    on_day: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Play ``strategy_name`` for ``days`` days of ``scenario`` and return the hourly logs.

    Args:
        scenario: a Scenario, a preset name or a path to a scenario TOML file; its
            ``budget`` is the daily budget.
        strategy_name: a registered strategy (``even``, ...); one instance plays every day,
            so a strategy that learns from earlier days may do so.
        days: number of days to simulate (1 to 366); at most the scenario's own number of
            days when its horizon covers several.
        seed: fixes the market of every day.
        start_date: date of the first day. Its weekday overrides the scenario's
            ``start_weekday``. Default: the first date on or after 2026-01-05 that falls
            on the scenario's start weekday.
        strategy_options: keyword arguments for the strategy's constructor (for example
            ``{"bid_multiplier": 2.0}`` for ``even``).
        prior: what the strategy knows before each day (:mod:`policies.prior`); a fitted
            prior is fitted once, for the first day, from a history before it.
        day_shocks: extra shocks for some days (0-based day -> shocks on that day's hours
            0-23), such as a creative wearing out on the last day, so that a history ends
            with an ROI drop to diagnose.
        on_day: called as ``on_day(done, days)`` after each simulated day (progress for
            the agent tools and other front ends).

    Returns:
        A validated log frame (``bidder.logs.validate_logs``), one row per hour, product
        and channel.

    Raises:
        SimulationError: bad ``days``, or a scenario whose shape cannot be played by day.
        InputError: an unknown scenario or strategy (its own subclass).
    """
    scenario = resolve_scenario(scenario)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise SimulationError(
            f"days = {days!r}: give a whole number of days between 1 and {MAX_DAYS}"
        )
    n_days = campaign_days(scenario)
    if n_days > 1 and days > n_days:
        raise SimulationError(
            f"days = {days}: scenario {scenario.name!r} covers {n_days} days "
            f"(horizon_hours = {scenario.horizon_hours}); ask for at most {n_days} days or "
            "lengthen horizon_hours"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SimulationError(f"seed = {seed!r}: give a whole number between 0 and {MAX_SEED}")
    if start_date is None:
        start_date = default_start_date(scenario)
    else:
        if (
            start_date < MIN_LOG_DATE
            or start_date.toordinal() + days - 1 > MAX_LOG_DATE.toordinal()
        ):
            raise SimulationError(
                f"start date {start_date.isoformat()} and {days} days: logs hold dates from "
                f"{MIN_LOG_DATE} to {MAX_LOG_DATE}; start between those dates, {days} days "
                "before the end at the latest"
            )
        scenario = scenario.replace(start_weekday=start_date.weekday())

    from policies.prior import check_prior

    check_prior(prior)
    strategy = make_strategy(strategy_name, **dict(strategy_options or {}))
    frames = []
    day_shocks = dict(day_shocks or {})
    for day, extra in day_shocks.items():
        if not (isinstance(day, int) and 0 <= day < days):
            raise SimulationError(
                f"a shock on day {day!r}: the simulated days are 0 to {days - 1}; give one of them"
            )
        # Checked before any day is played: a channel or product the scenario lacks.
        first = day_scenario(scenario, 0)
        first.replace(shocks=first.shocks + tuple(extra))
    carried = None  # the previous day's orders placed after its last hour
    for day in range(days):
        one_day = day_scenario(scenario, day)
        if day in day_shocks:
            one_day = one_day.replace(shocks=one_day.shocks + tuple(day_shocks[day]))
        result = _play_day(strategy, one_day, _day_seed(seed, day), prior, seed)
        frame = episode_to_logs(
            trace=result.trace,
            hour_of_day=result.hour_of_day,
            arms=one_day.arms,
            date=start_date + dt.timedelta(days=day),
            commission=[one_day.channel(a.channel).commission for a in one_day.arms],
        )
        if carried is not None:
            frame = _add_carried(frame, carried, len(one_day.arms))
        frames.append(frame)
        carried = _orders_after_midnight(
            result, one_day, np.random.default_rng([seed, day, LATE_ARRIVAL_STREAM])
        )
        if on_day is not None:
            on_day(day + 1, days)
    logs = pd.concat(frames, ignore_index=True)
    try:
        return validate_logs(logs, source=f"simulated {scenario.name}")
    except LogError as err:  # pragma: no cover - the simulator always writes valid rows
        raise RuntimeError(f"the simulator wrote invalid logs: {err}") from err
