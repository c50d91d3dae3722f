"""Baseline strategies: the simple rules a marketer or the industry would use.

Each is measured by the same evaluator as the autopilot, on the same seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs import AdMarketEnv
from envs.market import EpisodeMarket
from policies.strategy import Strategy, register_strategy

#: The smallest bid a strategy places to pause an arm (CPM); it wins next to nothing.
PAUSE_BID_CPM = 1e-3


def with_fixed_rates(env: AdMarketEnv, bids: np.ndarray) -> np.ndarray:
    """``bids`` with every commission arm at its channel's going rate: a marketer's rule
    of thumb sets one commission rate and leaves it (the baselines pace auctions only)."""
    commission = getattr(env, "commission", None)
    if commission is None or not commission.any():
        return bids
    return np.where(commission, env.price_cpm, bids)


@register_strategy("even")
class EvenSplit(Strategy):
    """Even split with a fixed bid.

    Every arm bids the channel's median clearing price (``bid_multiplier`` times it) and
    gets an equal share of the budget; an arm whose share is spent is paused.
    """

    def __init__(self, bid_multiplier: float = 1.0):
        self.bid_multiplier = bid_multiplier

    def reset(self, env: AdMarketEnv, prior: EpisodeMarket | None = None) -> None:
        super().reset(env, prior)
        self.arm_spend = np.zeros(env.n_arms)
        self.share = env.budget / env.n_arms

    def observe(self, info: dict[str, Any]) -> None:
        self.arm_spend += info["spend"]

    def act(self, observation: np.ndarray) -> np.ndarray:
        bids = with_fixed_rates(self.env, self.env.price_cpm * self.bid_multiplier)
        return np.where(self.arm_spend < self.share, bids, PAUSE_BID_CPM)


class _PacedStrategy(Strategy):
    """Shared bookkeeping for baselines that pace against observed results."""

    def reset(self, env: AdMarketEnv, prior: EpisodeMarket | None = None) -> None:
        super().reset(env, prior)
        self.t = 0
        self.spent = 0.0
        self.arm_spend = np.zeros(env.n_arms)
        self.arm_gmv = np.zeros(env.n_arms)
        self.arm_impressions = np.zeros(env.n_arms)
        self.last_spend = np.zeros(env.n_arms)

    def observe(self, info: dict[str, Any]) -> None:
        self.last_spend = np.asarray(info["spend"], dtype=float)
        self.spent += float(self.last_spend.sum())
        self.arm_spend += self.last_spend
        self.arm_gmv += info["gmv"]
        self.arm_impressions += info["impressions"]
        self.t += 1

    @property
    def hourly_allowance(self) -> float:
        """An even share of the remaining budget over the remaining hours."""
        hours_left = max(self.env.horizon - self.t, 1)
        return max(self.env.budget - self.spent, 0.0) / hours_left


@register_strategy("pid")
class PIDPacer(_PacedStrategy):
    """PID budget pacing, the standard industry pacer.

    One bid multiplier for every arm (on each channel's median price) is driven by the
    pacing error: the share of the budget that should be spent by now, following the
    typical day's traffic curve, minus the share actually spent. It knows nothing of
    ROI beyond starting at a bid that targets it loosely.
    """

    def __init__(self, kp: float = 2.0, ki: float = 0.3, kd: float = 0.5):
        self.kp, self.ki, self.kd = kp, ki, kd

    def reset(self, env: AdMarketEnv, prior: EpisodeMarket | None = None) -> None:
        super().reset(env, prior)
        typical = self.prior.traffic.sum(axis=1)
        self.pace = np.concatenate([[0.0], np.cumsum(typical) / typical.sum()])
        self.log_multiplier = 0.0
        self.integral = 0.0
        self.previous_error = 0.0

    def act(self, observation: np.ndarray) -> np.ndarray:
        if self.t > 0:
            error = self.pace[self.t] - self.spent / self.env.budget
            self.integral += error
            derivative = error - self.previous_error
            self.previous_error = error
            self.log_multiplier = float(
                np.clip(
                    self.log_multiplier
                    + self.kp * error
                    + self.ki * self.integral
                    + self.kd * derivative,
                    -2.0,
                    2.0,
                )
            )
        return with_fixed_rates(self.env, self.env.price_cpm * np.exp(self.log_multiplier))


@register_strategy("online-lp")
class OnlineLP(_PacedStrategy):
    """The online-LP bidder, the usual auto-bidding benchmark.

    Impressions are ranked by value per cost: each arm bids its estimated value per
    thousand impressions (GMV per impression from history, shrunk to the channel's
    average while data is thin) divided by a threshold ROI. The threshold starts at the
    ROI target and follows the dual of the budget constraint, updated every hour by
    how far spend ran ahead of or behind an even pace; it never drops below the target.
    """

    def __init__(self, step: float = 0.5, prior_impressions: float = 2_000.0):
        self.step = step
        self.prior_impressions = prior_impressions

    def reset(self, env: AdMarketEnv, prior: EpisodeMarket | None = None) -> None:
        super().reset(env, prior)
        self.log_threshold = 0.0
        # Before any data: value such that bidding the median price earns the target.
        self.prior_value = env.price_cpm / 1000.0 * env.roi_target

    def act(self, observation: np.ndarray) -> np.ndarray:
        env = self.env
        if self.t > 0:
            pace = env.budget / env.horizon
            spent_last = float(self.last_spend.sum())
            self.log_threshold = max(
                0.0, self.log_threshold + self.step * (spent_last / pace - 1.0)
            )
        value = (self.arm_gmv + self.prior_value * self.prior_impressions) / (
            self.arm_impressions + self.prior_impressions
        )
        threshold = env.roi_target * np.exp(self.log_threshold)
        return with_fixed_rates(env, 1000.0 * value / threshold)


@register_strategy("proportional")
class ProportionalROI(PIDPacer):
    """Budget proportional to observed ROI, paced like the PID pacer.

    The PID pacer sets the overall bid level; each arm's bid is then scaled by its
    observed ROI relative to the campaign's (shrunk towards the ROI target while data is
    thin), so money flows to the arms that have paid best so far.
    """

    def __init__(self, prior_spend: float = 200.0, **pid_gains: float):
        super().__init__(**pid_gains)
        self.prior_spend = prior_spend

    def act(self, observation: np.ndarray) -> np.ndarray:
        env = self.env
        roi = (self.arm_gmv + self.prior_spend * env.roi_target) / (
            self.arm_spend + self.prior_spend
        )
        campaign_roi = roi.mean()
        scaled = super().act(observation) * np.clip(roi / campaign_roi, 0.25, 4.0)
        return with_fixed_rates(env, scaled)
