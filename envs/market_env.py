"""``AdMarketEnv``: the simulated multi-channel ad market as a Gymnasium environment."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.market import EpisodeMarket, HourlyStreams, build_episode, sample_hour
from envs.mechanisms import CommissionSupply, PendingOrders, Rivals
from envs.scenario import Scenario

#: Half-width, in log space, of the bid range the normalised action spans: an action of
#: ``a`` bids ``channel.price_cpm * exp(BID_LOG_RANGE * a)``, i.e. 1/8 to 8 times the
#: channel's median clearing price.
BID_LOG_RANGE = math.log(8.0)
N_GLOBAL_OBS = 6
ARM_FIGURES = ("spend", "impressions", "clicks", "orders", "gmv", "win_rate", "clearing_cpm")


def score(gmv: float, spend: float, roi_target: float) -> float:
    """The constrained-bidding score: ``GMV * min(1, ROI / ROI_target) ** 2``."""
    if spend <= 0.0:
        return float(gmv)
    return float(gmv) * min(1.0, (gmv / spend) / roi_target) ** 2


#: The largest seed any command takes (numpy's legacy seeding, which training uses, stops
#: at 2**32 - 1).
MAX_SEED = 2**32 - 1


def resolve_scenario(scenario: Scenario | str) -> Scenario:
    """A Scenario from itself, a preset name, or a path to a TOML file."""
    if isinstance(scenario, Scenario):
        return scenario
    from envs.presets import get_scenario

    return get_scenario(scenario)


class AdMarketEnv(gym.Env):
    """A simulated e-commerce ad market with one bid per (product, channel) arm.

    ## Description
    An advertiser runs one campaign with a total budget and an ROI target (GMV / spend)
    over ``scenario.horizon_hours`` hourly steps. Each hour, every arm (a product in a
    channel: short-video feed, live room, search, mall, affiliate) enters its channel's
    auction (second-price, GSP over exposed slots or first-price, with an optional
    reserve price and rivals that raise prices as we take share) for the hour's
    impression opportunities; won impressions turn into clicks, orders and GMV as random
    counts and amounts, and orders may arrive hours after their clicks. The model and its
    defaults are written down in ``docs/market.md``.

    ## Action Space
    ``Box(-1, 1, (K,), float32)``, one entry per arm. Action ``a`` bids
    ``price_cpm * exp(ln(8) * a)`` CPM (currency per thousand impressions), where
    ``price_cpm`` is the arm's channel's median clearing price: -1 bids an eighth of it,
    0 the median, 1 eight times it. On an arm of a commission channel the same number
    sets the commission rate (a share of GMV), ``going_rate * exp(ln(8) * a)``, at most
    the channel's ``max_rate`` (docs/market.md, "Commission channels").
    :meth:`bids_to_action` and :meth:`action_to_bids` convert; ``price_cpm`` holds each
    arm's price level (the going rate on commission arms) and ``bid_cap`` its highest
    lever.

    ## Observation Space
    ``Box(-inf, inf, (6 + 7K,), float32)``: ``[remaining_budget / budget,
    remaining_hours / horizon, roi_target, roi_so_far, sin(hour), cos(hour)]``, then for
    each arm the last hour's ``[spend / hourly_budget, log1p(impressions), log1p(clicks),
    log1p(orders), gmv / hourly_budget, win_rate, clearing_cpm / price_cpm]`` where
    ``hourly_budget = budget / horizon``. Every figure in currency units is in ``info``.

    ## Rewards
    The GMV of the orders placed in the step, in currency units. On the last step the
    reward also carries the delayed orders that arrive within the attribution window
    (``info["late_gmv"]``) and ``score - total_gmv`` (zero or negative), so the episode's
    return equals the score
    ``GMV * min(1, ROI / ROI_target) ** 2``: missing the ROI target is penalised
    quadratically, as in the standard constrained-bidding metric.

    ## Starting State
    The full budget, hour ``scenario.start_hour``, no exposure. The episode's market
    (traffic noise included) is drawn from ``self.np_random`` at reset, and so is the seed
    of the hourly draws' random streams (:class:`~envs.market.HourlyStreams`): with the
    same seed, two strategies meet the same luck in every hour whatever they bid.

    ## Episode End
    Terminated after ``horizon_hours`` steps, or once the budget is spent or committed
    (commission owed on sales still to arrive counts as committed). Never
    truncated by the environment itself.

    ## Arguments
    ``scenario``: a :class:`~envs.scenario.Scenario`, a preset name (``autopilot scenario
    list``) or a path to a scenario TOML file.

    ## Version History
    * v0: initial version; the market mechanisms (auction rules, price families, reserve
      prices, reacting rivals, delayed orders) were added as scenario settings whose
      defaults leave every earlier scenario's episodes unchanged.
    """

    metadata = {"render_modes": []}

    def __init__(self, scenario: Scenario | str = "default", render_mode: str | None = None):
        self.scenario = resolve_scenario(scenario)
        self.render_mode = render_mode
        sc = self.scenario
        self.n_arms = sc.n_arms
        self.arm_names = sc.arm_names
        self.horizon = sc.horizon_hours
        self.budget = float(sc.budget)
        self.roi_target = float(sc.roi_target)
        self.hourly_budget = self.budget / self.horizon
        arm_channels = [sc.channel(a.channel) for a in sc.arms]
        #: Per arm, what the lever is measured against: the median CPM, or the going rate.
        self.price_cpm = np.array([c.price_level for c in arm_channels])
        #: Per arm, whether it is paid by commission (its lever is a rate).
        self.commission = np.array([c.commission for c in arm_channels])
        #: Per arm, the highest lever (eight times the level; the highest rate allowed).
        self.bid_cap = np.array([c.lever_cap for c in arm_channels])
        self.action_space = spaces.Box(-1.0, 1.0, (self.n_arms,), dtype=np.float32)
        self.observation_space = spaces.Box(
            -np.inf, np.inf, (N_GLOBAL_OBS + len(ARM_FIGURES) * self.n_arms,), dtype=np.float32
        )
        self.any_commission = bool(self.commission.any())
        self.market: EpisodeMarket | None = None
        self._reset_state()

    # -- conversions ----------------------------------------------------------------------
    def action_to_bids(self, action: np.ndarray) -> np.ndarray:
        """Bids in CPM for a normalised action (clipped to [-1, 1])."""
        # minimum/maximum rather than np.clip: the same values at a third of the call cost,
        # and this runs on every environment step.
        a = np.minimum(np.maximum(np.asarray(action, dtype=float), -1.0), 1.0)
        bids = self.price_cpm * np.exp(BID_LOG_RANGE * a)
        if self.any_commission:
            bids = np.minimum(bids, self.bid_cap)  # no rate above the channel's maximum
        return bids

    def bids_to_action(self, bids_cpm: np.ndarray) -> np.ndarray:
        """The normalised action for bids in CPM (clipped to the bid range)."""
        ratio = np.maximum(np.asarray(bids_cpm, dtype=float), 1e-12) / self.price_cpm
        return np.clip(np.log(ratio) / BID_LOG_RANGE, -1.0, 1.0).astype(np.float32)

    # -- Gymnasium API --------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.t = 0
        self.spent = 0.0
        self.gmv_total = 0.0
        self.exposure = np.zeros(self.n_arms)
        self.rivals: Rivals | None = None
        self.pending: PendingOrders | None = None
        self.supply: CommissionSupply | None = None
        self._last = np.zeros((len(ARM_FIGURES), self.n_arms))
        self._obs = np.zeros(self.observation_space.shape, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._reset_state()
        self.market = build_episode(self.scenario, self.np_random)
        self._streams = HourlyStreams(int(self.np_random.integers(2**63)))
        mechanism = self.market.mechanism
        if mechanism is not None and mechanism.reacts:
            self.rivals = Rivals(mechanism)
        if mechanism is not None and mechanism.delays:
            self.pending = PendingOrders(mechanism)
        if mechanism is not None and mechanism.any_commission:
            self.supply = CommissionSupply(mechanism)
        return self._observation(), self._info(None, np.zeros(self.n_arms))

    def step(self, action: np.ndarray):
        if self.market is None:
            raise RuntimeError("call reset() before step()")
        if self.t >= self.horizon:
            raise RuntimeError("the episode has ended; call reset()")
        action = np.asarray(action, dtype=float)
        if np.isnan(action).any():
            raise ValueError("the action contains NaN; give one finite number per arm in [-1, 1]")
        bids = self.action_to_bids(action)
        rivals = self.rivals
        pending = self.pending
        hour = sample_hour(
            self.market,
            self.t,
            bids,
            self.exposure,
            # Commission on sales still to arrive is reserved: paying it never passes the budget.
            self.budget - self.spent - (0.0 if pending is None else pending.owed),
            self._streams,
            price_factor=None if rivals is None else rivals.factor(),
            supply_rates=None if self.supply is None else self.supply.answer(bids),
        )
        if rivals is not None:
            rivals.update(hour["impressions"], hour["opportunities"])
        if pending is not None:
            # The platform reports orders when they are placed, not when clicked, and pays
            # a commission when its sale arrives.
            owed = np.where(self.commission, hour["spend"], 0.0) if self.any_commission else None
            hour["orders"], hour["gmv"], paid = pending.hour(
                hour["orders"],
                hour["gmv"],
                self._streams.at(self.t, HourlyStreams.ARRIVALS),
                owed,
            )
            if owed is not None:
                hour["spend"] = np.where(self.commission, paid, hour["spend"])
        self.exposure += hour["impressions"]
        step_spend = float(hour["spend"].sum())
        step_gmv = float(hour["gmv"].sum())
        self.spent = min(self.spent + step_spend, self.budget)
        self.gmv_total += step_gmv
        self.t += 1
        for i, name in enumerate(ARM_FIGURES):
            self._last[i] = hour[name]

        committed = self.spent + (0.0 if pending is None else pending.owed)
        terminated = self.t >= self.horizon or committed >= self.budget * (1.0 - 1e-6)
        reward = step_gmv
        late_orders = late_gmv = late_paid = None
        if terminated and pending is not None:
            # Orders still pending count if they arrive within the attribution window, and
            # their commission is paid then (from what was reserved for it).
            late_orders, late_gmv, late_paid = pending.close(
                self.hours_to_close, self._streams.at(self.t, HourlyStreams.LATE_ARRIVALS)
            )
            self.gmv_total += float(late_gmv.sum())
            self.spent = min(self.spent + float(late_paid.sum()), self.budget)
            reward += float(late_gmv.sum())
        if terminated:
            reward += score(self.gmv_total, self.spent, self.roi_target) - self.gmv_total
        info = self._info(hour, bids)
        if late_gmv is not None:
            info["late_orders"], info["late_gmv"] = late_orders, late_gmv
            if self.any_commission:
                info["late_commission"] = late_paid  # in spend_total, not in spend
        if terminated:
            info["score"] = score(self.gmv_total, self.spent, self.roi_target)
        return self._observation(), reward, terminated, False, info

    @property
    def hours_to_close(self) -> int:
        """Hours left until attribution closes: the campaign hours not yet played plus
        the attribution window (delayed orders that arrive later do not count)."""
        return self.horizon - self.t + self.scenario.attribution_window_hours

    # -- observation and info -------------------------------------------------------------
    def _observation(self) -> np.ndarray:
        roi = self.gmv_total / self.spent if self.spent > 0 else 0.0
        angle = 2.0 * math.pi * ((self.scenario.start_hour + self.t) % 24) / 24.0
        obs = self._obs
        obs[0] = (self.budget - self.spent) / self.budget
        obs[1] = (self.horizon - self.t) / self.horizon
        obs[2] = self.roi_target
        obs[3] = roi
        obs[4] = math.sin(angle)
        obs[5] = math.cos(angle)
        per_arm = obs[N_GLOBAL_OBS:].reshape(self.n_arms, len(ARM_FIGURES)).T
        last = self._last
        np.multiply(last[0], 1.0 / self.hourly_budget, out=per_arm[0], casting="unsafe")
        np.log1p(last[1:4], out=per_arm[1:4], casting="unsafe")
        np.multiply(last[4], 1.0 / self.hourly_budget, out=per_arm[4], casting="unsafe")
        per_arm[5] = last[5]
        np.divide(last[6], self.price_cpm, out=per_arm[6], casting="unsafe")
        return obs.copy()

    def _info(self, hour: dict[str, np.ndarray] | None, bids: np.ndarray) -> dict[str, Any]:
        info: dict[str, Any] = {
            "t": self.t,
            "hour_of_day": (self.scenario.start_hour + self.t - (1 if hour else 0)) % 24,
            "spend_total": self.spent,
            "gmv_total": self.gmv_total,
            "remaining_budget": self.budget - self.spent,
            "roi": self.gmv_total / self.spent if self.spent > 0 else 0.0,
            "bid_cpm": bids,
        }
        if self.any_commission:
            # The rate set on commission arms (the lever in bid_cpm) and what it cost.
            info["commission_rate"] = np.where(self.commission, bids, 0.0)
            paid = np.zeros(self.n_arms) if hour is None else hour["spend"]
            info["commission"] = np.where(self.commission, paid, 0.0)
        if hour is not None:
            info.update(hour)
        else:
            info.update({name: np.zeros(self.n_arms) for name in ARM_FIGURES})
            info["opportunities"] = np.zeros(self.n_arms, dtype=np.int64)
        return info
