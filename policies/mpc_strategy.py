"""Strategies built on the MPC bidder: MPC alone (neutral plan) and the clairvoyant oracle."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from bidder.exact import exact_plan
from bidder.forecast import Forecaster
from bidder.mpc import CampaignState, Decision, MPCConfig, reusable_bidder
from bidder.plan import Plan
from bidder.response import spend_to_bid
from envs import AdMarketEnv
from envs.market import EpisodeMarket
from envs.market_env import BID_LOG_RANGE
from policies.strategy import Strategy, register_strategy


class _MPCBase(Strategy):
    """Shared bookkeeping: campaign state, the bidder, the decisions taken."""

    def __init__(self, config: MPCConfig | None = None):
        self.config = config or MPCConfig()
        self._bidders: OrderedDict = OrderedDict()

    def reset(self, env: AdMarketEnv, prior: EpisodeMarket | None = None) -> None:
        super().reset(env, prior)
        # Compiled once per campaign shape and kept by this strategy for its next episodes
        # (its own cache: strategies of one shape may play side by side).
        self.bidder = reusable_bidder(env.n_arms, env.horizon, self.config, self._bidders)
        # Eight times each price level; on commission arms at most the highest rate.
        self.bid_cap = getattr(env, "bid_cap", env.price_cpm * np.exp(BID_LOG_RANGE))
        self.t = 0
        self.spent = self.gmv = 0.0
        self.exposure = np.zeros(env.n_arms)
        self.previous_bids: np.ndarray | None = None
        self.decisions: list[Decision] = []

    def pending_gmv(self) -> float:
        """GMV earned but not yet reported (delayed orders); 0 for the base class."""
        return 0.0

    def pending_spend(self) -> float:
        """Commission owed on those sales, paid when they arrive; 0 for the base class."""
        return 0.0

    def state(self) -> CampaignState:
        return CampaignState(
            budget=self.env.budget,
            roi_target=self.env.roi_target,
            # Commission owed on sales still to arrive is spent already: it is neither
            # budget left to plan nor free GMV for the ROI so far.
            spent=min(self.spent + self.pending_spend(), self.env.budget),
            gmv=self.gmv + self.pending_gmv(),
            bid_cap=self.bid_cap,
            previous_bids=self.previous_bids,
            exposure=self.exposure.copy(),
        )

    def plan(self, observation: np.ndarray) -> Plan:
        return Plan.neutral()

    def forecast(self):
        raise NotImplementedError

    def act(self, observation: np.ndarray) -> np.ndarray:
        # The plan first: a plan may set how the forecasts are made.
        plan = self.plan(observation)
        decision = self.bidder.decide(self.forecast(), self.state(), plan)
        self.decisions.append(decision)
        self.previous_bids = decision.bids_cpm
        return decision.bids_cpm

    def observe(self, info: dict[str, Any]) -> None:
        self.spent += float(np.sum(info["spend"]))
        self.gmv += float(np.sum(info["gmv"]))
        self.exposure += info["impressions"]
        self.t += 1


@register_strategy("mpc")
class MPCStrategy(_MPCBase):
    """MPC alone: the neutral plan, forecasts learned online from the prior.

    The prior is what the advertiser knows before the campaign (``policies.prior``): by
    default the market fitted from two weeks of its logs.
    """

    def reset(self, env: AdMarketEnv, prior: EpisodeMarket | None = None) -> None:
        super().reset(env, prior)
        self.forecaster = Forecaster(self.prior)

    def forecast(self):
        return self.forecaster.forecast(self.t)

    def pending_gmv(self) -> float:
        # Orders clicked but not yet placed count towards ROI so far, as the forecaster
        # expects them, so that the early hours of a delayed market do not look unprofitable.
        return self.forecaster.pending_gmv(self.t)

    def pending_spend(self) -> float:
        return self.forecaster.pending_spend(self.t)

    def observe(self, info: dict[str, Any]) -> None:
        self.forecaster.update(self.t, info["bid_cpm"], info, self.exposure.copy())
        super().observe(info)


@register_strategy("oracle")
class OracleStrategy(_MPCBase):
    """The clairvoyant planner: it reads the episode's true market (traffic noise and
    shocks included), allocates the rest of the budget exactly over every remaining hour
    to maximise the expected score, and re-plans each hour as outcomes arrive. No real
    strategy can know as much, so its score is the 100% of ``pct_of_oracle``."""

    def __init__(self, n_pieces: int = 48):
        super().__init__()
        self.n_pieces = n_pieces

    def forecast(self) -> EpisodeMarket:
        """The true market of the remaining hours. With reacting rivals, prices stand at
        the level the rivals hold now (it moves only with our own share, which the
        re-plan of every hour takes in)."""
        env = self.env
        if env.rivals is None:
            return env.market.from_hour(self.t)
        return env.market.from_hour(self.t, price_median=env.rivals.factor())

    def pending_gmv(self) -> float:
        """Orders clicked but not yet placed that will count within the attribution
        window: the environment's own pending GMV, which the oracle may read."""
        env = self.env
        if env.pending is None:
            return 0.0
        return env.pending.expected_attributed_gmv(env.hours_to_close)

    def act(self, observation: np.ndarray) -> np.ndarray:
        env = self.env
        # Commission owed on pending sales: reserved by the market, and paid as far as
        # the sales arrive within the attribution window.
        reserved = 0.0 if env.pending is None else env.pending.owed
        owed = (
            0.0
            if env.pending is None
            else env.pending.expected_attributed_commission(env.hours_to_close)
        )
        plan = exact_plan(
            self.forecast(),
            self.bid_cap,
            max(env.budget - self.spent - reserved, 0.0),
            env.roi_target,
            self.spent + owed,
            self.gmv + self.pending_gmv(),
            self.exposure,
            n_pieces=self.n_pieces,
            objective="score",
        )
        bids = spend_to_bid(plan.curves, plan.planned[:, 0, :].sum(axis=1))
        return np.minimum(bids, self.bid_cap)
