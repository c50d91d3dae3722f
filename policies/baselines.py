"""Baseline strategies: the simple rules a marketer or the industry would use.

Each is measured by the same evaluator as the autopilot, on the same seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs import AdMarketEnv
from policies.strategy import Strategy, register_strategy

#: The smallest bid a strategy places to pause an arm (CPM); it wins next to nothing.
PAUSE_BID_CPM = 1e-3


@register_strategy("even")
class EvenSplit(Strategy):
    """Even split with a fixed bid.

    Every arm bids the channel's median clearing price (``bid_multiplier`` times it) and
    gets an equal share of the budget; an arm whose share is spent is paused.
    """

    def __init__(self, bid_multiplier: float = 1.0):
        self.bid_multiplier = bid_multiplier

    def reset(self, env: AdMarketEnv) -> None:
        super().reset(env)
        self.arm_spend = np.zeros(env.n_arms)
        self.share = env.budget / env.n_arms

    def observe(self, info: dict[str, Any]) -> None:
        self.arm_spend += info["spend"]

    def act(self, observation: np.ndarray) -> np.ndarray:
        bids = self.env.price_cpm * self.bid_multiplier
        return np.where(self.arm_spend < self.share, bids, PAUSE_BID_CPM)
